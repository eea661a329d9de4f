//! Monitoring in the console: charts of the agents' metrics (drawn by the server as SVG) per
//! stack, layer and instance over 1h to 2w.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::render::failure;
use crate::{Console, Signed};

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
/// server's chart, for a signed-in browser.
pub async fn chart(
    State(console): State<Console>,
    _signed: Signed,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match opsworks_server::core::metrics::chart(console.app(), &q).await {
        Ok(svg) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            svg,
        )
            .into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// `GET /console/stacks/{id}/monitoring`: the stack's and each layer's charts.
pub async fn stack_monitoring(
    State(console): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let stack = match console
        .call("DescribeStacks", json!({ "StackIds": [id] }))
        .await
    {
        Ok(v) => v["Stacks"][0].clone(),
        Err(e) => return failure(&console, &signed, e),
    };
    let layers = console
        .call("DescribeLayers", json!({ "StackId": id }))
        .await
        .map(|v| v["Layers"].clone())
        .unwrap_or(Value::Array(Vec::new()));
    let instances = console
        .call("DescribeInstances", json!({ "StackId": id }))
        .await
        .map(|v| v["Instances"].clone())
        .unwrap_or(Value::Array(Vec::new()));
    console.render(
        "monitoring.html",
        json!({ "csrf": signed.csrf, "stack": stack, "layers": layers, "instances": instances,
                "period": period(&q), "periods": PERIODS, "metrics": CHARTED }),
    )
}
