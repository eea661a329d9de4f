//! Instance operations: CreateInstance, DescribeInstances, UpdateInstance, DeleteInstance,
//! StartInstance, StopInstance, RebootInstance; and [`change_status`], the one place an
//! instance's status changes.
//!
//! Until the agent issue lands nothing drives an instance past the first step of a path: a
//! started instance stays `requested`, a stopped online one stays `stopping`. The handlers
//! record the intent through the state machine; the agent's reports will carry it on.

use serde_json::{Map, Value, json};

use opsworks_api::ApiError;
use opsworks_model::catalog::{self, OperatingSystem};
use opsworks_model::instance::{self, InstanceEvent, InstanceStatus};
use opsworks_model::layer::LayerType;
use opsworks_model::{Arn, ResourceKind, new_id, themes};
use opsworks_store::{Filter, Kind, Write};

use super::layers::{instances_of, layer_type, load_layer, suggest_hostname};
use super::stacks::load_stack;
use super::{
    OpResult, Req, apply, copy_members, list, load, load_all, now, public_view, put, required_str,
    str_list, str_member,
};
use crate::App;

/// Applies `event` to the instance's status through the state machine, stores the new status
/// and records the transition. Every status change of an instance goes through here.
pub async fn change_status(
    app: &App,
    instance_id: &str,
    event: InstanceEvent,
) -> Result<InstanceStatus, ApiError> {
    let _guard = app.write_lock().await;
    change_status_locked(app, instance_id, event).await
}

/// [`change_status`] for callers that already hold the write lock.
pub async fn change_status_locked(
    app: &App,
    instance_id: &str,
    event: InstanceEvent,
) -> Result<InstanceStatus, ApiError> {
    let mut doc = load_instance(app, instance_id).await?;
    let from = status_of(&doc)?;
    let to = instance::transition(from, event).map_err(|e| {
        ApiError::Validation(format!(
            "{} (instance {instance_id})",
            capitalize_first(&e.to_string())
        ))
    })?;
    let stack_id = doc
        .get("StackId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    doc["Status"] = json!(to.as_str());
    let record_id = new_id();
    let record = json!({
        "TransitionId": record_id,
        "InstanceId": instance_id,
        "From": from.as_str(),
        "To": to.as_str(),
        "Event": format!("{event:?}"),
        "At": now(),
    });
    apply(
        app,
        vec![
            put(Kind::Instance, instance_id, &stack_id, None, doc),
            put(
                Kind::Transition,
                &record_id,
                &stack_id,
                Some(instance_id),
                record,
            ),
        ],
    )
    .await?;
    tracing::info!(
        instance_id,
        from = from.as_str(),
        to = to.as_str(),
        ?event,
        "instance status changed"
    );
    let mut recorded = crate::events::new_event(&stack_id, crate::events::INSTANCE_STATUS);
    recorded.instance_id = Some(instance_id.to_string());
    recorded.detail =
        json!({"From": from.as_str(), "To": to.as_str(), "Cause": format!("{event:?}")});
    crate::events::record(app, recorded).await;
    Ok(to)
}

fn capitalize_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// The instance as the API shows it: private members dropped.
pub fn view(doc: Value) -> Value {
    public_view(doc)
}

/// Loads an instance or answers `Unable to find instance with ID <id>`.
pub async fn load_instance(app: &App, id: &str) -> Result<Value, ApiError> {
    load(app, Kind::Instance, "instance", id).await
}

/// The stored status of an instance.
fn status_of(doc: &Value) -> Result<InstanceStatus, ApiError> {
    doc.get("Status")
        .and_then(Value::as_str)
        .unwrap_or("stopped")
        .parse()
        .map_err(ApiError::Internal)
}

/// Refuses an edit or deletion of an instance that is not stopped, as the original does.
fn require_stopped(doc: &Value, id: &str, action: &str) -> Result<(), ApiError> {
    let status = status_of(doc)?;
    if status.is_stopped() {
        Ok(())
    } else {
        Err(ApiError::Validation(format!(
            "Instance {id} is {status}; an instance must be stopped before you can {action} it"
        )))
    }
}

/// The operating system of the stack's `DefaultOs` (the default when the stack names none).
fn stack_os(stack: &Value) -> Option<&'static OperatingSystem> {
    catalog::operating_system(
        stack
            .get("DefaultOs")
            .and_then(Value::as_str)
            .unwrap_or(catalog::DEFAULT_OS),
    )
}

/// The major Chef version of the stack (`12`, `11.10`, ...).
fn stack_chef(stack: &Value) -> &str {
    stack
        .pointer("/ConfigurationManager/Version")
        .and_then(Value::as_str)
        .unwrap_or("12")
}

/// Checks an `Os` for an instance of `stack`: known, offered, of the stack's family (a stack
/// cannot mix Linux and Windows) and able to run the stack's Chef version.
fn check_os(name: &str, stack: &Value) -> Result<&'static OperatingSystem, ApiError> {
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
    let chef = stack_chef(stack);
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
fn check_hostname(
    hostname: &str,
    os: &OperatingSystem,
    instances: &[Value],
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
        i.get("InstanceId").and_then(Value::as_str) != except
            && i.get("Hostname")
                .and_then(Value::as_str)
                .is_some_and(|h| h.eq_ignore_ascii_case(hostname))
    });
    if clash {
        return Err(ApiError::Validation(format!(
            "Hostname {hostname} is already in use in this stack"
        )));
    }
    Ok(())
}

/// Loads the layers of `ids` and checks they belong to `stack_id`, are not repeated, and can
/// share an instance (an ecs-cluster layer only with custom layers).
async fn check_layers(app: &App, stack_id: &str, ids: &[String]) -> Result<Vec<Value>, ApiError> {
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
    let layers = load_all(app, Kind::Layer, "layer", ids).await?;
    for l in &layers {
        if l.get("StackId").and_then(Value::as_str) != Some(stack_id) {
            let lid = l.get("LayerId").and_then(Value::as_str).unwrap_or_default();
            return Err(ApiError::Validation(format!(
                "Layer {lid} does not belong to stack {stack_id}"
            )));
        }
    }
    let types: Vec<LayerType> = layers.iter().map(layer_type).collect();
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
    // Keep the request's order: the first layer names the instance under Layer_Dependent.
    let mut ordered = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(l) = layers
            .iter()
            .find(|l| l.get("LayerId").and_then(Value::as_str) == Some(id))
        {
            ordered.push(l.clone());
        }
    }
    Ok(ordered)
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

/// Checks an instance's `AgentVersion`: `INHERIT` or a version DescribeAgentVersions offers.
fn check_agent_version(v: &str) -> Result<(), ApiError> {
    if v == "INHERIT" || catalog::is_agent_version(v) {
        Ok(())
    } else {
        Err(ApiError::Validation(format!(
            "Invalid AgentVersion '{v}': use INHERIT or a version DescribeAgentVersions lists ({})",
            catalog::AGENT_VERSION
        )))
    }
}

/// Checks the members of CreateInstance that the model leaves as plain strings.
fn check_create_members(req: &Req) -> Result<(), ApiError> {
    check_instance_type(required_str(req, "InstanceType")?)?;
    if let Some(v) = str_member(req, "VirtualizationType")
        && !["paravirtual", "hvm"].contains(&v)
    {
        return Err(ApiError::Validation(format!(
            "Invalid VirtualizationType '{v}': expected paravirtual or hvm"
        )));
    }
    if let Some(t) = str_member(req, "Tenancy")
        && !["default", "dedicated", "host"].contains(&t)
    {
        return Err(ApiError::Validation(format!(
            "Invalid Tenancy '{t}': expected default, dedicated or host"
        )));
    }
    if let Some(v) = str_member(req, "AgentVersion") {
        check_agent_version(v)?;
    }
    Ok(())
}

/// CreateInstance: a stopped instance in one or more layers of the stack, with the stack's
/// defaults for what the request leaves out and a hostname from the stack's theme.
pub async fn create_instance(app: &App, req: Req) -> OpResult {
    let stack_id = required_str(&req, "StackId")?.to_string();
    check_create_members(&req)?;
    let layer_ids = str_list(&req, "LayerIds").unwrap_or_default();

    let _guard = app.write_lock().await;
    let stack = load_stack(app, &stack_id).await?;
    let layers = check_layers(app, &stack_id, &layer_ids).await?;
    let instances = list(app, Kind::Instance, Filter::Stack(&stack_id)).await?;

    let os_name = str_member(&req, "Os")
        .or_else(|| stack.get("DefaultOs").and_then(Value::as_str))
        .unwrap_or(catalog::DEFAULT_OS)
        .to_string();
    let os = check_os(&os_name, &stack)?;
    let ami = str_member(&req, "AmiId");
    match (os.name == "Custom", ami) {
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
    if ami.is_some() && req.get("BlockDeviceMappings").is_some_and(|b| !b.is_null()) {
        return Err(ApiError::Validation(
            "BlockDeviceMappings are not supported with a custom AMI".into(),
        ));
    }
    let windows = os.family == "Windows";
    // Windows runs only from EBS, whatever the stack's default says.
    let root_device = match str_member(&req, "RootDeviceType") {
        Some(r) => r,
        None if windows => "ebs",
        None => stack
            .get("DefaultRootDeviceType")
            .and_then(Value::as_str)
            .unwrap_or("instance-store"),
    };
    if windows && root_device != "ebs" {
        return Err(ApiError::Validation(
            "Windows instances must use the ebs RootDeviceType".into(),
        ));
    }
    if windows && str_member(&req, "AutoScalingType") == Some("load") {
        return Err(ApiError::Validation(
            "Windows stacks can use only time-based (timer) instances".into(),
        ));
    }
    let hostname = match str_member(&req, "Hostname") {
        Some(h) => h.to_string(),
        None => suggest_hostname(&stack, &layers[0], &instances)?,
    };
    check_hostname(&hostname, os, &instances, None)?;

    let id = new_id();
    let region = stack
        .get("Region")
        .and_then(Value::as_str)
        .unwrap_or(app.region());
    let mut doc = Map::new();
    copy_members(
        &req,
        &mut doc,
        "Instance",
        &[
            "InstanceId",
            "Arn",
            "Status",
            "CreatedAt",
            "InfrastructureClass",
        ],
    );
    doc.insert("InstanceId".into(), json!(id));
    doc.insert(
        "Arn".into(),
        json!(Arn::new(region, app.account_id(), ResourceKind::Instance, &id).to_string()),
    );
    doc.insert("StackId".into(), json!(stack_id));
    doc.insert("LayerIds".into(), json!(layer_ids));
    doc.insert("Hostname".into(), json!(hostname));
    doc.insert("Os".into(), json!(os.name));
    doc.insert("RootDeviceType".into(), json!(root_device));
    doc.entry("Architecture").or_insert(json!("x86_64"));
    doc.entry("VirtualizationType").or_insert(json!("hvm"));
    doc.entry("Tenancy").or_insert(json!("default"));
    doc.entry("AgentVersion").or_insert(json!("INHERIT"));
    doc.entry("InstallUpdatesOnBoot").or_insert(json!(true));
    doc.entry("EbsOptimized").or_insert(json!(false));
    for (member, stack_member) in [
        ("AvailabilityZone", "DefaultAvailabilityZone"),
        ("SubnetId", "DefaultSubnetId"),
        ("SshKeyName", "DefaultSshKeyName"),
    ] {
        if !doc.contains_key(member)
            && let Some(v) = stack
                .get(stack_member)
                .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        {
            doc.insert(member.into(), v.clone());
        }
    }
    // The first layer with its own instance profile wins over the stack's.
    let profile = layers
        .iter()
        .find_map(|l| {
            l.get("CustomInstanceProfileArn")
                .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        })
        .or_else(|| stack.get("DefaultInstanceProfileArn"));
    if let Some(p) = profile {
        doc.insert("InstanceProfileArn".into(), p.clone());
    }
    doc.insert("InfrastructureClass".into(), json!("ec2"));
    // The one status written outside the state machine: where every instance starts.
    doc.insert("Status".into(), json!(InstanceStatus::Stopped.as_str()));
    doc.insert("CreatedAt".into(), json!(now()));
    apply(
        app,
        vec![put(
            Kind::Instance,
            &id,
            &stack_id,
            None,
            Value::Object(doc),
        )],
    )
    .await?;
    Ok(json!({ "InstanceId": id }))
}

/// AWS's answer when DescribeInstances gets no identifier, or more than one.
const DESCRIBE_INSTANCES_IDENTIFIERS: &str =
    "Please provide either one or more instance ID or one stack ID or one layer ID";

/// DescribeInstances: the instances of one stack, of one layer, or those named. Exactly one
/// identifier is required, as the original answers (its documentation's "every instance" when
/// none is given is not what the service did).
pub async fn describe_instances(app: &App, req: Req) -> Result<super::Reply, ApiError> {
    let given: Vec<&str> = ["StackId", "LayerId", "InstanceIds"]
        .into_iter()
        .filter(|n| req.get(*n).is_some_and(|v| !v.is_null()))
        .collect();
    match given.as_slice() {
        // The common, large case answers with the stored documents as they are (no parsing).
        ["StackId"] => {
            let id = required_str(&req, "StackId")?;
            load_stack(app, id).await?;
            let docs = app
                .store()
                .list_raw(Kind::Instance, Filter::Stack(id))
                .await
                .map_err(super::store_error)?;
            super::raw_list("Instances", docs, view)
        }
        ["LayerId"] => {
            let id = required_str(&req, "LayerId")?;
            let layer = load_layer(app, id).await?;
            let stack_id = layer
                .get("StackId")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let all = list(app, Kind::Instance, Filter::Stack(stack_id)).await?;
            let instances: Vec<Value> = instances_of(&all, id)
                .into_iter()
                .cloned()
                .map(view)
                .collect();
            Ok(super::Reply::Json(json!({ "Instances": instances })))
        }
        ["InstanceIds"] => {
            let ids = str_list(&req, "InstanceIds").unwrap_or_default();
            let instances = load_all(app, Kind::Instance, "instance", &ids).await?;
            Ok(super::Reply::Json(
                json!({ "Instances": instances.into_iter().map(view).collect::<Vec<_>>() }),
            ))
        }
        _ => Err(ApiError::Validation(DESCRIBE_INSTANCES_IDENTIFIERS.into())),
    }
}

/// UpdateInstance: only while stopped. `AutoScalingType`, `EbsOptimized` and `AmiId` cannot
/// change; the OS changes only on instance-store instances not built from a custom AMI.
pub async fn update_instance(app: &App, req: Req) -> OpResult {
    let id = required_str(&req, "InstanceId")?.to_string();
    if let Some(t) = str_member(&req, "InstanceType") {
        check_instance_type(t)?;
    }
    if let Some(v) = str_member(&req, "AgentVersion") {
        check_agent_version(v)?;
    }
    let _guard = app.write_lock().await;
    let old = load_instance(app, &id).await?;
    let stack_id = old
        .get("StackId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let stack = load_stack(app, &stack_id).await?;
    if let Some(ids) = str_list(&req, "LayerIds") {
        check_layers(app, &stack_id, &ids).await?;
    }
    require_stopped(&old, &id, "update")?;

    let unchanged = |member: &str| match req.get(member).filter(|v| !v.is_null()) {
        Some(new) => old.get(member).filter(|v| !v.is_null()) == Some(new),
        None => true,
    };
    if !unchanged("AutoScalingType") {
        return Err(ApiError::Validation(
            "AutoScalingType cannot be changed; create a new instance of the other scaling type instead".into(),
        ));
    }
    if !unchanged("EbsOptimized") {
        return Err(ApiError::Validation(
            "EbsOptimized cannot be changed after an instance is created".into(),
        ));
    }
    if !unchanged("AmiId") {
        return Err(ApiError::Validation(
            "AmiId must be the AMI the instance already uses; UpdateInstance cannot apply a new AMI".into(),
        ));
    }
    let old_os = old
        .get("Os")
        .and_then(Value::as_str)
        .unwrap_or(catalog::DEFAULT_OS)
        .to_string();
    let os = match str_member(&req, "Os") {
        Some(new_os) if new_os != old_os => {
            if old_os == "Custom" || new_os == "Custom" {
                return Err(ApiError::Validation(
                    "The Os of an instance that uses a custom AMI cannot be changed, nor can an instance move to a custom AMI".into(),
                ));
            }
            if old.get("RootDeviceType").and_then(Value::as_str) == Some("ebs") {
                return Err(ApiError::Validation(
                    "The Os of an EBS-backed instance cannot be changed; only instance-store instances can change their Os".into(),
                ));
            }
            check_os(new_os, &stack)?
        }
        _ => catalog::operating_system(&old_os).unwrap_or(&catalog::OPERATING_SYSTEMS[0]),
    };
    if let Some(h) = str_member(&req, "Hostname") {
        let instances = list(app, Kind::Instance, Filter::Stack(&stack_id)).await?;
        check_hostname(h, os, &instances, Some(&id))?;
    }

    let mut doc = old.as_object().cloned().unwrap_or_default();
    copy_members(&req, &mut doc, "UpdateInstanceRequest", &["InstanceId"]);
    apply(
        app,
        vec![put(
            Kind::Instance,
            &id,
            &stack_id,
            None,
            Value::Object(doc),
        )],
    )
    .await?;
    Ok(json!({}))
}

/// DeleteInstance: only while stopped. Its status history goes with it. `DeleteElasticIp` and
/// `DeleteVolumes` are accepted; this server registers no addresses or volumes yet.
pub async fn delete_instance(app: &App, req: Req) -> OpResult {
    let id = required_str(&req, "InstanceId")?.to_string();
    let _guard = app.write_lock().await;
    let doc = load_instance(app, &id).await?;
    require_stopped(&doc, &id, "delete")?;
    crate::machines::destroy(app, &id).await?;
    let stack_id = doc
        .get("StackId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    crate::ops::deployments::skip_pending_commands_locked(app, &stack_id, &id).await?;
    app.keys()
        .revoke(
            app.store(),
            &format!("{}{id}", crate::agents::INSTANCE_PRINCIPAL),
        )
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut writes = vec![Write::Delete {
        kind: Kind::Instance,
        id: id.clone(),
    }];
    for t in list(app, Kind::Transition, Filter::Parent(&id)).await? {
        if let Some(tid) = t.get("TransitionId").and_then(Value::as_str) {
            writes.push(Write::Delete {
                kind: Kind::Transition,
                id: tid.to_string(),
            });
        }
    }
    apply(app, writes).await?;
    Ok(json!({}))
}

/// StartInstance: `stopped` (or `start_failed`) → `requested`; the instance provider then carries
/// it through `pending` and `booting`, its agent through `running_setup` to `online`
/// (`machines::launch`). A server without a provider only records the request.
pub async fn start_instance(app: &App, req: Req) -> OpResult {
    start(app, required_str(&req, "InstanceId")?).await?;
    Ok(json!({}))
}

/// Starts an instance as StartInstance does; the schedulers start instances through here too.
pub async fn start(app: &App, id: &str) -> Result<(), ApiError> {
    check_builtin_recipes(app, &load_instance(app, id).await?).await?;
    change_status(app, id, InstanceEvent::Start).await?;
    crate::machines::launch(app, id);
    Ok(())
}

/// Refuses to start an instance whose layers' built-in recipes this server does not ship yet, so
/// a layer type that is accepted but not built fails clearly instead of coming up half-configured.
async fn check_builtin_recipes(app: &App, inst: &Value) -> Result<(), ApiError> {
    let ids: Vec<String> = inst
        .get("LayerIds")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for layer in list(app, Kind::Layer, Filter::Ids(&ids)).await? {
        let missing: Vec<String> = layer
            .get("DefaultRecipes")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|events| events.values())
            .filter_map(Value::as_array)
            .flatten()
            .filter_map(Value::as_str)
            .filter(|r| !opsworks_cookbooks::has_recipe(r))
            .map(String::from)
            .collect();
        if !missing.is_empty() {
            let kind = layer.get("Type").and_then(Value::as_str).unwrap_or("?");
            return Err(ApiError::Validation(format!(
                "Instances of {kind} layers cannot start yet: this server does not ship the layer's built-in recipes ({}) yet",
                missing.join(", ")
            )));
        }
    }
    Ok(())
}

/// StopInstance: a merely requested instance stops at once; a running one goes to `stopping`.
/// `Force` detaches the record from its machine: the instance is recorded stopped without waiting
/// for the Shutdown event (the original's forced stop of an EBS-backed instance).
pub async fn stop_instance(app: &App, req: Req) -> OpResult {
    let id = required_str(&req, "InstanceId")?;
    let force = req.get("Force").and_then(Value::as_bool).unwrap_or(false);
    stop(app, id, force).await?;
    Ok(json!({}))
}

/// Stops an instance as StopInstance does (`force` as its `Force`); the schedulers stop instances
/// through here too.
pub async fn stop(app: &App, id: &str, force: bool) -> Result<(), ApiError> {
    let _guard = app.write_lock().await;
    let current = status_of(&load_instance(app, id).await?)?;
    // A forced stop of an instance already on its way down finishes it; otherwise stop first.
    let on_the_way_down = matches!(
        current,
        InstanceStatus::Stopping | InstanceStatus::ShuttingDown | InstanceStatus::Terminating
    );
    let status = if force && on_the_way_down {
        current
    } else {
        change_status_locked(app, id, InstanceEvent::Stop).await?
    };
    // An agent runs on the instance once it booted; it then runs Shutdown before the machine stops.
    let had_agent = matches!(
        current,
        InstanceStatus::Booting
            | InstanceStatus::RunningSetup
            | InstanceStatus::Online
            | InstanceStatus::SetupFailed
            | InstanceStatus::Rebooting
            | InstanceStatus::ConnectionLost
    );
    if status == InstanceStatus::Stopping {
        crate::machines::halt(app, id, had_agent && !force);
    } else if force && status != InstanceStatus::Stopped {
        change_status_locked(app, id, InstanceEvent::Halted).await?;
    }
    Ok(())
}

/// RebootInstance: only an online instance (or one whose setup failed or whose agent went
/// silent, which a reboot may cure) can be rebooted.
pub async fn reboot_instance(app: &App, req: Req) -> OpResult {
    let id = required_str(&req, "InstanceId")?;
    change_status(app, id, InstanceEvent::Reboot).await?;
    crate::machines::reboot(app, id);
    Ok(json!({}))
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

    #[test]
    fn hostnames_valid_and_unique_in_the_stack() {
        let insts = vec![json!({"InstanceId": "a", "Hostname": "web1"})];
        assert!(check_hostname("web2", linux(), &insts, None).is_ok());
        let dup = check_hostname("WEB1", linux(), &insts, None);
        assert!(dup.is_err());
        let lower = check_hostname("web1", linux(), &insts, None).unwrap_err();
        assert_eq!(
            lower.message(),
            "Hostname web1 is already in use in this stack"
        );
        // An instance keeps its own name.
        assert!(check_hostname("web1", linux(), &insts, Some("a")).is_ok());
        assert!(check_hostname("Not_A_Host!", linux(), &[], None).is_err());
        let windows = catalog::OPERATING_SYSTEMS
            .iter()
            .find(|o| o.family == "Windows")
            .unwrap();
        assert!(check_hostname("fifteen-chars-x", windows, &[], None).is_ok());
        assert!(check_hostname("sixteen-chars-xx", windows, &[], None).is_err());
    }

    #[test]
    fn os_rules() {
        let stack =
            json!({"DefaultOs": "Amazon Linux 2", "ConfigurationManager": {"Version": "12"}});
        assert!(check_os("Ubuntu 18.04 LTS", &stack).is_ok());
        assert!(check_os("Plan 9", &stack).is_err());
        assert!(check_os("Microsoft Windows Server 2012 R2 Base", &stack).is_err());
        let chef11 =
            json!({"DefaultOs": "Amazon Linux 2", "ConfigurationManager": {"Version": "11.10"}});
        assert!(check_os("Ubuntu 18.04 LTS", &chef11).is_err());
    }

    #[test]
    fn agent_versions() {
        assert!(check_agent_version("INHERIT").is_ok());
        assert!(check_agent_version(catalog::AGENT_VERSION).is_ok());
        assert!(check_agent_version("not-a-version").is_err());
    }

    #[test]
    fn only_stopped_instances_change() {
        assert!(require_stopped(&json!({"Status": "stopped"}), "i", "delete").is_ok());
        let e = require_stopped(&json!({"Status": "online"}), "i", "delete").unwrap_err();
        assert_eq!(
            e.message(),
            "Instance i is online; an instance must be stopped before you can delete it"
        );
    }
}
