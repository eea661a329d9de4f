//! Stack operations: CreateStack, DescribeStacks, UpdateStack, DeleteStack, CloneStack,
//! DescribeStackSummary, StartStack, StopStack, DescribeStackProvisioningParameters.

use serde_json::{Map, Value, json};

use opsworks_api::ApiError;
use opsworks_model::instance::InstanceStatus;
use opsworks_model::{Arn, ResourceKind, catalog, new_id, themes};
use opsworks_store::{Filter, Kind, Write};

use super::{
    Caller, OpResult, Req, apply, check_custom_json, check_len, copy_members, filter_secret,
    keep_filtered_secret, list, load, load_all, now, public_view, put, required_str, str_list,
    str_member,
};
use crate::App;

/// The stack as the API shows it: secrets filtered, private members dropped.
pub fn view(doc: Value) -> Value {
    let mut doc = public_view(doc);
    filter_secret(&mut doc, &["CustomCookbooksSource", "Password"]);
    filter_secret(&mut doc, &["CustomCookbooksSource", "SshKey"]);
    doc
}

/// Loads a stack or answers `Unable to find stack with ID <id>`.
pub async fn load_stack(app: &App, id: &str) -> Result<Value, ApiError> {
    load(app, Kind::Stack, "stack", id).await
}

fn check_arn(req: &Req, name: &str) -> Result<(), ApiError> {
    match str_member(req, name) {
        Some(s) if !s.starts_with("arn:") || s.split(':').count() < 6 => Err(ApiError::Validation(
            format!("{name} must be an ARN (arn:aws:iam::<account>:role/<name>); got '{s}'"),
        )),
        _ => Ok(()),
    }
}

fn check_region(region: &str) -> Result<(), ApiError> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::Validation(format!("Invalid region: {region}")))
    }
}

/// Checks the members shared by CreateStack, UpdateStack and CloneStack.
fn check_stack_members(req: &Req) -> Result<(), ApiError> {
    check_len(req, "Name", 64)?;
    if let Some(name) = str_member(req, "Name")
        && name.trim().is_empty()
    {
        return Err(ApiError::Validation("Name must not be empty".into()));
    }
    check_arn(req, "ServiceRoleArn")?;
    check_arn(req, "DefaultInstanceProfileArn")?;
    check_custom_json(req)?;
    if let Some(os) = str_member(req, "DefaultOs")
        && catalog::operating_system(os).is_none()
    {
        return Err(ApiError::Validation(format!("Invalid DefaultOs: {os}")));
    }
    if let Some(theme) = str_member(req, "HostnameTheme")
        && !themes::is_theme(theme)
    {
        return Err(ApiError::Validation(format!(
            "Invalid HostnameTheme: {theme}; valid themes are {}",
            themes::THEME_NAMES.join(", ")
        )));
    }
    if let Some(cm) = req.get("ConfigurationManager") {
        let name = cm.get("Name").and_then(Value::as_str).unwrap_or("Chef");
        let version = cm.get("Version").and_then(Value::as_str).unwrap_or("12");
        if !name.eq_ignore_ascii_case("chef") {
            return Err(ApiError::Validation(format!(
                "Unsupported configuration manager: {name}"
            )));
        }
        if !catalog::CHEF_VERSIONS.contains(&version) {
            return Err(ApiError::Validation(format!(
                "Unsupported configuration manager version: {version}; supported are {}",
                catalog::CHEF_VERSIONS.join(", ")
            )));
        }
    }
    if str_member(req, "VpcId").is_some_and(|v| !v.is_empty())
        && str_member(req, "DefaultSubnetId").is_none_or(str::is_empty)
    {
        return Err(ApiError::Validation(
            "DefaultSubnetId is required when you specify a VpcId: instances of a VPC stack launch into a subnet".into(),
        ));
    }
    if let Some(src) = req.get("CustomCookbooksSource")
        && let Some(url) = src.get("Url").and_then(Value::as_str)
        && url.trim().is_empty()
    {
        return Err(ApiError::Validation(
            "CustomCookbooksSource.Url must not be empty".into(),
        ));
    }
    if let Some(color) = req
        .get("Attributes")
        .and_then(|a| a.get("Color"))
        .and_then(Value::as_str)
        && !color.is_empty()
        && !(color.starts_with("rgb(") && color.ends_with(')'))
    {
        return Err(ApiError::Validation(format!(
            "Invalid Color attribute: {color}; expected rgb(r, g, b)"
        )));
    }
    Ok(())
}

/// The stack's OS must support its Chef version (12.2 is Windows's, the others Linux's).
fn check_os_and_chef(doc: &Value) -> Result<(), ApiError> {
    let os_name = doc
        .get("DefaultOs")
        .and_then(Value::as_str)
        .unwrap_or(catalog::DEFAULT_OS);
    let version = doc
        .pointer("/ConfigurationManager/Version")
        .and_then(Value::as_str)
        .unwrap_or("12");
    match catalog::operating_system(os_name) {
        Some(os) if !os.chef_versions.contains(&version) && version != "0.9" => {
            Err(ApiError::Validation(format!(
                "Chef {version} is not available on {os_name}; it supports Chef {}",
                os.chef_versions.join(", ")
            )))
        }
        _ => Ok(()),
    }
}

fn chef_major(doc: &Value) -> Option<&str> {
    let v = doc.pointer("/ConfigurationManager/Version")?.as_str()?;
    v.split('.').next()
}

/// Builds a new stack document from a request, with the original's defaults.
fn new_stack(app: &App, req: &Req, id: &str) -> Value {
    let mut doc = Map::new();
    copy_members(req, &mut doc, "Stack", &["StackId", "Arn", "CreatedAt"]);
    let region = str_member(req, "Region")
        .unwrap_or(app.region())
        .to_string();
    doc.insert("StackId".into(), json!(id));
    doc.insert(
        "Arn".into(),
        json!(Arn::new(&region, app.account_id(), ResourceKind::Stack, id).to_string()),
    );
    doc.entry("DefaultOs").or_insert(json!(catalog::DEFAULT_OS));
    doc.entry("HostnameTheme")
        .or_insert(json!("Layer_Dependent"));
    doc.entry("ConfigurationManager")
        .or_insert(json!({"Name": "Chef", "Version": "12"}));
    doc.entry("UseCustomCookbooks").or_insert(json!(false));
    doc.entry("UseOpsworksSecurityGroups")
        .or_insert(json!(true));
    doc.entry("DefaultRootDeviceType")
        .or_insert(json!("instance-store"));
    doc.entry("AgentVersion").or_insert(json!("LATEST"));
    doc.entry("Attributes").or_insert(json!({"Color": null}));
    doc.entry("DefaultAvailabilityZone")
        .or_insert(json!(format!("{region}a")));
    doc.entry("ChefConfiguration").or_insert(json!({}));
    doc.insert("CreatedAt".into(), json!(now()));
    Value::Object(doc)
}

/// CreateStack.
pub async fn create_stack(app: &App, _caller: &Caller, req: Req) -> OpResult {
    required_str(&req, "Name")?;
    check_region(required_str(&req, "Region")?)?;
    required_str(&req, "ServiceRoleArn")?;
    required_str(&req, "DefaultInstanceProfileArn")?;
    check_stack_members(&req)?;
    let id = new_id();
    let doc = new_stack(app, &req, &id);
    check_os_and_chef(&doc)?;
    apply(app, vec![put(Kind::Stack, &id, &id, None, doc)]).await?;
    Ok(json!({ "StackId": id }))
}

/// DescribeStacks: all stacks, or those named (each must exist).
pub async fn describe_stacks(app: &App, req: Req) -> OpResult {
    let stacks = match str_list(&req, "StackIds") {
        Some(ids) if ids.is_empty() => {
            return Err(ApiError::Validation(
                "Please provide no arguments or, one or more stack IDs".into(),
            ));
        }
        Some(ids) => load_all(app, Kind::Stack, "stack", &ids).await?,
        None => list(app, Kind::Stack, Filter::All).await?,
    };
    Ok(json!({ "Stacks": stacks.into_iter().map(view).collect::<Vec<_>>() }))
}

/// UpdateStack: changes the members given; Region and VpcId cannot change.
pub async fn update_stack(app: &App, req: Req) -> OpResult {
    let id = required_str(&req, "StackId")?.to_string();
    check_stack_members(&req)?;
    let _guard = app.write_lock().await;
    let old = load_stack(app, &id).await?;
    let mut doc = old.clone();
    if let Some(m) = doc.as_object_mut() {
        copy_members(&req, m, "UpdateStackRequest", &["StackId"]);
    }
    if let Some((a, b)) = chef_major(&old).zip(chef_major(&doc))
        && a != b
    {
        return Err(ApiError::Validation(format!(
            "A stack cannot move between Chef {a} and Chef {b}; clone it into a new stack instead"
        )));
    }
    let version = |d: &Value| {
        d.pointer("/ConfigurationManager/Version")
            .and_then(Value::as_str)
            .map(String::from)
    };
    if version(&old) != version(&doc) && super::apps::stack_has_app_environment(app, &id).await? {
        return Err(ApiError::Validation(
            "The configuration manager version of a stack whose apps have environment variables cannot change".into(),
        ));
    }
    check_os_and_chef(&doc)?;
    keep_filtered_secret(&mut doc, &old, &["CustomCookbooksSource", "Password"]);
    keep_filtered_secret(&mut doc, &old, &["CustomCookbooksSource", "SshKey"]);
    apply(app, vec![put(Kind::Stack, &id, &id, None, doc)]).await?;
    Ok(json!({}))
}

/// DeleteStack: only an empty stack (no instances, layers or apps) can go.
pub async fn delete_stack(app: &App, req: Req) -> OpResult {
    let id = required_str(&req, "StackId")?.to_string();
    let _guard = app.write_lock().await;
    let stack = load_stack(app, &id).await?;
    let mut counts = [0u64; 3];
    for (n, kind) in counts
        .iter_mut()
        .zip([Kind::Instance, Kind::Layer, Kind::App])
    {
        *n = app
            .store()
            .count(kind, Filter::Stack(&id))
            .await
            .map_err(super::store_error)?;
    }
    let [instances, layers, apps] = counts;
    if instances + layers + apps > 0 {
        return Err(ApiError::Validation(format!(
            "Cannot delete stack {id}: it still has {instances} instance(s), {layers} layer(s) and {apps} app(s); delete them first"
        )));
    }
    let mut writes = vec![Write::Delete {
        kind: Kind::Stack,
        id: id.clone(),
    }];
    if let Some(arn) = stack.get("Arn").and_then(Value::as_str) {
        writes.push(Write::Delete {
            kind: Kind::Tags,
            id: arn.to_string(),
        });
    }
    // Deployments, commands and service errors of the stack go with it.
    for kind in [Kind::Deployment, Kind::Command, Kind::ServiceError] {
        for d in list(app, kind, Filter::Stack(&id)).await? {
            let key = match kind {
                Kind::Deployment => "DeploymentId",
                Kind::Command => "CommandId",
                _ => "ServiceErrorId",
            };
            if let Some(did) = d.get(key).and_then(Value::as_str) {
                writes.push(Write::Delete {
                    kind,
                    id: did.to_string(),
                });
            }
        }
    }
    apply(app, writes).await?;
    Ok(json!({}))
}

/// CloneStack: a new stack with the source's settings (overridden by the request), its layers,
/// optionally some of its apps; never its instances.
pub async fn clone_stack(app: &App, _caller: &Caller, req: Req) -> OpResult {
    let source_id = required_str(&req, "SourceStackId")?.to_string();
    required_str(&req, "ServiceRoleArn")?;
    check_stack_members(&req)?;
    if let Some(region) = str_member(&req, "Region") {
        check_region(region)?;
    }
    let _guard = app.write_lock().await;
    let source = load_stack(app, &source_id).await?;
    let mut base: Req = source.as_object().cloned().unwrap_or_default();
    for (k, v) in &req {
        if !v.is_null() {
            base.insert(k.clone(), v.clone());
        }
    }
    if let (Some(a), Some(b)) = (
        chef_major(&source),
        chef_major(&Value::Object(base.clone())),
    ) && a != b
    {
        return Err(ApiError::Validation(format!(
            "A stack cannot be cloned from Chef {a} to Chef {b}"
        )));
    }
    let source_family = source
        .get("DefaultOs")
        .and_then(Value::as_str)
        .and_then(catalog::operating_system)
        .map(|o| o.family);
    let new_family = base
        .get("DefaultOs")
        .and_then(Value::as_str)
        .and_then(catalog::operating_system)
        .map(|o| o.family);
    if source_family != new_family {
        return Err(ApiError::Validation(
            "A stack cannot be cloned between Linux and Windows".into(),
        ));
    }
    let id = new_id();
    let mut stack = new_stack(app, &base, &id);
    check_os_and_chef(&stack)?;
    keep_filtered_secret(&mut stack, &source, &["CustomCookbooksSource", "Password"]);
    keep_filtered_secret(&mut stack, &source, &["CustomCookbooksSource", "SshKey"]);
    let mut writes = vec![put(Kind::Stack, &id, &id, None, stack)];

    let region = base
        .get("Region")
        .and_then(Value::as_str)
        .unwrap_or(app.region())
        .to_string();
    for layer in list(app, Kind::Layer, Filter::Stack(&source_id)).await? {
        let lid = new_id();
        let mut l = layer;
        l["LayerId"] = json!(lid);
        l["StackId"] = json!(id);
        l["Arn"] =
            json!(Arn::new(&region, app.account_id(), ResourceKind::Layer, &lid).to_string());
        l["CreatedAt"] = json!(now());
        writes.push(put(Kind::Layer, &lid, &id, None, l));
    }
    if let Some(app_ids) = str_list(&req, "CloneAppIds") {
        let apps = load_all(app, Kind::App, "app", &app_ids).await?;
        for a in apps {
            if a.get("StackId").and_then(Value::as_str) != Some(source_id.as_str()) {
                let aid = a.get("AppId").and_then(Value::as_str).unwrap_or_default();
                return Err(ApiError::Validation(format!(
                    "App {aid} does not belong to stack {source_id}"
                )));
            }
            let aid = new_id();
            let mut a = a;
            a["AppId"] = json!(aid);
            a["StackId"] = json!(id);
            a["CreatedAt"] = json!(now());
            // A data source names a database of the source stack; the clone starts without it.
            if let Some(m) = a.as_object_mut() {
                m.remove("DataSources");
            }
            writes.push(put(Kind::App, &aid, &id, None, a));
        }
    }
    // Permissions are not kept by this server yet, so ClonePermissions has nothing to copy.
    apply(app, writes).await?;
    Ok(json!({ "StackId": id }))
}

/// DescribeStackSummary: counts of layers and apps, and instances per status.
pub async fn describe_stack_summary(app: &App, req: Req) -> OpResult {
    let id = required_str(&req, "StackId")?;
    let stack = load_stack(app, id).await?;
    let instances = list(app, Kind::Instance, Filter::Stack(id)).await?;
    let mut counts = Map::new();
    for status in InstanceStatus::ALL {
        let n = instances
            .iter()
            .filter(|i| i.get("Status").and_then(Value::as_str) == Some(status.as_str()))
            .count();
        counts.insert(status.counter_name(), json!(n));
    }
    let store = app.store();
    let layers = store
        .count(Kind::Layer, Filter::Stack(id))
        .await
        .map_err(super::store_error)?;
    let apps = store
        .count(Kind::App, Filter::Stack(id))
        .await
        .map_err(super::store_error)?;
    Ok(json!({
        "StackSummary": {
            "StackId": id,
            "Name": stack.get("Name"),
            "Arn": stack.get("Arn"),
            "LayersCount": layers,
            "AppsCount": apps,
            "InstancesCount": counts,
        }
    }))
}

/// StartStack: starts every stopped 24/7 instance (time- and load-based ones follow their rules).
pub async fn start_stack(app: &App, req: Req) -> OpResult {
    let id = required_str(&req, "StackId")?;
    load_stack(app, id).await?;
    for inst in list(app, Kind::Instance, Filter::Stack(id)).await? {
        let stopped = inst.get("Status").and_then(Value::as_str) == Some("stopped");
        let scaled = inst.get("AutoScalingType").is_some_and(|v| !v.is_null());
        if stopped
            && !scaled
            && let Some(iid) = inst.get("InstanceId").and_then(Value::as_str)
        {
            // The path of StartInstance, so the machine is launched too.
            super::instances::start(app, iid).await?;
        }
    }
    Ok(json!({}))
}

/// StopStack: stops every instance that is not stopped.
pub async fn stop_stack(app: &App, req: Req) -> OpResult {
    let id = required_str(&req, "StackId")?;
    load_stack(app, id).await?;
    for inst in list(app, Kind::Instance, Filter::Stack(id)).await? {
        let status = inst
            .get("Status")
            .and_then(Value::as_str)
            .unwrap_or("stopped");
        if status != "stopped"
            && let Some(iid) = inst.get("InstanceId").and_then(Value::as_str)
        {
            // The path of StopInstance (Shutdown, then the machine halts); an instance already on
            // its way down simply carries on.
            match super::instances::stop(app, iid, false).await {
                Ok(()) | Err(ApiError::Validation(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(json!({}))
}

/// DescribeStackProvisioningParameters: what a machine needs to join the stack as a registered
/// instance. Registration (RegisterInstance) is not supported yet, so the installer the URL serves
/// says so and exits non-zero rather than pretending.
pub async fn describe_stack_provisioning_parameters(app: &App, req: Req) -> OpResult {
    let id = required_str(&req, "StackId")?;
    let stack = load_stack(app, id).await?;
    let region = stack
        .get("Region")
        .and_then(Value::as_str)
        .unwrap_or(app.region());
    let endpoint = app.endpoint().unwrap_or("http://127.0.0.1:9730");
    Ok(json!({
        "AgentInstallerUrl": format!("{endpoint}/agent/installer"),
        "Parameters": {
            "stack_id": id,
            "stack_region": region,
            "agent_version": stack.get("AgentVersion").and_then(Value::as_str).unwrap_or("LATEST"),
            "ops_works_endpoint": endpoint,
            "instance_service_endpoint": endpoint,
            "wait_between_runs": "0",
        }
    }))
}
