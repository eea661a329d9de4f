//! Elastic IP operations: RegisterElasticIp, AssociateElasticIp, DisassociateElasticIp,
//! UpdateElasticIp, DescribeElasticIps, DeregisterElasticIp. The addresses are those `ec2
//! AllocateAddress` handed out; an association moves the address to the instance's machine at
//! once (`core::elastic_ips`) and runs Configure on the stack.

use serde_json::json;

use opsworks_api::{ApiError, shapes};
use opsworks_model::Kind;
use opsworks_model::resource::{ElasticIp, Instance, Stack};
use opsworks_store::Filter;

use super::{Ctx, OpResult, Reply, at_most_one, check_len, wire};
use crate::core::{CoreError, elastic_ips};

/// The longest `Name` of an Elastic IP.
const MAX_NAME: usize = 32;

/// An Elastic IP this server allocated, as OpsWorks refuses an unknown one.
async fn allocated(w: &mut crate::core::Write<'_>, ip: &str) -> Result<ElasticIp, ApiError> {
    w.find::<ElasticIp>(ip).await?.ok_or_else(|| {
        ApiError::ResourceNotFound(format!(
            "Unable to find Elastic IP {ip}: allocate it first with `ec2 allocate-address`"
        ))
    })
}

/// An Elastic IP registered with a stack (the stack it is registered with).
fn registered(eip: &ElasticIp) -> Result<&str, ApiError> {
    eip.stack_id.as_deref().ok_or_else(|| {
        ApiError::ResourceNotFound(format!(
            "Elastic IP {} is not registered with any stack; register it first",
            eip.ip
        ))
    })
}

/// Refuses an instance this server has no machine of its own for (a registered instance).
pub fn has_own_machine(inst: &Instance, what: &str) -> Result<(), ApiError> {
    if inst.registered {
        return Err(ApiError::Validation(format!(
            "Instance {} is a registered instance, which this server does not run: it cannot take {what}",
            inst.instance_id
        )));
    }
    Ok(())
}

/// RegisterElasticIp: registers an allocated address with a stack (one stack at a time).
pub async fn register_elastic_ip(cx: Ctx<'_>, req: shapes::RegisterElasticIpRequest) -> OpResult {
    let mut w = cx.core.write().await?;
    let stack: Stack = w.get(&req.stack_id).await?;
    let mut eip = allocated(&mut w, &req.elastic_ip).await?;
    match eip.stack_id.as_deref() {
        Some(s) if s == stack.stack_id => {}
        Some(other) => {
            return Err(ApiError::Validation(format!(
                "Elastic IP {} is already registered with stack {other}; deregister it first",
                eip.ip
            )));
        }
        None => {
            eip.stack_id = Some(stack.stack_id.clone());
            w.put(&eip).await?;
            w.commit().await?;
        }
    }
    Reply::json(&json!({ "ElasticIp": eip.ip }))
}

/// AssociateElasticIp: gives the address to an instance of its stack, taking it from the instance
/// that had it; traffic to it reaches the new holder from the moment this answers when the
/// holder runs, and once it boots otherwise.
pub async fn associate_elastic_ip(cx: Ctx<'_>, req: shapes::AssociateElasticIpRequest) -> OpResult {
    let instance_id = super::required(&req.instance_id, "InstanceId")?;
    let mut w = cx.core.write().await?;
    let mut eip = allocated(&mut w, &req.elastic_ip).await?;
    let inst: Instance = w.get(instance_id).await?;
    let stack = registered(&eip)?;
    if stack != inst.stack_id {
        return Err(ApiError::Validation(format!(
            "Elastic IP {} is registered with stack {stack}, not with the stack of instance {instance_id}",
            eip.ip
        )));
    }
    has_own_machine(&inst, "an Elastic IP")?;
    if eip.instance_id.as_deref() == Some(instance_id) {
        return Ok(Reply::empty());
    }
    let previous = elastic_ips::associate(&mut w, &mut eip, instance_id).await?;
    w.commit().await?;
    elastic_ips::apply(cx.core, &eip.ip, previous.as_deref()).await?;
    Ok(Reply::empty())
}

/// DisassociateElasticIp: takes the address off its instance (whose public address is its own
/// again); it stays registered.
pub async fn disassociate_elastic_ip(
    cx: Ctx<'_>,
    req: shapes::DisassociateElasticIpRequest,
) -> OpResult {
    let mut w = cx.core.write().await?;
    let mut eip = allocated(&mut w, &req.elastic_ip).await?;
    registered(&eip)?;
    if eip.instance_id.is_none() {
        return Err(ApiError::Validation(format!(
            "Elastic IP {} is not associated with an instance",
            eip.ip
        )));
    }
    let previous = elastic_ips::disassociate(&mut w, &mut eip).await?;
    w.commit().await?;
    elastic_ips::apply(cx.core, &eip.ip, previous.as_deref()).await?;
    Ok(Reply::empty())
}

/// UpdateElasticIp: renames a registered address.
pub async fn update_elastic_ip(cx: Ctx<'_>, req: shapes::UpdateElasticIpRequest) -> OpResult {
    check_len(req.name.as_deref(), "Name", MAX_NAME)?;
    let mut w = cx.core.write().await?;
    let mut eip = allocated(&mut w, &req.elastic_ip).await?;
    registered(&eip)?;
    eip.name = req.name.filter(|n| !n.is_empty());
    w.put(&eip).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// DescribeElasticIps: the registered addresses of a stack, of an instance, or those named.
pub async fn describe_elastic_ips(cx: Ctx<'_>, req: shapes::DescribeElasticIpsRequest) -> OpResult {
    at_most_one(&[
        ("InstanceId", req.instance_id.is_some()),
        ("StackId", req.stack_id.is_some()),
        ("Ips", req.ips.is_some()),
    ])?;
    let eips: Vec<ElasticIp> = if let Some(id) = &req.instance_id {
        cx.core.get::<Instance>(id).await?;
        cx.core
            .list::<ElasticIp>(Filter::Instance(id))
            .await?
            .iter()
            .map(|e| e.to_owned_value())
            .collect()
    } else if let Some(id) = &req.stack_id {
        cx.core.get::<Stack>(id).await?;
        cx.core
            .list::<ElasticIp>(Filter::Stack(id))
            .await?
            .iter()
            .map(|e| e.to_owned_value())
            .collect()
    } else if let Some(ips) = &req.ips {
        let found = cx
            .core
            .get_all::<ElasticIp>(ips)
            .await
            .map_err(|e| match e {
                CoreError::NotFound { id, .. } => {
                    ApiError::ResourceNotFound(format!("Unable to find Elastic IP {id}"))
                }
                other => other.into(),
            })?;
        let mut out = Vec::new();
        for e in found {
            registered(&e)?;
            out.push(e.to_owned_value());
        }
        out
    } else {
        return Err(ApiError::Validation(
            "Please provide an instance ID, a stack ID or one or more IP addresses".into(),
        ));
    };
    Reply::json(&json!({
        "ElasticIps": eips.iter().map(wire::elastic_ip).collect::<Vec<_>>()
    }))
}

/// DeregisterElasticIp: takes the address off its instance, if any, and out of its stack; it
/// stays allocated.
pub async fn deregister_elastic_ip(
    cx: Ctx<'_>,
    req: shapes::DeregisterElasticIpRequest,
) -> OpResult {
    let mut w = cx.core.write().await?;
    let mut eip = allocated(&mut w, &req.elastic_ip).await?;
    registered(&eip)?;
    let previous = elastic_ips::disassociate(&mut w, &mut eip).await?;
    eip.stack_id = None;
    eip.name = None;
    w.put(&eip).await?;
    w.commit().await?;
    elastic_ips::apply(cx.core, &eip.ip, previous.as_deref()).await?;
    Ok(Reply::empty())
}

/// What DeleteInstance does with the instance's Elastic IP in `w`: released (its record gone)
/// with `delete`, else disassociated and left registered. Returns the address to give back to
/// the host once committed ([`release_after_delete`]).
pub async fn on_instance_deleted(
    w: &mut crate::core::Write<'_>,
    instance_id: &str,
    delete: bool,
) -> Result<Vec<String>, ApiError> {
    let mut released = Vec::new();
    for mut eip in w.list::<ElasticIp>(Filter::Instance(instance_id)).await? {
        if delete {
            w.delete(Kind::ElasticIp, &eip.ip).await?;
            released.push(eip.ip.clone());
        } else {
            eip.instance_id = None;
            eip.association_id = None;
            w.put(&eip).await?;
        }
    }
    Ok(released)
}

/// Gives the host back the addresses [`on_instance_deleted`] released.
pub async fn release_after_delete(cx: Ctx<'_>, released: &[String]) {
    for ip in released {
        if let Ok(addr) = ip.parse() {
            elastic_ips::release(cx.core, addr).await;
        }
    }
}
