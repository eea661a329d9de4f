//! Registered instances, the parts that follow the agent rather than a request: the first hello
//! of a machine being registered (→ `registered`), the end of an unassignment (its Shutdown
//! ended → `registered`, in no layer), the goodbye of a deregistered machine's agent (the record
//! and its key go), and the watchdog's deadlines for both when the agent does not answer.
//!
//! The server never starts, stops, reboots or heals a registered machine: it did not create it.

use std::time::Duration;

use opsworks_model::resource::{Instance, LifecycleStep, Transition};
use opsworks_model::{CommandName, InstanceEvent, InstanceStatus, Kind};
use opsworks_store::Filter;

use crate::core::commands::{self, NewDeployment};
use crate::core::instances::change_status;
use crate::core::machines::{self, instance_principal};
use crate::core::{Core, CoreResult, Write, lifecycle, service_errors};

/// How long a deregistered machine's agent has to say goodbye before its record goes anyway (a
/// silent agent cannot uninstall itself; the machine's owner removes it by hand then).
pub const GOODBYE_WAIT: Duration = Duration::from_secs(60);

/// The agent of a machine being registered said hello: the machine is `registered`.
pub async fn agent_registered(core: &Core, instance_id: &str) -> CoreResult<()> {
    if core.get::<Instance>(instance_id).await?.status != InstanceStatus::Registering {
        return Ok(());
    }
    let mut w = core.write().await?;
    if w.get::<Instance>(instance_id).await?.status == InstanceStatus::Registering {
        change_status(&mut w, instance_id, InstanceEvent::AgentRegistered).await?;
    }
    w.commit().await
}

/// Starts unassigning a registered instance (UnassignInstance, already moved to
/// `unassigning`): its pending commands are skipped and Shutdown runs when an agent is there to
/// run it; without one (a silent machine) the unassignment ends at once.
pub async fn begin_unassign(
    w: &mut Write<'_>,
    inst: &Instance,
    agent_there: bool,
) -> CoreResult<()> {
    commands::skip_pending(w, &inst.instance_id).await?;
    if agent_there {
        let new = NewDeployment::lifecycle(
            &inst.stack_id,
            CommandName::Shutdown,
            LifecycleStep::Shutdown,
        );
        commands::create(w, new, std::slice::from_ref(&inst.instance_id)).await?;
        Ok(())
    } else {
        lifecycle::unassigned(w, &inst.instance_id).await
    }
}

/// Removes a registered instance's record with its key, pending commands and status history
/// (DeregisterInstance's end). Call [`crate::core::presence::Presence::forget`] after commit.
pub async fn forget(w: &mut Write<'_>, instance_id: &str) -> CoreResult<()> {
    let core = w.core();
    commands::skip_pending(w, instance_id).await?;
    core.keys()
        .revoke(w, &instance_principal(instance_id))
        .await?;
    let transitions: Vec<Transition> = w.list(Filter::Parent(instance_id)).await?;
    for t in transitions {
        w.delete(Kind::Transition, &t.transition_id).await?;
    }
    w.delete(Kind::Instance, instance_id).await?;
    tracing::info!(instance_id, "registered instance removed");
    Ok(())
}

/// A deregistered machine's agent says goodbye: it uninstalls itself, its record goes.
pub async fn goodbye(core: &Core, instance_id: &str) -> CoreResult<()> {
    let mut w = core.write().await?;
    match w.find::<Instance>(instance_id).await? {
        Some(inst) if inst.status == InstanceStatus::Deregistering => {
            forget(&mut w, instance_id).await?;
            w.commit().await?;
            core.presence().forget(instance_id);
        }
        _ => {}
    }
    Ok(())
}

/// The watchdog's part: a deregistration whose agent did not say goodbye within
/// [`GOODBYE_WAIT`] ends without it; an unassignment whose Shutdown did not end within the
/// layers' shutdown timeout (plus 10 s) ends without it, with a service error.
pub async fn enforce_deadlines(core: &Core, inst: &Instance) -> CoreResult<()> {
    let id = inst.instance_id.as_str();
    let limit = match inst.status {
        InstanceStatus::Deregistering => GOODBYE_WAIT,
        InstanceStatus::Unassigning => {
            machines::shutdown_timeout(core, inst).await? + Duration::from_secs(10)
        }
        _ => return Ok(()),
    };
    let transitions = core.list::<Transition>(Filter::Parent(id)).await?;
    let since = transitions
        .last()
        .and_then(|t| t.at.parse::<jiff::Timestamp>().ok())
        .map(|at| jiff::Timestamp::now().duration_since(at))
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or(Duration::MAX);
    if since < limit {
        return Ok(());
    }
    let mut w = core.write().await?;
    let now = match w.find::<Instance>(id).await? {
        Some(i) if i.status == inst.status => i,
        _ => return Ok(()),
    };
    if now.status == InstanceStatus::Deregistering {
        tracing::warn!(
            instance_id = id,
            "the deregistered machine's agent did not say goodbye; its record goes anyway"
        );
        forget(&mut w, id).await?;
        w.commit().await?;
        core.presence().forget(id);
    } else {
        let message = format!(
            "Instance {} did not finish its Shutdown within {} s; it was unassigned without it",
            now.hostname,
            limit.as_secs()
        );
        commands::skip_pending(&mut w, id).await?;
        service_errors::record(
            &mut w,
            &now.stack_id,
            Some(id),
            "unassign_timeout",
            &message,
        )
        .await?;
        lifecycle::unassigned(&mut w, id).await?;
        w.commit().await?;
    }
    Ok(())
}
