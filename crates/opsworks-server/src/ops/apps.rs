//! App operations: CreateApp, DescribeApps, UpdateApp, DeleteApp.
//!
//! An app keeps its secrets in the clear (the instances need them); the wire view filters them
//! (`AppSource.Password`, `AppSource.SshKey`, `SslConfiguration.PrivateKey`, secure environment
//! values), and an update that echoes the FILTERED marker back keeps the stored secret.

use serde_json::json;

use opsworks_api::{ApiError, FILTERED, shapes};
use opsworks_model::app::{self as rules, EnvVar};
use opsworks_model::resource::{
    App, DataSource, EnvironmentVariable, Instance, LifecycleStep, Source, SslConfiguration, Stack,
};
use opsworks_model::{CommandName, InstanceStatus, Kind, new_id};
use opsworks_store::Filter;

use super::{Ctx, OpResult, Reply, check_len, keep_secret, wire};
use crate::core::commands::{self, NewDeployment};
use crate::core::{Write, now};

fn invalid(e: rules::AppError) -> ApiError {
    ApiError::Validation(e.to_string())
}

fn non_empty(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| !s.trim().is_empty())
}

/// The members CreateApp and UpdateApp share, as one request gives them.
struct Members {
    name: Option<String>,
    description: Option<String>,
    r#type: Option<String>,
    app_source: Option<shapes::Source>,
    data_sources: Option<Vec<shapes::DataSource>>,
    domains: Option<Vec<String>>,
    enable_ssl: Option<bool>,
    ssl_configuration: Option<shapes::SslConfiguration>,
    attributes: Option<std::collections::BTreeMap<String, Option<String>>>,
    environment: Option<Vec<shapes::EnvironmentVariable>>,
}

macro_rules! members {
    ($req:expr) => {
        Members {
            name: $req.name.clone().into(),
            description: $req.description.clone(),
            r#type: $req.r#type.clone().into(),
            app_source: $req.app_source.clone(),
            data_sources: $req.data_sources.clone(),
            domains: $req.domains.clone(),
            enable_ssl: $req.enable_ssl,
            ssl_configuration: $req.ssl_configuration.clone(),
            attributes: $req.attributes.clone(),
            environment: $req.environment.clone(),
        }
    };
}

/// Checks the members as given.
fn check_members(m: &Members) -> Result<(), ApiError> {
    if m.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::Validation("Name must not be empty".into()));
    }
    // AWS documents no limit for app names; this bound is ours, to keep names displayable.
    check_len(m.name.as_deref(), "Name", 255)?;
    if let Some(src) = &m.app_source
        && *src != shapes::Source::default()
    {
        if !non_empty(&src.r#type) {
            return Err(ApiError::Validation(
                "AppSource.Type is required when an app source is given (git, svn, archive or s3)"
                    .into(),
            ));
        }
        if !non_empty(&src.url) {
            return Err(ApiError::Validation(
                "AppSource.Url is required when an app source is given".into(),
            ));
        }
    }
    if let Some(sources) = &m.data_sources {
        let pairs: Vec<(Option<&str>, Option<&str>)> = sources
            .iter()
            .map(|s| (s.r#type.as_deref(), s.arn.as_deref()))
            .collect();
        rules::check_data_sources(&pairs).map_err(invalid)?;
    }
    for domain in m.domains.iter().flatten() {
        if domain.trim().is_empty() || domain.chars().any(char::is_whitespace) || domain.len() > 253
        {
            return Err(ApiError::Validation(format!(
                "Domains: invalid domain '{domain}'"
            )));
        }
    }
    if let Some(ssl) = &m.ssl_configuration {
        for (member, value) in [
            ("Certificate", &ssl.certificate),
            ("PrivateKey", &ssl.private_key),
        ] {
            if !non_empty(value) {
                return Err(ApiError::Validation(format!(
                    "SslConfiguration.{member} must not be empty"
                )));
            }
        }
    }
    Ok(())
}

/// Checks what only the whole app can tell: SSL needs its configuration; the environment's rules.
fn check_app(app: &App) -> Result<(), ApiError> {
    let configured = app
        .ssl_configuration
        .as_ref()
        .is_some_and(|c| !c.certificate.trim().is_empty() && !c.private_key.trim().is_empty());
    if app.enable_ssl && !configured {
        return Err(ApiError::Validation(
            "EnableSsl requires an SslConfiguration with a Certificate and a PrivateKey".into(),
        ));
    }
    let vars: Vec<EnvVar<'_>> = app
        .environment
        .iter()
        .map(|v| EnvVar {
            key: &v.key,
            value: &v.value,
            secure: v.secure,
        })
        .collect();
    rules::check_environment(&vars).map_err(invalid)
}

/// Applies the members given to `app` (each replaces the stored one whole), keeping stored
/// secrets the request echoes as FILTERED.
fn apply_members(app: &mut App, m: Members) -> Result<(), ApiError> {
    if let Some(v) = m.name {
        app.name = v;
    }
    if m.description.is_some() {
        app.description = m.description;
    }
    if let Some(v) = m.r#type {
        app.r#type = v;
    }
    if let Some(src) = m.app_source {
        let old = app.app_source.take().unwrap_or_default();
        app.app_source = Some(Source {
            r#type: src.r#type,
            url: src.url,
            username: src.username,
            password: keep_secret(src.password, old.password.as_ref()),
            ssh_key: keep_secret(src.ssh_key, old.ssh_key.as_ref()),
            revision: src.revision,
        });
    }
    if let Some(ds) = m.data_sources {
        app.data_sources = ds
            .into_iter()
            .map(|d| DataSource {
                r#type: d.r#type,
                arn: d.arn,
                database_name: d.database_name,
            })
            .collect();
    }
    if let Some(v) = m.domains {
        app.domains = v;
    }
    if let Some(v) = m.enable_ssl {
        app.enable_ssl = v;
    }
    if let Some(ssl) = m.ssl_configuration {
        let old_key = app
            .ssl_configuration
            .as_ref()
            .map(|s| s.private_key.clone());
        app.ssl_configuration = Some(SslConfiguration {
            certificate: ssl.certificate.unwrap_or_default(),
            private_key: keep_secret(ssl.private_key, old_key.as_ref()).unwrap_or_default(),
            chain: ssl.chain,
        });
    }
    if let Some(given) = m.attributes {
        app.attributes = given;
    }
    if let Some(env) = m.environment {
        let mut vars = Vec::with_capacity(env.len());
        for v in env {
            let key = v.key.unwrap_or_default();
            let mut value = v.value.unwrap_or_default();
            if value == FILTERED {
                // The marker stands for the stored value of the same variable.
                value = app
                    .environment
                    .iter()
                    .find(|o| o.key == key)
                    .map(|o| o.value.clone())
                    .ok_or_else(|| {
                        ApiError::Validation(format!(
                            "Environment: {key} has the value {FILTERED}, which only stands for the stored value of an existing variable; give its real value"
                        ))
                    })?;
            }
            vars.push(EnvironmentVariable {
                key,
                value,
                secure: v.secure.unwrap_or(false),
            });
        }
        app.environment = vars;
    }
    Ok(())
}

/// CreateApp: an app in a stack; its short name is derived from the name unless given, unique
/// in the stack, and never changes.
pub async fn create_app(cx: Ctx<'_>, req: shapes::CreateAppRequest) -> OpResult {
    let mut m = members!(req);
    check_members(&m)?;
    if let Some(short) = req.shortname.as_deref() {
        rules::check_shortname(short).map_err(invalid)?;
    }
    let mut w = cx.core.write().await?;
    w.get::<Stack>(&req.stack_id).await?;
    let others: Vec<App> = w.list(Filter::Stack(&req.stack_id)).await?;
    let taken: Vec<&str> = others.iter().map(|a| a.shortname.as_str()).collect();
    let shortname = match req.shortname.as_deref() {
        Some(given) if taken.contains(&given) => {
            return Err(ApiError::Validation(format!(
                "There is already an app with the short name {given} in this stack"
            )));
        }
        Some(given) => given.to_string(),
        None => rules::unique_shortname(&rules::shortname_from_name(&req.name), &taken),
    };
    let id = new_id();
    let mut app = App {
        app_id: id.clone(),
        stack_id: req.stack_id.clone(),
        name: String::new(),
        shortname,
        r#type: String::new(),
        description: None,
        app_source: None,
        data_sources: Vec::new(),
        domains: Vec::new(),
        enable_ssl: false,
        ssl_configuration: None,
        attributes: Default::default(),
        environment: Vec::new(),
        created_at: now(),
    };
    // The original's defaults for the attributes the request leaves out.
    let mut attributes: std::collections::BTreeMap<String, Option<String>> = [
        ("DocumentRoot".to_string(), None),
        ("RailsEnv".to_string(), None),
        ("AutoBundleOnDeploy".to_string(), Some("true".to_string())),
        ("AwsFlowRubySettings".to_string(), None),
    ]
    .into();
    attributes.extend(m.attributes.take().unwrap_or_default());
    m.attributes = Some(attributes);
    apply_members(&mut app, m)?;
    check_app(&app)?;
    super::rds_db_instances::check_data_sources(&mut w, &app.stack_id, &app.data_sources).await?;
    w.put(&app).await?;
    w.commit().await?;
    tracing::info!(app_id = %id, stack_id = %req.stack_id, "app created");
    Reply::json(&json!({ "AppId": id }))
}

/// DescribeApps: the apps of a stack, or those named (each must exist). Exactly one of the two
/// is given, as the original required.
pub async fn describe_apps(cx: Ctx<'_>, req: shapes::DescribeAppsRequest) -> OpResult {
    let apps = match (req.stack_id.as_deref(), req.app_ids.as_deref()) {
        (Some(stack_id), None) => {
            cx.core.get::<Stack>(stack_id).await?;
            cx.core.list::<App>(Filter::Stack(stack_id)).await?
        }
        (None, Some(ids)) => cx.core.get_all::<App>(ids).await?,
        _ => {
            return Err(ApiError::Validation(
                "Please provide one or more app IDs or a stack ID".into(),
            ));
        }
    };
    Ok(Reply::list(
        "Apps",
        apps.iter().map(|a| a.wire(|a| wire::bytes(&wire::app(a)))),
    ))
}

/// UpdateApp: changes the members given (each replaces the stored one whole); the short name and
/// the stack never change. Secrets echoed back as FILTERED keep their stored values.
pub async fn update_app(cx: Ctx<'_>, req: shapes::UpdateAppRequest) -> OpResult {
    let m = members!(req);
    check_members(&m)?;
    let mut w = cx.core.write().await?;
    let mut app: App = w.get(&req.app_id).await?;
    let sources_given = m.data_sources.is_some();
    apply_members(&mut app, m)?;
    check_app(&app)?;
    if sources_given {
        super::rds_db_instances::check_data_sources(&mut w, &app.stack_id, &app.data_sources)
            .await?;
    }
    w.put(&app).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// DeleteApp: removes the app (its deployments stay, as history) and, as in the original, sends
/// Undeploy to the stack's online instances, in the same transaction.
pub async fn delete_app(cx: Ctx<'_>, req: shapes::DeleteAppRequest) -> OpResult {
    let mut w = cx.core.write().await?;
    let app: App = w.get(&req.app_id).await?;
    w.delete(Kind::App, &req.app_id).await?;
    undeploy_deleted_app(&mut w, app).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// Undeploy of a deleted app on the stack's online instances. The deployment carries the deleted
/// app (privately), so their agents still know what to remove.
async fn undeploy_deleted_app(w: &mut Write<'_>, deleted: App) -> Result<(), ApiError> {
    let online: Vec<String> = w
        .list::<Instance>(Filter::Stack(&deleted.stack_id))
        .await?
        .into_iter()
        .filter(|i| i.status == InstanceStatus::Online)
        .map(|i| i.instance_id)
        .collect();
    if online.is_empty() {
        return Ok(());
    }
    let (app_id, stack_id) = (deleted.app_id.clone(), deleted.stack_id.clone());
    let mut new =
        NewDeployment::lifecycle(&stack_id, CommandName::Undeploy, LifecycleStep::AppDeleted);
    new.app_id = Some(app_id.clone());
    new.carried_app = Some(deleted);
    commands::create(w, new, &online).await?;
    tracing::info!(
        app_id,
        stack_id,
        instances = online.len(),
        "app deleted; undeploy sent to the online instances"
    );
    Ok(())
}
