//! Command logs over HTTP: `GET /logs/<command id>?Expires=..&Signature=..`, the signed link
//! DescribeCommands hands out as `LogUrl` (`core::logs`).

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use opsworks_model::resource::{Command, Stack};

use crate::core::logs::{self, LinkError};
use crate::core::{Core, CoreError, identity};
use crate::edge::auth::Peer;
use crate::ops::{Principal, authz};

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
    #[serde(rename = "Principal")]
    principal: Option<String>,
}

/// Whether the IAM user a link was handed to may still read the command's stack (their policies
/// and level as they are now).
async fn still_allowed(
    core: &Core,
    user_id: &str,
    command_id: &str,
    peer: Peer,
) -> Result<(), String> {
    let denied = |e: CoreError| e.to_string();
    let stamps = identity::stamps(core).await.map_err(denied)?;
    let access = identity::user_access(core, user_id, &stamps)
        .await
        .map_err(denied)?
        .ok_or("the user this link was made for no longer exists")?;
    let command = core.get::<Command>(command_id).await.map_err(denied)?;
    let stack = core.get::<Stack>(&command.stack_id).await.map_err(denied)?;
    let p = Principal::iam_user(access, "", core.region()).from_ip(peer.0.map(|a| a.ip()));
    authz::require_on(&p, core.account_id(), "DescribeCommands", &stack)
        .map_err(|e| e.message().to_string())
}

async fn get_log(
    State(core): State<Core>,
    peer: Peer,
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
    match logs::open_link(
        &core,
        &command_id,
        expires,
        q.principal.as_deref(),
        &sig,
        now,
    ) {
        Ok(()) => {}
        Err(LinkError::NotAnId) => {
            return (StatusCode::NOT_FOUND, "no such log\n").into_response();
        }
        Err(e) => return (StatusCode::FORBIDDEN, format!("{e}\n")).into_response(),
    }
    if let Some(user_id) = &q.principal
        && let Err(why) = still_allowed(&core, user_id, &command_id, peer).await
    {
        return (StatusCode::FORBIDDEN, format!("{why}\n")).into_response();
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
