//! The watchdog: an instance whose agent has been silent past the healing timeout becomes
//! `connection_lost`, recorded as a service error; when every one of its layers has
//! `EnableAutoHealing`, it is healed — stopped and started again, as the original did. An agent
//! that speaks again before the timeout simply carries on. Registered machines are never healed,
//! and their unassignments and deregistrations end on their own past their deadlines.
//!
//! With several servers on one database the watchdog runs on the leader, and an agent's silence
//! is the shortest of what this server heard and what any server recorded in the database; an
//! agent nobody ever heard from counts as silent since this server began to lead.

use opsworks_model::resource::{Instance, Layer};
use opsworks_model::{InstanceEvent, InstanceStatus};
use opsworks_store::Filter;

use crate::core::instances::change_status;
use crate::core::{Core, CoreResult, machines, registration, service_errors};

/// How often the watchdog looks: a quarter of the healing timeout, between 0.5 s and 15 s.
pub fn period(core: &Core) -> std::time::Duration {
    (core.healing_timeout() / 4).clamp(
        std::time::Duration::from_millis(500),
        std::time::Duration::from_secs(15),
    )
}

/// One pass over every instance whose agent should be speaking.
pub async fn check(core: &Core) -> CoreResult<()> {
    let timeout = core.healing_timeout();
    let shared = match core.store().backend().cluster() {
        Some(cluster) => Some(cluster.presence().await?),
        None => None,
    };
    let silence = |id: &str| {
        let here = core.presence().silence(id);
        match &shared {
            Some(seen) => here.min(
                seen.get(id)
                    .copied()
                    .unwrap_or_else(|| core.node().leading_for()),
            ),
            None => here,
        }
    };
    for inst in core.list::<Instance>(Filter::All).await? {
        // Registered machines: a deregistration or unassignment the agent does not finish ends
        // on its own; a silent one is connection_lost, never healed (not the server's machine).
        if inst.registered {
            registration::enforce_deadlines(core, &inst).await?;
        }
        let watched = if inst.registered {
            matches!(
                inst.status,
                InstanceStatus::Online | InstanceStatus::RunningSetup | InstanceStatus::Registered
            )
        } else {
            matches!(
                inst.status,
                InstanceStatus::Online
                    | InstanceStatus::RunningSetup
                    | InstanceStatus::Booting
                    | InstanceStatus::Rebooting
            )
        };
        let id = inst.instance_id.as_str();
        if !watched || silence(id) < timeout {
            continue;
        }
        let heals = !inst.registered && auto_heals(core, &inst).await? && core.machines().is_some();
        let mut w = core.write().await?;
        // Another path (a stop, the agent's return) may have moved the instance meanwhile.
        if change_status(&mut w, id, InstanceEvent::AgentLost)
            .await
            .is_err()
        {
            continue;
        }
        let host = &inst.hostname;
        let message = format!(
            "The agent of instance {host} has not been heard from for {} s",
            timeout.as_secs()
        );
        service_errors::record(
            &mut w,
            &inst.stack_id,
            Some(id),
            "connection_lost",
            &message,
        )
        .await?;
        if heals {
            let message =
                format!("Instance {host} is being healed: it is stopped and started again");
            service_errors::record(&mut w, &inst.stack_id, Some(id), "auto_healing", &message)
                .await?;
        }
        w.commit().await?;
        if heals {
            machines::heal(core, id);
        }
    }
    Ok(())
}

/// Whether every layer of the instance has auto-healing on (one layer off stops a heal).
async fn auto_heals(core: &Core, inst: &Instance) -> CoreResult<bool> {
    let layers = core.list::<Layer>(Filter::Ids(&inst.layer_ids)).await?;
    Ok(!layers.is_empty() && layers.iter().all(|l| l.enable_auto_healing))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::instances::change_status_now;
    use crate::testkit::{open_with, stack_with_instance};

    const TIMEOUT: Duration = Duration::from_millis(300);

    async fn status(core: &Core, id: &str) -> InstanceStatus {
        core.get::<Instance>(id).await.unwrap().status
    }

    #[tokio::test]
    async fn a_booting_agent_is_silent_from_its_boot_not_from_before() {
        let (_dir, core) = open_with(|c| c.healing_timeout = TIMEOUT).await;
        let (_, id) = stack_with_instance(&core).await;
        // A server up for longer than the timeout, as every server soon is.
        tokio::time::sleep(TIMEOUT * 2).await;
        for event in [
            InstanceEvent::Start,
            InstanceEvent::Provisioning,
            InstanceEvent::Booted,
        ] {
            change_status_now(&core, &id, event).await.unwrap();
        }
        check(&core).await.unwrap();
        assert_eq!(status(&core, &id).await, InstanceStatus::Booting);
        // An agent that never speaks after its boot is still found out.
        tokio::time::sleep(TIMEOUT * 2).await;
        check(&core).await.unwrap();
        assert_eq!(status(&core, &id).await, InstanceStatus::ConnectionLost);
    }

    #[tokio::test]
    async fn a_rebooting_agent_gets_a_whole_timeout_from_the_reboot() {
        let (_dir, core) = open_with(|c| c.healing_timeout = TIMEOUT).await;
        let (_, id) = stack_with_instance(&core).await;
        for event in [
            InstanceEvent::Start,
            InstanceEvent::Provisioning,
            InstanceEvent::Booted,
            InstanceEvent::SetupStarted,
            InstanceEvent::SetupSucceeded,
        ] {
            change_status_now(&core, &id, event).await.unwrap();
        }
        // Its agent's last word was a while ago, then the instance reboots.
        tokio::time::sleep(TIMEOUT * 2).await;
        change_status_now(&core, &id, InstanceEvent::Reboot)
            .await
            .unwrap();
        check(&core).await.unwrap();
        assert_eq!(status(&core, &id).await, InstanceStatus::Rebooting);
    }
}
