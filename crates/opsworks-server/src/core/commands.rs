//! Deployments and their commands: creating them (one pending command per target instance, the
//! agents' queue), and settling them as commands end.
//!
//! A deployment's status follows from its commands' through
//! [`opsworks_model::deployment::deployment_status`]; once it leaves `running` it gets
//! `CompletedAt` and `Duration`.

use std::collections::BTreeMap;

use serde_json::json;

use opsworks_model::deployment::{self as rules, CommandStatus, DeploymentStatus};
use opsworks_model::resource::{App, Command, Deployment, DeploymentCommand, LifecycleStep};
use opsworks_model::{CommandName, EventKind, new_id};
use opsworks_store::Filter;

use crate::core::events::new_event;
use crate::core::{CoreError, CoreResult, Write, now};

/// What a new deployment is, before it gets its ID and commands.
#[derive(Debug, Clone)]
pub struct NewDeployment {
    /// The stack.
    pub stack_id: String,
    /// The command.
    pub command: CommandName,
    /// Its arguments.
    pub args: BTreeMap<String, Vec<String>>,
    /// The app it acts on.
    pub app_id: Option<String>,
    /// Who asked.
    pub iam_user_arn: Option<String>,
    /// The user's comment.
    pub comment: Option<String>,
    /// Custom JSON for the runs.
    pub custom_json: Option<String>,
    /// The chain link, when the control plane makes it itself.
    pub lifecycle: Option<LifecycleStep>,
    /// The app as it was, when it is being deleted.
    pub carried_app: Option<App>,
}

impl NewDeployment {
    /// A deployment the control plane makes itself as link `step` of the lifecycle chain.
    pub fn lifecycle(stack_id: &str, command: CommandName, step: LifecycleStep) -> Self {
        Self {
            stack_id: stack_id.to_string(),
            command,
            args: BTreeMap::new(),
            app_id: None,
            iam_user_arn: None,
            comment: None,
            custom_json: None,
            lifecycle: Some(step),
            carried_app: None,
        }
    }
}

/// Creates the deployment with one pending command per target (in order) and wakes their agents
/// once `w` commits. A deployment without targets completes at once: `successful`, `Duration` 0,
/// `CompletedAt` = `CreatedAt`, the original's outcome. Returns its ID.
pub async fn create(
    w: &mut Write<'_>,
    new: NewDeployment,
    targets: &[String],
) -> CoreResult<String> {
    let id = new_id();
    let created = now();
    let status = rules::deployment_status(targets.iter().map(|_| CommandStatus::Pending));
    let done = status != DeploymentStatus::Running;
    let deployment = Deployment {
        deployment_id: id.clone(),
        stack_id: new.stack_id.clone(),
        app_id: new.app_id,
        created_at: created.clone(),
        completed_at: done.then(|| created.clone()),
        duration: done.then_some(0),
        iam_user_arn: new.iam_user_arn,
        comment: new.comment,
        command: DeploymentCommand {
            name: new.command,
            args: new.args,
        },
        status,
        custom_json: new.custom_json,
        instance_ids: targets.to_vec(),
        lifecycle: new.lifecycle,
        carried_app: new.carried_app.map(Box::new),
        revisions: Default::default(),
    };
    w.put(&deployment).await?;
    for iid in targets {
        w.put(&Command {
            command_id: new_id(),
            instance_id: iid.clone(),
            deployment_id: id.clone(),
            stack_id: new.stack_id.clone(),
            created_at: created.clone(),
            acknowledged_at: None,
            completed_at: None,
            status: CommandStatus::Pending,
            exit_code: None,
            r#type: new.command,
            app_revisions: None,
        })
        .await?;
        w.wake(iid);
    }
    Ok(id)
}

/// Whole seconds from a `CreatedAt` (AWS's format) to `now`; 0 when unreadable or in the future.
pub fn duration_seconds(created_at: &str, now: jiff::Timestamp) -> i64 {
    created_at
        .parse::<jiff::Timestamp>()
        .map(|t| (now.as_second() - t.as_second()).max(0))
        .unwrap_or(0)
}

/// Records how a pending command ended and settles its deployment; records the command's event
/// and, when the deployment's status changes, the deployment's. Returns the deployment's status.
pub async fn finish(
    w: &mut Write<'_>,
    command_id: &str,
    status: CommandStatus,
    exit_code: Option<i64>,
) -> CoreResult<DeploymentStatus> {
    let mut cmd: Command = w.get(command_id).await?;
    if cmd.status != CommandStatus::Pending {
        return Err(CoreError::Invalid(format!(
            "Command {command_id} is already {}",
            cmd.status.as_str()
        )));
    }
    if status == CommandStatus::Pending {
        return Err(CoreError::Invalid(format!(
            "Command {command_id} cannot finish as pending"
        )));
    }
    let finished = now();
    cmd.status = status;
    cmd.completed_at = Some(finished.clone());
    cmd.acknowledged_at.get_or_insert_with(|| finished.clone());
    if exit_code.is_some() {
        cmd.exit_code = exit_code;
    }
    w.put(&cmd).await?;
    let mut deployment: Deployment = w.get(&cmd.deployment_id).await?;
    let siblings: Vec<Command> = w.list(Filter::Parent(&cmd.deployment_id)).await?;
    let derived = rules::deployment_status(siblings.iter().map(|c| c.status));
    let was = deployment.status;
    deployment.status = derived;
    if derived != DeploymentStatus::Running {
        deployment.completed_at = Some(finished);
        deployment.duration = Some(duration_seconds(
            &deployment.created_at,
            jiff::Timestamp::now(),
        ));
    }
    w.put(&deployment).await?;
    let mut event = new_event(&deployment.stack_id, EventKind::CommandStatus);
    event.instance_id = Some(cmd.instance_id.clone());
    event.deployment_id = Some(cmd.deployment_id.clone());
    event.command_id = Some(command_id.to_string());
    event.detail = json!({"Type": cmd.r#type, "Status": status.as_str(), "ExitCode": exit_code});
    w.record(event).await?;
    if was != derived {
        let mut event = new_event(&deployment.stack_id, EventKind::DeploymentStatus);
        event.deployment_id = Some(cmd.deployment_id.clone());
        event.detail = json!({"Command": deployment.command.name, "From": was.as_str(), "Status": derived.as_str()});
        w.record(event).await?;
    }
    Ok(derived)
}

/// Marks every pending command of an instance `skipped` and settles their deployments, for an
/// instance that stops or is deleted before its agent took them (else its deployments would stay
/// `running` for ever). Returns how many were skipped.
pub async fn skip_pending(w: &mut Write<'_>, instance_id: &str) -> CoreResult<usize> {
    let pending: Vec<String> = w
        .list::<Command>(Filter::Instance(instance_id))
        .await?
        .into_iter()
        .filter(|c| c.status == CommandStatus::Pending)
        .map(|c| c.command_id)
        .collect();
    for cid in &pending {
        finish(w, cid, CommandStatus::Skipped, None).await?;
    }
    Ok(pending.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_whole_seconds_since_creation() {
        let now: jiff::Timestamp = "2026-11-25T18:37:52Z".parse().expect("time");
        assert_eq!(duration_seconds("2026-11-25T18:36:40+00:00", now), 72);
        assert_eq!(duration_seconds("2026-11-25T18:40:00+00:00", now), 0);
        assert_eq!(duration_seconds("yesterday", now), 0);
    }
}
