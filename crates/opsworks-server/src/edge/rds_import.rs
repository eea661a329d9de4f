//! `POST /api/rds/import`: adds a database that runs elsewhere (another host, a managed
//! service) to the RDS catalog, so a stack can register it — what `opsworks rds import` calls.
//! RDS has no such operation, so it is not on the Query endpoint; it is signed like RDS's calls
//! (SigV4, service `rds`), authorized as `rds:CreateDBInstance` on the new DB instance's ARN and
//! written to the audit log as `ImportDBInstance`.
//!
//! Body: `{"DBInstanceIdentifier": "...", "Engine": "mysql|mariadb|postgres", "Address": "...",
//! "Port": 5432}`. Answer: `{"DBInstance": {...}}` shaped as DescribeDBInstances shows it, or
//! `{"__type": <RDS error code>, "message": ...}`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};

use opsworks_api::Service;
use opsworks_api::query::AwsError;
use opsworks_model::rds::{self as rules, Engine};

use crate::core::Core;
use crate::core::rds::{self, Import};
use crate::edge::auth::{self, Caller};
use crate::ops::query_calls::{self, Call, access_denied};
use crate::ops::{Ctx, rds as rds_ops};

/// The path.
pub const PATH: &str = "/api/rds/import";

/// The route.
pub fn routes() -> Router<Core> {
    Router::new().route(PATH, post(import))
}

#[derive(Debug, Deserialize)]
struct Body {
    #[serde(rename = "DBInstanceIdentifier")]
    identifier: String,
    #[serde(rename = "Engine")]
    engine: String,
    #[serde(rename = "Address")]
    address: String,
    #[serde(rename = "Port")]
    port: i64,
}

fn answer(result: Result<Value, AwsError>) -> Response {
    match result {
        Ok(v) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            v.to_string(),
        )
            .into_response(),
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status(Service::Rds)).unwrap_or(StatusCode::BAD_REQUEST);
            if let AwsError::Internal { detail } = &e {
                tracing::error!("rds import: {detail}");
            }
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                json!({"__type": e.code(), "message": e.message()}).to_string(),
            )
                .into_response()
        }
    }
}

async fn import(
    State(core): State<Core>,
    peer: auth::Peer,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = auth::authenticate_for(&core, &method, &uri, &headers, &body, peer, "rds").await;
    let principal = match caller {
        Ok(Caller::User(p)) => p,
        Ok(Caller::Instance(_)) => {
            return answer(Err(AwsError::service(
                "AccessDenied",
                "An instance's credential may not import databases",
            )));
        }
        Err(e) => return answer(Err(AwsError::from_auth(Service::Rds, &e))),
    };
    let cx = Ctx {
        core: &core,
        principal: &principal,
    };
    let parsed = serde_json::from_slice::<Body>(&body).map_err(|e| AwsError::Invalid {
        code: "InvalidParameterValue",
        message: format!(
            "The body must be JSON with DBInstanceIdentifier, Engine, Address and Port: {e}"
        ),
    });
    let target = parsed
        .as_ref()
        .map(|b| {
            rules::db_arn(
                core.region(),
                core.account_id(),
                &b.identifier.to_ascii_lowercase(),
            )
        })
        .unwrap_or_default();
    // Allowed to whoever may create DB instances; audited as the import it is.
    let call = |operation| Call {
        service: "rds",
        operation,
        target: &target,
        denied: access_denied,
    };
    let result = match parsed {
        Ok(b) => match query_calls::authorize(cx, &call("CreateDBInstance")) {
            Ok(()) => run(cx, b).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    query_calls::record(cx, &call("ImportDBInstance"), Some(&target), &result).await;
    answer(result)
}

async fn run(cx: Ctx<'_>, b: Body) -> Result<Value, AwsError> {
    let rule = |e: rules::RdsRuleError| AwsError::Invalid {
        code: e.code(),
        message: e.to_string(),
    };
    let identifier = rules::identifier(&b.identifier).map_err(rule)?;
    let engine = Engine::parse(&b.engine).map_err(rule)?;
    let port = u16::try_from(b.port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| AwsError::Invalid {
            code: "InvalidParameterValue",
            message: format!("Invalid port {}: a port is 1 to 65535.", b.port),
        })?;
    let address = b.address.trim();
    let plain_host = !address.is_empty()
        && address.len() <= 253
        && address
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    if !plain_host {
        return Err(AwsError::Invalid {
            code: "InvalidParameterValue",
            message: format!("Invalid address '{address}': give a host name or an IP address."),
        });
    }
    let db = rds::import(
        cx.core,
        Import {
            identifier,
            engine,
            address: address.to_string(),
            port,
        },
    )
    .await
    .map_err(rds_ops::rds_error)?;
    Ok(json!({"DBInstance": rds_ops::db_instance_shape(&db)}))
}
