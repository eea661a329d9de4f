//! The HTTP edge: AWS JSON 1.1 in, AWS JSON 1.1 out, one log line per request.

use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;

use opsworks_api::sigv4::{self, RequestParts};
use opsworks_api::{ApiError, CONTENT_TYPE, TARGET_PREFIX, model};

use crate::App;
use crate::ops::{self, Caller};

/// The router of the whole server.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/", post(api).get(index))
        .merge(crate::agents::routes())
        .merge(crate::logs::routes())
        .merge(crate::events::routes())
        .merge(crate::metrics::routes())
        .with_state(app)
}

/// `GET /`: a browser is sent to the web console; anything else is told what this endpoint is.
async fn index(headers: HeaderMap) -> Response {
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
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let operation = target
        .strip_prefix(TARGET_PREFIX)
        .unwrap_or(target)
        .to_string();
    let result = handle(&app, &method, &uri, &headers, &body, &operation).await;
    let status = match &result {
        Ok(_) => 200,
        Err(e) => e.status(),
    };
    let code = result.as_ref().err().map(ApiError::code).unwrap_or("");
    // Operation, outcome and latency only: bodies may hold secrets and are never logged.
    tracing::info!(
        target: "opsworks::request",
        request_id,
        operation = operation.as_str(),
        status,
        error = code,
        latency_us = started.elapsed().as_micros() as u64,
    );
    app.server_metrics()
        .record_request(&operation, status, started.elapsed());
    if let Err(ApiError::Internal(m)) = &result {
        tracing::error!(
            request_id,
            operation = operation.as_str(),
            "internal error: {m}"
        );
    }
    let text = match result {
        Ok(reply) => reply.into_text(),
        Err(e) => e.body(),
    };
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        text,
    )
        .into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-amzn-requestid", v);
    }
    response
}

/// Verifies the SigV4 signature of a request and says who signed it.
pub fn authenticate(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Caller, ApiError> {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
        .collect();
    let parts = RequestParts {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &pairs,
        body,
    };
    let now = jiff::Timestamp::now().as_second();
    let mut principal = String::new();
    let verified = sigv4::verify(&parts, now, |akid| {
        app.keys().get(akid).map(|c| {
            principal = c.principal;
            c.secret
        })
    })?;
    Ok(Caller {
        access_key_id: verified.access_key_id,
        principal,
        region: verified.region,
    })
}

async fn handle(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    operation: &str,
) -> Result<ops::Reply, ApiError> {
    let caller = authenticate(app, method, uri, headers, body)?;
    if caller
        .principal
        .starts_with(crate::agents::INSTANCE_PRINCIPAL)
    {
        // An instance's credential speaks the agent protocol only, never the public API.
        return Err(ApiError::AccessDenied(format!(
            "User: {} is not authorized to perform: opsworks:{operation}",
            caller.principal
        )));
    }

    let has_target = headers.contains_key("x-amz-target");
    if !has_target || model().operation(operation).is_none() {
        return Err(ApiError::UnknownOperation(if has_target {
            format!("Operation {operation} is not an operation of OpsWorks_20130218")
        } else {
            "Missing X-Amz-Target header".to_string()
        }));
    }
    let input: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::Serialization(format!("Request body is not valid JSON: {e}")))?
    };
    model().validate_input(operation, &input)?;
    ops::dispatch(app, &caller, operation, input).await
}
