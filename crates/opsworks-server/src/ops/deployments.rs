//! Deployment operations: CreateDeployment, DescribeDeployments, DescribeCommands.
//!
//! A deployment is one command (`deploy`, `configure`, `execute_recipes`, ...) sent to a set of
//! instances; each target instance gets one pending command, the queue its agent takes
//! (`core::commands`).

use serde_json::json;

use opsworks_api::{ApiError, shapes};
use opsworks_model::deployment::{self as rules};
use opsworks_model::resource::{App, Command, Deployment, Instance, Layer, Stack};
use opsworks_model::{CommandName, InstanceStatus};
use opsworks_store::Filter;

use super::{Ctx, OpResult, Reply, at_most_one, capitalized, check_custom_json, wire};
use crate::core::commands::{self, NewDeployment};
use crate::core::{Write, logs};

/// The instances a deployment goes to, in a stable order without repeats:
/// - the named instances (each must exist, belong to the stack, and be able to take commands);
/// - the instances of the named layers that can take commands ([`rules::receives_commands`]);
/// - with neither, every `online` instance of the stack, as the original did.
async fn target_instances(
    w: &mut Write<'_>,
    stack_id: &str,
    instance_ids: Option<&[String]>,
    layer_ids: Option<&[String]>,
) -> Result<Vec<String>, ApiError> {
    let mut targets: Vec<String> = Vec::new();
    if let Some(ids) = instance_ids {
        for inst in w.get_all::<Instance>(ids).await? {
            if inst.stack_id != stack_id {
                return Err(ApiError::Validation(format!(
                    "Instance {} does not belong to stack {stack_id}",
                    inst.instance_id
                )));
            }
            if !rules::receives_commands(inst.status) {
                return Err(ApiError::Validation(format!(
                    "Instance {} is {}; commands go to instances that are online or starting",
                    inst.instance_id, inst.status
                )));
            }
        }
        // Keep the caller's order.
        targets.extend(ids.iter().cloned());
    }
    if let Some(ids) = layer_ids {
        for layer in w.get_all::<Layer>(ids).await? {
            if layer.stack_id != stack_id {
                return Err(ApiError::Validation(format!(
                    "Layer {} does not belong to stack {stack_id}",
                    layer.layer_id
                )));
            }
        }
        for inst in w.list::<Instance>(Filter::Stack(stack_id)).await? {
            if inst.in_any_layer(ids) && rules::receives_commands(inst.status) {
                targets.push(inst.instance_id);
            }
        }
    }
    if instance_ids.is_none() && layer_ids.is_none() {
        for inst in w.list::<Instance>(Filter::Stack(stack_id)).await? {
            if inst.status == InstanceStatus::Online {
                targets.push(inst.instance_id);
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
pub async fn create_deployment(cx: Ctx<'_>, req: shapes::CreateDeploymentRequest) -> OpResult {
    let name = req.command.name.clone().unwrap_or_default();
    let command: CommandName = name
        .parse()
        .ok()
        .filter(|c: &CommandName| c.user_command())
        .ok_or_else(|| ApiError::Validation(format!("Invalid command {name}")))?;
    let args = req.command.args.clone().unwrap_or_default();
    check_custom_json(req.custom_json.as_deref())?;
    let non_empty = |l: &Option<Vec<String>>| l.clone().filter(|l| !l.is_empty());
    let (instance_ids, layer_ids) = (non_empty(&req.instance_ids), non_empty(&req.layer_ids));

    let mut w = cx.core.write().await?;
    let stack: Stack = w.get(&req.stack_id).await?;
    rules::check_command(command.as_str(), &args, stack.chef_version())
        .map_err(|e| ApiError::Validation(capitalized(e)))?;
    let app_id = req.app_id.clone().filter(|s| !s.is_empty());
    match &app_id {
        None if command.needs_app() => {
            return Err(ApiError::Validation(format!(
                "The {command} command needs an AppId"
            )));
        }
        // A stack command may name an app too (the API only requires it for app commands); it is
        // recorded, so DescribeDeployments by AppId finds the deployment.
        Some(aid) => {
            let app: App = w.get(aid).await?;
            if app.stack_id != req.stack_id {
                return Err(ApiError::Validation(format!(
                    "App {aid} does not belong to stack {}",
                    req.stack_id
                )));
            }
        }
        None => {}
    }
    let targets = target_instances(
        &mut w,
        &req.stack_id,
        instance_ids.as_deref(),
        layer_ids.as_deref(),
    )
    .await?;
    let new = NewDeployment {
        stack_id: req.stack_id.clone(),
        command,
        args,
        app_id,
        iam_user_arn: cx.principal.arn(cx.core.account_id()),
        comment: req.comment.clone(),
        custom_json: req.custom_json.clone(),
        lifecycle: None,
        carried_app: None,
    };
    let id = commands::create(&mut w, new, &targets).await?;
    w.commit().await?;
    tracing::info!(deployment_id = %id, stack_id = %req.stack_id, %command, targets = targets.len(), "deployment created");
    Reply::json(&json!({ "DeploymentId": id }))
}

/// DescribeDeployments: those of a stack, of an app, or those named; with none of the three,
/// every deployment (the API's documented behaviour). At most one may be given.
pub async fn describe_deployments(
    cx: Ctx<'_>,
    req: shapes::DescribeDeploymentsRequest,
) -> OpResult {
    let core = cx.core;
    let given = at_most_one(&[
        ("StackId", req.stack_id.is_some()),
        ("AppId", req.app_id.is_some()),
        ("DeploymentIds", req.deployment_ids.is_some()),
    ])?;
    let deployments = match (given, &req.stack_id, &req.app_id, &req.deployment_ids) {
        (Some("StackId"), Some(id), _, _) => {
            core.get::<Stack>(id).await?;
            core.list::<Deployment>(Filter::Stack(id)).await?
        }
        (Some("AppId"), _, Some(id), _) => {
            core.get::<App>(id).await?;
            core.list::<Deployment>(Filter::Parent(id)).await?
        }
        (Some(_), _, _, Some(ids)) => core.get_all::<Deployment>(ids).await?,
        _ => core.list::<Deployment>(Filter::All).await?,
    };
    Ok(Reply::list(
        "Deployments",
        deployments
            .iter()
            .map(|d| d.wire(|d| wire::bytes(&wire::deployment(d)))),
    ))
}

/// DescribeCommands: those of a deployment, of an instance, or those named; with none of the
/// three, every command (the API's documented behaviour). At most one may be given. Each command
/// with a log carries a fresh signed `LogUrl`.
pub async fn describe_commands(cx: Ctx<'_>, req: shapes::DescribeCommandsRequest) -> OpResult {
    let core = cx.core;
    let given = at_most_one(&[
        ("DeploymentId", req.deployment_id.is_some()),
        ("InstanceId", req.instance_id.is_some()),
        ("CommandIds", req.command_ids.is_some()),
    ])?;
    let commands = match (
        given,
        &req.deployment_id,
        &req.instance_id,
        &req.command_ids,
    ) {
        (Some("DeploymentId"), Some(id), _, _) => {
            core.get::<Deployment>(id).await?;
            core.list::<Command>(Filter::Parent(id)).await?
        }
        (Some("InstanceId"), _, Some(id), _) => {
            core.get::<Instance>(id).await?;
            core.list::<Command>(Filter::Instance(id)).await?
        }
        (Some(_), _, _, Some(ids)) => core.get_all::<Command>(ids).await?,
        _ => {
            let mut all = core.list::<Command>(Filter::All).await?;
            if !cx.principal.is_root() {
                // Only the commands of the stacks the caller may see.
                let mut seen = std::collections::HashMap::new();
                let mut kept = Vec::with_capacity(all.len());
                for c in all.drain(..) {
                    let ok = match seen.get(&c.stack_id) {
                        Some(ok) => *ok,
                        None => {
                            let ok = match core
                                .find::<opsworks_model::resource::Stack>(&c.stack_id)
                                .await?
                            {
                                Some(s) => super::authz::may(&cx, "DescribeCommands", &s),
                                None => false,
                            };
                            seen.insert(c.stack_id.clone(), ok);
                            ok
                        }
                    };
                    if ok {
                        kept.push(c);
                    }
                }
                all = kept;
            }
            all
        }
    };
    let ids: Vec<String> = commands.iter().map(|c| c.command_id.clone()).collect();
    let user = cx.principal.user.as_ref().map(|u| u.user_id.as_str());
    let urls = logs::urls(core, &ids, user).await?;
    let shown: Vec<shapes::Command> = commands
        .iter()
        .zip(urls)
        .map(|(c, url)| wire::command(c, url))
        .collect();
    Reply::json(&json!({ "Commands": shown }))
}
