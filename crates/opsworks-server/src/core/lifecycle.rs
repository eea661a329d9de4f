//! Lifecycle orchestration: which commands an instance's agent runs and what follows when they end.
//!
//! The chain of the original: an instance that booted runs Setup, then Deploy of the stack's apps,
//! then goes online; whenever an instance enters or leaves online, every online instance of the
//! stack runs Configure. A burst of Configures collapses: an instance runs only the newest, the
//! older ones end as skipped. Commands are created as resources (the agents' queue); what they
//! carry to the agent (run list, attributes, data bags, apps) is built when they are delivered.

use std::collections::BTreeMap;

use opsworks_lifecycle::config::RunContext;
use opsworks_lifecycle::rds::RdsDatabase;
use opsworks_lifecycle::{Event, StackSnapshot};
use opsworks_model::deployment::CommandStatus;
use opsworks_model::resource::{
    App, Command, DbInstance, Deployment, Instance, Layer, LifecycleStep, RdsDbInstance, Source,
    Stack,
};
use opsworks_model::{CommandName, InstanceEvent, InstanceStatus};
use opsworks_protocol::{AgentCommand, AppSpec, CommandOutcome, Completion, SourceSpec};
use opsworks_store::{Cached, Filter};

use crate::core::commands::{self, NewDeployment};
use crate::core::instances::change_status;
use crate::core::{Core, CoreError, CoreResult, Write, now, service_errors};

/// The commands an instance's agent should run now, oldest first, with everything they carry.
/// Of several pending Configures only the newest is delivered; the older ones end as skipped.
pub async fn deliverable_commands(core: &Core, instance_id: &str) -> CoreResult<Vec<AgentCommand>> {
    let pending: Vec<Cached<Command>> = core
        .list::<Command>(Filter::Instance(instance_id))
        .await?
        .into_iter()
        .filter(|c| c.status == CommandStatus::Pending)
        .collect();
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let newest_configure = pending
        .iter()
        .rev()
        .find(|c| c.r#type == CommandName::Configure)
        .map(|c| c.command_id.clone());
    let mut out = Vec::new();
    let mut snapshot: Option<Snapshot> = None;
    for cmd in &pending {
        if cmd.r#type == CommandName::Configure
            && newest_configure.as_deref() != Some(cmd.command_id.as_str())
        {
            let done = Completion {
                instance_id: instance_id.to_string(),
                command_id: cmd.command_id.clone(),
                outcome: CommandOutcome::Skipped,
                exit_code: 0,
                report: None,
                app_revisions: None,
            };
            complete(core, &done).await?;
            continue;
        }
        let snap = match &snapshot {
            Some(s) => s,
            None => {
                let inst = core.get::<Instance>(instance_id).await?;
                snapshot.insert(Snapshot::load(core, &inst.stack_id).await?)
            }
        };
        out.push(build_command(core, snap, cmd).await?);
    }
    Ok(out)
}

/// The stack's resources, held while commands are built from them.
struct Snapshot {
    stack: Cached<Stack>,
    layers: Vec<Cached<Layer>>,
    instances: Vec<Cached<Instance>>,
    apps: Vec<Cached<App>>,
    /// The RDS databases registered with the stack, each with its catalog entry if it has one.
    rds: Vec<(Cached<RdsDbInstance>, Option<Cached<DbInstance>>)>,
}

impl Snapshot {
    async fn load(core: &Core, stack_id: &str) -> CoreResult<Self> {
        let mut rds = Vec::new();
        for r in core.list::<RdsDbInstance>(Filter::Stack(stack_id)).await? {
            let db = core
                .find::<DbInstance>(&r.db_instance_identifier)
                .await?
                .filter(|d| d.db_instance_arn == r.rds_db_instance_arn);
            rds.push((r, db));
        }
        Ok(Self {
            stack: core.get(stack_id).await?,
            layers: core.list(Filter::Stack(stack_id)).await?,
            instances: core.list(Filter::Stack(stack_id)).await?,
            apps: core.list(Filter::Stack(stack_id)).await?,
            rds,
        })
    }

    fn view(&self) -> StackSnapshot<'_> {
        StackSnapshot {
            stack: &self.stack,
            layers: self.layers.iter().map(|l| &**l).collect(),
            instances: self.instances.iter().map(|i| &**i).collect(),
            apps: self.apps.iter().map(|a| &**a).collect(),
            rds: self
                .rds
                .iter()
                .map(|(r, db)| RdsDatabase {
                    registration: r,
                    instance: db.as_deref(),
                })
                .collect(),
        }
    }
}

fn source_spec(src: Option<&Source>) -> Option<SourceSpec> {
    let src = src?;
    let url = src.url.as_deref()?;
    let opt = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
    Some(SourceSpec {
        kind: src.r#type.clone().unwrap_or_else(|| "git".into()),
        url: url.to_string(),
        revision: opt(&src.revision),
        username: opt(&src.username),
        password: opt(&src.password),
        ssh_key: opt(&src.ssh_key),
    })
}

fn app_spec(a: &App) -> AppSpec {
    AppSpec {
        app_id: a.app_id.clone(),
        shortname: a.shortname.clone(),
        name: a.name.clone(),
        kind: a.r#type.clone(),
        source: source_spec(a.app_source.as_ref()),
        environment: a
            .environment
            .iter()
            .map(|v| (v.key.clone(), v.value.clone()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// Builds what an agent receives for one command.
async fn build_command(core: &Core, snap: &Snapshot, cmd: &Command) -> CoreResult<AgentCommand> {
    let instance_id = cmd.instance_id.as_str();
    let deployment = core.find::<Deployment>(&cmd.deployment_id).await?;
    let args = deployment.as_ref().map(|d| &d.command.args);
    let view = snap.view();
    let my_layer_ids: &[String] = view
        .instances
        .iter()
        .find(|i| i.instance_id == instance_id)
        .map(|i| i.layer_ids.as_slice())
        .unwrap_or_default();
    let my_layers: Vec<&Layer> = view
        .layers
        .iter()
        .copied()
        .filter(|l| my_layer_ids.contains(&l.layer_id))
        .collect();

    let run_list = match cmd.r#type {
        CommandName::ExecuteRecipes => args
            .and_then(|a| a.get("recipes"))
            .cloned()
            .unwrap_or_default(),
        CommandName::Rollback => opsworks_lifecycle::run_list(&my_layers, Event::Deploy),
        other => match Event::of_command(other) {
            Some(event) => opsworks_lifecycle::run_list(&my_layers, event),
            None => Vec::new(),
        },
    };

    let app_id = deployment.as_ref().and_then(|d| d.app_id.as_deref());
    let is_setup_deploy = deployment
        .as_ref()
        .is_some_and(|d| d.lifecycle == Some(LifecycleStep::SetupDeploy));
    // An app deleted since carries itself on the deployment (DeleteApp's Undeploy).
    let carried = deployment.as_ref().and_then(|d| d.carried_app.as_deref());
    let apps: Vec<&App> = match (cmd.r#type, app_id) {
        (_, Some(_)) if carried.is_some() => carried.into_iter().collect(),
        (_, Some(id)) => view
            .apps
            .iter()
            .copied()
            .filter(|a| a.app_id == id)
            .collect(),
        (CommandName::Deploy, None) if is_setup_deploy => view.apps.clone(),
        _ => Vec::new(),
    };
    let deploy_ids: Vec<String> = if matches!(cmd.r#type, CommandName::Deploy | CommandName::Setup)
    {
        apps.iter().map(|a| a.app_id.clone()).collect()
    } else {
        Vec::new()
    };
    let deployment_json = deployment
        .as_ref()
        .and_then(|d| d.custom_json.as_deref())
        .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok());
    let sent_at = now();
    let ctx = RunContext {
        instance_id,
        command_id: &cmd.command_id,
        command: cmd.r#type,
        args,
        deployment_id: Some(&cmd.deployment_id),
        deployment_json: deployment_json.as_ref(),
        deploy_app_ids: &deploy_ids,
        sent_at: &sent_at,
        iam_user_arn: deployment.as_ref().and_then(|d| d.iam_user_arn.as_deref()),
    };
    let timeout_seconds = (cmd.r#type == CommandName::Shutdown).then(|| {
        my_layers
            .iter()
            .map(|l| l.shutdown_timeout())
            .max()
            .unwrap_or(u64::from(
                opsworks_model::layer::DEFAULT_SHUTDOWN_TIMEOUT_SECS,
            ))
    });
    let stack = &*snap.stack;
    Ok(AgentCommand {
        command_id: cmd.command_id.clone(),
        deployment_id: Some(cmd.deployment_id.clone()),
        kind: cmd.r#type,
        run_list,
        attributes: {
            let mut attrs = opsworks_lifecycle::attributes(&view, &ctx);
            // Who logs in: the built-in `ssh_users` recipe keeps the accounts as this says.
            attrs["ssh_users"] =
                crate::core::users::ssh_users(core, &stack.stack_id, instance_id).await?;
            attrs
        },
        data_bags: opsworks_lifecycle::data_bags(&view, &ctx),
        // The cookbook source's secrets reach instances only when the stack uses the cookbooks.
        custom_cookbooks: if stack.use_custom_cookbooks {
            source_spec(stack.custom_cookbooks_source.as_ref())
        } else {
            None
        },
        apps: apps.into_iter().map(app_spec).collect(),
        timeout_seconds,
        created_at: cmd.created_at.clone(),
    })
}

/// The command `command_id`, which must be the instance's.
pub async fn command_of(
    w: &mut Write<'_>,
    instance_id: &str,
    command_id: &str,
) -> CoreResult<Command> {
    let cmd: Command = w.get(command_id).await?;
    if cmd.instance_id != instance_id {
        return Err(CoreError::Forbidden(format!(
            "command {command_id} is not for instance {instance_id}"
        )));
    }
    Ok(cmd)
}

/// The agent took a command: record when, and a Setup moves the instance to running_setup.
/// Idempotent.
pub async fn acknowledge(core: &Core, instance_id: &str, command_id: &str) -> CoreResult<()> {
    let mut w = core.write().await?;
    let mut cmd = command_of(&mut w, instance_id, command_id).await?;
    if cmd.acknowledged_at.is_some() {
        return Ok(());
    }
    cmd.acknowledged_at = Some(now());
    w.put(&cmd).await?;
    if cmd.r#type == CommandName::Setup
        && matches!(
            w.get::<Instance>(instance_id).await?.status,
            InstanceStatus::Booting | InstanceStatus::Assigning
        )
    {
        change_status(&mut w, instance_id, InstanceEvent::SetupStarted).await?;
    }
    w.commit().await
}

/// A command ended. Idempotent: a repeated completion changes nothing. Updates the deployment
/// and moves the lifecycle chain on, all in one transaction.
pub async fn complete(core: &Core, done: &Completion) -> CoreResult<()> {
    let mut w = core.write().await?;
    let cmd = command_of(&mut w, &done.instance_id, &done.command_id).await?;
    if cmd.status != CommandStatus::Pending {
        return Ok(());
    }
    let status = match done.outcome {
        CommandOutcome::Successful => CommandStatus::Successful,
        CommandOutcome::Failed => CommandStatus::Failed,
        CommandOutcome::Skipped => CommandStatus::Skipped,
    };
    commands::finish(
        &mut w,
        &done.command_id,
        status,
        Some(i64::from(done.exit_code)),
    )
    .await?;
    if let Some(revisions) = done.app_revisions.as_ref().filter(|r| !r.is_empty()) {
        record_revisions(&mut w, &done.command_id, revisions).await?;
    }
    let deployment: Deployment = w.get(&cmd.deployment_id).await?;
    tracing::info!(command_id = done.command_id, instance_id = done.instance_id, outcome = ?done.outcome, kind = %cmd.r#type, "command completed");
    let ok = done.outcome == CommandOutcome::Successful;
    let instance_id = done.instance_id.as_str();
    let stack_id = deployment.stack_id.as_str();
    // The chain moves an instance only from where it left it: a status change the state machine
    // does not allow from where the instance is now (an instance unassigned or deregistered
    // meanwhile, an agent back from silence) is not made, and the command is simply recorded.
    let status = w.find::<Instance>(instance_id).await?.map(|i| i.status);
    let in_setup = status == Some(InstanceStatus::RunningSetup);
    let left = matches!(
        status,
        None | Some(InstanceStatus::Unassigning | InstanceStatus::Deregistering)
    );
    match (deployment.lifecycle, cmd.r#type) {
        (Some(LifecycleStep::Setup), CommandName::Setup)
        | (Some(LifecycleStep::SetupDeploy), CommandName::Deploy)
            if left || (!ok && !in_setup) => {}
        (Some(LifecycleStep::SetupDeploy), CommandName::Deploy) if !in_setup => {}
        (Some(LifecycleStep::Shutdown), CommandName::Shutdown)
            if status == Some(InstanceStatus::Unassigning) =>
        {
            unassigned(&mut w, instance_id).await?;
        }
        (Some(LifecycleStep::Setup), CommandName::Setup) if ok => {
            let new =
                NewDeployment::lifecycle(stack_id, CommandName::Deploy, LifecycleStep::SetupDeploy);
            commands::create(&mut w, new, &[instance_id.to_string()]).await?;
        }
        (Some(LifecycleStep::Setup), CommandName::Setup)
        | (Some(LifecycleStep::SetupDeploy), CommandName::Deploy)
            if !ok =>
        {
            change_status(&mut w, instance_id, InstanceEvent::SetupFailed).await?;
            let message = format!(
                "{} failed on the instance (exit code {}); see the command's log",
                cmd.r#type, done.exit_code
            );
            service_errors::record(
                &mut w,
                stack_id,
                Some(instance_id),
                "setup_failed",
                &message,
            )
            .await?;
        }
        (Some(LifecycleStep::SetupDeploy), CommandName::Deploy) => {
            change_status(&mut w, instance_id, InstanceEvent::SetupSucceeded).await?;
            configure_stack(&mut w, stack_id).await?;
        }
        _ => {}
    }
    w.commit().await
}

/// Keeps the commits an instance's apps resolved to on its command, and on the deployment (a
/// commit another instance reported differently is kept beside it).
async fn record_revisions(
    w: &mut Write<'_>,
    command_id: &str,
    revisions: &BTreeMap<String, String>,
) -> CoreResult<()> {
    let mut cmd: Command = w.get(command_id).await?;
    cmd.app_revisions = Some(revisions.clone());
    w.put(&cmd).await?;
    let mut deployment: Deployment = w.get(&cmd.deployment_id).await?;
    for (app, commit) in revisions {
        let entry = deployment.revisions.entry(app.clone()).or_default();
        if !entry.split(',').any(|c| c == commit) {
            if !entry.is_empty() {
                entry.push(',');
            }
            entry.push_str(commit);
        }
    }
    w.put(&deployment).await
}

/// Ends an unassignment (its Shutdown ended, or the machine could not run one): the registered
/// instance leaves its layers and is `registered`; the rest of the stack Configures when it had
/// been online.
pub async fn unassigned(w: &mut Write<'_>, instance_id: &str) -> CoreResult<()> {
    let mut inst: Instance = w.get(instance_id).await?;
    if inst.status != InstanceStatus::Unassigning {
        return Ok(());
    }
    let transitions: Vec<opsworks_model::resource::Transition> =
        w.list(Filter::Parent(instance_id)).await?;
    let was_online = transitions
        .last()
        .is_some_and(|t| t.from == "online" || t.from == "connection_lost");
    inst.layer_ids.clear();
    w.put(&inst).await?;
    change_status(w, instance_id, InstanceEvent::Unassigned).await?;
    if was_online {
        configure_stack(w, &inst.stack_id).await?;
    }
    Ok(())
}

/// Configure on every online instance of the stack.
pub async fn configure_stack(w: &mut Write<'_>, stack_id: &str) -> CoreResult<()> {
    let online: Vec<String> = w
        .list::<Instance>(Filter::Stack(stack_id))
        .await?
        .into_iter()
        .filter(|i| i.status == InstanceStatus::Online)
        .map(|i| i.instance_id)
        .collect();
    if !online.is_empty() {
        let new =
            NewDeployment::lifecycle(stack_id, CommandName::Configure, LifecycleStep::Configure);
        commands::create(w, new, &online).await?;
    }
    Ok(())
}

/// The instance booted and its agent runs: Setup follows.
pub async fn booted(w: &mut Write<'_>, instance_id: &str) -> CoreResult<()> {
    let inst: Instance = w.get(instance_id).await?;
    let new = NewDeployment::lifecycle(&inst.stack_id, CommandName::Setup, LifecycleStep::Setup);
    commands::create(w, new, &[instance_id.to_string()]).await?;
    Ok(())
}

/// An agent said hello: after a reboot, the instance is back online.
pub async fn agent_restarted(core: &Core, instance_id: &str) -> CoreResult<()> {
    if core.get::<Instance>(instance_id).await?.status != InstanceStatus::Rebooting {
        return Ok(());
    }
    let mut w = core.write().await?;
    if w.get::<Instance>(instance_id).await?.status == InstanceStatus::Rebooting {
        change_status(&mut w, instance_id, InstanceEvent::Rebooted).await?;
    }
    w.commit().await
}

/// A heartbeat: an instance whose agent had gone silent is back (online; a registered machine
/// in no layer back to registered).
pub async fn agent_alive(core: &Core, instance_id: &str) -> CoreResult<()> {
    if core.get::<Instance>(instance_id).await?.status != InstanceStatus::ConnectionLost {
        return Ok(());
    }
    let mut w = core.write().await?;
    let inst: Instance = w.get(instance_id).await?;
    if inst.status == InstanceStatus::ConnectionLost {
        let event = if inst.registered && inst.layer_ids.is_empty() {
            InstanceEvent::AgentBackUnassigned
        } else {
            InstanceEvent::AgentBack
        };
        change_status(&mut w, instance_id, event).await?;
    }
    w.commit().await
}
