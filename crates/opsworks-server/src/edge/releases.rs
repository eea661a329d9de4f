//! `POST /api/agent-releases` with header `x-opsworks-agent-version: V`: an operator adds an
//! agent release (the executable as the body, SigV4-signed with the account's root key, the
//! header signed too; `opsworks agent-version add` sends it). The
//! server keeps the file under its SHA-256 in the data dir and records the release, so
//! DescribeAgentVersions lists it and stacks and instances may name it. The server never runs
//! what it is sent: the version comes with the request.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use opsworks_api::ApiError;

use crate::core::agent_releases::{self, RELEASES_DIR};
use crate::core::{Core, keys};
use crate::edge::{auth, render};

/// The largest executable accepted.
const MAX_RELEASE_BYTES: usize = 1 << 30;

/// The routes.
pub fn routes() -> Router<Core> {
    Router::new().route(
        "/api/agent-releases",
        post(add).layer(axum::extract::DefaultBodyLimit::max(MAX_RELEASE_BYTES)),
    )
}

/// The header that names the release's version.
pub const VERSION_HEADER: &str = "x-opsworks-agent-version";

async fn add(
    State(core): State<Core>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match add_inner(&core, &method, &uri, &headers, body).await {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => render::http_error(&e),
    }
}

async fn add_inner(
    core: &Core,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<serde_json::Value, ApiError> {
    let caller = auth::authenticate(core, method, uri, headers, &body)
        .await?
        .user("opsworks:AddAgentRelease")?;
    if caller.name != keys::ROOT {
        return Err(ApiError::AccessDenied(format!(
            "User: {} is not authorized to add agent releases: only the account's root may",
            caller.name
        )));
    }
    let signed = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains(VERSION_HEADER));
    let version = headers
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && signed)
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::Validation(format!(
                "the signed header {VERSION_HEADER} must name the release's version (the server does not run what it is sent to find out)"
            ))
        })?;
    let dir = core.data_dir().join(RELEASES_DIR);
    let tmp = dir.join(format!(".upload-{}", uuid::Uuid::new_v4()));
    let write = {
        let (dir, tmp) = (dir.clone(), tmp.clone());
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(&tmp, body)
        })
    };
    write
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(format!("keeping the release: {e}")))?;
    let added = agent_releases::add(core.store(), core.data_dir(), &tmp, Some(&version)).await;
    let _ = std::fs::remove_file(&tmp);
    let r = added.map_err(|e| match e {
        agent_releases::AddError::Store(s) => ApiError::from(crate::core::CoreError::Store(s)),
        agent_releases::AddError::Io { .. } => ApiError::Internal(e.to_string()),
        other => ApiError::Validation(
            other
                .to_string()
                .replace(&tmp.display().to_string(), "the file sent"),
        ),
    })?;
    tracing::info!(
        version = r.version,
        sha256 = r.sha256,
        "agent release added"
    );
    Ok(json!({
        "Version": r.version,
        "Sha256": r.sha256,
        "Architecture": r.architecture,
        "Size": r.size,
    }))
}
