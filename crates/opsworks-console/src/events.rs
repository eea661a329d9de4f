//! The stack's events in the console: status changes, deployments, service errors and scaling as
//! readable lines ("web1: booting → online", "deploy on web1: successful"), linked by hostname,
//! command and layer name; the page follows new ones live. Both the page and its stream are for a
//! principal who may see the stack (the events endpoints' rule), checked again for every event
//! the stream sends.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::extract::{Path, Query};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde_json::{Value, json};

use opsworks_model::resource::Stack;
use opsworks_server::edge::events::{self, READ_EVENTS};
use opsworks_server::ops::authz;

use crate::Signed;
use crate::form::s;
use crate::render::{failure, list};

/// How many events the events page starts with.
const EVENTS_SHOWN: u32 = 200;

/// The names events are shown by: instances by hostname, deployments by command, layers by name.
#[derive(Debug, Default)]
pub struct Names {
    instances: HashMap<String, String>,
    deployments: HashMap<String, String>,
    layers: HashMap<String, String>,
}

impl Names {
    /// The names of a stack's instances, layers and deployments.
    pub async fn of_stack(signed: &Signed, stack_id: &str) -> Names {
        let mut names = Names::default();
        let by_stack = json!({ "StackId": stack_id });
        for i in list(signed, "DescribeInstances", by_stack.clone(), "Instances").await {
            names.add_instance(&i);
        }
        for l in list(signed, "DescribeLayers", by_stack.clone(), "Layers").await {
            names.add_layer(&l);
        }
        for d in list(signed, "DescribeDeployments", by_stack, "Deployments").await {
            names.add_deployment(&d);
        }
        names
    }

    fn add_instance(&mut self, i: &Value) {
        self.instances
            .insert(s(i, "InstanceId").into(), s(i, "Hostname").into());
    }

    fn add_layer(&mut self, l: &Value) {
        self.layers
            .insert(s(l, "LayerId").into(), s(l, "Name").into());
    }

    fn add_deployment(&mut self, d: &Value) {
        let command = d
            .pointer("/Command/Name")
            .and_then(Value::as_str)
            .unwrap_or("");
        self.deployments
            .insert(s(d, "DeploymentId").into(), command.into());
    }

    /// Looks up what `event` concerns that is not known yet (an instance or deployment made
    /// after the page was); what is gone is remembered as unknown and shown by its ID.
    pub async fn learn(&mut self, signed: &Signed, event: &Value) {
        let mut ids = vec![s(event, "InstanceId").to_string()];
        if let Some(more) = event
            .pointer("/Detail/InstanceIds")
            .and_then(Value::as_array)
        {
            ids.extend(more.iter().filter_map(Value::as_str).map(String::from));
        }
        for id in ids {
            if !id.is_empty() && !self.instances.contains_key(&id) {
                let found = list(
                    signed,
                    "DescribeInstances",
                    json!({ "InstanceIds": [id] }),
                    "Instances",
                )
                .await;
                found.iter().for_each(|i| self.add_instance(i));
                // Gone: remembered as unknown, so later events about it ask no more.
                self.instances.entry(id).or_default();
            }
        }
        let id = s(event, "DeploymentId");
        if !id.is_empty() && !self.deployments.contains_key(id) {
            let found = list(
                signed,
                "DescribeDeployments",
                json!({ "DeploymentIds": [id] }),
                "Deployments",
            )
            .await;
            found.iter().for_each(|d| self.add_deployment(d));
            self.deployments.entry(id.to_string()).or_default();
        }
        let id = s(event, "LayerId");
        if !id.is_empty() && !self.layers.contains_key(id) {
            let found = list(
                signed,
                "DescribeLayers",
                json!({ "LayerIds": [id] }),
                "Layers",
            )
            .await;
            found.iter().for_each(|l| self.add_layer(l));
            self.layers.entry(id.to_string()).or_default();
        }
    }

    fn name<'a>(map: &'a HashMap<String, String>, id: &'a str) -> &'a str {
        map.get(id)
            .map(String::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or(id)
    }

    /// An instance's hostname (its ID when unknown).
    pub fn instance<'a>(&'a self, id: &'a str) -> &'a str {
        Self::name(&self.instances, id)
    }

    /// A deployment's command (its ID when unknown).
    pub fn deployment<'a>(&'a self, id: &'a str) -> &'a str {
        Self::name(&self.deployments, id)
    }

    /// A layer's name (its ID when unknown).
    pub fn layer<'a>(&'a self, id: &'a str) -> &'a str {
        Self::name(&self.layers, id)
    }
}

/// What an event says, as a line a person reads, per kind of event.
pub fn sentence(event: &Value, names: &Names) -> String {
    let d = &event["Detail"];
    let host = names.instance(s(event, "InstanceId"));
    match s(event, "Type") {
        "instance_status" => format!("{host}: {} → {}", s(d, "From"), s(d, "To")),
        "command_status" => {
            let mut line = format!("{} on {host}: {}", s(d, "Type"), s(d, "Status"));
            if let Some(code) = d.get("ExitCode").and_then(Value::as_i64)
                && code != 0
            {
                line.push_str(&format!(" (exit code {code})"));
            }
            line
        }
        "deployment_status" => {
            format!(
                "{} deployment: {} → {}",
                s(d, "Command"),
                s(d, "From"),
                s(d, "Status")
            )
        }
        "service_error" => s(d, "Message").to_string(),
        "time_scaling" => format!("{host}: time-based {}", s(d, "Action")),
        "load_scaling" => {
            let hosts: Vec<&str> = d["InstanceIds"]
                .as_array()
                .map(|ids| {
                    ids.iter()
                        .filter_map(Value::as_str)
                        .map(|id| names.instance(id))
                        .collect()
                })
                .unwrap_or_default();
            let layer = names.layer(s(event, "LayerId"));
            let direction = s(d, "Direction");
            match hosts.is_empty() {
                true => format!("{layer}: load-based scaling {direction}"),
                false => format!(
                    "{layer}: load-based scaling {direction}: {}",
                    hosts.join(", ")
                ),
            }
        }
        _ => d.to_string(),
    }
}

/// An event as the page shows it: the endpoints' view with `Text` (its [`sentence`]), `Links`
/// (`{href, text}` for the instance, deployment and layer it concerns) and `DetailText` (the raw
/// detail, for a tooltip).
pub fn readable(mut view: Value, names: &Names) -> Value {
    let mut links = Vec::new();
    let id = s(&view, "InstanceId");
    if !id.is_empty() {
        links.push(
            json!({ "href": format!("/console/instances/{id}"), "text": names.instance(id) }),
        );
    }
    let id = s(&view, "DeploymentId");
    if !id.is_empty() {
        links.push(
            json!({ "href": format!("/console/deployments/{id}"), "text": names.deployment(id) }),
        );
    }
    let id = s(&view, "LayerId");
    if !id.is_empty() {
        links
            .push(json!({ "href": format!("/console/layers/{id}/edit"), "text": names.layer(id) }));
    }
    view["Text"] = sentence(&view, names).into();
    view["Links"] = links.into();
    view["DetailText"] = view["Detail"].to_string().into();
    view
}

/// `GET /console/stacks/{id}/events`: the stack's latest events; the page follows new ones live.
pub async fn stack_events_page(signed: Signed, Path(id): Path<String>) -> Response {
    let stack = match signed
        .call("DescribeStacks", json!({ "StackIds": [id] }))
        .await
    {
        Ok(v) => v["Stacks"][0].clone(),
        Err(e) => return failure(&signed, e),
    };
    let names = Names::of_stack(&signed, &id).await;
    let mut shown: Vec<Value> = match signed
        .console()
        .app()
        .store()
        .backend()
        .latest_events(Some(&id), EVENTS_SHOWN)
        .await
    {
        Ok(list) => list
            .iter()
            .map(|e| readable(events::view(e), &names))
            .collect(),
        Err(e) => {
            tracing::warn!("console events page: {e}");
            Vec::new()
        }
    };
    let last = shown.last().and_then(|e| e["Seq"].as_i64()).unwrap_or(0);
    shown.reverse();
    signed.render(
        "events.html",
        json!({ "stack": stack, "events": shown, "last": last }),
    )
}

/// Whether the session may still read the stack's events, as it is now (`None`: signed out, the
/// stack gone, or no longer allowed).
async fn still_allowed(signed: &Signed, stack_id: &str) -> Option<Signed> {
    let now = signed.refreshed().await?;
    let core = now.console().app();
    let stack = core.find::<Stack>(stack_id).await.ok()??;
    authz::allowed_on(&now.principal, core.account_id(), READ_EVENTS, &stack).then_some(now)
}

/// What a live events stream carries between two events.
struct Follow {
    signed: Signed,
    stack_id: String,
    after: i64,
    rx: tokio::sync::broadcast::Receiver<std::sync::Arc<opsworks_store::EventRecord>>,
    closed: tokio::sync::watch::Receiver<bool>,
    pending: Vec<Value>,
    names: Names,
    /// When the session was last found still allowed.
    checked: Option<std::time::Instant>,
}

/// How long a stream trusts its last check of the session (a burst of events costs one check).
const RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// `GET /console/stacks/{id}/events/live?after=SEQ`: every event of the stack recorded after
/// `SEQ`, readable, as server-sent `event` messages, as they happen; for a principal who may see
/// the stack, checked before each event (the stream ends when that no longer holds).
pub async fn stack_events_live(
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let after: i64 = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let core = signed.console().app();
    match core.get::<Stack>(&id).await {
        Ok(stack) => {
            if let Err(e) =
                authz::require_on(&signed.principal, core.account_id(), READ_EVENTS, &stack)
            {
                return failure(&signed, e);
            }
        }
        Err(_) => return crate::render::not_found(&signed, "That stack"),
    }
    // Subscribe before reading the table, so nothing recorded in between is lost; what both
    // deliver is dropped by sequence number.
    let rx = core.events().subscribe();
    let closed = signed.console().closed();
    let names = Names::of_stack(&signed, &id).await;
    let state = Follow {
        signed,
        stack_id: id,
        after,
        rx,
        closed,
        pending: Vec::new(),
        names,
        checked: None,
    };
    let stream = stream::unfold(state, |mut f| async move {
        loop {
            if *f.closed.borrow() {
                return None;
            }
            if let Some(e) = f.pending.pop() {
                let seq = e["Seq"].as_i64().unwrap_or(f.after);
                if seq <= f.after {
                    continue;
                }
                if f.checked.is_none_or(|t| t.elapsed() >= RECHECK) {
                    f.signed = still_allowed(&f.signed, &f.stack_id).await?;
                    f.checked = Some(std::time::Instant::now());
                }
                f.after = seq;
                f.names.learn(&f.signed, &e).await;
                let event = Event::default()
                    .event("event")
                    .id(seq.to_string())
                    .data(readable(e, &f.names).to_string());
                return Some((Ok::<_, Infallible>(event), f));
            }
            // Catch up from the table (first time, and after falling behind the broadcast).
            if let Ok(list) = f
                .signed
                .console()
                .app()
                .store()
                .backend()
                .events_after(Some(&f.stack_id), f.after, 500)
                .await
                && !list.is_empty()
            {
                f.pending = list.iter().rev().map(events::view).collect();
                continue;
            }
            tokio::select! {
                got = f.rx.recv() => match got {
                    Ok(record) if record.event.stack_id == f.stack_id => {
                        f.pending.push(events::view(&record));
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                },
                _ = f.closed.changed() => return None,
            }
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        let mut n = Names::default();
        n.add_instance(&json!({ "InstanceId": "i-1", "Hostname": "web1" }));
        n.add_instance(&json!({ "InstanceId": "i-2", "Hostname": "web2" }));
        n.add_deployment(&json!({ "DeploymentId": "d-1", "Command": { "Name": "deploy" } }));
        n.add_layer(&json!({ "LayerId": "l-1", "Name": "Workers" }));
        n
    }

    #[test]
    fn each_kind_of_event_reads_as_a_sentence() {
        let n = names();
        let cases = [
            (
                json!({ "Type": "instance_status", "InstanceId": "i-1",
                      "Detail": { "From": "booting", "To": "online", "Cause": "Online" } }),
                "web1: booting → online",
            ),
            (
                json!({ "Type": "command_status", "InstanceId": "i-1", "DeploymentId": "d-1",
                      "Detail": { "Type": "deploy", "Status": "successful", "ExitCode": 0 } }),
                "deploy on web1: successful",
            ),
            (
                json!({ "Type": "command_status", "InstanceId": "i-2",
                      "Detail": { "Type": "setup", "Status": "failed", "ExitCode": 3 } }),
                "setup on web2: failed (exit code 3)",
            ),
            (
                json!({ "Type": "deployment_status", "DeploymentId": "d-1",
                      "Detail": { "Command": "deploy", "From": "running", "Status": "successful" } }),
                "deploy deployment: running → successful",
            ),
            (
                json!({ "Type": "service_error", "InstanceId": "i-1",
                      "Detail": { "ServiceErrorId": "e", "Type": "machine", "Message": "the disk is full" } }),
                "the disk is full",
            ),
            (
                json!({ "Type": "time_scaling", "InstanceId": "i-2", "Detail": { "Action": "stop" } }),
                "web2: time-based stop",
            ),
            (
                json!({ "Type": "load_scaling", "LayerId": "l-1",
                      "Detail": { "Direction": "up", "InstanceIds": ["i-1", "i-9"] } }),
                "Workers: load-based scaling up: web1, i-9",
            ),
            (
                json!({ "Type": "instance_status", "InstanceId": "i-gone",
                      "Detail": { "From": "stopping", "To": "stopped" } }),
                "i-gone: stopping → stopped",
            ),
        ];
        for (event, want) in cases {
            assert_eq!(sentence(&event, &n), want, "{event}");
        }
    }

    #[test]
    fn events_link_by_hostname_command_and_layer_name() {
        let n = names();
        let v = readable(
            json!({ "Type": "command_status", "InstanceId": "i-1", "DeploymentId": "d-1", "LayerId": "l-1",
                    "Detail": { "Type": "deploy", "Status": "successful" } }),
            &n,
        );
        assert_eq!(
            v["Links"],
            json!([
                { "href": "/console/instances/i-1", "text": "web1" },
                { "href": "/console/deployments/d-1", "text": "deploy" },
                { "href": "/console/layers/l-1/edit", "text": "Workers" },
            ])
        );
        assert_eq!(v["Text"], "deploy on web1: successful");
        assert!(
            v["DetailText"]
                .as_str()
                .unwrap()
                .contains("\"Status\":\"successful\"")
        );
    }
}
