//! Classic load balancers served by HAProxy on this host: each load balancer is an appliance
//! ([`crate::core::appliances`]) whose main process is HAProxy's master ([`haproxy`]); its DNS
//! name is the machine's address on the bridge, answering on the listener ports.
//!
//! The store keeps what the load balancer should be (listeners, health check, registered
//! instances); [`apply`] makes the running HAProxy match it (a checked configuration, reloaded
//! gracefully). An instance leaves with connection draining ([`drain_instance`]): no new
//! connection goes to it, the ones in progress finish, then it leaves the configuration.
//! Attached to an OpsWorks layer, a load balancer follows the layer's online instances
//! ([`upkeep`]); an instance that stops is drained before its Shutdown runs.

pub mod haproxy;
pub mod layers;
pub mod upkeep;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use opsworks_model::InstanceStatus;
use opsworks_model::resource::{ElbHealthCheck, ElbListener, Instance, LoadBalancer};
use opsworks_model::{Kind, Resource};
use opsworks_store::Filter;

use self::haproxy::Backend;
use crate::core::appliances::{ApplianceSpec, Appliances};
use crate::core::{Core, CoreError, now};

/// The family prefix of load balancers' machines.
pub const MACHINE_PREFIX: &str = crate::core::appliances::ELB_PREFIX;

/// How many load balancers an account may have (AWS's default quota per region).
pub const MAX_LOAD_BALANCERS: usize = 20;

/// How long an instance's connections may take to finish when it leaves (ELB's default
/// connection draining timeout).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a load balancer call was refused, in ELB's terms.
#[derive(Debug, thiserror::Error)]
pub enum ElbError {
    /// No such load balancer.
    #[error("There is no ACTIVE Load Balancer named '{0}'")]
    NotFound(String),
    /// The name is taken.
    #[error("The specified load balancer name already exists for this account: {0}")]
    Duplicate(String),
    /// Too many load balancers.
    #[error("Exceeded quota of account: {MAX_LOAD_BALANCERS} load balancers")]
    TooMany,
    /// An instance ID that names no instance.
    #[error("{0}")]
    InvalidInstance(String),
    /// A protocol this server does not balance.
    #[error("{0}")]
    UnsupportedProtocol(String),
    /// A request that breaks ELB's rules.
    #[error("{0}")]
    Validation(String),
    /// A configuration that cannot be made (no machines here, a machine that failed).
    #[error("{0}")]
    Configuration(String),
    /// The core failed.
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// A result of this module.
pub type ElbResult<T> = Result<T, ElbError>;

/// The appliances load balancers run on, or why there are none.
pub fn appliances(core: &Core) -> ElbResult<&Appliances> {
    core.appliances().ok_or_else(|| {
        ElbError::Configuration(
            "This server runs no machines (it was started without local instances, or as a user other than root), so it cannot run load balancers.".into(),
        )
    })
}

/// A load balancer by name.
pub async fn find(core: &Core, name: &str) -> ElbResult<LoadBalancer> {
    core.find::<LoadBalancer>(name)
        .await?
        .map(|l| l.to_owned_value())
        .ok_or_else(|| ElbError::NotFound(name.to_string()))
}

/// ELB's rule for names: 1 to 32 letters, digits and hyphens, no hyphen first or last.
pub fn check_name(name: &str) -> ElbResult<()> {
    let ok = (1..=32).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ElbError::Validation(format!(
            "LoadBalancerName '{name}' is not valid: it must have at most 32 characters, only alphanumeric characters or hyphens, and must not begin or end with a hyphen"
        )))
    }
}

/// Checks a health check as ELB does.
pub fn check_health_check(hc: &ElbHealthCheck) -> ElbResult<()> {
    let Some((proto, _, _)) = haproxy::parse_target(&hc.target) else {
        return Err(ElbError::Validation(format!(
            "HealthCheck Target '{}' is not valid: use TCP:PORT or HTTP:PORT/PATH",
            hc.target
        )));
    };
    if proto == "HTTPS" || proto == "SSL" {
        return Err(ElbError::Validation(format!(
            "HealthCheck Target '{}': {proto} health checks are not supported by this server; use TCP or HTTP",
            hc.target
        )));
    }
    let range = |name: &str, v: i64, lo: i64, hi: i64| {
        if (lo..=hi).contains(&v) {
            Ok(())
        } else {
            Err(ElbError::Validation(format!(
                "HealthCheck {name} must be between {lo} and {hi}; it is {v}"
            )))
        }
    };
    range("Interval", hc.interval, 5, 300)?;
    range("Timeout", hc.timeout, 2, 60)?;
    range("UnhealthyThreshold", hc.unhealthy_threshold, 2, 10)?;
    range("HealthyThreshold", hc.healthy_threshold, 2, 10)?;
    if hc.timeout >= hc.interval {
        return Err(ElbError::Validation(
            "HealthCheck Timeout must be smaller than its Interval".into(),
        ));
    }
    Ok(())
}

/// Checks listeners: HTTP or TCP on both sides (the same), ports in range, each load balancer
/// port once. Returns them with the instance protocol filled in.
pub fn check_listeners(listeners: Vec<ElbListener>) -> ElbResult<Vec<ElbListener>> {
    if listeners.is_empty() {
        return Err(ElbError::Validation("Listeners must not be empty".into()));
    }
    let mut out: Vec<ElbListener> = Vec::new();
    for mut l in listeners {
        l.protocol = l.protocol.to_ascii_uppercase();
        l.instance_protocol = l.instance_protocol.to_ascii_uppercase();
        if l.instance_protocol.is_empty() {
            l.instance_protocol = l.protocol.clone();
        }
        for p in [&l.protocol, &l.instance_protocol] {
            match p.as_str() {
                "HTTP" | "TCP" => {}
                "HTTPS" | "SSL" => {
                    return Err(ElbError::UnsupportedProtocol(format!(
                        "Protocol {p} is not supported by this server's load balancers: HTTP and TCP listeners only"
                    )));
                }
                _ => {
                    return Err(ElbError::Validation(format!(
                        "Listener protocol '{p}' is not valid: use HTTP or TCP"
                    )));
                }
            }
        }
        if l.protocol != l.instance_protocol {
            return Err(ElbError::Configuration(format!(
                "Listener on port {}: a {} listener forwards to instances over {} only",
                l.load_balancer_port, l.protocol, l.protocol
            )));
        }
        if l.load_balancer_port == 0 || l.instance_port == 0 {
            return Err(ElbError::Validation(
                "Listener ports must be between 1 and 65535".into(),
            ));
        }
        if l.load_balancer_port == haproxy::ADMIN_PORT {
            return Err(ElbError::Configuration(format!(
                "Port {} is reserved on this server's load balancers",
                haproxy::ADMIN_PORT
            )));
        }
        if out
            .iter()
            .any(|o| o.load_balancer_port == l.load_balancer_port)
        {
            return Err(ElbError::Configuration(format!(
                "Listener port {} is given twice",
                l.load_balancer_port
            )));
        }
        out.push(l);
    }
    Ok(out)
}

/// ELB's health check of a new load balancer: TCP to the first listener's instance port.
pub fn default_health_check(listeners: &[ElbListener]) -> ElbHealthCheck {
    ElbHealthCheck {
        target: format!("TCP:{}", listeners.first().map_or(80, |l| l.instance_port)),
        interval: 30,
        timeout: 5,
        unhealthy_threshold: 2,
        healthy_threshold: 10,
    }
}

/// The per-machine lock of configuration changes: a reload and a drain never interleave.
fn lock_of(machine: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Mutex::default);
    LOCKS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(machine.to_string())
        .or_default()
        .clone()
}

/// What configuration each machine last took, so an unchanged one is not sent again.
fn applied() -> &'static Mutex<HashMap<String, String>> {
    static APPLIED: LazyLock<Mutex<HashMap<String, String>>> = LazyLock::new(Mutex::default);
    &APPLIED
}

/// Forgets what a machine last took (it booted again with the configuration of the moment).
pub fn forget_applied(machine: &str) {
    applied()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(machine);
}

/// The servers of a load balancer: its registered instances that have an address and are not
/// stopped (a stopped instance's address may go to another machine).
pub async fn backends(core: &Core, lb: &LoadBalancer) -> ElbResult<Vec<Backend>> {
    if lb.instances.is_empty() {
        return Ok(Vec::new());
    }
    let all = core.list::<Instance>(Filter::All).await?;
    Ok(lb
        .instances
        .iter()
        .filter_map(|ec2| {
            let inst = all
                .iter()
                .find(|i| i.ec2_instance_id.as_deref() == Some(ec2.as_str()))?;
            let ip = inst.private_ip.clone()?;
            (inst.status != InstanceStatus::Stopped).then(|| Backend {
                name: ec2.clone(),
                ip,
            })
        })
        .collect())
}

/// The appliance of a load balancer, its configuration as the store has it now.
pub async fn spec(core: &Core, lb: &LoadBalancer) -> ElbResult<ApplianceSpec> {
    let config = haproxy::render(lb, &backends(core, lb).await?);
    Ok(ApplianceSpec {
        id: lb.machine_id.clone(),
        hostname: lb.load_balancer_name.to_ascii_lowercase(),
        main: haproxy::main_process(),
        files: haproxy::files(&config),
        limits: Some(opsworks_sandbox::Limits::new(1, 512)),
        port: lb.listeners.first().map_or(80, |l| l.load_balancer_port),
    })
}

/// Makes the running HAProxy serve the load balancer as the store has it (a no-op when its
/// configuration is unchanged).
pub async fn apply(core: &Core, name: &str) -> ElbResult<()> {
    let appliances = appliances(core)?.clone();
    let Some(lb) = core.find::<LoadBalancer>(name).await? else {
        return Ok(());
    };
    let lock = lock_of(&lb.machine_id);
    let _held = lock.lock().await;
    // Read again under the lock: what a concurrent change committed is applied here.
    let Some(lb) = core.find::<LoadBalancer>(name).await? else {
        return Ok(());
    };
    apply_locked(core, &appliances, &lb).await
}

async fn apply_locked(core: &Core, appliances: &Appliances, lb: &LoadBalancer) -> ElbResult<()> {
    let config = haproxy::render(lb, &backends(core, lb).await?);
    let known = applied()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&lb.machine_id)
        .cloned();
    if known.as_deref() == Some(config.as_str()) {
        return Ok(());
    }
    let out = appliances
        .exec(&lb.machine_id, &haproxy::ctl(&["apply", &config]))
        .await
        .map_err(|e| ElbError::Configuration(e.to_string()))?;
    if out.exit_code != 0 {
        return Err(ElbError::Configuration(format!(
            "load balancer {}: HAProxy refused the new configuration (exit {}): {}",
            lb.load_balancer_name,
            out.exit_code,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let said = String::from_utf8_lossy(&out.stdout);
    if said.contains("reloaded") {
        tracing::info!(
            load_balancer = lb.load_balancer_name,
            "HAProxy reloaded with a new configuration"
        );
    }
    applied()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(lb.machine_id.clone(), config);
    Ok(())
}

/// Asks the running HAProxy of a load balancer for its servers' states.
pub async fn server_stats(
    core: &Core,
    lb: &LoadBalancer,
) -> ElbResult<Option<Vec<haproxy::ServerStat>>> {
    let appliances = appliances(core)?;
    let out = match appliances
        .exec(&lb.machine_id, &haproxy::ctl(&["admin", "show stat"]))
        .await
    {
        Ok(out) if out.exit_code == 0 => out,
        // Not running (being restarted by upkeep): nothing to say.
        _ => return Ok(None),
    };
    Ok(Some(haproxy::parse_stat(&String::from_utf8_lossy(
        &out.stdout,
    ))))
}

/// What CreateLoadBalancer asks for.
#[derive(Debug, Clone)]
pub struct NewLoadBalancer {
    /// Its name.
    pub name: String,
    /// Its listeners.
    pub listeners: Vec<ElbListener>,
    /// Availability zones, recorded.
    pub availability_zones: Vec<String>,
    /// `internet-facing` or `internal`.
    pub scheme: String,
}

/// CreateLoadBalancer: the load balancer's machine is made and answers on its first listener
/// port before the call answers; a machine that did not come up leaves nothing behind.
pub async fn create(core: &Core, new: NewLoadBalancer) -> ElbResult<LoadBalancer> {
    check_name(&new.name)?;
    let listeners = check_listeners(new.listeners)?;
    let appliances = appliances(core)?.clone();
    let suffix = opsworks_model::new_id();
    let lb = LoadBalancer {
        load_balancer_name: new.name.clone(),
        dns_name: String::new(),
        health_check: default_health_check(&listeners),
        listeners,
        instances: Vec::new(),
        availability_zones: new.availability_zones,
        scheme: new.scheme,
        created_time: now(),
        machine_id: format!("{MACHINE_PREFIX}{}-{}", new.name, &suffix[..8]),
        owner: Some(crate::core::rds::owner_token(core)),
        layer_id: None,
        stack_id: None,
    };
    // Claimed before it is recorded: the upkeep pass leaves a creation in flight alone.
    let claim = appliances
        .claim(&lb.machine_id)
        .ok_or_else(|| ElbError::Configuration("the new machine is busy".into()))?;
    {
        let mut w = core.write().await?;
        if w.find::<LoadBalancer>(&lb.load_balancer_name)
            .await?
            .is_some()
        {
            return Err(ElbError::Duplicate(new.name));
        }
        if w.list::<LoadBalancer>(Filter::All).await?.len() >= MAX_LOAD_BALANCERS {
            return Err(ElbError::TooMany);
        }
        w.put(&lb).await?;
        w.commit().await?;
    }
    let spec = spec(core, &lb).await?;
    let booted = appliances.create(&spec).await;
    let result = async {
        let ip = booted.map_err(|e| {
            ElbError::Configuration(format!(
                "The load balancer's machine could not be started: {e}"
            ))
        })?;
        let mut w = core.write().await?;
        let mut stored: LoadBalancer = w
            .find(&lb.load_balancer_name)
            .await?
            .ok_or_else(|| ElbError::NotFound(lb.load_balancer_name.clone()))?;
        stored.dns_name = ip.to_string();
        w.put(&stored).await?;
        w.commit().await?;
        Ok(stored)
    }
    .await;
    drop(claim);
    if result.is_err() {
        // Nothing half-made: the record goes with the machine (which `create` removed).
        let _ = appliances.destroy(&lb.machine_id).await;
        if let Ok(mut w) = core.write().await
            && w.delete(Kind::LoadBalancer, &lb.load_balancer_name)
                .await
                .is_ok()
        {
            let _ = w.commit().await;
        }
    }
    result
}

/// DeleteLoadBalancer: the machine goes, then the record. Deleting an absent one succeeds.
pub async fn delete(core: &Core, name: &str) -> ElbResult<()> {
    let Some(lb) = core.find::<LoadBalancer>(name).await? else {
        return Ok(());
    };
    let appliances = appliances(core)?.clone();
    let _claim = appliances.claim(&lb.machine_id);
    appliances
        .destroy(&lb.machine_id)
        .await
        .map_err(|e| ElbError::Configuration(e.to_string()))?;
    forget_applied(&lb.machine_id);
    let mut w = core.write().await?;
    w.delete(Kind::LoadBalancer, lb.id()).await?;
    if let Some(stack) = &lb.stack_id {
        crate::core::lifecycle::configure_stack(&mut w, stack).await?;
    }
    w.commit().await?;
    Ok(())
}

/// Changes a stored load balancer in one transaction and applies the result.
pub async fn change(
    core: &Core,
    name: &str,
    edit: impl FnOnce(&mut LoadBalancer) -> ElbResult<()>,
) -> ElbResult<LoadBalancer> {
    let lb = {
        let mut w = core.write().await?;
        let mut lb: LoadBalancer = w
            .find(name)
            .await?
            .ok_or_else(|| ElbError::NotFound(name.to_string()))?;
        edit(&mut lb)?;
        w.put(&lb).await?;
        w.commit().await?;
        lb
    };
    if let Err(e) = apply(core, name).await {
        tracing::warn!(load_balancer = name, "applying a change: {e}");
    }
    Ok(lb)
}

/// The instance an `Ec2InstanceId` names.
pub async fn instance_by_ec2_id(core: &Core, ec2: &str) -> ElbResult<Option<Instance>> {
    Ok(core
        .list::<Instance>(Filter::All)
        .await?
        .iter()
        .find(|i| i.ec2_instance_id.as_deref() == Some(ec2))
        .map(|i| i.to_owned_value()))
}

/// Takes instances out of HAProxy's rotation at once (drain: no new connection, the ones in
/// progress go on) and out of the stored registrations. The caller holds the machine's lock.
async fn drain_begin(
    core: &Core,
    appliances: &Appliances,
    name: &str,
    ids: &[String],
) -> ElbResult<LoadBalancer> {
    let lb = find(core, name).await?;
    for ec2 in ids {
        for l in &lb.listeners {
            let backend = haproxy::backend_name(l.load_balancer_port);
            let command = format!("set server {backend}/{ec2} state drain");
            if let Err(e) = appliances
                .exec(&lb.machine_id, &haproxy::ctl(&["admin", &command]))
                .await
            {
                tracing::warn!(load_balancer = name, "draining {ec2}: {e}");
            }
        }
    }
    let mut w = core.write().await?;
    let mut lb: LoadBalancer = w
        .find(name)
        .await?
        .ok_or_else(|| ElbError::NotFound(name.to_string()))?;
    lb.instances.retain(|i| !ids.contains(i));
    w.put(&lb).await?;
    w.commit().await?;
    Ok(lb)
}

/// Waits until HAProxy has no connection left to `ids`, at most `timeout`, then serves the
/// configuration without them. The caller holds the machine's lock.
async fn drain_finish(
    core: &Core,
    appliances: &Appliances,
    lb: &LoadBalancer,
    ids: &[String],
    timeout: Duration,
) -> ElbResult<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let busy: u64 = match server_stats(core, lb).await? {
            Some(stats) => stats
                .iter()
                .filter(|s| ids.contains(&s.server))
                .map(|s| s.sessions)
                .sum(),
            None => 0,
        };
        if busy == 0 || tokio::time::Instant::now() >= deadline {
            if busy > 0 {
                tracing::warn!(
                    load_balancer = lb.load_balancer_name,
                    ?ids,
                    busy,
                    "connection draining timed out"
                );
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    apply_locked(core, appliances, lb).await
}

/// Takes an instance out of a load balancer with connection draining and returns once it is
/// out: no new connection goes to it at once, it leaves the stored registrations, the
/// connections in progress get up to `timeout` to finish, then it leaves HAProxy's
/// configuration.
pub async fn drain(core: &Core, name: &str, ec2: &str, timeout: Duration) -> ElbResult<()> {
    let appliances = appliances(core)?.clone();
    let lock = lock_of(&find(core, name).await?.machine_id);
    let _held = lock.lock().await;
    let ids = [ec2.to_string()];
    let lb = drain_begin(core, &appliances, name, &ids).await?;
    drain_finish(core, &appliances, &lb, &ids, timeout).await
}

/// DeregisterInstancesFromLoadBalancer: the instances leave the rotation and the registrations
/// before the call answers; their connections finish in the background (up to
/// [`DRAIN_TIMEOUT`]), as ELB's connection draining does.
pub async fn deregister(core: &Core, name: &str, ids: Vec<String>) -> ElbResult<LoadBalancer> {
    let appliances = appliances(core)?.clone();
    let lock = lock_of(&find(core, name).await?.machine_id);
    let held = lock.lock_owned().await;
    let lb = drain_begin(core, &appliances, name, &ids).await?;
    let (c, drained) = (core.clone(), lb.clone());
    core.spawn(async move {
        let _held = held;
        if let Err(e) = drain_finish(&c, &appliances, &drained, &ids, DRAIN_TIMEOUT).await {
            tracing::warn!(load_balancer = drained.load_balancer_name, "{e}");
        }
    });
    Ok(lb)
}

/// [`apply`], unless a drain holds the machine (it applies when it ends): the upkeep pass never
/// waits behind one.
pub async fn apply_unless_busy(core: &Core, name: &str) -> ElbResult<()> {
    let appliances = appliances(core)?.clone();
    let Some(lb) = core.find::<LoadBalancer>(name).await? else {
        return Ok(());
    };
    let lock = lock_of(&lb.machine_id);
    let Ok(_held) = lock.try_lock() else {
        return Ok(());
    };
    let Some(lb) = core.find::<LoadBalancer>(name).await? else {
        return Ok(());
    };
    apply_locked(core, &appliances, &lb).await
}

/// Before an instance's Shutdown: drains it from the load balancers of its layers, so no
/// request is lost while it stops. Failures are logged: a stop always goes on.
pub async fn drain_instance(core: &Core, instance_id: &str) {
    let Ok(inst) = core.get::<Instance>(instance_id).await else {
        return;
    };
    let Some(ec2) = inst.ec2_instance_id.clone() else {
        return;
    };
    let lbs = match core
        .list::<LoadBalancer>(Filter::Stack(&inst.stack_id))
        .await
    {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(instance_id, "listing load balancers to drain from: {e}");
            return;
        }
    };
    for lb in lbs.iter().filter(|lb| {
        lb.layer_id
            .as_ref()
            .is_some_and(|l| inst.layer_ids.contains(l))
            && lb.instances.contains(&ec2)
    }) {
        let timeout = drain_timeout(core, lb).await;
        tracing::info!(
            instance_id,
            load_balancer = lb.load_balancer_name,
            "draining the instance before its Shutdown"
        );
        if let Err(e) = drain(core, &lb.load_balancer_name, &ec2, timeout).await {
            tracing::warn!(instance_id, "draining from {}: {e}", lb.load_balancer_name);
        }
    }
}

/// How long an instance leaving an attached load balancer may take: ELB's connection draining
/// timeout when the layer delays Shutdown for it, else the layer's shutdown timeout.
async fn drain_timeout(core: &Core, lb: &LoadBalancer) -> Duration {
    let layer = match &lb.layer_id {
        Some(id) => core
            .find::<opsworks_model::resource::Layer>(id)
            .await
            .ok()
            .flatten(),
        None => None,
    };
    match layer {
        Some(l) => {
            let delay = l
                .lifecycle_event_configuration
                .shutdown
                .delay_until_elb_connections_drained
                .unwrap_or(false);
            if delay {
                DRAIN_TIMEOUT
            } else {
                Duration::from_secs(l.shutdown_timeout())
            }
        }
        None => DRAIN_TIMEOUT,
    }
}

#[cfg(test)]
mod tests;
