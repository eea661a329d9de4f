//! Stack operations: CreateStack, DescribeStacks, UpdateStack, DeleteStack, CloneStack,
//! DescribeStackSummary, StartStack, StopStack, DescribeStackProvisioningParameters.

use std::collections::BTreeMap;

use serde_json::json;

use opsworks_api::{ApiError, shapes};
use opsworks_model::instance::InstanceStatus;
use opsworks_model::resource::{
    App, ChefConfiguration, ConfigurationManager, Deployment, Instance, Layer, Source, Stack,
};
use opsworks_model::{Arn, Kind, ResourceKind, catalog, new_id, themes};
use opsworks_store::Filter;

use super::{
    Ctx, OpResult, Reply, authz, check_custom_json, check_len, keep_secret, required, wire,
};
use crate::core::{CoreError, instances, now};

/// The members CreateStack, UpdateStack and CloneStack share, as one request gives them.
#[derive(Default)]
struct Members {
    name: Option<String>,
    service_role_arn: Option<String>,
    default_instance_profile_arn: Option<String>,
    custom_json: Option<String>,
    default_os: Option<String>,
    hostname_theme: Option<String>,
    configuration_manager: Option<shapes::StackConfigurationManager>,
    chef_configuration: Option<shapes::ChefConfiguration>,
    vpc_id: Option<String>,
    default_subnet_id: Option<String>,
    default_availability_zone: Option<String>,
    default_ssh_key_name: Option<String>,
    default_root_device_type: Option<String>,
    custom_cookbooks_source: Option<shapes::Source>,
    use_custom_cookbooks: Option<bool>,
    use_opsworks_security_groups: Option<bool>,
    attributes: Option<BTreeMap<String, Option<String>>>,
    agent_version: Option<String>,
}

macro_rules! members {
    ($req:expr, $($field:ident),*) => {
        Members {
            $($field: $req.$field.clone().into(),)*
            ..Members::default()
        }
    };
}

fn check_arn(value: Option<&str>, name: &str) -> Result<(), ApiError> {
    match value {
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

/// A stack's `AgentVersion`: `LATEST` or a version DescribeAgentVersions lists.
async fn check_stack_agent_version(cx: &Ctx<'_>, m: &Members) -> Result<(), ApiError> {
    match m.agent_version.as_deref() {
        Some(v) => super::instances::check_agent_version(cx.core, v, false).await,
        None => Ok(()),
    }
}

/// Checks the shared members as given.
fn check_members(m: &Members) -> Result<(), ApiError> {
    check_len(m.name.as_deref(), "Name", 64)?;
    if m.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::Validation("Name must not be empty".into()));
    }
    check_arn(m.service_role_arn.as_deref(), "ServiceRoleArn")?;
    check_arn(
        m.default_instance_profile_arn.as_deref(),
        "DefaultInstanceProfileArn",
    )?;
    check_custom_json(m.custom_json.as_deref())?;
    if let Some(os) = m.default_os.as_deref()
        && catalog::operating_system(os).is_none()
    {
        return Err(ApiError::Validation(format!("Invalid DefaultOs: {os}")));
    }
    if let Some(theme) = m.hostname_theme.as_deref()
        && !themes::is_theme(theme)
    {
        return Err(ApiError::Validation(format!(
            "Invalid HostnameTheme: {theme}; valid themes are {}",
            themes::THEME_NAMES.join(", ")
        )));
    }
    if let Some(cm) = &m.configuration_manager {
        let name = cm.name.as_deref().unwrap_or("Chef");
        let version = cm.version.as_deref().unwrap_or("12");
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
    if m.vpc_id.as_deref().is_some_and(|v| !v.is_empty())
        && m.default_subnet_id.as_deref().is_none_or(str::is_empty)
    {
        return Err(ApiError::Validation(
            "DefaultSubnetId is required when you specify a VpcId: instances of a VPC stack launch into a subnet".into(),
        ));
    }
    if let Some(src) = &m.custom_cookbooks_source
        && src.url.as_deref().is_some_and(|u| u.trim().is_empty())
    {
        return Err(ApiError::Validation(
            "CustomCookbooksSource.Url must not be empty".into(),
        ));
    }
    if let Some(color) = m
        .attributes
        .as_ref()
        .and_then(|a| a.get("Color"))
        .and_then(|c| c.as_deref())
        && !color.is_empty()
        && !(color.starts_with("rgb(") && color.ends_with(')'))
    {
        return Err(ApiError::Validation(format!(
            "Invalid Color attribute: {color}; expected rgb(r, g, b)"
        )));
    }
    if let Some(r) = m.default_root_device_type.as_deref()
        && r.parse::<opsworks_model::resource::RootDeviceType>()
            .is_err()
    {
        return Err(ApiError::Validation(format!(
            "Invalid DefaultRootDeviceType: {r}"
        )));
    }
    Ok(())
}

/// The stack's OS must support its Chef version (12.2 is Windows's, the others Linux's).
fn check_os_and_chef(stack: &Stack) -> Result<(), ApiError> {
    let version = stack.chef_version();
    match catalog::operating_system(&stack.default_os) {
        Some(os) if !os.chef_versions.contains(&version) && version != "0.9" => {
            Err(ApiError::Validation(format!(
                "Chef {version} is not available on {}; it supports Chef {}",
                stack.default_os,
                os.chef_versions.join(", ")
            )))
        }
        _ => Ok(()),
    }
}

fn stored_source(s: shapes::Source) -> Source {
    Source {
        r#type: s.r#type,
        url: s.url,
        username: s.username,
        password: s.password,
        ssh_key: s.ssh_key,
        revision: s.revision,
    }
}

/// Applies the members given to `stack`: each given member replaces the stored one; a secret
/// echoed as FILTERED keeps the stored secret.
fn apply_members(stack: &mut Stack, m: Members) {
    macro_rules! set {
        ($($field:ident),*) => {$( if let Some(v) = m.$field { stack.$field = v; } )*};
    }
    macro_rules! set_opt {
        ($($field:ident),*) => {$( if m.$field.is_some() { stack.$field = m.$field; } )*};
    }
    set!(
        name,
        service_role_arn,
        default_instance_profile_arn,
        default_os,
        hostname_theme,
        agent_version
    );
    set_opt!(
        custom_json,
        vpc_id,
        default_subnet_id,
        default_availability_zone,
        default_ssh_key_name
    );
    if let Some(a) = m.attributes {
        stack.attributes = a;
    }
    if let Some(cm) = m.configuration_manager {
        stack.configuration_manager = ConfigurationManager {
            name: cm.name.unwrap_or_else(|| "Chef".into()),
            version: cm.version.unwrap_or_else(|| "12".into()),
        };
    }
    if let Some(c) = m.chef_configuration {
        stack.chef_configuration = ChefConfiguration {
            manage_berkshelf: c.manage_berkshelf,
            berkshelf_version: c.berkshelf_version,
        };
    }
    if let Some(r) = m.default_root_device_type.and_then(|r| r.parse().ok()) {
        stack.default_root_device_type = r;
    }
    if let Some(b) = m.use_custom_cookbooks {
        stack.use_custom_cookbooks = b;
    }
    if let Some(b) = m.use_opsworks_security_groups {
        stack.use_opsworks_security_groups = b;
    }
    if let Some(src) = m.custom_cookbooks_source {
        let old = stack.custom_cookbooks_source.take().unwrap_or_default();
        let mut new = stored_source(src);
        new.password = keep_secret(new.password, old.password.as_ref());
        new.ssh_key = keep_secret(new.ssh_key, old.ssh_key.as_ref());
        stack.custom_cookbooks_source = Some(new);
    }
}

/// A new stack with the original's defaults, then the members given.
fn new_stack(cx: &Ctx<'_>, id: &str, region: &str, m: Members) -> Stack {
    let mut stack = Stack {
        stack_id: id.to_string(),
        name: String::new(),
        arn: Arn::new(region, cx.core.account_id(), ResourceKind::Stack, id).to_string(),
        region: region.to_string(),
        vpc_id: None,
        attributes: [("Color".to_string(), None)].into(),
        service_role_arn: String::new(),
        default_instance_profile_arn: String::new(),
        default_os: catalog::DEFAULT_OS.into(),
        hostname_theme: "Layer_Dependent".into(),
        default_availability_zone: Some(format!("{region}a")),
        default_subnet_id: None,
        custom_json: None,
        configuration_manager: ConfigurationManager::default(),
        chef_configuration: ChefConfiguration::default(),
        use_custom_cookbooks: false,
        use_opsworks_security_groups: true,
        custom_cookbooks_source: None,
        default_ssh_key_name: None,
        created_at: now(),
        default_root_device_type: Default::default(),
        agent_version: "LATEST".into(),
    };
    apply_members(&mut stack, m);
    stack
}

/// CreateStack.
pub async fn create_stack(cx: Ctx<'_>, req: shapes::CreateStackRequest) -> OpResult {
    required(&Some(req.name.clone()), "Name")?;
    check_region(&req.region)?;
    required(&Some(req.service_role_arn.clone()), "ServiceRoleArn")?;
    required(
        &Some(req.default_instance_profile_arn.clone()),
        "DefaultInstanceProfileArn",
    )?;
    let m = members!(
        req,
        name,
        service_role_arn,
        default_instance_profile_arn,
        custom_json,
        default_os,
        hostname_theme,
        configuration_manager,
        chef_configuration,
        vpc_id,
        default_subnet_id,
        default_availability_zone,
        default_ssh_key_name,
        default_root_device_type,
        custom_cookbooks_source,
        use_custom_cookbooks,
        use_opsworks_security_groups,
        attributes,
        agent_version
    );
    check_members(&m)?;
    check_stack_agent_version(&cx, &m).await?;
    let id = new_id();
    let stack = new_stack(&cx, &id, &req.region, m);
    check_os_and_chef(&stack)?;
    let mut w = cx.core.write().await?;
    w.put(&stack).await?;
    w.commit().await?;
    Reply::json(&json!({ "StackId": id }))
}

/// DescribeStacks: all stacks, or those named (each must exist).
pub async fn describe_stacks(cx: Ctx<'_>, req: shapes::DescribeStacksRequest) -> OpResult {
    let stacks = match req.stack_ids {
        Some(ids) if ids.is_empty() => {
            return Err(ApiError::Validation(
                "Please provide no arguments or, one or more stack IDs".into(),
            ));
        }
        Some(ids) => cx.core.get_all::<Stack>(&ids).await?,
        None => {
            let mut all = cx.core.list::<Stack>(Filter::All).await?;
            if !cx.principal.is_root() {
                // Only the stacks the caller may see.
                all.retain(|s| authz::may(&cx, "DescribeStacks", s));
            }
            all
        }
    };
    Ok(Reply::list(
        "Stacks",
        stacks
            .iter()
            .map(|s| s.wire(|s| wire::bytes(&wire::stack(s)))),
    ))
}

/// UpdateStack: changes the members given; Region and VpcId cannot change.
pub async fn update_stack(cx: Ctx<'_>, req: shapes::UpdateStackRequest) -> OpResult {
    let m = members!(
        req,
        name,
        service_role_arn,
        default_instance_profile_arn,
        custom_json,
        default_os,
        hostname_theme,
        configuration_manager,
        chef_configuration,
        default_subnet_id,
        default_availability_zone,
        default_ssh_key_name,
        default_root_device_type,
        custom_cookbooks_source,
        use_custom_cookbooks,
        use_opsworks_security_groups,
        attributes,
        agent_version
    );
    check_members(&m)?;
    check_stack_agent_version(&cx, &m).await?;
    let mut w = cx.core.write().await?;
    let old: Stack = w.get(&req.stack_id).await?;
    let mut stack = old.clone();
    apply_members(&mut stack, m);
    if old.chef_major() != stack.chef_major() {
        return Err(ApiError::Validation(format!(
            "A stack cannot move between Chef {} and Chef {}; clone it into a new stack instead",
            old.chef_major(),
            stack.chef_major()
        )));
    }
    if old.chef_version() != stack.chef_version() {
        let apps: Vec<App> = w.list(Filter::Stack(&req.stack_id)).await?;
        if apps.iter().any(|a| !a.environment.is_empty()) {
            return Err(ApiError::Validation(
                "The configuration manager version of a stack whose apps have environment variables cannot change".into(),
            ));
        }
    }
    check_os_and_chef(&stack)?;
    if old.agent_version != stack.agent_version {
        // Installed agents learn of their new release at once (their polls answer).
        let instances: Vec<Instance> = w.list(Filter::Stack(&req.stack_id)).await?;
        for i in instances.iter().filter(|i| i.registered) {
            w.wake(&i.instance_id);
        }
    }
    w.put(&stack).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// DeleteStack: only an empty stack (no instances, layers or apps) can go; its deployments,
/// commands, service errors and tags go with it.
pub async fn delete_stack(cx: Ctx<'_>, req: shapes::DeleteStackRequest) -> OpResult {
    let id = req.stack_id;
    let mut w = cx.core.write().await?;
    let stack: Stack = w.get(&id).await?;
    let instances = w.count::<Instance>(Filter::Stack(&id)).await?;
    let layers = w.count::<Layer>(Filter::Stack(&id)).await?;
    let apps = w.count::<App>(Filter::Stack(&id)).await?;
    if instances + layers + apps > 0 {
        return Err(ApiError::Validation(format!(
            "Cannot delete stack {id}: it still has {instances} instance(s), {layers} layer(s) and {apps} app(s); delete them first"
        )));
    }
    w.delete(Kind::Stack, &id).await?;
    w.delete(Kind::Tags, &stack.arn).await?;
    // Its databases are deregistered; they keep running.
    super::rds_db_instances::forget_stack(&mut w, &id).await?;
    let deployments: Vec<Deployment> = w.list(Filter::Stack(&id)).await?;
    for d in deployments {
        w.delete(Kind::Deployment, &d.deployment_id).await?;
    }
    let commands: Vec<opsworks_model::resource::Command> = w.list(Filter::Stack(&id)).await?;
    for c in commands {
        w.delete(Kind::Command, &c.command_id).await?;
    }
    let errors: Vec<opsworks_model::resource::ServiceError> = w.list(Filter::Stack(&id)).await?;
    for e in errors {
        w.delete(Kind::ServiceError, &e.service_error_id).await?;
    }
    super::volumes::on_stack_deleted(&mut w, &id).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// CloneStack: a new stack with the source's settings (overridden by the request), its layers,
/// optionally some of its apps; never its instances.
pub async fn clone_stack(cx: Ctx<'_>, req: shapes::CloneStackRequest) -> OpResult {
    required(&Some(req.service_role_arn.clone()), "ServiceRoleArn")?;
    if let Some(region) = req.region.as_deref() {
        check_region(region)?;
    }
    let m = members!(
        req,
        name,
        service_role_arn,
        default_instance_profile_arn,
        custom_json,
        default_os,
        hostname_theme,
        configuration_manager,
        chef_configuration,
        vpc_id,
        default_subnet_id,
        default_availability_zone,
        default_ssh_key_name,
        default_root_device_type,
        custom_cookbooks_source,
        use_custom_cookbooks,
        use_opsworks_security_groups,
        attributes,
        agent_version
    );
    check_members(&m)?;
    check_stack_agent_version(&cx, &m).await?;
    let mut w = cx.core.write().await?;
    let source: Stack = w.get(&req.source_stack_id).await?;
    let id = new_id();
    let region = req.region.clone().unwrap_or_else(|| source.region.clone());
    // The clone starts as the source (its secrets included), then takes the request's members.
    let mut stack = source.clone();
    stack.stack_id = id.clone();
    stack.region = region.clone();
    stack.arn = Arn::new(&region, cx.core.account_id(), ResourceKind::Stack, &id).to_string();
    stack.created_at = now();
    if let Some(v) = req.vpc_id.clone() {
        stack.vpc_id = Some(v);
    }
    apply_members(&mut stack, m);
    if source.chef_major() != stack.chef_major() {
        return Err(ApiError::Validation(format!(
            "A stack cannot be cloned from Chef {} to Chef {}",
            source.chef_major(),
            stack.chef_major()
        )));
    }
    let family = |s: &Stack| catalog::operating_system(&s.default_os).map(|o| o.family);
    if family(&source) != family(&stack) {
        return Err(ApiError::Validation(
            "A stack cannot be cloned between Linux and Windows".into(),
        ));
    }
    check_os_and_chef(&stack)?;
    w.put(&stack).await?;
    let layers: Vec<Layer> = w.list(Filter::Stack(&req.source_stack_id)).await?;
    for mut layer in layers {
        let lid = new_id();
        layer.arn = Arn::new(&region, cx.core.account_id(), ResourceKind::Layer, &lid).to_string();
        layer.layer_id = lid;
        layer.stack_id = id.clone();
        layer.created_at = now();
        layer.last_scaling = None;
        w.put(&layer).await?;
    }
    if let Some(app_ids) = &req.clone_app_ids {
        for mut app in w.get_all::<App>(app_ids).await? {
            if app.stack_id != req.source_stack_id {
                return Err(ApiError::Validation(format!(
                    "App {} does not belong to stack {}",
                    app.app_id, req.source_stack_id
                )));
            }
            app.app_id = new_id();
            app.stack_id = id.clone();
            app.created_at = now();
            // A data source names a database of the source stack; the clone starts without it.
            app.data_sources.clear();
            w.put(&app).await?;
        }
    }
    if req.clone_permissions == Some(true) {
        let perms: Vec<opsworks_model::resource::Permission> =
            w.list(Filter::Stack(&req.source_stack_id)).await?;
        for mut p in perms {
            p.permission_id = opsworks_model::resource::Permission::id_of(&id, &p.iam_user_arn);
            p.stack_id = id.clone();
            w.put(&p).await?;
        }
    }
    w.commit().await?;
    Reply::json(&json!({ "StackId": id }))
}

/// DescribeStackSummary: counts of layers and apps, and instances per status.
pub async fn describe_stack_summary(
    cx: Ctx<'_>,
    req: shapes::DescribeStackSummaryRequest,
) -> OpResult {
    let id = req.stack_id.as_str();
    let stack = cx.core.get::<Stack>(id).await?;
    let instances = cx.core.list::<Instance>(Filter::Stack(id)).await?;
    let mut counts = serde_json::Map::new();
    for status in InstanceStatus::ALL {
        let n = instances.iter().filter(|i| i.status == status).count();
        counts.insert(status.counter_name(), json!(n));
    }
    let layers = cx
        .core
        .store()
        .count::<Layer>(Filter::Stack(id))
        .await
        .map_err(CoreError::from)?;
    let apps = cx
        .core
        .store()
        .count::<App>(Filter::Stack(id))
        .await
        .map_err(CoreError::from)?;
    Reply::json(&json!({
        "StackSummary": {
            "StackId": id,
            "Name": stack.name,
            "Arn": stack.arn,
            "LayersCount": layers,
            "AppsCount": apps,
            "InstancesCount": counts,
        }
    }))
}

/// StartStack: starts every stopped 24/7 instance (time- and load-based ones follow their rules).
pub async fn start_stack(cx: Ctx<'_>, req: shapes::StartStackRequest) -> OpResult {
    cx.core.get::<Stack>(&req.stack_id).await?;
    for inst in cx
        .core
        .list::<Instance>(Filter::Stack(&req.stack_id))
        .await?
    {
        if inst.status == InstanceStatus::Stopped
            && inst.auto_scaling_type.is_none()
            && !inst.registered
        {
            // The path of StartInstance, so the machine is launched too.
            instances::start(cx.core, &inst.instance_id).await?;
        }
    }
    Ok(Reply::empty())
}

/// StopStack: stops every instance that is not stopped.
pub async fn stop_stack(cx: Ctx<'_>, req: shapes::StopStackRequest) -> OpResult {
    cx.core.get::<Stack>(&req.stack_id).await?;
    for inst in cx
        .core
        .list::<Instance>(Filter::Stack(&req.stack_id))
        .await?
    {
        // Registered machines are not the server's to stop.
        if inst.status != InstanceStatus::Stopped && !inst.registered {
            // The path of StopInstance (Shutdown, then the machine halts); an instance already on
            // its way down simply carries on.
            match instances::stop(cx.core, &inst.instance_id, false).await {
                Ok(()) | Err(CoreError::Invalid(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Reply::empty())
}

/// DescribeStackProvisioningParameters: what a machine needs to join the stack as a registered
/// instance: the installer tarball `aws opsworks register` runs (`boot-registration`), and the
/// parameters it writes into the machine's preconfig.
pub async fn describe_stack_provisioning_parameters(
    cx: Ctx<'_>,
    req: shapes::DescribeStackProvisioningParametersRequest,
) -> OpResult {
    let stack = cx.core.get::<Stack>(&req.stack_id).await?;
    // What machines are told to reach: the server's endpoint (once servers advertise a URL of
    // their own, that URL).
    let endpoint = cx.core.endpoint().unwrap_or("http://127.0.0.1:9730");
    let installer = format!("{endpoint}{}", opsworks_protocol::INSTALLER_PATH);
    // `aws opsworks register` writes every parameter into the machine's preconfig beside its own
    // `stack_id` (so no parameter may be named so: the CLI fails with "got multiple values for
    // keyword argument 'stack_id'"), and puts `assets_download_bucket` on a shell command line:
    // plain words only.
    Reply::json(&json!({
        "AgentInstallerUrl": installer,
        "Parameters": {
            "stack_region": stack.region,
            "agent_version": stack.agent_version,
            "agent_installer_base_url": endpoint,
            "agent_installer_tgz": "opsworks-agent-installer.tgz",
            "assets_download_bucket": "none",
            "ops_works_endpoint": endpoint,
            "ops_works_region": cx.core.region(),
            "instance_service_endpoint": endpoint,
            "verbose": "false",
            "wait_between_runs": "0",
        }
    }))
}
