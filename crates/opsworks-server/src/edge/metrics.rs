//! Monitoring over HTTP: `GET /api/metrics` (JSON series), `GET /api/metrics/chart.svg` (an SVG
//! chart) and `GET /metrics` (the Prometheus text exposition). Reading takes a SigV4-signed
//! request of a user, or `Authorization: Bearer <--metrics-token>`; `/metrics` is open to anyone
//! only with `--metrics-public`.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use subtle::ConstantTimeEq;

use opsworks_api::ApiError;
use opsworks_model::metrics::{Combine, METRICS};

use crate::core::metrics::{self, ScopeKind};
use crate::core::{Core, CoreError};
use crate::edge::{auth, render};
use crate::ops::{Principal, authz};
use opsworks_model::resource::Stack;

/// The metrics' routes (the agents' ingest route lives with the agent protocol).
pub fn routes() -> Router<Core> {
    Router::new()
        .route("/api/metrics", get(series_json))
        .route("/api/metrics/chart.svg", get(chart_svg))
        .route("/metrics", get(prometheus))
}

/// Lets a read through: a SigV4-signed request of a user's key, the bearer token, or anyone at
/// `/metrics` with `--metrics-public`. A request without credentials gets 401 with a
/// `WWW-Authenticate` that names the bearer scheme.
async fn authorize(
    core: &Core,
    peer: auth::Peer,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    exposition: bool,
) -> Result<Option<Principal>, Response> {
    let config = core.metrics_config();
    let auth_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let refused = |e: ApiError| Err(render::http_error(&e));
    match auth_header {
        Some(a) if a.len() > 7 && a[..7].eq_ignore_ascii_case("bearer ") => {
            let given = a[7..].trim().as_bytes();
            match &config.token {
                Some(t) if bool::from(t.as_bytes().ct_eq(given)) => Ok(None),
                Some(_) => refused(ApiError::AccessDenied(
                    "the bearer token is not the metrics token".into(),
                )),
                None => refused(ApiError::AccessDenied(
                    "bearer tokens are not accepted: the server has no --metrics-token".into(),
                )),
            }
        }
        Some(_) => match auth::authenticate_from(core, method, uri, headers, b"", peer).await {
            Ok(caller) => match caller.user("read metrics") {
                Ok(p) => Ok(Some(p)),
                Err(e) => refused(e),
            },
            // A signature that does not pass is a credential refused: 403, with its own code.
            Err(e) => {
                let mut r = render::http_error(&e);
                *r.status_mut() = StatusCode::FORBIDDEN;
                Err(r)
            }
        },
        None if exposition && config.public => Ok(None),
        None => {
            let mut r = render::http_error(&ApiError::MissingAuthenticationToken(
                "metrics need a SigV4-signed request or Authorization: Bearer <--metrics-token>"
                    .into(),
            ));
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"opsworks-metrics\""),
            );
            Err(r)
        }
    }
}

/// The operation whose permission reading an instance's, layer's or stack's metrics takes (any
/// level from Show up, as the original's monitoring pages).
pub const READ_METRICS: &str = "DescribeInstances";

/// Refuses an IAM user who may not read the metrics of `stack_id`.
async fn may_read(core: &Core, who: &Option<Principal>, stack_id: &str) -> Result<(), Response> {
    let Some(p) = who.as_ref().filter(|p| !p.is_root()) else {
        return Ok(());
    };
    let stack = core.get::<Stack>(stack_id).await.map_err(failed)?;
    authz::require_on(p, core.account_id(), READ_METRICS, &stack)
        .map_err(|e| render::http_error(&e))
}

fn failed(e: CoreError) -> Response {
    render::http_error(&ApiError::from(e))
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

async fn series_json(
    State(core): State<Core>,
    peer: auth::Peer,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let who = match authorize(&core, peer, &method, &uri, &headers, false).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    match metrics::scope(&core, &q).await {
        Ok(scope) => {
            if let Err(r) = may_read(&core, &who, &scope.stack_id).await {
                return r;
            }
        }
        Err(e) => return failed(e),
    }
    let run = async {
        let scope = metrics::scope(&core, &q).await?;
        let (period, seconds) = metrics::period(&q)?;
        let series = metrics::series(&core, &scope, seconds).await?;
        Ok::<_, CoreError>((scope, period, series))
    };
    let (scope, period, series) = match run.await {
        Ok(v) => v,
        Err(e) => return failed(e),
    };
    let aggregate = scope.kind != ScopeKind::Instance;
    let timestamps: Vec<i64> = series.rows.iter().map(|r| r.0).collect();
    let shown: Vec<_> = METRICS
        .iter()
        .enumerate()
        .map(|(i, def)| {
            let mut m = json!({
                "Name": def.name,
                "Label": def.label,
                "Unit": def.unit,
                "Average": series.rows.iter().map(|r| round(r.1[i])).collect::<Vec<_>>(),
            });
            if aggregate && def.combine == Combine::AverageAndSum {
                m["Sum"] = json!(
                    series
                        .rows
                        .iter()
                        .map(|r| round(r.2[i]))
                        .collect::<Vec<_>>()
                );
            }
            m
        })
        .collect();
    let body = json!({
        scope.kind.param(): scope.id,
        "Name": scope.name,
        "InstanceIds": scope.instances,
        "Period": period,
        "Resolution": series.resolution,
        "StepSeconds": series.step,
        "From": series.from,
        "To": series.to,
        "Timestamps": timestamps,
        "Metrics": shown,
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn chart_svg(
    State(core): State<Core>,
    peer: auth::Peer,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let who = match authorize(&core, peer, &method, &uri, &headers, false).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    match metrics::scope(&core, &q).await {
        Ok(scope) => {
            if let Err(r) = may_read(&core, &who, &scope.stack_id).await {
                return r;
            }
        }
        Err(e) => return failed(e),
    }
    match metrics::chart(&core, &q).await {
        Ok(svg) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
        Err(e) => failed(e),
    }
}

async fn prometheus(
    State(core): State<Core>,
    peer: auth::Peer,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let who = match authorize(&core, peer, &method, &uri, &headers, true).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    // Every stack's instances at once: an IAM user needs a policy allowing it on every stack.
    if let Some(p) = who.as_ref().filter(|p| !p.is_root())
        && let Some(user) = &p.user
        && let Err(m) = authz::decide(
            p,
            user,
            core.account_id(),
            "opsworks:DescribeInstances",
            "*",
            Default::default(),
        )
    {
        return render::http_error(&ApiError::AccessDenied(m));
    }
    match metrics::prometheus::exposition(&core).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            let mut r = failed(e);
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        }
    }
}
