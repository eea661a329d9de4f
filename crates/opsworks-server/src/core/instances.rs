//! Instance status changes: [`change_status`], the one place an instance's status changes, and
//! the start and stop paths StartInstance, StopInstance, the scheduler and the watchdog share.

use opsworks_model::instance::{self, InstanceEvent, InstanceStatus};
use opsworks_model::resource::{Instance, Layer, Transition};
use opsworks_model::{EventKind, new_id};
use serde_json::json;

use crate::core::events::new_event;
use crate::core::{Core, CoreError, CoreResult, Write, machines, now};

/// Applies `event` to the instance's status through the state machine, stores the new status,
/// records the transition and its event, all in `w`. Every status change goes through here.
pub async fn change_status(
    w: &mut Write<'_>,
    instance_id: &str,
    event: InstanceEvent,
) -> CoreResult<InstanceStatus> {
    let mut inst: Instance = w.get(instance_id).await?;
    let from = inst.status;
    let to = instance::transition(from, event).map_err(|e| {
        CoreError::Invalid(format!("{} (instance {instance_id})", CoreError::from(e)))
    })?;
    inst.status = to;
    w.put(&inst).await?;
    if matches!(to, InstanceStatus::Booting | InstanceStatus::Rebooting) {
        // Before the commit, so the watchdog never sees this status with the old clock: a new
        // agent is silent from its boot, not since the old one's last word or the server's start.
        w.core().presence().booted(instance_id);
        // On a shared database the leader's watchdog reads the database's clock, which may still
        // hold the old agent's last word: the boot goes there too, not at the next batch.
        if let Some(cluster) = w.core().store().backend().cluster() {
            let server = w.core().node().server_id().to_string();
            cluster
                .record_presence(&server, &[instance_id.to_string()])
                .await?;
        }
    }
    w.put(&Transition {
        transition_id: new_id(),
        instance_id: instance_id.to_string(),
        stack_id: inst.stack_id.clone(),
        from: from.as_str().into(),
        to: to.as_str().into(),
        event: format!("{event:?}"),
        at: now(),
    })
    .await?;
    tracing::info!(
        instance_id,
        from = from.as_str(),
        to = to.as_str(),
        ?event,
        "instance status changed"
    );
    let mut recorded = new_event(&inst.stack_id, EventKind::InstanceStatus);
    recorded.instance_id = Some(instance_id.to_string());
    recorded.detail =
        json!({"From": from.as_str(), "To": to.as_str(), "Cause": format!("{event:?}")});
    w.record(recorded).await?;
    Ok(to)
}

/// [`change_status`] in a transaction of its own.
pub async fn change_status_now(
    core: &Core,
    instance_id: &str,
    event: InstanceEvent,
) -> CoreResult<InstanceStatus> {
    let mut w = core.write().await?;
    let to = change_status(&mut w, instance_id, event).await?;
    w.commit().await?;
    Ok(to)
}

/// Starts an instance as StartInstance does (`stopped` or `start_failed` → `requested`, then the
/// machine boots in the background); the schedulers and healing start instances through here.
pub async fn start(core: &Core, id: &str) -> CoreResult<()> {
    let mut w = core.write().await?;
    let inst: Instance = w.get(id).await?;
    refuse_registered(&inst, "start")?;
    check_builtin_recipes(&mut w, &inst).await?;
    change_status(&mut w, id, InstanceEvent::Start).await?;
    w.commit().await?;
    machines::launch(core, id);
    Ok(())
}

/// Refuses to start, stop or reboot a registered instance: the server did not create its machine
/// and never powers it (`what`: "start", "stop", "reboot").
pub fn refuse_registered(inst: &Instance, what: &str) -> CoreResult<()> {
    if inst.registered {
        return Err(CoreError::Invalid(format!(
            "Instance {} is a registered {} machine: OpsWorks does not {what} machines it did not create; use AssignInstance and UnassignInstance for its layers, DeregisterInstance to remove it",
            inst.instance_id, inst.infrastructure_class
        )));
    }
    Ok(())
}

/// Refuses to start an instance whose layers' built-in recipes this server does not ship yet, so
/// a layer type that is accepted but not built fails clearly instead of coming up half-configured.
pub async fn check_builtin_recipes(w: &mut Write<'_>, inst: &Instance) -> CoreResult<()> {
    let layers: Vec<Layer> = w.list(opsworks_store::Filter::Ids(&inst.layer_ids)).await?;
    for layer in layers {
        let missing: Vec<&str> = layer
            .default_recipes
            .all()
            .map(String::as_str)
            .filter(|r| !opsworks_cookbooks::has_recipe(r))
            .collect();
        if !missing.is_empty() {
            return Err(CoreError::Invalid(format!(
                "Instances of {} layers cannot start yet: this server does not ship the layer's built-in recipes ({}) yet",
                layer.r#type,
                missing.join(", ")
            )));
        }
    }
    Ok(())
}

/// Stops an instance as StopInstance does (`force` as its `Force`): a merely requested instance
/// stops at once; a running one goes to `stopping` and its machine runs Shutdown, then halts, in
/// the background. The schedulers stop instances through here too.
pub async fn stop(core: &Core, id: &str, force: bool) -> CoreResult<()> {
    let mut w = core.write().await?;
    let inst = w.get::<Instance>(id).await?;
    refuse_registered(&inst, "stop")?;
    let current = inst.status;
    // A forced stop of an instance already on its way down finishes it; otherwise stop first.
    let on_the_way_down = matches!(
        current,
        InstanceStatus::Stopping | InstanceStatus::ShuttingDown | InstanceStatus::Terminating
    );
    let status = if force && on_the_way_down {
        current
    } else {
        change_status(&mut w, id, InstanceEvent::Stop).await?
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
    let halt = status == InstanceStatus::Stopping;
    if !halt && force && status != InstanceStatus::Stopped {
        change_status(&mut w, id, InstanceEvent::Halted).await?;
    }
    w.commit().await?;
    if halt {
        machines::halt(core, id, had_agent && !force);
    }
    Ok(())
}

/// Whether the instance's status takes it off a stack's member list since it was last online:
/// true when it was online after its last stop (its leaving must reach the others as Configure).
pub async fn was_online_since_stopped(w: &mut Write<'_>, id: &str) -> CoreResult<bool> {
    let transitions: Vec<Transition> = w.list(opsworks_store::Filter::Parent(id)).await?;
    Ok(transitions
        .iter()
        .rev()
        .take_while(|t| t.to != InstanceStatus::Stopped.as_str())
        .any(|t| t.to == InstanceStatus::Online.as_str()))
}
