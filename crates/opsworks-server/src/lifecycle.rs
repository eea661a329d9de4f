//! Lifecycle orchestration: which commands an instance's agent runs and what follows when they end.
//!
//! The chain of the original: an instance that booted runs Setup, then Deploy of the stack's apps,
//! then goes online; whenever an instance enters or leaves online, every online instance of the
//! stack runs Configure. A burst of Configures collapses: an instance runs only the newest, the
//! older ones end as skipped. Commands are created as documents (the agents' queue); what they
//! carry to the agent (run list, attributes, data bags, apps) is built when they are delivered.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use opsworks_api::ApiError;
use opsworks_lifecycle::config::RunContext;
use opsworks_lifecycle::{Event, StackSnapshot};
use opsworks_model::deployment::CommandStatus;
use opsworks_model::{InstanceEvent, InstanceStatus, new_id};
use opsworks_protocol::{AgentCommand, AppSpec, CommandOutcome, Completion, SourceSpec};
use opsworks_store::{Filter, Kind};

use crate::App;
use crate::ops::catalog::record_service_error;
use crate::ops::deployments::finish_command_locked;
use crate::ops::doc_str as s;
use crate::ops::instances::change_status;
use crate::ops::{apply, list, load, now, put};

/// Marks a deployment the control plane created itself, and which step of the chain it is.
const LIFECYCLE: &str = "_Lifecycle";

/// The commands an instance's agent should run now, oldest first, with everything they carry.
/// Of several pending Configures only the newest is delivered; the older ones end as skipped.
pub async fn deliverable_commands(
    app: &App,
    instance_id: &str,
) -> Result<Vec<AgentCommand>, ApiError> {
    let pending: Vec<Value> = list(
        app,
        Kind::Command,
        Filter::Member("InstanceId", instance_id),
    )
    .await?
    .into_iter()
    .filter(|c| s(c, "Status") == "pending")
    .collect();
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let newest_configure = pending
        .iter()
        .rev()
        .find(|c| s(c, "Type") == "configure")
        .map(|c| s(c, "CommandId").to_string());
    let mut out = Vec::new();
    let mut snapshot: Option<StackSnapshot> = None;
    for cmd in &pending {
        if s(cmd, "Type") == "configure" && newest_configure.as_deref() != Some(s(cmd, "CommandId"))
        {
            let done = Completion {
                instance_id: instance_id.to_string(),
                command_id: s(cmd, "CommandId").to_string(),
                outcome: CommandOutcome::Skipped,
                exit_code: 0,
                report: None,
                app_revisions: None,
            };
            complete(app, &done).await?;
            continue;
        }
        let snap = match &snapshot {
            Some(s) => s,
            None => {
                let inst = load(app, Kind::Instance, "instance", instance_id).await?;
                snapshot.insert(stack_snapshot(app, s(&inst, "StackId")).await?)
            }
        };
        out.push(build_command(app, snap, cmd).await?);
    }
    Ok(out)
}

async fn stack_snapshot(app: &App, stack_id: &str) -> Result<StackSnapshot, ApiError> {
    Ok(StackSnapshot {
        stack: load(app, Kind::Stack, "stack", stack_id).await?,
        layers: list(app, Kind::Layer, Filter::Stack(stack_id)).await?,
        instances: list(app, Kind::Instance, Filter::Stack(stack_id)).await?,
        apps: list(app, Kind::App, Filter::Stack(stack_id)).await?,
    })
}

fn source_spec(src: Option<&Value>) -> Option<SourceSpec> {
    let src = src?;
    let url = src.get("Url").and_then(Value::as_str)?;
    let opt = |k: &str| {
        src.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(String::from)
    };
    Some(SourceSpec {
        kind: src
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or("git")
            .to_string(),
        url: url.to_string(),
        revision: opt("Revision"),
        username: opt("Username"),
        password: opt("Password"),
        ssh_key: opt("SshKey"),
    })
}

fn app_spec(a: &Value) -> AppSpec {
    let environment: BTreeMap<String, String> = a
        .get("Environment")
        .and_then(Value::as_array)
        .map(|vars| {
            vars.iter()
                .filter_map(|v| {
                    Some((
                        v.get("Key")?.as_str()?.to_string(),
                        v.get("Value")?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    AppSpec {
        app_id: s(a, "AppId").into(),
        shortname: s(a, "Shortname").into(),
        name: s(a, "Name").into(),
        kind: s(a, "Type").into(),
        source: source_spec(a.get("AppSource")),
        environment,
    }
}

/// Builds what an agent receives for one command document.
async fn build_command(
    app: &App,
    snap: &StackSnapshot,
    cmd: &Value,
) -> Result<AgentCommand, ApiError> {
    let instance_id = s(cmd, "InstanceId");
    let kind = s(cmd, "Type").to_string();
    let deployment = match cmd.get("DeploymentId").and_then(Value::as_str) {
        Some(d) => app
            .store()
            .get(Kind::Deployment, d)
            .await
            .map_err(crate::ops::store_error)?,
        None => None,
    };
    let args = deployment
        .as_ref()
        .and_then(|d| d.pointer("/Command/Args"))
        .cloned();
    let me = snap
        .instances
        .iter()
        .find(|i| s(i, "InstanceId") == instance_id);
    let my_layer_ids: Vec<&str> = me
        .and_then(|i| i.get("LayerIds"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let my_layers: Vec<&Value> = snap
        .layers
        .iter()
        .filter(|l| my_layer_ids.contains(&s(l, "LayerId")))
        .collect();

    let run_list = match kind.as_str() {
        "execute_recipes" => args
            .as_ref()
            .and_then(|a| a.get("recipes"))
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
        "rollback" => opsworks_lifecycle::run_list(&my_layers, Event::Deploy),
        other => match Event::of_command(other) {
            Some(event) => opsworks_lifecycle::run_list(&my_layers, event),
            None => Vec::new(),
        },
    };

    let app_id = deployment
        .as_ref()
        .and_then(|d| d.get("AppId"))
        .and_then(Value::as_str);
    let is_setup_deploy = deployment
        .as_ref()
        .is_some_and(|d| s(d, LIFECYCLE) == "setup-deploy");
    // An app deleted since carries itself on the deployment (DeleteApp's Undeploy).
    let carried = deployment.as_ref().and_then(|d| d.get("_App"));
    let apps: Vec<&Value> = match (kind.as_str(), app_id) {
        (_, Some(_)) if carried.is_some() => carried.into_iter().collect(),
        (_, Some(id)) => snap.apps.iter().filter(|a| s(a, "AppId") == id).collect(),
        ("deploy", None) if is_setup_deploy => snap.apps.iter().collect(),
        _ => Vec::new(),
    };
    let deploy_ids: Vec<String> = if kind == "deploy" || kind == "setup" {
        apps.iter().map(|a| s(a, "AppId").to_string()).collect()
    } else {
        Vec::new()
    };
    let deployment_json = deployment
        .as_ref()
        .and_then(|d| d.get("CustomJson"))
        .and_then(Value::as_str)
        .and_then(|j| serde_json::from_str::<Value>(j).ok());
    let sent_at = now();
    let ctx = RunContext {
        instance_id,
        command_id: s(cmd, "CommandId"),
        command: &kind,
        args: args.as_ref(),
        deployment_id: cmd.get("DeploymentId").and_then(Value::as_str),
        deployment_json: deployment_json.as_ref(),
        deploy_app_ids: &deploy_ids,
        sent_at: &sent_at,
        iam_user_arn: deployment
            .as_ref()
            .and_then(|d| d.get("IamUserArn"))
            .and_then(Value::as_str),
    };
    let uses_custom = snap
        .stack
        .get("UseCustomCookbooks")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let timeout_seconds = (kind == "shutdown").then(|| {
        my_layers
            .iter()
            .filter_map(|l| {
                l.pointer("/LifecycleEventConfiguration/Shutdown/ExecutionTimeout")
                    .and_then(Value::as_u64)
            })
            .max()
            .unwrap_or(120)
    });
    Ok(AgentCommand {
        command_id: s(cmd, "CommandId").into(),
        deployment_id: cmd
            .get("DeploymentId")
            .and_then(Value::as_str)
            .map(String::from),
        kind: kind.clone(),
        run_list,
        attributes: opsworks_lifecycle::attributes(snap, &ctx),
        data_bags: opsworks_lifecycle::data_bags(snap, &ctx),
        custom_cookbooks: if uses_custom {
            source_spec(snap.stack.get("CustomCookbooksSource"))
        } else {
            None
        },
        apps: apps.into_iter().map(app_spec).collect(),
        timeout_seconds,
        created_at: s(cmd, "CreatedAt").into(),
    })
}

/// The command `command_id`, which must be the instance's.
pub async fn command_of(app: &App, instance_id: &str, command_id: &str) -> Result<Value, ApiError> {
    let cmd = load(app, Kind::Command, "command", command_id).await?;
    if s(&cmd, "InstanceId") != instance_id {
        return Err(ApiError::AccessDenied(format!(
            "command {command_id} is not for instance {instance_id}"
        )));
    }
    Ok(cmd)
}

/// The agent took a command: record when, and a Setup moves the instance to running_setup.
pub async fn acknowledge(app: &App, instance_id: &str, command_id: &str) -> Result<(), ApiError> {
    let kind = {
        let _guard = app.write_lock().await;
        let mut cmd = command_of(app, instance_id, command_id).await?;
        if cmd.get("AcknowledgedAt").is_some_and(|v| !v.is_null()) {
            return Ok(());
        }
        cmd["AcknowledgedAt"] = json!(now());
        let inst = load(app, Kind::Instance, "instance", instance_id).await?;
        let deployment = cmd
            .get("DeploymentId")
            .and_then(Value::as_str)
            .map(String::from);
        apply(
            app,
            vec![put(
                Kind::Command,
                command_id,
                s(&inst, "StackId"),
                deployment.as_deref(),
                cmd.clone(),
            )],
        )
        .await?;
        s(&cmd, "Type").to_string()
    };
    if kind == "setup" {
        let inst = load(app, Kind::Instance, "instance", instance_id).await?;
        if s(&inst, "Status") == InstanceStatus::Booting.as_str() {
            change_status(app, instance_id, InstanceEvent::SetupStarted).await?;
        }
    }
    Ok(())
}

/// A command ended. Idempotent: a repeated completion changes nothing. Updates the deployment
/// and moves the lifecycle chain on.
pub async fn complete(app: &App, done: &Completion) -> Result<(), ApiError> {
    let (cmd, deployment) = {
        let _guard = app.write_lock().await;
        let cmd = command_of(app, &done.instance_id, &done.command_id).await?;
        if s(&cmd, "Status") != CommandStatus::Pending.as_str() {
            return Ok(());
        }
        let status = match done.outcome {
            CommandOutcome::Successful => CommandStatus::Successful,
            CommandOutcome::Failed => CommandStatus::Failed,
            CommandOutcome::Skipped => CommandStatus::Skipped,
        };
        finish_command_locked(
            app,
            &done.command_id,
            status,
            Some(i64::from(done.exit_code)),
        )
        .await?;
        let deployment = load(app, Kind::Deployment, "deployment", s(&cmd, "DeploymentId")).await?;
        (cmd, deployment)
    };
    tracing::info!(command_id = done.command_id, instance_id = done.instance_id, outcome = ?done.outcome, kind = s(&cmd, "Type"), "command completed");
    let ok = done.outcome == CommandOutcome::Successful;
    let instance_id = done.instance_id.as_str();
    let stack_id = s(&deployment, "StackId");
    match (s(&deployment, LIFECYCLE), s(&cmd, "Type")) {
        ("setup", "setup") if ok => {
            create_deployment(
                app,
                stack_id,
                "deploy",
                &[instance_id.to_string()],
                "setup-deploy",
            )
            .await?;
        }
        ("setup", "setup") | ("setup-deploy", "deploy") if !ok => {
            change_status(app, instance_id, InstanceEvent::SetupFailed).await?;
            let message = format!(
                "{} failed on the instance (exit code {}); see the command's log",
                s(&cmd, "Type"),
                done.exit_code
            );
            record_service_error(app, stack_id, Some(instance_id), "setup_failed", &message)
                .await?;
        }
        ("setup-deploy", "deploy") => {
            change_status(app, instance_id, InstanceEvent::SetupSucceeded).await?;
            configure_stack(app, stack_id).await?;
        }
        _ => {}
    }
    Ok(())
}

/// Creates a deployment the control plane itself starts (`step` says which link of the chain) with
/// one pending command per instance, and wakes their agents. Returns the deployment's ID.
pub async fn create_deployment(
    app: &App,
    stack_id: &str,
    command: &str,
    instance_ids: &[String],
    step: &str,
) -> Result<String, ApiError> {
    create_deployment_carrying(app, stack_id, command, instance_ids, step, Map::new()).await
}

/// [`create_deployment`] with more members on the deployment document (an `AppId`, or a private
/// `_App` for an app that no longer exists).
pub async fn create_deployment_carrying(
    app: &App,
    stack_id: &str,
    command: &str,
    instance_ids: &[String],
    step: &str,
    extra: Map<String, Value>,
) -> Result<String, ApiError> {
    let id = new_id();
    let at = now();
    let status = if instance_ids.is_empty() {
        "successful"
    } else {
        "running"
    };
    let mut deployment = json!({
        "DeploymentId": id,
        "StackId": stack_id,
        "CreatedAt": at,
        "Command": {"Name": command, "Args": {}},
        "Status": status,
        "InstanceIds": instance_ids,
        LIFECYCLE: step,
    });
    if instance_ids.is_empty() {
        deployment["CompletedAt"] = json!(at);
        deployment["Duration"] = json!(0);
    }
    if let Some(d) = deployment.as_object_mut() {
        d.extend(extra);
    }
    let mut writes = vec![put(Kind::Deployment, &id, stack_id, None, deployment)];
    for iid in instance_ids {
        let cid = new_id();
        writes.push(put(
            Kind::Command,
            &cid,
            stack_id,
            Some(&id),
            json!({
                "CommandId": cid,
                "InstanceId": iid,
                "DeploymentId": id,
                "CreatedAt": at,
                "Status": "pending",
                "Type": command,
            }),
        ));
    }
    apply(app, writes).await?;
    for iid in instance_ids {
        app.notify_agent(iid);
    }
    Ok(id)
}

/// Configure on every online instance of the stack.
pub async fn configure_stack(app: &App, stack_id: &str) -> Result<(), ApiError> {
    let online: Vec<String> = list(app, Kind::Instance, Filter::Stack(stack_id))
        .await?
        .iter()
        .filter(|i| s(i, "Status") == "online")
        .map(|i| s(i, "InstanceId").to_string())
        .collect();
    if !online.is_empty() {
        create_deployment(app, stack_id, "configure", &online, "configure").await?;
    }
    Ok(())
}

/// The instance booted and its agent runs: Setup follows.
pub async fn booted(app: &App, instance_id: &str) -> Result<(), ApiError> {
    let inst = load(app, Kind::Instance, "instance", instance_id).await?;
    create_deployment(
        app,
        s(&inst, "StackId"),
        "setup",
        &[instance_id.to_string()],
        "setup",
    )
    .await?;
    Ok(())
}

/// An agent said hello: after a reboot, the instance is back online.
pub async fn agent_restarted(app: &App, instance_id: &str) -> Result<(), ApiError> {
    let inst = load(app, Kind::Instance, "instance", instance_id).await?;
    if s(&inst, "Status") == InstanceStatus::Rebooting.as_str() {
        change_status(app, instance_id, InstanceEvent::Rebooted).await?;
    }
    Ok(())
}

/// A heartbeat: an instance whose agent had gone silent is back.
pub async fn agent_alive(app: &App, instance_id: &str) -> Result<(), ApiError> {
    let inst = load(app, Kind::Instance, "instance", instance_id).await?;
    if s(&inst, "Status") == InstanceStatus::ConnectionLost.as_str() {
        change_status(app, instance_id, InstanceEvent::AgentBack).await?;
    }
    Ok(())
}
