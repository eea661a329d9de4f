//! Live updates for the console: server-sent events carrying instance states and command logs.
//!
//! Each stream looks at the store once a second and sends an event only when what the page
//! shows changed, so an idle page costs one small query a second and no traffic. Each look is
//! made for the session's principal settled again, so a policy change applies to an open stream
//! at once, and a stream ends when its session does.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::Path;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde_json::{Value, json};

use opsworks_api::ApiError;

use crate::render::failure;
use crate::{Console, Signed};

/// What a stream looks at: the session, settled again before each look.
type Look<Fut> = std::sync::Arc<dyn Fn(Signed) -> Fut + Send + Sync>;

/// How often a stream looks for changes.
const PERIOD: Duration = Duration::from_secs(1);
/// At most this much of a log's end is sent or shown.
const LOG_TAIL: u64 = 256 * 1024;

/// The end of a command's log, when it has one (wherever the server keeps logs: its data dir,
/// or the database several servers share).
pub async fn read_log(console: &Console, command_id: &str) -> Option<String> {
    if command_id.is_empty()
        || !command_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return None;
    }
    match opsworks_server::core::logs::read_tail(console.app(), command_id, LOG_TAIL).await {
        Ok(log) => log,
        Err(e) => {
            tracing::warn!(command_id, "reading a command's log: {e}");
            None
        }
    }
}

/// A stream of `update` events, one each time `snapshot` (made for the session as it is then)
/// gives something new; it ends when the session does, or the console closes.
fn changes<F, Fut>(signed: Signed, snapshot: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: Fn(Signed) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<Value>> + Send,
{
    let snapshot: Look<Fut> = std::sync::Arc::new(snapshot);
    let closed = signed.console().closed();
    stream::unfold(
        (signed, None::<Value>, closed),
        move |(signed, mut last, mut closed)| {
            let snapshot = snapshot.clone();
            async move {
                loop {
                    if *closed.borrow() {
                        return None;
                    }
                    // Signed out, deleted, or the profile gone: the stream ends with the session.
                    let now_signed = signed.refreshed().await?;
                    if let Some(now) = snapshot(now_signed).await
                        && Some(&now) != last.as_ref()
                    {
                        let event = Event::default().event("update").data(now.to_string());
                        last = Some(now);
                        return Some((Ok(event), (signed, last, closed)));
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(PERIOD) => {}
                        _ = closed.changed() => return None,
                    }
                }
            }
        },
    )
}

/// `GET /console/stacks/{id}/live`: the stack's instances (status, addresses) whenever they change.
pub async fn stack_events(signed: Signed, Path(stack_id): Path<String>) -> Response {
    if let Err(e @ ApiError::AccessDenied(_)) = signed
        .call("DescribeInstances", json!({ "StackId": stack_id }))
        .await
    {
        return failure(&signed, e);
    }
    let stream = changes(signed, move |signed| {
        let stack_id = stack_id.clone();
        async move {
            let v = signed
                .call("DescribeInstances", json!({ "StackId": stack_id }))
                .await
                .ok()?;
            let instances: Vec<Value> = v
                .get("Instances")?
                .as_array()?
                .iter()
                .map(|i| {
                    json!({
                        "InstanceId": i.get("InstanceId"),
                        "Status": i.get("Status"),
                        "PrivateIp": i.get("PrivateIp"),
                        "PublicIp": i.get("PublicIp"),
                    })
                })
                .collect();
            Some(json!({ "instances": instances }))
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `GET /console/deployments/{id}/live`: the deployment's status and each command's status and
/// log whenever they change.
pub async fn deployment_events(signed: Signed, Path(deployment_id): Path<String>) -> Response {
    if let Err(e @ ApiError::AccessDenied(_)) = signed
        .call(
            "DescribeDeployments",
            json!({ "DeploymentIds": [deployment_id] }),
        )
        .await
    {
        return failure(&signed, e);
    }
    let stream = changes(signed, move |signed| {
        let deployment_id = deployment_id.clone();
        async move {
            let d = signed
                .call(
                    "DescribeDeployments",
                    json!({ "DeploymentIds": [deployment_id] }),
                )
                .await
                .ok()?;
            let dep = d.get("Deployments")?.as_array()?.first()?.clone();
            let c = signed
                .call("DescribeCommands", json!({ "DeploymentId": deployment_id }))
                .await
                .ok()?;
            let mut commands: Vec<Value> = Vec::new();
            for cmd in c.get("Commands")?.as_array()? {
                let id = cmd.get("CommandId").and_then(Value::as_str).unwrap_or("");
                commands.push(json!({
                    "CommandId": id,
                    "Status": cmd.get("Status"),
                    "Log": read_log(signed.console(), id).await,
                }));
            }
            Some(json!({ "Status": dep.get("Status"), "commands": commands }))
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
