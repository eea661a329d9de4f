//! Command logs over HTTP: `LogUrl` is a link to `GET /logs/<command id>` signed with the data
//! dir's link key and valid for an hour, as the original's presigned S3 links were.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::App;
use crate::agents::log_path;

/// How long a `LogUrl` stays valid.
pub const LINK_SECONDS: i64 = 3600;

fn signature(app: &App, command_id: &str, expires: i64) -> String {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(app.link_key())
        .expect("hmac takes any key length");
    mac.update(format!("{command_id}\n{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The signed link to a command's log, when the command has a log and the server knows its URL.
pub fn log_url(app: &App, command_id: &str) -> Option<String> {
    let endpoint = app.endpoint()?;
    if !log_path(app, command_id).exists() {
        return None;
    }
    let expires = jiff::Timestamp::now().as_second() + LINK_SECONDS;
    Some(format!(
        "{endpoint}/logs/{command_id}?Expires={expires}&Signature={}",
        signature(app, command_id, expires)
    ))
}

/// The route serving logs.
pub fn routes() -> Router<App> {
    Router::new().route("/logs/{command_id}", get(get_log))
}

#[derive(Deserialize)]
struct LinkQuery {
    #[serde(rename = "Expires")]
    expires: Option<i64>,
    #[serde(rename = "Signature")]
    signature: Option<String>,
}

async fn get_log(
    State(app): State<App>,
    Path(command_id): Path<String>,
    Query(q): Query<LinkQuery>,
) -> Response {
    let (Some(expires), Some(sig)) = (q.expires, q.signature) else {
        return (
            StatusCode::FORBIDDEN,
            "this link needs its Expires and Signature parameters\n",
        )
            .into_response();
    };
    let expected = signature(&app, &command_id, expires);
    if !bool::from(expected.as_bytes().ct_eq(sig.as_bytes())) {
        return (
            StatusCode::FORBIDDEN,
            "the link's signature does not match\n",
        )
            .into_response();
    }
    if jiff::Timestamp::now().as_second() > expires {
        return (
            StatusCode::FORBIDDEN,
            "the link has expired; describe the command again for a fresh one\n",
        )
            .into_response();
    }
    match tokio::fs::read(log_path(&app, &command_id)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], bytes).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "no log for this command\n").into_response(),
    }
}
