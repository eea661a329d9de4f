//! The watchdog: an instance whose agent has been silent past the healing timeout becomes
//! `connection_lost`, recorded as a service error; when every one of its layers has
//! `EnableAutoHealing`, it is healed — stopped and started again, as the original did. An agent
//! that speaks again before the timeout simply carries on.

use std::time::Duration;

use serde_json::Value;

use opsworks_api::ApiError;
use opsworks_model::{InstanceEvent, InstanceStatus};
use opsworks_store::{Filter, Kind};

use crate::App;
use crate::ops::catalog::record_service_error;
use crate::ops::doc_str as s;
use crate::ops::instances::change_status;
use crate::ops::list;

/// Checks the instances every quarter of the healing timeout (between 0.5 s and 15 s), forever.
pub async fn run(app: App) {
    let period =
        (app.healing_timeout() / 4).clamp(Duration::from_millis(500), Duration::from_secs(15));
    loop {
        tokio::time::sleep(period).await;
        if let Err(e) = check(&app).await {
            tracing::warn!("watchdog: {e}");
        }
    }
}

/// One pass over every instance whose agent should be speaking.
pub async fn check(app: &App) -> Result<(), ApiError> {
    let timeout = app.healing_timeout();
    for inst in list(app, Kind::Instance, Filter::All).await? {
        let status: InstanceStatus = s(&inst, "Status")
            .parse()
            .unwrap_or(InstanceStatus::Stopped);
        let watched = matches!(
            status,
            InstanceStatus::Online
                | InstanceStatus::RunningSetup
                | InstanceStatus::Booting
                | InstanceStatus::Rebooting
        );
        let id = s(&inst, "InstanceId");
        if !watched || app.agent_silence(id) < timeout {
            continue;
        }
        // Another path (a stop, the agent's return) may have moved the instance meanwhile.
        if change_status(app, id, InstanceEvent::AgentLost)
            .await
            .is_err()
        {
            continue;
        }
        let stack = s(&inst, "StackId");
        let host = s(&inst, "Hostname");
        let message = format!(
            "The agent of instance {host} has not been heard from for {} s",
            timeout.as_secs()
        );
        record_service_error(app, stack, Some(id), "connection_lost", &message).await?;
        if auto_heals(app, &inst).await? && app.machines().is_some() {
            let message =
                format!("Instance {host} is being healed: it is stopped and started again");
            record_service_error(app, stack, Some(id), "auto_healing", &message).await?;
            crate::machines::heal(app, id);
        }
    }
    Ok(())
}

/// Whether every layer of the instance has auto-healing on (one layer off stops a heal).
async fn auto_heals(app: &App, inst: &Value) -> Result<bool, ApiError> {
    let ids: Vec<String> = inst
        .get("LayerIds")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let layers = list(app, Kind::Layer, Filter::Ids(&ids)).await?;
    Ok(!layers.is_empty()
        && layers.iter().all(|l| {
            l.get("EnableAutoHealing")
                .and_then(Value::as_bool)
                .unwrap_or(true)
        }))
}
