//! Monitoring in the console: charts of the agents' metrics (drawn by the server as SVG) per
//! stack, layer and instance over 1h to 2w, each for a principal who may read them.

use std::collections::HashMap;

use axum::extract::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use opsworks_api::ApiError;
use opsworks_model::resource::Stack;
use opsworks_server::core::metrics;
use opsworks_server::edge::metrics::READ_METRICS;
use opsworks_server::ops::authz;

use crate::Signed;
use crate::render::failure;

/// The periods a chart can span, as the metrics endpoints name them.
pub const PERIODS: &[&str] = &["1h", "8h", "24h", "1w", "2w"];
/// The metrics the console charts, in this order.
pub const CHARTED: &[&str] = &["cpu_user", "cpu_system", "memory_used", "load_1", "procs"];

/// The period a page asks for, `1h` unless it names a known one.
pub fn period(q: &HashMap<String, String>) -> String {
    q.get("Period")
        .filter(|p| PERIODS.contains(&p.as_str()))
        .cloned()
        .unwrap_or_else(|| "1h".to_string())
}

/// `GET /console/charts/chart.svg?InstanceId|LayerId|StackId=..&Metric=..&Period=..`: the
/// server's chart, for a signed-in principal who may read the stack's metrics (the rule of the
/// metrics endpoints: `DescribeInstances` on the stack).
pub async fn chart(signed: Signed, Query(q): Query<HashMap<String, String>>) -> Response {
    let core = signed.console().app();
    let refused = |status: StatusCode, text: String| (status, text).into_response();
    let scope = match metrics::scope(core, &q).await {
        Ok(s) => s,
        Err(e) => return refused(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if !signed.principal.is_root() {
        let allowed = match core.get::<Stack>(&scope.stack_id).await {
            Ok(stack) => {
                authz::require_on(&signed.principal, core.account_id(), READ_METRICS, &stack)
                    .map_err(|e| (StatusCode::FORBIDDEN, e.to_string()))
            }
            Err(e) => Err((StatusCode::NOT_FOUND, e.to_string())),
        };
        if let Err((status, text)) = allowed {
            return refused(status, text);
        }
    }
    match metrics::chart(core, &q).await {
        Ok(svg) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            svg,
        )
            .into_response(),
        Err(e) => refused(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// `GET /console/stacks/{id}/monitoring`: the stack's and each layer's charts.
pub async fn stack_monitoring(
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let stack = match signed
        .call("DescribeStacks", json!({ "StackIds": [id] }))
        .await
    {
        Ok(v) => v["Stacks"][0].clone(),
        Err(e) => return failure(&signed, e),
    };
    let layers = signed
        .call("DescribeLayers", json!({ "StackId": id }))
        .await
        .map(|v| v["Layers"].clone())
        .unwrap_or(Value::Array(Vec::new()));
    // The charts take the metrics' permission (DescribeInstances): refused here as a page, not
    // as broken images.
    let instances = match signed
        .call("DescribeInstances", json!({ "StackId": id }))
        .await
    {
        Ok(v) => v["Instances"].clone(),
        Err(e @ ApiError::AccessDenied(_)) => return failure(&signed, e),
        Err(_) => Value::Array(Vec::new()),
    };
    signed.render(
        "monitoring.html",
        json!({ "stack": stack, "layers": layers, "instances": instances,
                "period": period(&q), "periods": PERIODS, "metrics": CHARTED }),
    )
}
