//! Instance operations: CreateInstance, DescribeInstances, UpdateInstance, DeleteInstance,
//! StartInstance, StopInstance, RebootInstance. Status changes go through
//! `core::instances::change_status`; starting and stopping through `core::instances`.

use serde_json::json;

use opsworks_api::{ApiError, shapes};
use opsworks_model::catalog::{self, OperatingSystem};
use opsworks_model::instance::{InstanceEvent, InstanceStatus};
use opsworks_model::layer::LayerType;
use opsworks_model::resource::{
    AutoScalingType, Instance, Layer, RootDeviceType, Stack, Transition,
};
use opsworks_model::{Arn, Kind, ResourceKind, new_id, themes};
use opsworks_store::Filter;

use super::layers::suggest_hostname;
use super::{Ctx, OpResult, Reply, wire};
use crate::core::{Core, Write, agent_releases, commands, instances, machines, now};

/// Refuses an edit or deletion of an instance that is not stopped, as the original does.
fn require_stopped(inst: &Instance, action: &str) -> Result<(), ApiError> {
    if inst.status.is_stopped() {
        Ok(())
    } else {
        Err(ApiError::Validation(format!(
            "Instance {} is {}; an instance must be stopped before you can {action} it",
            inst.instance_id, inst.status
        )))
    }
}

/// The operating system of the stack's `DefaultOs`.
fn stack_os(stack: &Stack) -> Option<&'static OperatingSystem> {
    catalog::operating_system(&stack.default_os)
}

/// Checks an `Os` for an instance of `stack`: known, offered, of the stack's family (a stack
/// cannot mix Linux and Windows) and able to run the stack's Chef version.
fn check_os(name: &str, stack: &Stack) -> Result<&'static OperatingSystem, ApiError> {
    let os = catalog::operating_system(name).ok_or_else(|| {
        ApiError::Validation(format!(
            "Invalid Os: {name}; DescribeOperatingSystems lists the valid ones"
        ))
    })?;
    if !os.supported {
        return Err(ApiError::Validation(format!(
            "Os {name} is no longer supported for new instances"
        )));
    }
    if let Some(stack_os) = stack_os(stack)
        && stack_os.family != os.family
    {
        return Err(ApiError::Validation(format!(
            "Os {name} is {}, but the stack runs {}; a stack cannot mix Linux and Windows instances",
            os.family, stack_os.family
        )));
    }
    let chef = stack.chef_version();
    if !os.chef_versions.contains(&chef) {
        return Err(ApiError::Validation(format!(
            "Os {name} does not support the stack's Chef version {chef}; it supports {}",
            os.chef_versions.join(", ")
        )));
    }
    Ok(os)
}

/// Checks a hostname: the hostname rule for the OS family, and unique in the stack (`instances`
/// are the stack's, `except` the instance being updated).
pub(super) fn check_hostname(
    hostname: &str,
    os: &OperatingSystem,
    instances: &[Instance],
    except: Option<&str>,
) -> Result<(), ApiError> {
    let max = if os.family == "Windows" {
        themes::MAX_WINDOWS_HOSTNAME_LEN
    } else {
        themes::MAX_HOSTNAME_LEN
    };
    if !themes::is_valid_hostname(hostname, max) {
        return Err(ApiError::Validation(format!(
            "Invalid Hostname '{hostname}': use 1 to {max} lower-case letters, digits and '-', not starting or ending with '-'"
        )));
    }
    let clash = instances.iter().any(|i| {
        Some(i.instance_id.as_str()) != except && i.hostname.eq_ignore_ascii_case(hostname)
    });
    if clash {
        return Err(ApiError::Validation(format!(
            "Hostname {hostname} is already in use in this stack"
        )));
    }
    Ok(())
}

/// Loads the layers of `ids` and checks they belong to `stack_id`, are not repeated, and can
/// share an instance (an ecs-cluster layer only with custom layers). In the request's order.
pub(super) async fn check_layers(
    w: &mut Write<'_>,
    stack_id: &str,
    ids: &[String],
) -> Result<Vec<Layer>, ApiError> {
    if ids.is_empty() {
        return Err(ApiError::Validation(
            "LayerIds must name at least one layer".into(),
        ));
    }
    if let Some((_, dup)) = ids
        .iter()
        .enumerate()
        .find(|(i, id)| ids[..*i].contains(id))
    {
        return Err(ApiError::Validation(format!(
            "LayerIds names layer {dup} twice"
        )));
    }
    let layers: Vec<Layer> = w.get_all(ids).await?;
    if let Some(l) = layers.iter().find(|l| l.stack_id != stack_id) {
        return Err(ApiError::Validation(format!(
            "Layer {} does not belong to stack {stack_id}",
            l.layer_id
        )));
    }
    let types: Vec<LayerType> = layers.iter().map(|l| l.r#type).collect();
    if types.contains(&LayerType::EcsCluster)
        && types
            .iter()
            .any(|t| !matches!(t, LayerType::EcsCluster | LayerType::Custom))
    {
        return Err(ApiError::Validation(
            "An instance in an ecs-cluster layer may belong to custom layers only besides it"
                .into(),
        ));
    }
    Ok(layers)
}

/// Checks an `InstanceType`: the `family.size` form of EC2's type names.
fn check_instance_type(t: &str) -> Result<(), ApiError> {
    let ok = t.split_once('.').is_some_and(|(family, size)| {
        let part = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        part(family) && part(size)
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::Validation(format!(
            "Invalid InstanceType '{t}': expected a type such as t2.micro"
        )))
    }
}

/// Checks an `AgentVersion`: `LATEST` or a version DescribeAgentVersions lists (the server's own
/// build, or a release an operator added); instances may also say `INHERIT`.
pub(super) async fn check_agent_version(
    core: &Core,
    v: &str,
    inherit: bool,
) -> Result<(), ApiError> {
    if (inherit && v == "INHERIT") || agent_releases::is_offered(core, v).await? {
        return Ok(());
    }
    Err(ApiError::Validation(format!(
        "Invalid AgentVersion '{v}': use {}LATEST or a version DescribeAgentVersions lists ({})",
        if inherit { "INHERIT, " } else { "" },
        agent_releases::versions(core).await?.join(", ")
    )))
}

fn one_of(value: Option<&str>, name: &str, allowed: &[&str]) -> Result<(), ApiError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(ApiError::Validation(format!(
            "Invalid {name} '{v}': expected {}",
            match allowed {
                [a, b] => format!("{a} or {b}"),
                [a, b, c] => format!("{a}, {b} or {c}"),
                _ => allowed.join(", "),
            }
        ))),
        _ => Ok(()),
    }
}

/// CreateInstance: a stopped instance in one or more layers of the stack, with the stack's
/// defaults for what the request leaves out and a hostname from the stack's theme.
pub async fn create_instance(cx: Ctx<'_>, req: shapes::CreateInstanceRequest) -> OpResult {
    check_instance_type(&req.instance_type)?;
    one_of(
        req.virtualization_type.as_deref(),
        "VirtualizationType",
        &["paravirtual", "hvm"],
    )?;
    one_of(
        req.tenancy.as_deref(),
        "Tenancy",
        &["default", "dedicated", "host"],
    )?;
    if let Some(v) = req.agent_version.as_deref() {
        check_agent_version(cx.core, v, true).await?;
    }
    let mut w = cx.core.write().await?;
    let stack: Stack = w.get(&req.stack_id).await?;
    let layers = check_layers(&mut w, &req.stack_id, &req.layer_ids).await?;
    let instances: Vec<Instance> = w.list(Filter::Stack(&req.stack_id)).await?;

    let os_name = req.os.clone().unwrap_or_else(|| stack.default_os.clone());
    let os = check_os(&os_name, &stack)?;
    match (os.name == "Custom", req.ami_id.as_deref()) {
        (true, None) => {
            return Err(ApiError::Validation(
                "AmiId is required when Os is Custom".into(),
            ));
        }
        (false, Some(_)) => {
            return Err(ApiError::Validation(format!(
                "AmiId may be given only with Os Custom, not with {}",
                os.name
            )));
        }
        _ => {}
    }
    if req.ami_id.is_some() && req.block_device_mappings.is_some() {
        return Err(ApiError::Validation(
            "BlockDeviceMappings are not supported with a custom AMI".into(),
        ));
    }
    let windows = os.family == "Windows";
    // Windows runs only from EBS, whatever the stack's default says.
    let root_device = match req.root_device_type.as_deref() {
        Some(r) => r
            .parse::<RootDeviceType>()
            .map_err(|_| ApiError::Validation(format!("Invalid RootDeviceType: {r}")))?,
        None if windows => RootDeviceType::Ebs,
        None => stack.default_root_device_type,
    };
    if windows && root_device != RootDeviceType::Ebs {
        return Err(ApiError::Validation(
            "Windows instances must use the ebs RootDeviceType".into(),
        ));
    }
    let scaling = req
        .auto_scaling_type
        .as_deref()
        .map(|t| {
            t.parse::<AutoScalingType>()
                .map_err(|_| ApiError::Validation(format!("Invalid AutoScalingType: {t}")))
        })
        .transpose()?;
    if windows && scaling == Some(AutoScalingType::Load) {
        return Err(ApiError::Validation(
            "Windows stacks can use only time-based (timer) instances".into(),
        ));
    }
    let hostname = match req.hostname.clone() {
        Some(h) => h,
        None => suggest_hostname(&stack, &layers[0], &instances.iter().collect::<Vec<_>>())?,
    };
    check_hostname(&hostname, os, &instances, None)?;

    let id = new_id();
    let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    // The first layer with its own instance profile wins over the stack's.
    let profile = layers
        .iter()
        .find_map(|l| non_empty(&l.custom_instance_profile_arn))
        .or_else(|| Some(stack.default_instance_profile_arn.clone()).filter(|s| !s.is_empty()));
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
        layer_ids: req.layer_ids.clone(),
        hostname,
        os: os.name.to_string(),
        // The one status written outside the state machine: where every instance starts.
        status: InstanceStatus::Stopped,
        instance_type: req.instance_type.clone(),
        auto_scaling_type: scaling,
        root_device_type: root_device,
        architecture: req.architecture.clone().unwrap_or_else(|| "x86_64".into()),
        virtualization_type: req
            .virtualization_type
            .clone()
            .unwrap_or_else(|| "hvm".into()),
        tenancy: req.tenancy.clone().unwrap_or_else(|| "default".into()),
        agent_version: req
            .agent_version
            .clone()
            .unwrap_or_else(|| "INHERIT".into()),
        install_updates_on_boot: req.install_updates_on_boot.unwrap_or(true),
        ebs_optimized: req.ebs_optimized.unwrap_or(false),
        infrastructure_class: "ec2".into(),
        created_at: now(),
        ami_id: req.ami_id.clone(),
        availability_zone: non_empty(&req.availability_zone)
            .or_else(|| non_empty(&stack.default_availability_zone)),
        subnet_id: non_empty(&req.subnet_id).or_else(|| non_empty(&stack.default_subnet_id)),
        ssh_key_name: non_empty(&req.ssh_key_name)
            .or_else(|| non_empty(&stack.default_ssh_key_name)),
        instance_profile_arn: profile,
        block_device_mappings: req
            .block_device_mappings
            .as_ref()
            .map(|b| {
                b.iter()
                    .map(|m| serde_json::to_value(m).and_then(serde_json::from_value))
                    .collect()
            })
            .transpose()
            .map_err(|e| ApiError::Validation(format!("BlockDeviceMappings: {e}")))?,
        ec2_instance_id: None,
        ecs_cluster_arn: None,
        ecs_container_instance_arn: None,
        elastic_ip: None,
        last_service_error_id: None,
        platform: None,
        private_dns: None,
        private_ip: None,
        public_dns: None,
        public_ip: None,
        registered_by: None,
        reported_agent_version: None,
        reported_os: None,
        root_device_volume_id: None,
        security_group_ids: None,
        ssh_host_dsa_key_fingerprint: None,
        ssh_host_rsa_key_fingerprint: None,
        auto_scaling_schedule: None,
        server: None,
        registered: false,
    };
    w.put(&inst).await?;
    w.commit().await?;
    Reply::json(&json!({ "InstanceId": id }))
}

/// AWS's answer when DescribeInstances gets no identifier, or more than one.
const DESCRIBE_INSTANCES_IDENTIFIERS: &str =
    "Please provide either one or more instance ID or one stack ID or one layer ID";

/// DescribeInstances: the instances of one stack, of one layer, or those named. Exactly one
/// identifier is required, as the original answers (its documentation's "every instance" when
/// none is given is not what the service did).
pub async fn describe_instances(cx: Ctx<'_>, req: shapes::DescribeInstancesRequest) -> OpResult {
    let instances = match (&req.stack_id, &req.layer_id, &req.instance_ids) {
        (Some(id), None, None) => {
            cx.core.get::<Stack>(id).await?;
            cx.core.list::<Instance>(Filter::Stack(id)).await?
        }
        (None, Some(id), None) => {
            let layer = cx.core.get::<Layer>(id).await?;
            let mut all = cx
                .core
                .list::<Instance>(Filter::Stack(&layer.stack_id))
                .await?;
            all.retain(|i| i.in_layer(id));
            all
        }
        (None, None, Some(ids)) => cx.core.get_all::<Instance>(ids).await?,
        _ => return Err(ApiError::Validation(DESCRIBE_INSTANCES_IDENTIFIERS.into())),
    };
    Ok(Reply::list(
        "Instances",
        instances
            .iter()
            .map(|i| i.wire(|i| wire::bytes(&wire::instance(i)))),
    ))
}

/// UpdateInstance: only while stopped. `AutoScalingType`, `EbsOptimized` and `AmiId` cannot
/// change; the OS changes only on instance-store instances not built from a custom AMI.
pub async fn update_instance(cx: Ctx<'_>, req: shapes::UpdateInstanceRequest) -> OpResult {
    if let Some(t) = req.instance_type.as_deref() {
        check_instance_type(t)?;
    }
    if let Some(v) = req.agent_version.as_deref() {
        check_agent_version(cx.core, v, true).await?;
    }
    let mut w = cx.core.write().await?;
    let mut inst: Instance = w.get(&req.instance_id).await?;
    if inst.registered {
        return update_registered(w, inst, req).await;
    }
    let stack: Stack = w.get(&inst.stack_id).await?;
    if let Some(ids) = &req.layer_ids {
        check_layers(&mut w, &inst.stack_id, ids).await?;
    }
    require_stopped(&inst, "update")?;
    if req
        .auto_scaling_type
        .as_deref()
        .is_some_and(|t| Some(t) != inst.auto_scaling_type.map(|s| s.as_str()))
    {
        return Err(ApiError::Validation(
            "AutoScalingType cannot be changed; create a new instance of the other scaling type instead".into(),
        ));
    }
    if req.ebs_optimized.is_some_and(|e| e != inst.ebs_optimized) {
        return Err(ApiError::Validation(
            "EbsOptimized cannot be changed after an instance is created".into(),
        ));
    }
    if req.ami_id.is_some() && req.ami_id != inst.ami_id {
        return Err(ApiError::Validation(
            "AmiId must be the AMI the instance already uses; UpdateInstance cannot apply a new AMI".into(),
        ));
    }
    let os = match req.os.as_deref() {
        Some(new_os) if new_os != inst.os => {
            if inst.os == "Custom" || new_os == "Custom" {
                return Err(ApiError::Validation(
                    "The Os of an instance that uses a custom AMI cannot be changed, nor can an instance move to a custom AMI".into(),
                ));
            }
            if inst.root_device_type == RootDeviceType::Ebs {
                return Err(ApiError::Validation(
                    "The Os of an EBS-backed instance cannot be changed; only instance-store instances can change their Os".into(),
                ));
            }
            check_os(new_os, &stack)?
        }
        _ => catalog::operating_system(&inst.os).unwrap_or(&catalog::OPERATING_SYSTEMS[0]),
    };
    if let Some(h) = req.hostname.as_deref() {
        let instances: Vec<Instance> = w.list(Filter::Stack(&inst.stack_id)).await?;
        check_hostname(h, os, &instances, Some(&req.instance_id))?;
    }
    if let Some(v) = req.layer_ids {
        inst.layer_ids = v;
    }
    if let Some(v) = req.instance_type {
        inst.instance_type = v;
    }
    if let Some(v) = req.hostname {
        inst.hostname = v;
    }
    if let Some(v) = req.os {
        inst.os = v;
    }
    if let Some(v) = req.architecture {
        inst.architecture = v;
    }
    if let Some(v) = req.agent_version {
        inst.agent_version = v;
    }
    if let Some(v) = req.install_updates_on_boot {
        inst.install_updates_on_boot = v;
    }
    if req.ssh_key_name.is_some() {
        inst.ssh_key_name = req.ssh_key_name;
    }
    w.put(&inst).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// UpdateInstance of a registered instance, whatever its status: only its `AgentVersion` (its
/// agent updates itself to it); what describes the machine itself is the machine's to say.
async fn update_registered(
    mut w: Write<'_>,
    mut inst: Instance,
    req: shapes::UpdateInstanceRequest,
) -> OpResult {
    let others = [
        ("LayerIds", req.layer_ids.is_some()),
        ("InstanceType", req.instance_type.is_some()),
        ("AutoScalingType", req.auto_scaling_type.is_some()),
        ("Hostname", req.hostname.is_some()),
        ("Os", req.os.is_some()),
        ("AmiId", req.ami_id.is_some()),
        ("SshKeyName", req.ssh_key_name.is_some()),
        ("Architecture", req.architecture.is_some()),
        (
            "InstallUpdatesOnBoot",
            req.install_updates_on_boot.is_some(),
        ),
        ("EbsOptimized", req.ebs_optimized.is_some()),
    ];
    if let Some((name, _)) = others.iter().find(|(_, given)| *given) {
        return Err(ApiError::Validation(format!(
            "Instance {} is a registered instance: UpdateInstance can change only its AgentVersion, not {name} (use AssignInstance and UnassignInstance for its layers)",
            inst.instance_id
        )));
    }
    if let Some(v) = req.agent_version {
        inst.agent_version = v;
        w.wake(&inst.instance_id);
    }
    w.put(&inst).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// DeleteInstance: only while stopped. Its machine, pending commands, credential and status
/// history go with it; its Elastic IP is released with `DeleteElasticIp` (else disassociated),
/// its volumes deleted with `DeleteVolumes` (else unassigned).
pub async fn delete_instance(cx: Ctx<'_>, req: shapes::DeleteInstanceRequest) -> OpResult {
    let id = req.instance_id;
    let mut w = cx.core.write().await?;
    let inst: Instance = w.get(&id).await?;
    if inst.registered {
        return Err(ApiError::Validation(format!(
            "Instance {id} is a registered instance: remove it with DeregisterInstance, which also uninstalls its agent"
        )));
    }
    require_stopped(&inst, "delete")?;
    machines::destroy(cx.core, &id).await?;
    commands::skip_pending(&mut w, &id).await?;
    cx.core
        .keys()
        .revoke(&mut w, &machines::instance_principal(&id))
        .await?;
    let released = super::elastic_ips::on_instance_deleted(
        &mut w,
        &id,
        req.delete_elastic_ip.unwrap_or(false),
    )
    .await?;
    let deleted =
        super::volumes::on_instance_deleted(&mut w, &id, req.delete_volumes.unwrap_or(false))
            .await?;
    w.delete(Kind::Instance, &id).await?;
    let transitions: Vec<Transition> = w.list(Filter::Parent(&id)).await?;
    for t in transitions {
        w.delete(Kind::Transition, &t.transition_id).await?;
    }
    w.commit().await?;
    super::elastic_ips::release_after_delete(cx, &released).await;
    super::volumes::remove_after_delete(cx, &deleted);
    cx.core.presence().forget(&id);
    Ok(Reply::empty())
}

/// StartInstance: `stopped` (or `start_failed`) → `requested`; the instance provider then carries
/// it through `pending` and `booting`, its agent through `running_setup` to `online`. A server
/// without a provider only records the request.
pub async fn start_instance(cx: Ctx<'_>, req: shapes::StartInstanceRequest) -> OpResult {
    instances::start(cx.core, &req.instance_id).await?;
    Ok(Reply::empty())
}

/// StopInstance: a merely requested instance stops at once; a running one goes to `stopping`.
/// `Force` detaches the record from its machine: the instance is recorded stopped without waiting
/// for the Shutdown event (the original's forced stop of an EBS-backed instance).
pub async fn stop_instance(cx: Ctx<'_>, req: shapes::StopInstanceRequest) -> OpResult {
    instances::stop(cx.core, &req.instance_id, req.force.unwrap_or(false)).await?;
    Ok(Reply::empty())
}

/// RebootInstance: only an online instance (or one whose setup failed or whose agent went
/// silent, which a reboot may cure) can be rebooted.
pub async fn reboot_instance(cx: Ctx<'_>, req: shapes::RebootInstanceRequest) -> OpResult {
    instances::refuse_registered(&*cx.core.get::<Instance>(&req.instance_id).await?, "reboot")?;
    instances::change_status_now(cx.core, &req.instance_id, InstanceEvent::Reboot).await?;
    machines::reboot(cx.core, &req.instance_id);
    Ok(Reply::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux() -> &'static OperatingSystem {
        catalog::operating_system("Amazon Linux 2").unwrap()
    }

    #[test]
    fn instance_types() {
        assert!(check_instance_type("t2.micro").is_ok());
        assert!(check_instance_type("m5d.24xlarge").is_ok());
        assert!(check_instance_type("huge").is_err());
        assert!(check_instance_type("t2.").is_err());
        assert!(check_instance_type("T2.micro").is_err());
    }

    #[tokio::test]
    async fn agent_versions() {
        let (_dir, core) = crate::testkit::open().await;
        assert!(check_agent_version(&core, "INHERIT", true).await.is_ok());
        assert!(check_agent_version(&core, "INHERIT", false).await.is_err());
        assert!(check_agent_version(&core, "LATEST", false).await.is_ok());
        assert!(
            check_agent_version(&core, catalog::AGENT_VERSION, true)
                .await
                .is_ok()
        );
        let err = check_agent_version(&core, "not-a-version", true)
            .await
            .unwrap_err();
        assert!(err.message().contains(catalog::AGENT_VERSION), "{err:?}");
    }

    #[test]
    fn hostname_rules() {
        assert!(check_hostname("web2", linux(), &[], None).is_ok());
        assert!(check_hostname("Not_A_Host!", linux(), &[], None).is_err());
        let windows = catalog::OPERATING_SYSTEMS
            .iter()
            .find(|o| o.family == "Windows")
            .unwrap();
        assert!(check_hostname("fifteen-chars-x", windows, &[], None).is_ok());
        assert!(check_hostname("sixteen-chars-xx", windows, &[], None).is_err());
    }
}
