//! Deployment operations: CreateDeployment, DescribeDeployments, DescribeCommands.
//!
//! A deployment is one command (`deploy`, `configure`, `execute_recipes`, ...) sent to a set of
//! instances; each target instance gets one command document (parent: the deployment), created
//! `pending`. Pending commands are the queue the instances' agents take; the deployment's status
//! follows from its commands' through [`opsworks_model::deployment::deployment_status`].

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use opsworks_api::ApiError;
use opsworks_model::deployment::{self as rules, CommandStatus, DeploymentStatus};
use opsworks_model::{InstanceStatus, new_id};
use opsworks_store::{Filter, Kind};

use super::apps::load_app;
use super::doc_str as id_of;
use super::stacks::load_stack;
use super::{
    Caller, OpResult, Req, apply, at_most_one, check_custom_json, list, load, load_all, now,
    public_view, put, required_str, str_list, str_member,
};
use crate::App;

/// The deployment or command as the API shows it.
pub fn view(doc: Value) -> Value {
    public_view(doc)
}

/// Loads a deployment or answers `Unable to find deployment with ID <id>`.
pub async fn load_deployment(app: &App, id: &str) -> Result<Value, ApiError> {
    load(app, Kind::Deployment, "deployment", id).await
}

fn capitalize_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The ARN the deployment records as `IamUserArn`: the account's root for the root key, the
/// principal itself when it is an ARN, none otherwise (instance keys are not IAM users).
fn iam_user_arn(app: &App, caller: &Caller) -> Option<String> {
    if caller.principal == "root" {
        Some(format!("arn:aws:iam::{}:root", app.account_id()))
    } else if caller.principal.starts_with("arn:") {
        Some(caller.principal.clone())
    } else {
        None
    }
}

fn status_of(instance: &Value) -> Option<InstanceStatus> {
    instance
        .get("Status")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

/// The instances a deployment goes to, in a stable order without repeats:
/// - the named instances (each must exist, belong to the stack, and be able to take commands);
/// - the instances of the named layers that can take commands
///   ([`rules::receives_commands`]);
/// - with neither, every `online` instance of the stack, as the original did.
async fn target_instances(app: &App, stack_id: &str, req: &Req) -> Result<Vec<String>, ApiError> {
    let instance_ids = str_list(req, "InstanceIds").filter(|l| !l.is_empty());
    let layer_ids = str_list(req, "LayerIds").filter(|l| !l.is_empty());
    let mut targets: Vec<String> = Vec::new();
    if let Some(ids) = &instance_ids {
        for inst in load_all(app, Kind::Instance, "instance", ids).await? {
            let iid = id_of(&inst, "InstanceId");
            if id_of(&inst, "StackId") != stack_id {
                return Err(ApiError::Validation(format!(
                    "Instance {iid} does not belong to stack {stack_id}"
                )));
            }
            if !status_of(&inst).is_some_and(rules::receives_commands) {
                let status = id_of(&inst, "Status");
                return Err(ApiError::Validation(format!(
                    "Instance {iid} is {status}; commands go to instances that are online or starting"
                )));
            }
        }
        // Keep the caller's order.
        targets.extend(ids.iter().cloned());
    }
    if let Some(ids) = &layer_ids {
        for layer in load_all(app, Kind::Layer, "layer", ids).await? {
            if id_of(&layer, "StackId") != stack_id {
                let lid = id_of(&layer, "LayerId");
                return Err(ApiError::Validation(format!(
                    "Layer {lid} does not belong to stack {stack_id}"
                )));
            }
        }
        for inst in list(app, Kind::Instance, Filter::Stack(stack_id)).await? {
            let in_layer = inst
                .get("LayerIds")
                .and_then(Value::as_array)
                .is_some_and(|ls| {
                    ls.iter()
                        .any(|l| l.as_str().is_some_and(|l| ids.iter().any(|i| i == l)))
                });
            if in_layer && status_of(&inst).is_some_and(rules::receives_commands) {
                targets.push(id_of(&inst, "InstanceId").to_string());
            }
        }
    }
    if instance_ids.is_none() && layer_ids.is_none() {
        for inst in list(app, Kind::Instance, Filter::Stack(stack_id)).await? {
            if status_of(&inst) == Some(InstanceStatus::Online) {
                targets.push(id_of(&inst, "InstanceId").to_string());
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    targets.retain(|t| seen.insert(t.clone()));
    Ok(targets)
}

/// CreateDeployment: records the deployment and one pending command per target instance.
///
/// A deployment without a target instance (no instance named, none in the named layers able to
/// take commands, or no online instance in the stack) completes at once: `successful`, `Duration`
/// 0, `CompletedAt` = `CreatedAt` — the original's outcome of a deployment with nothing to run on.
pub async fn create_deployment(app: &App, caller: &Caller, req: Req) -> OpResult {
    let stack_id = required_str(&req, "StackId")?.to_string();
    let command = req.get("Command").cloned().unwrap_or(Value::Null);
    let name = command
        .get("Name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let args: BTreeMap<String, Vec<String>> = command
        .get("Args")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let vals = v.as_array().map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(String::from))
                            .collect()
                    });
                    (k.clone(), vals.unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    check_custom_json(&req)?;

    let _guard = app.write_lock().await;
    let stack = load_stack(app, &stack_id).await?;
    let chef = stack
        .pointer("/ConfigurationManager/Version")
        .and_then(Value::as_str)
        .unwrap_or("12");
    rules::check_command(&name, &args, chef)
        .map_err(|e| ApiError::Validation(capitalize_first(&e.to_string())))?;
    let app_id = str_member(&req, "AppId").filter(|s| !s.is_empty());
    match app_id {
        None if rules::needs_app(&name) => {
            return Err(ApiError::Validation(format!(
                "The {name} command needs an AppId"
            )));
        }
        // A stack command may name an app too (the API only requires it for app commands); it is
        // recorded, so DescribeDeployments by AppId finds the deployment.
        Some(aid) => {
            let a = load_app(app, aid).await?;
            if id_of(&a, "StackId") != stack_id {
                return Err(ApiError::Validation(format!(
                    "App {aid} does not belong to stack {stack_id}"
                )));
            }
        }
        None => {}
    }
    let targets = target_instances(app, &stack_id, &req).await?;

    let id = new_id();
    let created = now();
    let mut doc = Map::new();
    doc.insert("DeploymentId".into(), json!(id));
    doc.insert("StackId".into(), json!(stack_id));
    if let Some(aid) = app_id {
        doc.insert("AppId".into(), json!(aid));
    }
    doc.insert("CreatedAt".into(), json!(created));
    if let Some(arn) = iam_user_arn(app, caller) {
        doc.insert("IamUserArn".into(), json!(arn));
    }
    if let Some(comment) = str_member(&req, "Comment") {
        doc.insert("Comment".into(), json!(comment));
    }
    doc.insert("Command".into(), json!({ "Name": name, "Args": args }));
    if let Some(cj) = str_member(&req, "CustomJson") {
        doc.insert("CustomJson".into(), json!(cj));
    }
    doc.insert("InstanceIds".into(), json!(targets));
    let status = rules::deployment_status(targets.iter().map(|_| CommandStatus::Pending));
    doc.insert("Status".into(), json!(status.as_str()));
    if status != DeploymentStatus::Running {
        doc.insert("CompletedAt".into(), json!(created));
        doc.insert("Duration".into(), json!(0));
    }

    let mut writes = vec![put(
        Kind::Deployment,
        &id,
        &stack_id,
        app_id,
        Value::Object(doc),
    )];
    for iid in &targets {
        let cid = new_id();
        let cmd = json!({
            "CommandId": cid,
            "InstanceId": iid,
            "DeploymentId": id,
            "CreatedAt": created,
            "Status": CommandStatus::Pending.as_str(),
            "Type": name,
        });
        writes.push(put(Kind::Command, &cid, &stack_id, Some(&id), cmd));
    }
    apply(app, writes).await?;
    for iid in &targets {
        app.notify_agent(iid);
    }
    tracing::info!(deployment_id = %id, stack_id = %stack_id, command = %name, targets = targets.len(), "deployment created");
    Ok(json!({ "DeploymentId": id }))
}

/// DescribeDeployments: those of a stack, of an app, or those named; with none of the three,
/// every deployment (the API's documented behaviour). At most one may be given.
pub async fn describe_deployments(app: &App, req: Req) -> OpResult {
    let deployments = match at_most_one(&req, &["StackId", "AppId", "DeploymentIds"])? {
        Some("StackId") => {
            let id = required_str(&req, "StackId")?;
            load_stack(app, id).await?;
            list(app, Kind::Deployment, Filter::Stack(id)).await?
        }
        Some("AppId") => {
            let id = required_str(&req, "AppId")?;
            load_app(app, id).await?;
            list(app, Kind::Deployment, Filter::Parent(id)).await?
        }
        Some(_) => {
            load_all(
                app,
                Kind::Deployment,
                "deployment",
                &str_list(&req, "DeploymentIds").unwrap_or_default(),
            )
            .await?
        }
        None => list(app, Kind::Deployment, Filter::All).await?,
    };
    Ok(json!({ "Deployments": deployments.into_iter().map(view).collect::<Vec<_>>() }))
}

/// DescribeCommands: those of a deployment, of an instance, or those named; with none of the
/// three, every command (the API's documented behaviour). At most one may be given.
pub async fn describe_commands(app: &App, req: Req) -> OpResult {
    let commands = match at_most_one(&req, &["DeploymentId", "InstanceId", "CommandIds"])? {
        Some("DeploymentId") => {
            let id = required_str(&req, "DeploymentId")?;
            load_deployment(app, id).await?;
            list(app, Kind::Command, Filter::Parent(id)).await?
        }
        Some("InstanceId") => {
            let id = required_str(&req, "InstanceId")?;
            let inst = load(app, Kind::Instance, "instance", id).await?;
            let mut cmds = list(app, Kind::Command, Filter::Stack(id_of(&inst, "StackId"))).await?;
            cmds.retain(|c| id_of(c, "InstanceId") == id);
            cmds
        }
        Some(_) => {
            load_all(
                app,
                Kind::Command,
                "command",
                &str_list(&req, "CommandIds").unwrap_or_default(),
            )
            .await?
        }
        None => list(app, Kind::Command, Filter::All).await?,
    };
    let commands: Vec<Value> = commands
        .into_iter()
        .map(|c| {
            let url = c
                .get("CommandId")
                .and_then(Value::as_str)
                .and_then(|id| crate::logs::log_url(app, id));
            let mut c = view(c);
            if let Some(url) = url {
                c["LogUrl"] = json!(url);
            }
            c
        })
        .collect();
    Ok(json!({ "Commands": commands }))
}

/// Whole seconds from a `CreatedAt` (AWS's format) to `now`; 0 when unreadable or in the future.
fn duration_seconds(created_at: &str, now: jiff::Timestamp) -> i64 {
    created_at
        .parse::<jiff::Timestamp>()
        .map(|t| (now.as_second() - t.as_second()).max(0))
        .unwrap_or(0)
}

/// Records how a pending command ended (`Successful`, `Failed`, `Skipped`, `Superseded`) and
/// settles its deployment: the deployment's status is derived from all its commands'
/// ([`rules::deployment_status`]); once it leaves `running` it gets `CompletedAt` and `Duration`
/// (whole seconds since `CreatedAt`). For the agent's reports; the caller holds the write lock.
pub async fn finish_command_locked(
    app: &App,
    command_id: &str,
    status: CommandStatus,
    exit_code: Option<i64>,
) -> Result<DeploymentStatus, ApiError> {
    let mut cmd = load(app, Kind::Command, "command", command_id).await?;
    let current = id_of(&cmd, "Status");
    if current != CommandStatus::Pending.as_str() {
        return Err(ApiError::Validation(format!(
            "Command {command_id} is already {current}"
        )));
    }
    if status == CommandStatus::Pending {
        return Err(ApiError::Validation(format!(
            "Command {command_id} cannot finish as pending"
        )));
    }
    let finished = now();
    cmd["Status"] = json!(status.as_str());
    cmd["CompletedAt"] = json!(finished);
    if cmd.get("AcknowledgedAt").is_none() {
        cmd["AcknowledgedAt"] = json!(finished);
    }
    if let Some(code) = exit_code {
        cmd["ExitCode"] = json!(code);
    }
    let deployment_id = id_of(&cmd, "DeploymentId").to_string();
    let mut deployment = load_deployment(app, &deployment_id).await?;
    let stack_id = id_of(&deployment, "StackId").to_string();
    let siblings = list(app, Kind::Command, Filter::Parent(&deployment_id)).await?;
    let statuses = siblings.iter().map(|c| {
        if id_of(c, "CommandId") == command_id {
            status
        } else {
            id_of(c, "Status").parse().unwrap_or(CommandStatus::Pending)
        }
    });
    let derived = rules::deployment_status(statuses);
    let was = id_of(&deployment, "Status").to_string();
    deployment["Status"] = json!(derived.as_str());
    if derived != DeploymentStatus::Running {
        deployment["CompletedAt"] = json!(finished);
        deployment["Duration"] = json!(duration_seconds(
            id_of(&deployment, "CreatedAt"),
            jiff::Timestamp::now()
        ));
    }
    let app_id = deployment
        .get("AppId")
        .and_then(Value::as_str)
        .map(String::from);
    let cmd_instance = cmd
        .get("InstanceId")
        .and_then(Value::as_str)
        .map(String::from);
    let cmd_type = id_of(&cmd, "Type").to_string();
    let command_name = deployment
        .pointer("/Command/Name")
        .cloned()
        .unwrap_or(Value::Null);
    apply(
        app,
        vec![
            put(
                Kind::Command,
                command_id,
                &stack_id,
                Some(&deployment_id),
                cmd,
            ),
            put(
                Kind::Deployment,
                &deployment_id,
                &stack_id,
                app_id.as_deref(),
                deployment,
            ),
        ],
    )
    .await?;
    let mut event = crate::events::new_event(&stack_id, crate::events::COMMAND_STATUS);
    event.instance_id = cmd_instance;
    event.deployment_id = Some(deployment_id.clone());
    event.command_id = Some(command_id.to_string());
    event.detail = json!({"Type": cmd_type, "Status": status.as_str(), "ExitCode": exit_code});
    crate::events::record(app, event).await;
    if was != derived.as_str() {
        let mut event = crate::events::new_event(&stack_id, crate::events::DEPLOYMENT_STATUS);
        event.deployment_id = Some(deployment_id.clone());
        event.detail = json!({"Command": command_name, "From": was, "Status": derived.as_str()});
        crate::events::record(app, event).await;
    }
    Ok(derived)
}

/// Marks every pending command of an instance `skipped` and settles their deployments, for an
/// instance that stops or is deleted before its agent took them (else its deployments would stay
/// `running` for ever). Returns how many were skipped; the caller holds the write lock.
pub async fn skip_pending_commands_locked(
    app: &App,
    stack_id: &str,
    instance_id: &str,
) -> Result<usize, ApiError> {
    let pending: Vec<String> = list(
        app,
        Kind::Command,
        Filter::Member("InstanceId", instance_id),
    )
    .await?
    .into_iter()
    .filter(|c| {
        id_of(c, "Status") == CommandStatus::Pending.as_str()
            && (stack_id.is_empty() || c.get("DeploymentId").is_some())
    })
    .map(|c| id_of(&c, "CommandId").to_string())
    .collect();
    for cid in &pending {
        finish_command_locked(app, cid, CommandStatus::Skipped, None).await?;
    }
    Ok(pending.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::catalog::tests::{call, open, stack_with_instance};

    #[test]
    fn durations_are_whole_seconds_since_creation() {
        let now: jiff::Timestamp = "2026-11-25T18:37:52Z".parse().expect("time");
        assert_eq!(duration_seconds("2026-11-25T18:36:40+00:00", now), 72);
        assert_eq!(duration_seconds("2026-11-25T18:40:00+00:00", now), 0);
        assert_eq!(duration_seconds("yesterday", now), 0);
    }

    #[tokio::test]
    async fn a_deployment_without_targets_completes_at_once() {
        let (_dir, app) = open().await;
        // The stack's only instance is stopped, so "every online instance" is nobody.
        let (sid, _) = stack_with_instance(&app).await;
        let did = call(
            &app,
            "CreateDeployment",
            json!({"StackId": sid, "Command": {"Name": "configure"}}),
        )
        .await
        .expect("create")["DeploymentId"]
            .clone();
        let d = call(&app, "DescribeDeployments", json!({"DeploymentIds": [did]}))
            .await
            .expect("describe");
        let d = &d["Deployments"][0];
        assert_eq!(d["Status"], json!("successful"));
        assert_eq!(d["Duration"], json!(0));
        assert_eq!(d["CompletedAt"], d["CreatedAt"]);
        assert_eq!(d["InstanceIds"], json!([]));
        assert!(
            d["IamUserArn"]
                .as_str()
                .is_some_and(|a| a.starts_with("arn:aws:iam::") && a.ends_with(":root"))
        );
        let cmds = call(&app, "DescribeCommands", json!({"DeploymentId": did}))
            .await
            .expect("commands");
        assert_eq!(cmds["Commands"], json!([]));
    }

    #[tokio::test]
    async fn each_target_gets_one_pending_command() {
        let (_dir, app) = open().await;
        let (sid, iid) = stack_with_instance(&app).await;
        call(&app, "StartInstance", json!({"InstanceId": iid}))
            .await
            .expect("start");
        let did = call(
            &app,
            "CreateDeployment",
            json!({"StackId": sid, "InstanceIds": [iid, iid], "Command": {"Name": "execute_recipes", "Args": {"recipes": ["app::fix"]}}}),
        )
        .await
        .expect("create")["DeploymentId"]
            .clone();
        let d = call(&app, "DescribeDeployments", json!({"StackId": sid}))
            .await
            .expect("describe");
        assert_eq!(d["Deployments"][0]["Status"], json!("running"));
        assert!(d["Deployments"][0].get("CompletedAt").is_none());
        let cmds = call(&app, "DescribeCommands", json!({"InstanceId": iid}))
            .await
            .expect("commands");
        let cmds = cmds["Commands"].as_array().expect("list");
        assert_eq!(cmds.len(), 1, "a repeated target gets one command");
        assert_eq!(cmds[0]["DeploymentId"], did);
        assert_eq!(cmds[0]["Status"], json!("pending"));
        assert_eq!(cmds[0]["Type"], json!("execute_recipes"));
    }

    #[tokio::test]
    async fn finished_commands_settle_their_deployment() {
        let (_dir, app) = open().await;
        let (sid, first) = stack_with_instance(&app).await;
        let layer = call(&app, "DescribeInstances", json!({"InstanceIds": [first]}))
            .await
            .expect("describe")["Instances"][0]["LayerIds"]
            .clone();
        let second = call(
            &app,
            "CreateInstance",
            json!({"StackId": sid, "LayerIds": layer, "InstanceType": "t2.micro"}),
        )
        .await
        .expect("instance")["InstanceId"]
            .clone();
        for iid in [json!(first), second.clone()] {
            call(&app, "StartInstance", json!({"InstanceId": iid}))
                .await
                .expect("start");
        }
        let did = call(
            &app,
            "CreateDeployment",
            json!({"StackId": sid, "LayerIds": layer, "Command": {"Name": "setup"}}),
        )
        .await
        .expect("create")["DeploymentId"]
            .clone();
        let cmds = call(&app, "DescribeCommands", json!({"DeploymentId": did}))
            .await
            .expect("commands")["Commands"]
            .clone();
        let ids: Vec<String> = cmds
            .as_array()
            .expect("list")
            .iter()
            .map(|c| id_of(c, "CommandId").to_string())
            .collect();
        assert_eq!(ids.len(), 2);

        let _guard = app.write_lock().await;
        let after_one = finish_command_locked(&app, &ids[0], CommandStatus::Failed, Some(1))
            .await
            .expect("finish");
        assert_eq!(after_one, DeploymentStatus::Running);
        let again = finish_command_locked(&app, &ids[0], CommandStatus::Successful, Some(0)).await;
        assert!(matches!(again, Err(ApiError::Validation(_))), "{again:?}");
        let skipped = skip_pending_commands_locked(&app, &sid, second.as_str().expect("id"))
            .await
            .expect("skip");
        assert_eq!(skipped, 1);
        drop(_guard);

        let d = call(&app, "DescribeDeployments", json!({"DeploymentIds": [did]}))
            .await
            .expect("describe");
        let d = &d["Deployments"][0];
        assert_eq!(d["Status"], json!("failed"));
        assert!(d["Duration"].as_i64().is_some_and(|s| s >= 0));
        assert!(d["CompletedAt"].as_str().is_some());
        let cmds = call(&app, "DescribeCommands", json!({"CommandIds": ids}))
            .await
            .expect("commands")["Commands"]
            .clone();
        let by_id = |id: &str| {
            cmds.as_array()
                .and_then(|a| a.iter().find(|c| id_of(c, "CommandId") == id))
                .cloned()
        };
        let failed = by_id(&ids[0]).expect("first");
        assert_eq!(
            (failed["Status"].clone(), failed["ExitCode"].clone()),
            (json!("failed"), json!(1))
        );
        assert_eq!(by_id(&ids[1]).expect("second")["Status"], json!("skipped"));
    }

    #[tokio::test]
    async fn app_commands_need_an_app_of_the_stack() {
        let (_dir, app) = open().await;
        let (sid, _) = stack_with_instance(&app).await;
        let (other, _) = stack_with_instance(&app).await;
        let foreign = call(
            &app,
            "CreateApp",
            json!({"StackId": other, "Name": "x", "Type": "other"}),
        )
        .await
        .expect("app");
        let no_app = call(
            &app,
            "CreateDeployment",
            json!({"StackId": sid, "Command": {"Name": "deploy"}}),
        )
        .await;
        assert_eq!(
            no_app,
            Err(ApiError::Validation(
                "The deploy command needs an AppId".into()
            ))
        );
        let wrong = call(
            &app,
            "CreateDeployment",
            json!({"StackId": sid, "AppId": foreign["AppId"], "Command": {"Name": "deploy"}}),
        )
        .await;
        assert!(matches!(wrong, Err(ApiError::Validation(m)) if m.contains("does not belong")));
    }
}
