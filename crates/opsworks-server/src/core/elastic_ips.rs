//! Elastic IPs: addresses of the server's pool (`--elastic-ip-pool`, on the machines' bridge)
//! that belong to one instance at a time and follow it. The store says who holds each address;
//! this module makes the host agree: the address is reserved host-wide (the machines' lease
//! registry) while allocated, sits on its holder's machine while that machine runs (added,
//! announced by gratuitous ARP, removed from the previous holder first), and is given back on
//! release. A server restart puts everything back as the store says ([`reconcile`]).
//!
//! Without local machines the store is all there is: addresses are allocated, registered and
//! associated as records, as instances are.

use std::net::Ipv4Addr;

use opsworks_model::resource::{ElasticIp, Instance};
use opsworks_sandbox::Error as MachineError;
use opsworks_store::Filter;

use crate::core::{Core, CoreError, CoreResult, Write, lifecycle};

/// Serialises what the host's addresses are changed by, so two moves of one address never
/// interleave; each applies what the store says once it holds this.
static MOVES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Whether an address could be reserved on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// It is ours (or there are no local machines to share the host with).
    Reserved,
    /// Something else on this host holds it (another server's address or machine).
    Taken(String),
}

fn parse(ip: &str) -> CoreResult<Ipv4Addr> {
    ip.parse()
        .map_err(|_| CoreError::Invalid(format!("{ip} is not an IPv4 address")))
}

fn machine_error(e: MachineError) -> CoreError {
    CoreError::Machine(e.to_string())
}

/// Reserves `ip` host-wide for this server.
pub async fn reserve(core: &Core, ip: Ipv4Addr) -> CoreResult<Reservation> {
    let Some(m) = core.machines() else {
        return Ok(Reservation::Reserved);
    };
    match m.provider().reserve_address(ip).await {
        Ok(()) => Ok(Reservation::Reserved),
        Err(MachineError::AddressInUse { holder, .. }) => Ok(Reservation::Taken(holder)),
        Err(e) => Err(machine_error(e)),
    }
}

/// Gives `ip` back to the host (after its record is gone); a failure is logged, and the next
/// start's [`reconcile`] gives it back instead.
pub async fn release(core: &Core, ip: Ipv4Addr) {
    if let Some(m) = core.machines()
        && let Err(e) = m.provider().release_address(ip).await
    {
        tracing::warn!(%ip, "giving an Elastic IP back to the host failed: {e}");
    }
}

/// What the instance's public address is: its Elastic IP, else its own address.
pub fn public_ip(inst: &Instance) -> Option<String> {
    inst.elastic_ip.clone().or_else(|| inst.private_ip.clone())
}

/// Records `eip` as associated with `instance_id` (taking it from its previous holder, whose
/// public address goes back to its own), and Configure on the stacks concerned. Returns the
/// previous holder. Apply it to the host with [`apply`] once committed.
pub async fn associate(
    w: &mut Write<'_>,
    eip: &mut ElasticIp,
    instance_id: &str,
) -> CoreResult<Option<String>> {
    let previous = take_from_holder(w, eip).await?;
    let mut inst: Instance = w.get(instance_id).await?;
    if let Some(other) = inst.elastic_ip.clone().filter(|o| *o != eip.ip) {
        // An instance has one Elastic IP: its former one stays registered, unassociated.
        if let Some(mut former) = w.find::<ElasticIp>(&other).await? {
            former.instance_id = None;
            former.association_id = None;
            w.put(&former).await?;
        }
    }
    inst.elastic_ip = Some(eip.ip.clone());
    inst.public_ip = Some(eip.ip.clone());
    w.put(&inst).await?;
    eip.instance_id = Some(instance_id.to_string());
    eip.association_id = Some(opsworks_model::ec2_id("eipassoc"));
    w.put(&*eip).await?;
    lifecycle::configure_stack(w, &inst.stack_id).await?;
    if let Some(prev) = &previous
        && let Some(p) = w.find::<Instance>(prev).await?
        && p.stack_id != inst.stack_id
    {
        lifecycle::configure_stack(w, &p.stack_id).await?;
    }
    Ok(previous)
}

/// Records `eip` as associated with nothing (Configure on its former holder's stack). Returns
/// the former holder. Apply it with [`apply`] once committed.
pub async fn disassociate(w: &mut Write<'_>, eip: &mut ElasticIp) -> CoreResult<Option<String>> {
    let previous = take_from_holder(w, eip).await?;
    eip.instance_id = None;
    eip.association_id = None;
    w.put(&*eip).await?;
    if let Some(prev) = &previous
        && let Some(p) = w.find::<Instance>(prev).await?
    {
        lifecycle::configure_stack(w, &p.stack_id).await?;
    }
    Ok(previous)
}

async fn take_from_holder(w: &mut Write<'_>, eip: &ElasticIp) -> CoreResult<Option<String>> {
    let Some(holder) = eip.instance_id.clone() else {
        return Ok(None);
    };
    if let Some(mut inst) = w.find::<Instance>(&holder).await?
        && inst.elastic_ip.as_deref() == Some(eip.ip.as_str())
    {
        inst.elastic_ip = None;
        inst.public_ip = inst.private_ip.clone();
        w.put(&inst).await?;
    }
    Ok(Some(holder))
}

/// Makes the host agree with the store about `ip`: off `previous` (its former holder), on its
/// holder's machine when that runs (a stopped holder gets it when it boots).
pub async fn apply(core: &Core, ip: &str, previous: Option<&str>) -> CoreResult<()> {
    let Some(m) = core.machines() else {
        return Ok(());
    };
    let _one_at_a_time = MOVES.lock().await;
    let addr = parse(ip)?;
    let holder = core
        .find::<ElasticIp>(ip)
        .await?
        .and_then(|e| e.instance_id.clone());
    if let Some(prev) = previous
        && Some(prev) != holder.as_deref()
    {
        match m.provider().remove_address(prev, addr).await {
            Ok(()) | Err(MachineError::NotFound { .. }) => {}
            Err(e) => return Err(machine_error(e)),
        }
    }
    if let Some(holder) = holder {
        match m.provider().add_address(&holder, addr).await {
            // It gets the address when it boots.
            Ok(()) | Err(MachineError::NotRunning { .. } | MachineError::NotFound { .. }) => {}
            Err(e) => return Err(machine_error(e)),
        }
    }
    Ok(())
}

/// The Elastic IP an instance's machine boots with, reserved on the host; a reservation that
/// fails is the caller's to report (the machine boots without it).
pub async fn for_boot(
    core: &Core,
    inst: &Instance,
) -> CoreResult<Result<Option<Ipv4Addr>, String>> {
    let Some(ip) = inst.elastic_ip.as_deref() else {
        return Ok(Ok(None));
    };
    let addr = parse(ip)?;
    Ok(match reserve(core, addr).await? {
        Reservation::Reserved => Ok(Some(addr)),
        Reservation::Taken(holder) => Err(format!(
            "Elastic IP {ip} could not be given to instance {}: this host has it in use elsewhere ({holder})",
            inst.hostname
        )),
    })
}

/// After a machine booted: it answers on its instance's Elastic IP (which may have been
/// associated while it booted) and on nothing else.
pub async fn after_boot(core: &Core, instance_id: &str) -> CoreResult<()> {
    let Some(m) = core.machines() else {
        return Ok(());
    };
    let inst = core.get::<Instance>(instance_id).await?;
    {
        let _one_at_a_time = MOVES.lock().await;
        let extras = m
            .provider()
            .extra_addresses(instance_id)
            .await
            .map_err(machine_error)?;
        for extra in extras {
            if inst.elastic_ip.as_deref() != Some(extra.to_string().as_str()) {
                m.provider()
                    .remove_address(instance_id, extra)
                    .await
                    .map_err(machine_error)?;
            }
        }
    }
    match inst.elastic_ip.as_deref() {
        Some(ip) => apply(core, ip, None).await,
        None => Ok(()),
    }
}

/// At start: every allocated address reserved on the host again (the registry lives in `/run`,
/// which a host reboot empties), reservations of released addresses given back, and every
/// running machine answering on exactly its instance's Elastic IP (a crash between taking an
/// address off one machine and putting it on another is repaired here).
pub async fn reconcile(core: &Core) -> CoreResult<()> {
    let Some(m) = core.machines() else {
        return Ok(());
    };
    let eips = core.list::<ElasticIp>(Filter::All).await?;
    for eip in &eips {
        if let Ok(addr) = parse(&eip.ip)
            && let Reservation::Taken(holder) = reserve(core, addr).await?
        {
            tracing::error!(ip = %eip.ip, %holder, "an allocated Elastic IP is in use elsewhere on this host");
        }
    }
    let reserved = m
        .provider()
        .reserved_addresses()
        .await
        .map_err(machine_error)?;
    for addr in reserved {
        if !eips.iter().any(|e| e.ip == addr.to_string()) {
            release(core, addr).await;
        }
    }
    let _one_at_a_time = MOVES.lock().await;
    for inst in core.list::<Instance>(Filter::All).await? {
        let Ok(extras) = m.provider().extra_addresses(&inst.instance_id).await else {
            continue;
        };
        for extra in &extras {
            if inst.elastic_ip.as_deref() != Some(extra.to_string().as_str()) {
                m.provider()
                    .remove_address(&inst.instance_id, *extra)
                    .await
                    .map_err(machine_error)?;
            }
        }
        // Announced again even where it is in place: a stray copy elsewhere may have drawn the
        // neighbours' caches to another machine.
        if let Some(ip) = inst.elastic_ip.as_deref()
            && let Ok(addr) = parse(ip)
        {
            match m.provider().add_address(&inst.instance_id, addr).await {
                Ok(()) | Err(MachineError::NotRunning { .. }) => {}
                Err(e) => {
                    tracing::warn!(instance_id = %inst.instance_id, %ip, "restoring an Elastic IP failed: {e}")
                }
            }
        }
    }
    Ok(())
}
