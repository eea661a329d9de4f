//! Instance operations: CreateInstance, DescribeInstances, UpdateInstance, DeleteInstance,
//! StartInstance, StopInstance, RebootInstance; and [`change_status`], the one place an
//! instance's status changes.

use serde_json::{Value, json};

use opsworks_api::ApiError;
use opsworks_model::instance::{self, InstanceEvent, InstanceStatus};
use opsworks_model::new_id;
use opsworks_store::Kind;

use super::{OpResult, Req, apply, load, now, put, unsupported};
use crate::App;

/// Applies `event` to the instance's status through the state machine, stores the new status
/// and records the transition. Every status change of an instance goes through here.
pub async fn change_status(app: &App, instance_id: &str, event: InstanceEvent) -> Result<InstanceStatus, ApiError> {
    let _guard = app.write_lock().await;
    change_status_locked(app, instance_id, event).await
}

/// [`change_status`] for callers that already hold the write lock.
pub async fn change_status_locked(
    app: &App,
    instance_id: &str,
    event: InstanceEvent,
) -> Result<InstanceStatus, ApiError> {
    let mut doc = load(app, Kind::Instance, "instance", instance_id).await?;
    let from: InstanceStatus = doc
        .get("Status")
        .and_then(Value::as_str)
        .unwrap_or("stopped")
        .parse()
        .map_err(ApiError::Internal)?;
    let to = instance::transition(from, event).map_err(|e| ApiError::Validation(capitalize_first(&e.to_string())))?;
    let stack_id = doc.get("StackId").and_then(Value::as_str).unwrap_or_default().to_string();
    doc["Status"] = json!(to.as_str());
    let record_id = new_id();
    let record = json!({
        "InstanceId": instance_id,
        "From": from.as_str(),
        "To": to.as_str(),
        "Event": format!("{event:?}"),
        "At": now(),
    });
    apply(
        app,
        vec![
            put(Kind::Instance, instance_id, &stack_id, None, doc),
            put(Kind::Transition, &record_id, &stack_id, Some(instance_id), record),
        ],
    )
    .await?;
    tracing::info!(instance_id, from = from.as_str(), to = to.as_str(), ?event, "instance status changed");
    Ok(to)
}

fn capitalize_first(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
}

/// CreateInstance.
pub async fn create_instance(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("CreateInstance"))
}

/// DescribeInstances.
pub async fn describe_instances(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("DescribeInstances"))
}

/// UpdateInstance.
pub async fn update_instance(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("UpdateInstance"))
}

/// DeleteInstance.
pub async fn delete_instance(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("DeleteInstance"))
}

/// StartInstance.
pub async fn start_instance(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("StartInstance"))
}

/// StopInstance.
pub async fn stop_instance(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("StopInstance"))
}

/// RebootInstance.
pub async fn reboot_instance(_app: &App, _req: Req) -> OpResult {
    Err(unsupported("RebootInstance"))
}
