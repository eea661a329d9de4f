//! Registered instances: RegisterInstance, AssignInstance, UnassignInstance, DeregisterInstance.
//!
//! A registered instance is a machine the server did not create (`opsworks register`, or
//! `aws opsworks register`): it is `registering` until its agent says hello, `registered` while
//! in no layer, goes through Setup and Deploy when assigned (`assigning` → `running_setup` →
//! `online`), runs Shutdown without stopping when unassigned, and uninstalls its agent when
//! deregistered — the machine keeps running and keeps its files. The server never starts, stops,
//! reboots or heals it.

use serde_json::json;

use opsworks_api::{ApiError, shapes};
use opsworks_model::catalog::{self, OperatingSystem};
use opsworks_model::instance::{InstanceEvent, InstanceStatus};
use opsworks_model::layer::LayerType;
use opsworks_model::resource::{Instance, ReportedOs, RootDeviceType, Stack};
use opsworks_model::{Arn, ResourceKind, new_id};
use opsworks_protocol::{MachineIdentity, REGISTERED_CREDENTIALS};
use opsworks_store::Filter;

use super::instances::{check_hostname, check_layers};
use super::{Ctx, OpResult, Reply};
use crate::core::machines::instance_principal;
use crate::core::{commands, instances, lifecycle, now, registration};

/// The registered instance `id`, or a clear refusal for an instance StartInstance runs.
fn registered<'a>(inst: &'a Instance, operation: &str) -> Result<&'a Instance, ApiError> {
    if inst.registered {
        Ok(inst)
    } else {
        Err(ApiError::Validation(format!(
            "Instance {} was not registered (it was created with CreateInstance); {operation} applies to registered instances only",
            inst.instance_id
        )))
    }
}

/// The catalog's name of the OS a machine reports, `Custom` when the catalog has none.
fn os_name(os: &ReportedOs) -> String {
    let name = match os.name.as_deref() {
        Some("rhel") => "redhat",
        Some("amzn") => "amazon",
        Some(other) => other,
        None => "",
    };
    let version = os.version.as_deref().unwrap_or("");
    catalog::OPERATING_SYSTEMS
        .iter()
        .find(|o| o.reported_name == name && o.reported_version == version)
        .map_or_else(|| "Custom".to_string(), |o| o.name.to_string())
}

fn check_ip(value: Option<&str>, name: &str) -> Result<Option<String>, ApiError> {
    match value.filter(|v| !v.is_empty()) {
        Some(v) if v.parse::<std::net::IpAddr>().is_err() => Err(ApiError::Validation(format!(
            "Invalid {name} '{v}': expected an IPv4 or IPv6 address"
        ))),
        other => Ok(other.map(str::to_string)),
    }
}

/// RegisterInstance: records a machine of the stack as `registering`, with the hostname,
/// addresses and OS it was registered with, and issues its own access key — answered once,
/// beside `InstanceId`, to the caller that registered it, so the installer can hand it to the
/// agent (the caller's own key never goes to the machine). The agent's first hello makes it
/// `registered`.
pub async fn register_instance(cx: Ctx<'_>, req: shapes::RegisterInstanceRequest) -> OpResult {
    // Our installer describes the machine in the identity document; an EC2 document (or none)
    // simply lacks these members.
    let identity: MachineIdentity = req
        .instance_identity
        .as_ref()
        .and_then(|i| i.document.as_deref())
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    let class = match identity.infrastructure_class.as_str() {
        "" => "on-premises",
        c @ ("ec2" | "on-premises") => c,
        other => {
            return Err(ApiError::Validation(format!(
                "Invalid infrastructure class '{other}' in InstanceIdentity: expected ec2 or on-premises"
            )));
        }
    };
    let hostname = req
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .or_else(|| Some(identity.hostname.clone()).filter(|h| !h.is_empty()))
        .ok_or_else(|| ApiError::Validation("Hostname is required to register a machine".into()))?
        .to_ascii_lowercase();
    let private_ip = check_ip(req.private_ip.as_deref(), "PrivateIp")?;
    let public_ip = check_ip(req.public_ip.as_deref(), "PublicIp")?;
    let reported = ReportedOs {
        family: Some(identity.os.family.clone()).filter(|s| !s.is_empty()),
        name: Some(identity.os.name.clone()).filter(|s| !s.is_empty()),
        version: Some(identity.os.version.clone()).filter(|s| !s.is_empty()),
    };

    let mut w = cx.core.write().await?;
    let stack: Stack = w.get(&req.stack_id).await?;
    let others: Vec<Instance> = w.list(Filter::Stack(&req.stack_id)).await?;
    let linux: &OperatingSystem =
        catalog::operating_system("Custom").unwrap_or(&catalog::OPERATING_SYSTEMS[0]);
    check_hostname(&hostname, linux, &others, None)?;
    let id = new_id();
    let inst = Instance {
        instance_id: id.clone(),
        arn: Arn::new(
            &stack.region,
            cx.core.account_id(),
            ResourceKind::Instance,
            &id,
        )
        .to_string(),
        stack_id: req.stack_id.clone(),
        layer_ids: Vec::new(),
        hostname: hostname.clone(),
        os: os_name(&reported),
        // Registered instances start here rather than `stopped`: the machine runs already.
        status: InstanceStatus::Registering,
        instance_type: String::new(),
        auto_scaling_type: None,
        root_device_type: RootDeviceType::default(),
        architecture: Some(identity.architecture.clone())
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "x86_64".into()),
        virtualization_type: "hvm".into(),
        tenancy: "default".into(),
        agent_version: "INHERIT".into(),
        install_updates_on_boot: false,
        ebs_optimized: false,
        infrastructure_class: class.into(),
        created_at: now(),
        ami_id: None,
        availability_zone: None,
        subnet_id: None,
        ssh_key_name: None,
        instance_profile_arn: None,
        block_device_mappings: None,
        ec2_instance_id: None,
        ecs_cluster_arn: None,
        ecs_container_instance_arn: None,
        elastic_ip: None,
        last_service_error_id: None,
        platform: None,
        private_dns: Some(hostname),
        private_ip: private_ip.clone().or_else(|| public_ip.clone()),
        public_dns: None,
        public_ip: public_ip.or(private_ip),
        registered_by: cx.principal.arn(cx.core.account_id()),
        reported_agent_version: None,
        reported_os: reported.name.is_some().then_some(reported),
        root_device_volume_id: None,
        security_group_ids: None,
        ssh_host_dsa_key_fingerprint: None,
        ssh_host_rsa_key_fingerprint: None,
        auto_scaling_schedule: None,
        registered: true,
        server: None,
    };
    w.put(&inst).await?;
    let (akid, secret) = cx
        .core
        .keys()
        .issue(&mut w, &instance_principal(&id))
        .await?;
    w.commit().await?;
    tracing::info!(
        instance_id = id,
        stack_id = req.stack_id,
        "machine registered"
    );
    Reply::json(&json!({
        "InstanceId": id,
        REGISTERED_CREDENTIALS: {"AccessKeyId": akid, "SecretAccessKey": secret},
    }))
}

/// AssignInstance: a registered instance in no layer joins layers of its stack (an on-premises
/// machine any layer, a registered EC2 instance custom layers only); Setup, then Deploy of the
/// stack's apps, runs on it, and it goes online.
pub async fn assign_instance(cx: Ctx<'_>, req: shapes::AssignInstanceRequest) -> OpResult {
    let mut w = cx.core.write().await?;
    let mut inst: Instance = w.get(&req.instance_id).await?;
    registered(&inst, "AssignInstance")?;
    let layers = check_layers(&mut w, &inst.stack_id, &req.layer_ids).await?;
    if inst.infrastructure_class == "ec2"
        && let Some(l) = layers.iter().find(|l| l.r#type != LayerType::Custom)
    {
        return Err(ApiError::Validation(format!(
            "A registered EC2 instance may join custom layers only; layer {} is {}",
            l.layer_id, l.r#type
        )));
    }
    inst.layer_ids = req.layer_ids.clone();
    instances::check_builtin_recipes(&mut w, &inst).await?;
    w.put(&inst).await?;
    instances::change_status(&mut w, &req.instance_id, InstanceEvent::Assign).await?;
    lifecycle::booted(&mut w, &req.instance_id).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// UnassignInstance: a registered instance leaves its layers. Shutdown runs on it (the machine
/// keeps running), then it is `registered` again and the rest of the stack Configures; a
/// machine whose agent is silent leaves at once.
pub async fn unassign_instance(cx: Ctx<'_>, req: shapes::UnassignInstanceRequest) -> OpResult {
    let mut w = cx.core.write().await?;
    let inst: Instance = w.get(&req.instance_id).await?;
    registered(&inst, "UnassignInstance")?;
    instances::change_status(&mut w, &req.instance_id, InstanceEvent::Unassign).await?;
    let agent_there = inst.status != InstanceStatus::ConnectionLost;
    registration::begin_unassign(&mut w, &inst, agent_there).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// DeregisterInstance: the instance is `deregistering`; its agent, told at its next poll, says
/// goodbye and uninstalls itself (the machine keeps running and keeps its files), and the record
/// goes with its key. The rest of the stack Configures when it was online. A machine whose agent
/// never reported in goes at once; one whose agent stays silent goes after a minute.
pub async fn deregister_instance(cx: Ctx<'_>, req: shapes::DeregisterInstanceRequest) -> OpResult {
    let id = req.instance_id;
    let mut w = cx.core.write().await?;
    let inst: Instance = w.get(&id).await?;
    registered(&inst, "DeregisterInstance")?;
    instances::change_status(&mut w, &id, InstanceEvent::Deregister).await?;
    commands::skip_pending(&mut w, &id).await?;
    if matches!(
        inst.status,
        InstanceStatus::Online | InstanceStatus::ConnectionLost
    ) {
        lifecycle::configure_stack(&mut w, &inst.stack_id).await?;
    }
    let never_reported_in = inst.status == InstanceStatus::Registering;
    if never_reported_in {
        registration::forget(&mut w, &id).await?;
    } else {
        w.wake(&id);
    }
    w.commit().await?;
    if never_reported_in {
        cx.core.presence().forget(&id);
    }
    Ok(Reply::empty())
}

#[cfg(test)]
mod tests;
