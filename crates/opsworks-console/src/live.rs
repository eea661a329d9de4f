//! Live updates for the console: server-sent events carrying instance states and command logs.
//!
//! Each stream looks at the store once a second and sends an event only when what the page
//! shows changed, so an idle page costs one small query a second and no traffic.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde_json::{Value, json};

use crate::{Console, Signed};

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

/// A stream of `update` events, one each time `snapshot` gives something new.
fn changes<F, Fut>(console: Console, snapshot: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: Fn(Console) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<Value>> + Send,
{
    let snapshot = std::sync::Arc::new(snapshot);
    let closed = console.closed();
    stream::unfold(
        (console, None::<Value>, closed),
        move |(console, mut last, mut closed)| {
            let snapshot = snapshot.clone();
            async move {
                loop {
                    if *closed.borrow() {
                        return None;
                    }
                    if let Some(now) = snapshot(console.clone()).await
                        && Some(&now) != last.as_ref()
                    {
                        let event = Event::default().event("update").data(now.to_string());
                        last = Some(now);
                        return Some((Ok(event), (console, last, closed)));
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
pub async fn stack_events(
    State(console): State<Console>,
    _signed: Signed,
    Path(stack_id): Path<String>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = changes(console, move |console| {
        let stack_id = stack_id.clone();
        async move {
            let v = console
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
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `GET /console/deployments/{id}/live`: the deployment's status and each command's status and
/// log whenever they change.
pub async fn deployment_events(
    State(console): State<Console>,
    _signed: Signed,
    Path(deployment_id): Path<String>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = changes(console, move |console| {
        let deployment_id = deployment_id.clone();
        async move {
            let d = console
                .call(
                    "DescribeDeployments",
                    json!({ "DeploymentIds": [deployment_id] }),
                )
                .await
                .ok()?;
            let dep = d.get("Deployments")?.as_array()?.first()?.clone();
            let c = console
                .call("DescribeCommands", json!({ "DeploymentId": deployment_id }))
                .await
                .ok()?;
            let mut commands: Vec<Value> = Vec::new();
            for cmd in c.get("Commands")?.as_array()? {
                let id = cmd.get("CommandId").and_then(Value::as_str).unwrap_or("");
                commands.push(json!({
                    "CommandId": id,
                    "Status": cmd.get("Status"),
                    "Log": read_log(&console, id).await,
                }));
            }
            Some(json!({ "Status": dep.get("Status"), "commands": commands }))
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
