//! Service errors: how the control plane reports what went wrong outside any command (a failed
//! Setup, a silent agent, a heal, a failed start or stop) against a stack or an instance.

use serde_json::json;

use opsworks_model::resource::{Instance, ServiceError};
use opsworks_model::{EventKind, new_id};

use crate::core::events::new_event;
use crate::core::{Core, CoreResult, Write, now};

/// Records a service error (`kind` is its `Type`, e.g. `setup_failed`) against a stack and, when
/// given, one of its instances, whose `LastServiceErrorId` then names it. Returns its ID.
///
/// `message` is shown to API callers as is: it must not carry secrets.
pub async fn record(
    w: &mut Write<'_>,
    stack_id: &str,
    instance_id: Option<&str>,
    kind: &str,
    message: &str,
) -> CoreResult<String> {
    let id = new_id();
    w.put(&ServiceError {
        service_error_id: id.clone(),
        stack_id: stack_id.to_string(),
        instance_id: instance_id.map(String::from),
        r#type: kind.to_string(),
        message: message.to_string(),
        created_at: now(),
    })
    .await?;
    if let Some(iid) = instance_id
        && let Some(mut inst) = w.find::<Instance>(iid).await?
    {
        // Only this member of the instance changes; its status stays with `instances`.
        inst.last_service_error_id = Some(id.clone());
        w.put(&inst).await?;
    }
    tracing::info!(service_error_id = %id, stack_id, instance_id, kind, "service error recorded");
    let mut event = new_event(stack_id, EventKind::ServiceError);
    event.instance_id = instance_id.map(String::from);
    event.detail = json!({"ServiceErrorId": id, "Type": kind, "Message": message});
    w.record(event).await?;
    Ok(id)
}

/// [`record`] in a transaction of its own.
pub async fn record_now(
    core: &Core,
    stack_id: &str,
    instance_id: Option<&str>,
    kind: &str,
    message: &str,
) -> CoreResult<String> {
    let mut w = core.write().await?;
    let id = record(&mut w, stack_id, instance_id, kind, message).await?;
    w.commit().await?;
    Ok(id)
}
