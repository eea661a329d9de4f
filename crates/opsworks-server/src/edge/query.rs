//! The Query endpoint: IAM and STS (and later RDS, ELB, EC2) on the same `POST /` as the
//! OpsWorks API, told apart from it by the absence of `X-Amz-Target` and routed by the service of
//! the SigV4 credential scope (`Credential=AKID/DATE/REGION/iam/aws4_request`), or, unsigned, by
//! the `Version` its parameters carry. A request flows: authenticate (the service's own XML error
//! when unsigned or wrongly signed), parse and validate against the service's botocore model
//! (`opsworks_api::query`), run the service's handler table, write the XML answer.
//!
//! Serving another service is one more [`QueryService`] in [`SERVICES`]: its `Service` and the
//! function that dispatches its operations.

use std::time::Instant;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use serde_json::Value;

use opsworks_api::query::{self, AwsError};
use opsworks_api::sigv4::{self, RequestParts};
use opsworks_api::{ApiError, Service};

use crate::core::Core;
use crate::edge::auth::{self, Caller, Peer};
use crate::ops::{self, Ctx};

/// The handler table of one Query service: runs `operation` (one its model serves) with its
/// parsed, validated input and returns the output shaped like the operation's output shape.
pub type Dispatch = for<'a> fn(Ctx<'a>, &'a str, Value) -> BoxFuture<'a, Result<Value, AwsError>>;

/// A Query service this endpoint answers.
pub struct QueryService {
    /// Which service (its model, protocol, signing name and version).
    pub service: Service,
    /// Its operations.
    pub dispatch: Dispatch,
}

/// Every Query service served.
pub static SERVICES: &[QueryService] = &[
    QueryService {
        service: Service::Iam,
        dispatch: ops::iam::dispatch,
    },
    QueryService {
        service: Service::Sts,
        dispatch: ops::sts::dispatch,
    },
    QueryService {
        service: Service::Rds,
        dispatch: ops::rds::dispatch,
    },
    QueryService {
        service: Service::Ec2,
        dispatch: ops::ec2::dispatch,
    },
];

fn served(service: Service) -> Option<&'static QueryService> {
    SERVICES.iter().find(|s| s.service == service)
}

/// The Query service a request without `X-Amz-Target` is for: the one its credential scope
/// names, or, unsigned, the one whose `Version` it carries; `None` when it is none of ours (the
/// OpsWorks endpoint then answers as before).
pub fn route(headers: &HeaderMap, uri: &Uri, body: &[u8]) -> Option<Service> {
    if headers.contains_key("x-amz-target") {
        return None;
    }
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
        .collect();
    let parts = RequestParts {
        method: "POST",
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &pairs,
        body,
    };
    if let Some(name) = sigv4::scope_service(&parts) {
        return Service::from_signing_name(name).filter(|s| *s != Service::OpsWorks);
    }
    // Unsigned: the API version says which service the caller meant.
    let version = |text: &[u8]| {
        form_pairs(text)
            .into_iter()
            .find(|(k, _)| k == "Version")
            .map(|(_, v)| v)
    };
    let v = version(uri.query().unwrap_or("").as_bytes()).or_else(|| version(body))?;
    Service::ALL
        .into_iter()
        .find(|s| *s != Service::OpsWorks && s.api_version() == v)
}

/// `key=value&...` pairs, percent-decoded (only to route; the service's parser reads the form).
fn form_pairs(text: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(text).into_owned().collect()
}

/// Serves one Query call of `service`.
pub async fn serve(
    core: &Core,
    service: Service,
    peer: Peer,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let (operation, result) = handle(core, service, peer, method, uri, headers, body).await;
    let op_name = format!(
        "{}:{}",
        service.signing_name(),
        operation.as_deref().unwrap_or("-")
    );
    let rendered = query::respond(
        service,
        operation.as_deref().unwrap_or(""),
        &result,
        &request_id,
    );
    if let Some(detail) = &rendered.log_detail {
        tracing::error!(request_id, operation = op_name, "internal error: {detail}");
    }
    // Operation, outcome and latency only: bodies may hold secrets and are never logged.
    tracing::info!(
        target: "opsworks::request",
        request_id,
        operation = op_name,
        status = rendered.status,
        error = result.as_ref().err().map(AwsError::code).unwrap_or(""),
        latency_us = started.elapsed().as_micros() as u64,
    );
    core.server_metrics()
        .record_request(&op_name, rendered.status, started.elapsed());
    let status = StatusCode::from_u16(rendered.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, rendered.body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(query::CONTENT_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-amzn-requestid", v);
    }
    response
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    core: &Core,
    service: Service,
    peer: Peer,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> (Option<String>, Result<Value, AwsError>) {
    let auth_error = |e: ApiError| AwsError::from_auth(service, &e);
    let caller = match auth::authenticate_for(
        core,
        method,
        uri,
        headers,
        body,
        peer,
        service.signing_name(),
    )
    .await
    {
        Ok(c) => c,
        Err(e @ ApiError::Internal(_)) | Err(e @ ApiError::ServiceUnavailable(_)) => {
            return (None, Err(AwsError::internal(e.message().to_string())));
        }
        Err(e) => return (None, Err(auth_error(e))),
    };
    let principal = match caller {
        Caller::User(p) => p,
        Caller::Instance(id) => {
            let e = Caller::Instance(id)
                .user(&format!("{}:*", service.signing_name()))
                .expect_err("an instance is refused");
            return (None, Err(auth_error(e)));
        }
    };
    let request = match query::parse_request(service, uri.query().unwrap_or(""), body) {
        Ok(r) => r,
        Err(e) => return (None, Err(e)),
    };
    let Some(table) = served(service) else {
        return (
            Some(request.operation.clone()),
            Err(AwsError::UnsupportedOperation {
                message: format!(
                    "The operation {} of {} is not supported by this server.",
                    request.operation,
                    service.model().metadata.service_id
                ),
            }),
        );
    };
    let cx = Ctx {
        core,
        principal: &principal,
    };
    let result = (table.dispatch)(cx, &request.operation, request.input).await;
    (Some(request.operation), result)
}
