//! The OpsWorks API endpoint: AWS JSON 1.1 in, AWS JSON 1.1 out, one log line per request.
//!
//! A request flows: read the body, authenticate ([`auth`]), find the operation in
//! `X-Amz-Target`, parse and validate the body against the service model, run the operation
//! (`ops::dispatch`), render the answer or the error ([`render`]).

use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;

use opsworks_api::{ApiError, CONTENT_TYPE, TARGET_PREFIX, model};

use crate::core::Core;
use crate::edge::{auth, query, render};
use crate::ops::{self, Ctx};

/// The largest request body the API takes (the largest real ones, custom JSON and policy
/// documents, are well under it).
pub const MAX_BODY_BYTES: usize = 2 << 20;

/// The API's routes: `POST /` for OpsWorks (`X-Amz-Target`) and the Query services
/// ([`query`]), `GET /` for the Query services' GET form and the way to the console.
pub fn routes() -> Router<Core> {
    Router::new().route("/", post(api).get(index))
}

/// `GET /`: a Query call by GET (`?Action=...`); otherwise a browser is sent to the web console
/// and anything else is told what this endpoint is.
async fn index(
    State(core): State<Core>,
    peer: auth::Peer,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if uri.query().is_some_and(|q| !q.is_empty())
        && let Some(service) = query::route(&headers, &uri, b"")
    {
        return query::serve(
            &core,
            service,
            peer,
            &method,
            &uri,
            &headers,
            &axum::body::Bytes::new(),
        )
        .await;
    }
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        return (StatusCode::SEE_OTHER, [(header::LOCATION, "/console/")]).into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "OpsWorks Stacks API endpoint: POST / with X-Amz-Target: OpsWorks_20130218.<Operation>.\n\
         The web console is at /console/.\n",
    )
        .into_response()
}

/// Serves one API call.
async fn api(
    State(core): State<Core>,
    peer: auth::Peer,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            let e = ApiError::RequestTooLarge(format!(
                "The request body is larger than this server takes ({MAX_BODY_BYTES} bytes)"
            ));
            return render::error(&e, None);
        }
    };
    if let Some(service) = query::route(&headers, &uri, &body) {
        return query::serve(&core, service, peer, &method, &uri, &headers, &body).await;
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let operation = target.strip_prefix(TARGET_PREFIX);
    let result = handle(
        &core, peer, &method, &uri, &headers, &body, target, operation,
    )
    .await;
    let op_name = operation.unwrap_or(target);
    let status = match &result {
        Ok(_) => 200,
        Err(e) => e.status(),
    };
    // Operation, outcome and latency only: bodies may hold secrets and are never logged.
    tracing::info!(
        target: "opsworks::request",
        request_id,
        operation = op_name,
        status,
        error = result.as_ref().err().map(ApiError::code).unwrap_or(""),
        latency_us = started.elapsed().as_micros() as u64,
    );
    core.server_metrics()
        .record_request(op_name, status, started.elapsed());
    match result {
        Ok(reply) => {
            let mut response = (StatusCode::OK, reply.0).into_response();
            let h = response.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            if let Ok(v) = HeaderValue::from_str(&request_id) {
                h.insert("x-amzn-requestid", v);
            }
            response
        }
        Err(e) => {
            if let ApiError::Internal(m) = &e {
                tracing::error!(request_id, operation = op_name, "internal error: {m}");
            }
            render::error(&e, Some(&request_id))
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    core: &Core,
    peer: auth::Peer,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    target: &str,
    operation: Option<&str>,
) -> Result<ops::Reply, ApiError> {
    let caller = auth::authenticate_from(core, method, uri, headers, body, peer).await?;
    let principal = caller.user(&format!("opsworks:{}", operation.unwrap_or(target)))?;
    let operation = match operation {
        Some(op) if model().operation(op).is_some() => op,
        _ if target.is_empty() => {
            return Err(ApiError::UnknownOperation(
                "Missing X-Amz-Target header".to_string(),
            ));
        }
        _ => {
            return Err(ApiError::UnknownOperation(format!(
                "Operation {target} is not an operation of OpsWorks_20130218"
            )));
        }
    };
    let input: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::Serialization(format!("Request body is not valid JSON: {e}")))?
    };
    model().validate_input(operation, &input)?;
    ops::dispatch(
        Ctx {
            core,
            principal: &principal,
        },
        operation,
        input,
    )
    .await
}
