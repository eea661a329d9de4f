//! The event log: every instance, command and deployment status change, service error and scaling
//! event, kept in the store (bounded by age and count) and served as JSON
//! (`GET /api/events?StackId=..&Since=<seq>`) and as a live server-sent event stream
//! (`GET /api/events/stream?StackId=..`, resumable with `Last-Event-ID`).
//!
//! Events are recorded at the few central places where things change ([`record`] is called by
//! `ops::instances::change_status_locked`, `ops::deployments::finish_command_locked`,
//! `ops::catalog::record_service_error_locked` and the scheduler), never by individual handlers.
//! Recording appends to the table and then broadcasts, one at a time, so subscribers see events in
//! sequence order; a stream subscribes before it reads what it missed, so nothing falls between.

use std::collections::VecDeque;
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
use opsworks_store::{EventRecord, NewEvent};

use crate::App;
use crate::ops::stacks::load_stack;

/// `Type` of an instance status change (`Detail`: `From`, `To`, `Cause`).
pub const INSTANCE_STATUS: &str = "instance_status";
/// `Type` of a command that ended (`Detail`: `Type`, `Status`, `ExitCode`).
pub const COMMAND_STATUS: &str = "command_status";
/// `Type` of a deployment whose status changed (`Detail`: `Command`, `From`, `Status`).
pub const DEPLOYMENT_STATUS: &str = "deployment_status";
/// `Type` of a service error (`Detail`: `ServiceErrorId`, `Type`, `Message`).
pub const SERVICE_ERROR: &str = "service_error";
/// `Type` of a time-based start or stop (`Detail`: `Action`, `Hour`).
pub const TIME_SCALING: &str = "time_scaling";
/// `Type` of a load-based scaling event of a layer (`Detail`: `Direction`, `InstanceIds`).
pub const LOAD_SCALING: &str = "load_scaling";

/// The most events one `GET /api/events` answers with (and one catch-up read of a stream).
pub const PAGE: u32 = 500;

/// How many recordings pass between two prunes of old events.
const PRUNE_EVERY: u64 = 256;

/// The live side of the event log: the recording order, the subscribers, the retention.
pub struct EventHub {
    tx: broadcast::Sender<Arc<EventRecord>>,
    /// Held while an event is appended and broadcast, so broadcast order is sequence order; counts
    /// recordings for pruning.
    order: tokio::sync::Mutex<u64>,
    retention: Duration,
    max_rows: u64,
    closing: watch::Sender<bool>,
}

impl EventHub {
    /// A hub keeping events for `retention`, at most `max_rows` of them.
    pub fn new(retention: Duration, max_rows: u64) -> Self {
        let (tx, _) = broadcast::channel(1024);
        let (closing, _) = watch::channel(false);
        Self {
            tx,
            order: tokio::sync::Mutex::new(0),
            retention,
            max_rows: max_rows.max(1),
            closing,
        }
    }

    /// A receiver of every event recorded from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventRecord>> {
        self.tx.subscribe()
    }

    /// Ends every open stream (the server is shutting down; open streams would hold it up).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }
}

/// An event of `kind` in `stack_id` happening now, with no IDs and an empty detail yet.
pub fn new_event(stack_id: &str, kind: &str) -> NewEvent {
    NewEvent {
        at: crate::ops::now(),
        stack_id: stack_id.to_string(),
        kind: kind.to_string(),
        instance_id: None,
        layer_id: None,
        deployment_id: None,
        command_id: None,
        detail: json!({}),
    }
}

/// Records an event and hands it to the live streams. Never fails the caller: the change it
/// describes has happened already, so a store failure here is logged, not returned.
pub async fn record(app: &App, event: NewEvent) {
    let hub = app.events();
    let mut count = hub.order.lock().await;
    let seq = match app.store().append_event(&event).await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::warn!(kind = event.kind, "event not recorded: {e}");
            return;
        }
    };
    // No subscriber is fine: the event is in the table for whoever comes later.
    let _ = hub.tx.send(Arc::new(EventRecord { seq, event }));
    *count += 1;
    if *count % PRUNE_EVERY == 1 {
        let horizon = jiff::SignedDuration::try_from(hub.retention)
            .ok()
            .and_then(|d| jiff::Timestamp::now().checked_sub(d).ok())
            .unwrap_or(jiff::Timestamp::MIN);
        let before = opsworks_model::timestamp(horizon);
        match app.store().prune_events(&before, hub.max_rows).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(dropped = n, "old events pruned"),
            Err(e) => tracing::warn!("pruning events: {e}"),
        }
    }
}

/// An event as the endpoints show it: `Seq`, `At`, `StackId`, `Type`, the IDs it concerns, and
/// `Detail`.
pub fn view(e: &EventRecord) -> Value {
    let ev = &e.event;
    let mut m = Map::new();
    m.insert("Seq".into(), json!(e.seq));
    m.insert("At".into(), json!(ev.at));
    m.insert("StackId".into(), json!(ev.stack_id));
    m.insert("Type".into(), json!(ev.kind));
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
pub fn routes() -> Router<App> {
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

/// An error of the event endpoints, in the API's JSON shape. Authentication failures answer 401,
/// a credential that may not read events 403, the rest as the API answers them.
fn error_response(e: &ApiError) -> Response {
    let status = match e {
        ApiError::MissingAuthenticationToken(_)
        | ApiError::UnrecognizedClient(_)
        | ApiError::InvalidSignature(_)
        | ApiError::IncompleteSignature(_) => StatusCode::UNAUTHORIZED,
        ApiError::AccessDenied(_) => StatusCode::FORBIDDEN,
        other => StatusCode::from_u16(other.status()).unwrap_or(StatusCode::BAD_REQUEST),
    };
    if let ApiError::Internal(m) = e {
        tracing::error!("events endpoint: {m}");
    }
    let mut r = (status, e.body()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(opsworks_api::CONTENT_TYPE),
    );
    r
}

/// Checks the request's SigV4 signature (as the API does; the body of a GET is empty) and that the
/// caller may read events (an instance's credential may not), and the stack named, if any.
async fn authorize(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    query: &EventQuery,
) -> Result<(), ApiError> {
    let caller = crate::http::authenticate(app, method, uri, headers, b"")?;
    if caller
        .principal
        .starts_with(crate::agents::INSTANCE_PRINCIPAL)
    {
        return Err(ApiError::AccessDenied(format!(
            "User: {} is not authorized to read events",
            caller.principal
        )));
    }
    if let Some(stack) = &query.stack_id {
        load_stack(app, stack).await?;
    }
    Ok(())
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
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<EventQuery>,
) -> Response {
    match list_events_inner(&app, &method, &uri, &headers, &query).await {
        Ok(v) => {
            let mut r = (StatusCode::OK, v.to_string()).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => error_response(&e),
    }
}

async fn list_events_inner(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    query: &EventQuery,
) -> Result<Value, ApiError> {
    authorize(app, method, uri, headers, query).await?;
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
    let events = app
        .store()
        .events_after(query.stack_id.as_deref(), since, limit)
        .await
        .map_err(crate::ops::store_error)?;
    let last = events.last().map_or(since, |e| e.seq);
    Ok(json!({
        "Events": events.iter().map(view).collect::<Vec<_>>(),
        "LastSeq": last,
    }))
}

/// Where a stream is: what it still has to send from the table, and the last seq it sent.
struct Cursor {
    app: App,
    rx: broadcast::Receiver<Arc<EventRecord>>,
    closing: watch::Receiver<bool>,
    stack_id: Option<String>,
    /// The last seq sent; `None` until the first event when the client resumed from nothing.
    last: Option<i64>,
    /// Events read from the table, not yet sent.
    backlog: VecDeque<EventRecord>,
    /// Whether the table may hold more than `backlog` after `last` (resuming, or lagged behind).
    catching_up: bool,
}

impl Cursor {
    fn wants(&self, e: &EventRecord) -> bool {
        self.last.is_none_or(|l| e.seq > l)
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
                return Some(e);
            }
            if self.catching_up {
                let after = self.last.unwrap_or(0);
                match self
                    .app
                    .store()
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
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<EventQuery>,
) -> Response {
    if let Err(e) = authorize(&app, &method, &uri, &headers, &query).await {
        return error_response(&e);
    }
    let resume = match headers.get("last-event-id") {
        Some(v) => Some(parse_seq("Last-Event-ID", v.to_str().unwrap_or("?"))),
        None => query.since.as_deref().map(|s| parse_seq("Since", s)),
    };
    let last = match resume.transpose() {
        Ok(l) => l,
        Err(e) => return error_response(&e),
    };
    // Subscribe before reading the table, so an event recorded in between is not lost (and one
    // seen twice is dropped by its seq).
    let cursor = Cursor {
        rx: app.events().subscribe(),
        closing: app.events().closing.subscribe(),
        app: app.clone(),
        stack_id: query.stack_id,
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
