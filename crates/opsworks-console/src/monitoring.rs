//! Monitoring and events in the console: charts of the agents' metrics (drawn by the server as
//! SVG) per stack, layer and instance over 1h to 2w, and the stack's event log, followed live.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde_json::{Value, json};

use opsworks_server::edge::events;

use crate::{Console, Signed};

/// The periods a chart can span, as the metrics endpoints name them.
pub const PERIODS: &[&str] = &["1h", "8h", "24h", "1w", "2w"];
/// The metrics the console charts, in this order.
pub const CHARTED: &[&str] = &["cpu_user", "cpu_system", "memory_used", "load_1", "procs"];
/// How many events the events page starts with.
const EVENTS_SHOWN: u32 = 200;

/// The period a page asks for, `1h` unless it names a known one.
pub fn period(q: &HashMap<String, String>) -> String {
    q.get("Period")
        .filter(|p| PERIODS.contains(&p.as_str()))
        .cloned()
        .unwrap_or_else(|| "1h".to_string())
}

/// `GET /console/charts/chart.svg?InstanceId|LayerId|StackId=..&Metric=..&Period=..`: the
/// server's chart, for a signed-in browser.
pub async fn chart(
    State(console): State<Console>,
    _signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match opsworks_server::core::metrics::chart(console.app(), &q).await {
        Ok(svg) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            svg,
        )
            .into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// `GET /console/stacks/{id}/monitoring`: the stack's and each layer's charts.
pub async fn stack_monitoring(
    State(console): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let stack = match console
        .call("DescribeStacks", json!({ "StackIds": [id] }))
        .await
    {
        Ok(v) => v["Stacks"][0].clone(),
        Err(e) => return crate::pages::failure(&console, &signed, e),
    };
    let layers = console
        .call("DescribeLayers", json!({ "StackId": id }))
        .await
        .map(|v| v["Layers"].clone())
        .unwrap_or(Value::Array(Vec::new()));
    let instances = console
        .call("DescribeInstances", json!({ "StackId": id }))
        .await
        .map(|v| v["Instances"].clone())
        .unwrap_or(Value::Array(Vec::new()));
    console.render(
        "monitoring.html",
        json!({ "csrf": signed.csrf, "stack": stack, "layers": layers, "instances": instances,
                "period": period(&q), "periods": PERIODS, "metrics": CHARTED }),
    )
}

/// `GET /console/stacks/{id}/events`: the stack's latest events; the page follows new ones live.
pub async fn stack_events_page(
    State(console): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let stack = match console
        .call("DescribeStacks", json!({ "StackIds": [id] }))
        .await
    {
        Ok(v) => v["Stacks"][0].clone(),
        Err(e) => return crate::pages::failure(&console, &signed, e),
    };
    let mut shown: Vec<Value> = match console
        .app()
        .store()
        .backend()
        .latest_events(Some(&id), EVENTS_SHOWN)
        .await
    {
        Ok(list) => list
            .iter()
            .map(|e| {
                let mut v = events::view(e);
                v["DetailText"] = Value::String(v["Detail"].to_string());
                v
            })
            .collect(),
        Err(e) => {
            tracing::warn!("console events page: {e}");
            Vec::new()
        }
    };
    let last = shown.last().and_then(|e| e["Seq"].as_i64()).unwrap_or(0);
    shown.reverse();
    console.render(
        "events.html",
        json!({ "csrf": signed.csrf, "stack": stack, "events": shown, "last": last }),
    )
}

/// `GET /console/stacks/{id}/events/live?after=SEQ`: every event of the stack recorded after
/// `SEQ`, as server-sent `event` messages, as they happen.
pub async fn stack_events_live(
    State(console): State<Console>,
    _signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let after: i64 = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    // Subscribe before reading the table, so nothing recorded in between is lost; what both
    // deliver is dropped by sequence number.
    let rx = console.app().events().subscribe();
    let closed = console.closed();
    let state = (console, id, after, rx, closed, Vec::<Value>::new());
    let stream = stream::unfold(
        state,
        |(console, id, mut after, mut rx, mut closed, mut pending)| async move {
            loop {
                if *closed.borrow() {
                    return None;
                }
                if let Some(e) = pending.pop() {
                    let seq = e["Seq"].as_i64().unwrap_or(after);
                    if seq <= after {
                        continue;
                    }
                    after = seq;
                    let event = Event::default()
                        .event("event")
                        .id(seq.to_string())
                        .data(e.to_string());
                    return Some((Ok(event), (console, id, after, rx, closed, pending)));
                }
                // Catch up from the table (first time, and after falling behind the broadcast).
                if let Ok(list) = console
                    .app()
                    .store()
                    .backend()
                    .events_after(Some(&id), after, 500)
                    .await
                    && !list.is_empty()
                {
                    pending = list.iter().rev().map(events::view).collect();
                    continue;
                }
                tokio::select! {
                    got = rx.recv() => match got {
                        Ok(record) if record.event.stack_id == id => {
                            pending.push(events::view(&record));
                        }
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    },
                    _ = closed.changed() => return None,
                }
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}
