//! Errors as AWS renders them: the core's errors mapped to the API's codes (the one place that
//! mapping happens), and the JSON error body every endpoint answers with.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use opsworks_api::{ApiError, CONTENT_TYPE};
use opsworks_store::StoreError;

use crate::core::CoreError;

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound { kind, id } => ApiError::not_found(kind, &id),
            CoreError::Invalid(m) => ApiError::Validation(m),
            CoreError::Forbidden(m) => ApiError::AccessDenied(m),
            CoreError::Store(StoreError::DiskFull(detail)) => {
                tracing::error!("store: the disk is full: {detail}");
                ApiError::ServiceUnavailable(
                    "The server's disk is full, so nothing was changed; retry once the operator has freed space".into(),
                )
            }
            CoreError::Store(StoreError::Busy(detail)) => {
                tracing::warn!("store busy: {detail}");
                ApiError::ServiceUnavailable(
                    "The server's database is busy; retry in a moment".into(),
                )
            }
            CoreError::Store(other) => {
                tracing::error!("store error: {other}");
                ApiError::Internal("The server could not reach its store; see its log".into())
            }
            CoreError::Machine(m) => {
                tracing::error!("instance provider: {m}");
                ApiError::Internal(format!("The instance provider failed: {m}"))
            }
            CoreError::Io(m) => {
                tracing::error!("{m}");
                ApiError::Internal("The server could not write its data dir; see its log".into())
            }
        }
    }
}

/// An API error as a response: `{"__type": code, "message": ...}` with AWS's status, the
/// request ID header when there is one. Internal details never reach the body.
pub fn error(e: &ApiError, request_id: Option<&str>) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = (status, e.body()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        h.insert("x-amzn-requestid", id);
    }
    r
}

/// An error of an endpoint outside the API (events, metrics): the same body, with the statuses
/// HTTP clients expect — 401 for missing or bad credentials, 403 for a credential that may not,
/// 404 for what does not exist.
pub fn http_error(e: &ApiError) -> Response {
    let status = match e {
        ApiError::MissingAuthenticationToken(_)
        | ApiError::UnrecognizedClient(_)
        | ApiError::InvalidSignature(_)
        | ApiError::IncompleteSignature(_) => StatusCode::UNAUTHORIZED,
        ApiError::AccessDenied(_) => StatusCode::FORBIDDEN,
        ApiError::ResourceNotFound(_) => StatusCode::NOT_FOUND,
        other => StatusCode::from_u16(other.status()).unwrap_or(StatusCode::BAD_REQUEST),
    };
    let mut r = (status, e.body()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
