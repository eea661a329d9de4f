//! The audit log over HTTP: `GET /api/audit?Principal=ARN&StackId=ID&StartTime=T&EndTime=T&After=SEQ&MaxResults=N`,
//! SigV4-signed like the API. The root reads everything; an IAM user needs a policy allowing
//! `opsworks:DescribeAuditLog` (on the stack's ARN with `StackId`, on `*` without): no
//! permission level grants it. The console's audit view reads through the same [`read`].

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use opsworks_api::ApiError;
use opsworks_model::resource::Stack;
use opsworks_store::{AuditQuery, AuditRecord};

use crate::core::{Core, audit};
use crate::edge::{auth, render};
use crate::ops::{Principal, authz};

/// The most entries one call answers with.
pub const PAGE: u32 = 1000;

/// The action an IAM user's policy must allow.
pub const ACTION: &str = "opsworks:DescribeAuditLog";

/// The audit log's route.
pub fn routes() -> Router<Core> {
    Router::new().route("/api/audit", get(list))
}

/// The endpoint's query (the console's audit view takes the same).
#[derive(Debug, Default, Deserialize)]
pub struct AuditParams {
    /// Only this principal's entries (an ARN).
    #[serde(rename = "Principal")]
    pub principal: Option<String>,
    /// Only this stack's.
    #[serde(rename = "StackId")]
    pub stack_id: Option<String>,
    /// Only from this time on (RFC 3339 or Unix seconds).
    #[serde(rename = "StartTime")]
    pub start_time: Option<String>,
    /// Only before this time.
    #[serde(rename = "EndTime")]
    pub end_time: Option<String>,
    /// Only entries after this sequence number.
    #[serde(rename = "After")]
    pub after: Option<String>,
    /// At most this many (up to [`PAGE`]).
    #[serde(rename = "MaxResults")]
    pub max_results: Option<String>,
}

/// An entry as the endpoint shows it.
pub fn view(r: &AuditRecord) -> Value {
    let e = &r.entry;
    json!({
        "Seq": r.seq,
        "At": e.at,
        "Principal": e.principal,
        "SourceIp": e.source_ip,
        "Service": e.service,
        "Operation": e.operation,
        "StackId": e.stack_id,
        "Target": e.target,
        "Outcome": e.outcome,
        "Detail": e.detail,
    })
}

/// A time given as RFC 3339 or Unix seconds, in the log's form.
fn time(name: &str, value: &str) -> Result<String, ApiError> {
    let t = value
        .parse::<jiff::Timestamp>()
        .ok()
        .or_else(|| {
            value
                .parse::<i64>()
                .ok()
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
        })
        .ok_or_else(|| {
            ApiError::Validation(format!(
                "{name} must be a time (2026-12-07T10:00:00Z or Unix seconds); got '{value}'"
            ))
        })?;
    Ok(opsworks_model::timestamp(t))
}

fn number(name: &str, value: &str) -> Result<i64, ApiError> {
    value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            ApiError::Validation(format!(
                "{name} must be a whole number, 0 or more; got '{value}'"
            ))
        })
}

async fn list(
    State(core): State<Core>,
    peer: auth::Peer,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<AuditParams>,
) -> Response {
    match answer(&core, peer, &method, &uri, &headers, &q).await {
        Ok(v) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            v.to_string(),
        )
            .into_response(),
        Err(e) => render::http_error(&e),
    }
}

async fn answer(
    core: &Core,
    peer: auth::Peer,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    q: &AuditParams,
) -> Result<Value, ApiError> {
    let principal = auth::authenticate_from(core, method, uri, headers, b"", peer)
        .await?
        .user("read the audit log")?;
    read(core, &principal, q).await
}

/// The entries `q` asks for, for `principal` (an IAM user needs a policy allowing [`ACTION`]):
/// `{"Entries": [...], "LastSeq": n}`, oldest first.
pub async fn read(core: &Core, principal: &Principal, q: &AuditParams) -> Result<Value, ApiError> {
    if let Some(user) = &principal.user {
        let resource = match &q.stack_id {
            Some(id) => core.get::<Stack>(id).await?.arn.clone(),
            None => "*".to_string(),
        };
        authz::decide(
            principal,
            user,
            core.account_id(),
            ACTION,
            &resource,
            Default::default(),
        )
        .map_err(ApiError::AccessDenied)?;
    }
    let since = q
        .start_time
        .as_deref()
        .map(|t| time("StartTime", t))
        .transpose()?;
    let until = q
        .end_time
        .as_deref()
        .map(|t| time("EndTime", t))
        .transpose()?;
    let after = q
        .after
        .as_deref()
        .map(|a| number("After", a))
        .transpose()?
        .unwrap_or(0);
    let limit = match &q.max_results {
        Some(m) => u32::try_from(number("MaxResults", m)?)
            .unwrap_or(PAGE)
            .clamp(1, PAGE),
        None => PAGE,
    };
    let entries = audit::list(
        core,
        AuditQuery {
            principal: q.principal.as_deref(),
            stack_id: q.stack_id.as_deref(),
            since: since.as_deref(),
            until: until.as_deref(),
            after,
            limit,
        },
    )
    .await?;
    let last = entries.last().map_or(after, |e| e.seq);
    Ok(json!({
        "Entries": entries.iter().map(view).collect::<Vec<_>>(),
        "LastSeq": last,
    }))
}
