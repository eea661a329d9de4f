//! The event log over HTTP: `GET /api/events?StackId=..&Since=<seq>` (a page as JSON) and
//! `GET /api/events/stream?StackId=..` (server-sent events, resumable with `Last-Event-ID`).
//! Both take the API's SigV4 signature of a user; the events are recorded by the core.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, watch};

use opsworks_api::ApiError;
use opsworks_model::resource::Stack;
use opsworks_store::EventRecord;

use crate::core::{Core, CoreError};
use crate::edge::{auth, render};
use crate::ops::authz;

/// The most events one `GET /api/events` answers with (and one catch-up read of a stream).
pub const PAGE: u32 = 500;

/// An event as the endpoints show it: `Seq`, `At`, `StackId`, `Type`, the IDs it concerns, and
/// `Detail`.
pub fn view(e: &EventRecord) -> Value {
    let ev = &e.event;
    let mut m = Map::new();
    m.insert("Seq".into(), json!(e.seq));
    m.insert("At".into(), json!(ev.at));
    m.insert("StackId".into(), json!(ev.stack_id));
    m.insert("Type".into(), json!(ev.kind.as_str()));
    for (name, id) in [
        ("InstanceId", &ev.instance_id),
        ("LayerId", &ev.layer_id),
        ("DeploymentId", &ev.deployment_id),
        ("CommandId", &ev.command_id),
    ] {
        if let Some(id) = id {
            m.insert(name.into(), json!(id));
        }
    }
    m.insert("Detail".into(), ev.detail.clone());
    Value::Object(m)
}

/// The routes of the event log.
pub fn routes() -> Router<Core> {
    Router::new()
        .route("/api/events", get(list_events))
        .route("/api/events/stream", get(stream_events))
}

/// The query of both endpoints.
#[derive(Debug, Deserialize)]
struct EventQuery {
    #[serde(rename = "StackId")]
    stack_id: Option<String>,
    #[serde(rename = "Since")]
    since: Option<String>,
    #[serde(rename = "Limit")]
    limit: Option<String>,
}

/// The operation whose permission reading a stack's events takes (any level from Show up).
pub const READ_EVENTS: &str = "DescribeStacks";

/// Checks the request's SigV4 signature (as the API does; the body of a GET is empty), that the
/// caller may read events (an instance's credential may not) and, for an IAM user, may see the
/// stack named; answers the stacks whose events the caller may see (`None`: all, the root's).
async fn authorize(
    core: &Core,
    peer: auth::Peer,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    query: &EventQuery,
) -> Result<Option<HashSet<String>>, ApiError> {
    let principal = auth::authenticate_from(core, method, uri, headers, b"", peer)
        .await?
        .user("read events")?;
    if let Some(stack) = &query.stack_id {
        let stack = core.get::<Stack>(stack).await?;
        authz::require_on(&principal, core.account_id(), READ_EVENTS, &stack)?;
    }
    if principal.is_root() {
        return Ok(None);
    }
    Ok(Some(
        core.list::<Stack>(opsworks_store::Filter::All)
            .await?
            .iter()
            .filter(|s| authz::allowed_on(&principal, core.account_id(), READ_EVENTS, s))
            .map(|s| s.stack_id.clone())
            .collect(),
    ))
}

fn parse_seq(name: &str, value: &str) -> Result<i64, ApiError> {
    value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            ApiError::Validation(format!(
                "{name} must be a sequence number (a whole number, 0 or more); got '{value}'"
            ))
        })
}

/// `GET /api/events?StackId=..&Since=<seq>&Limit=<n>`: the events after `Since` (default 0), oldest
/// first, at most `Limit` (default and most [`PAGE`]); `{"Events": [...], "LastSeq": n}` where
/// `LastSeq` is the `Since` of the next call.
async fn list_events(
    State(core): State<Core>,
    peer: auth::Peer,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<EventQuery>,
) -> Response {
    match list_events_inner(&core, peer, &method, &uri, &headers, &query).await {
        Ok(v) => {
            let mut r = (StatusCode::OK, v.to_string()).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => render::http_error(&e),
    }
}

async fn list_events_inner(
    core: &Core,
    peer: auth::Peer,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    query: &EventQuery,
) -> Result<Value, ApiError> {
    let visible = authorize(core, peer, method, uri, headers, query).await?;
    let since = match &query.since {
        Some(s) => parse_seq("Since", s)?,
        None => 0,
    };
    let limit = match &query.limit {
        Some(l) => u32::try_from(parse_seq("Limit", l)?)
            .unwrap_or(PAGE)
            .clamp(1, PAGE),
        None => PAGE,
    };
    let events = core
        .store()
        .backend()
        .events_after(query.stack_id.as_deref(), since, limit)
        .await
        .map_err(CoreError::from)?;
    let last = events.last().map_or(since, |e| e.seq);
    Ok(json!({
        "Events": events
            .iter()
            .filter(|e| visible.as_ref().is_none_or(|v| v.contains(&e.event.stack_id)))
            .map(view)
            .collect::<Vec<_>>(),
        "LastSeq": last,
    }))
}

/// Where a stream is: what it still has to send from the table, and the last seq it sent.
struct Cursor {
    core: Core,
    rx: broadcast::Receiver<Arc<EventRecord>>,
    closing: watch::Receiver<bool>,
    stack_id: Option<String>,
    /// The stacks the caller may see (`None`: all).
    visible: Option<HashSet<String>>,
    /// The last seq sent; `None` until the first event when the client resumed from nothing.
    last: Option<i64>,
    /// Events read from the table, not yet sent.
    backlog: VecDeque<EventRecord>,
    /// Whether the table may hold more than `backlog` after `last` (resuming, or lagged behind).
    catching_up: bool,
}

impl Cursor {
    fn wants(&self, e: &EventRecord) -> bool {
        self.visible
            .as_ref()
            .is_none_or(|v| v.contains(&e.event.stack_id))
            && self.last.is_none_or(|l| e.seq > l)
            && self
                .stack_id
                .as_deref()
                .is_none_or(|s| s == e.event.stack_id)
    }

    /// The next event to send, or `None` when the stream ends (server shutting down).
    async fn next(&mut self) -> Option<EventRecord> {
        loop {
            if let Some(e) = self.backlog.pop_front() {
                self.last = Some(e.seq);
                if self
                    .visible
                    .as_ref()
                    .is_some_and(|v| !v.contains(&e.event.stack_id))
                {
                    continue;
                }
                return Some(e);
            }
            if self.catching_up {
                let after = self.last.unwrap_or(0);
                match self
                    .core
                    .store()
                    .backend()
                    .events_after(self.stack_id.as_deref(), after, PAGE)
                    .await
                {
                    Ok(page) => {
                        self.catching_up = page.len() == PAGE as usize;
                        self.backlog.extend(page);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!("event stream: reading missed events: {e}");
                        return None;
                    }
                }
            }
            let got = tokio::select! {
                got = self.rx.recv() => got,
                _ = self.closing.wait_for(|c| *c) => return None,
            };
            match got {
                Ok(e) if self.wants(&e) => {
                    self.last = Some(e.seq);
                    return Some((*e).clone());
                }
                Ok(_) => {}
                // Fell behind the live channel: what was missed is in the table.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.catching_up = self.last.is_some();
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// `GET /api/events/stream?StackId=..`: server-sent events, one per recorded event, `id` its seq
/// and `data` its JSON ([`view`]). A client that reconnects with `Last-Event-ID` (or gives
/// `Since`) first gets what it missed from the table; otherwise the stream starts with the next
/// event. Comments keep the connection alive every 15 s.
async fn stream_events(
    State(core): State<Core>,
    peer: auth::Peer,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<EventQuery>,
) -> Response {
    let visible = match authorize(&core, peer, &method, &uri, &headers, &query).await {
        Ok(v) => v,
        Err(e) => return render::http_error(&e),
    };
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(parse_seq("Last-Event-ID", v.to_str().unwrap_or("?"))),
        None => query.since.as_deref().map(|s| parse_seq("Since", s)),
    };
    let last = match resume.transpose() {
        Ok(l) => l,
        Err(e) => return render::http_error(&e),
    };
    // Subscribe before reading the table, so an event recorded in between is not lost (and one
    // seen twice is dropped by its seq).
    let cursor = Cursor {
        rx: core.events().subscribe(),
        closing: core.events().closing(),
        core: core.clone(),
        stack_id: query.stack_id,
        visible,
        last,
        backlog: VecDeque::new(),
        catching_up: last.is_some(),
    };
    let stream = futures_util::stream::unfold(cursor, |mut c| async move {
        let e = c.next().await?;
        let sse = SseEvent::default()
            .id(e.seq.to_string())
            .data(view(&e).to_string());
        Some((Ok::<_, Infallible>(sse), c))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
