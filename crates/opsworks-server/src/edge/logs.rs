//! Command logs over HTTP: `GET /logs/<command id>?Expires=..&Signature=..`, the signed link
//! DescribeCommands hands out as `LogUrl` (`core::logs`).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::core::Core;
use crate::core::logs::{self, LinkError};

/// The route serving logs.
pub fn routes() -> Router<Core> {
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
    State(core): State<Core>,
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
    let now = jiff::Timestamp::now().as_second();
    match logs::open_link(&core, &command_id, expires, &sig, now) {
        Ok(()) => {}
        Err(LinkError::NotAnId) => {
            return (StatusCode::NOT_FOUND, "no such log\n").into_response();
        }
        Err(e) => return (StatusCode::FORBIDDEN, format!("{e}\n")).into_response(),
    }
    match logs::read(&core, &command_id).await {
        Ok(Some(text)) => {
            ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
        }
        Ok(None) => (StatusCode::NOT_FOUND, "no log for this command\n").into_response(),
        Err(e) => {
            tracing::warn!(command_id, "reading a log: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the log cannot be read now; try again\n",
            )
                .into_response()
        }
    }
}
