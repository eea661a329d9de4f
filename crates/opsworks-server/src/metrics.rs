//! Monitoring: agents' samples in (`POST /agent/v1/metrics`, see `agents.rs`), and out as layer
//! averages for load-based scaling ([`layer_averages`]), JSON series (`GET /api/metrics`), SVG
//! line charts (`GET /api/metrics/chart.svg`) and the Prometheus text exposition (`GET /metrics`),
//! plus the background task that rolls samples up and prunes them ([`run_maintenance`]).
//!
//! Reading needs a SigV4-signed request of a user's key (as the API), or `Authorization: Bearer
//! <--metrics-token>`; `GET /metrics` is open to anyone only with `--metrics-public`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use opsworks_api::ApiError;
use opsworks_model::scaling::Sample;
use opsworks_protocol::{MAX_METRICS_BATCH, METRIC_NAMES, MetricsBatch};
pub use opsworks_store::metrics::Retention;
use opsworks_store::metrics::{Point, ROLLUP_SECONDS, Resolution, Values};
use opsworks_store::{Filter, Kind};

use crate::App;
use crate::ops::doc_str as s;
use crate::ops::{list, load, store_error};

/// The metrics' routes (the agents' ingest route lives with the agent protocol).
pub fn routes() -> Router<App> {
    Router::new()
        .route("/api/metrics", get(series_json))
        .route("/api/metrics/chart.svg", get(chart_svg))
        .route("/metrics", get(prometheus))
}

/// Index of a metric name in [`METRIC_NAMES`].
fn index(name: &str) -> Option<usize> {
    METRIC_NAMES.iter().position(|n| *n == name)
}

const CPU_IDLE: usize = 0;
const MEMORY_TOTAL: usize = 10;
const MEMORY_USED: usize = 11;
const LOAD_1: usize = 12;

/// A metric's label and unit, for people.
fn describe(i: usize) -> (&'static str, &'static str) {
    const D: [(&str, &str); 16] = [
        ("CPU idle", "Percent"),
        ("CPU nice", "Percent"),
        ("CPU steal", "Percent"),
        ("CPU system", "Percent"),
        ("CPU user", "Percent"),
        ("CPU I/O wait", "Percent"),
        ("Memory buffers", "KiB"),
        ("Memory cached", "KiB"),
        ("Memory free", "KiB"),
        ("Swap used", "KiB"),
        ("Memory total", "KiB"),
        ("Memory used", "KiB"),
        ("Load average (1 min)", "Count"),
        ("Load average (5 min)", "Count"),
        ("Load average (15 min)", "Count"),
        ("Processes", "Count"),
    ];
    D[i]
}

/// Whether a sum across instances means something (memory, load, processes; not CPU shares).
fn summable(i: usize) -> bool {
    i >= 6
}

// ---------------------------------------------------------------------------------------------
// Ingest and maintenance

/// Stores an agent's batch: at most [`MAX_METRICS_BATCH`] samples of finite values, none more
/// than five minutes ahead of the server's clock; samples already past the raw retention are
/// dropped quietly.
pub async fn ingest(app: &App, batch: &MetricsBatch) -> Result<(), ApiError> {
    if batch.samples.len() > MAX_METRICS_BATCH {
        return Err(ApiError::Validation(format!(
            "a metrics batch holds at most {MAX_METRICS_BATCH} samples, not {}",
            batch.samples.len()
        )));
    }
    let now = jiff::Timestamp::now().as_second();
    let oldest = now - app.metrics_config().retention.raw_seconds;
    let mut rows = Vec::with_capacity(batch.samples.len());
    for sample in &batch.samples {
        if sample.at > now + 300 {
            return Err(ApiError::Validation(format!(
                "sample time {} is ahead of the server's clock ({now}); check the instance's clock",
                sample.at
            )));
        }
        if let Some(bad) = sample.values.iter().position(|v| !v.is_finite()) {
            return Err(ApiError::Validation(format!(
                "sample at {} has a value for {} that is not a finite number",
                sample.at, METRIC_NAMES[bad]
            )));
        }
        if sample.at >= oldest {
            rows.push((sample.at, sample.values));
        }
    }
    load(app, Kind::Instance, "instance", &batch.instance_id).await?;
    app.store()
        .metrics()
        .insert_samples(&batch.instance_id, &rows)
        .await
        .map_err(store_error)?;
    app.server_metrics().record_samples(rows.len());
    Ok(())
}

/// Rolls samples up and prunes them every minute, forever.
pub async fn run_maintenance(app: App) {
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let now = jiff::Timestamp::now().as_second();
        let retention = app.metrics_config().retention;
        match app.store().metrics().maintain(now, retention).await {
            Ok(done) => tracing::debug!(?done, "metrics maintenance"),
            Err(e) => tracing::warn!("metrics maintenance failed: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

/// The average over a layer's online instances, per sample-time bucket since `since`: cpu =
/// 100 - cpu_idle, memory = memory_used / memory_total * 100, load = load_1. Buckets are the
/// sampling interval wide (an instance with two samples in one bucket counts once, averaged);
/// oldest first. This is what load-based scaling reads.
pub async fn layer_averages(
    app: &App,
    layer_id: &str,
    since: jiff::Timestamp,
) -> Result<Vec<Sample>, ApiError> {
    let layer = load(app, Kind::Layer, "layer", layer_id).await?;
    let ids: Vec<String> = layer_instances(app, s(&layer, "StackId"), layer_id)
        .await?
        .into_iter()
        .filter(|i| s(i, "Status") == "online")
        .map(|i| s(&i, "InstanceId").to_string())
        .collect();
    let step = app.metrics_config().interval_seconds.max(1) as i64;
    let from = since.as_second();
    let points = app
        .store()
        .metrics()
        .points(&ids, Resolution::Raw, from, i64::MAX)
        .await
        .map_err(store_error)?;
    // A sample whose CPU shares are all zero has no CPU reading (an agent's first sample, or a
    // second with no tick): left out, or its cpu_idle of 0 would read as 100 % busy.
    let points: Vec<Point> = points
        .into_iter()
        .filter(|p| p.values[CPU_IDLE..CPU_IDLE + 6].iter().any(|x| *x != 0.0))
        .collect();
    let derived = |v: &Values| {
        let memory = if v[MEMORY_TOTAL] > 0.0 {
            v[MEMORY_USED] / v[MEMORY_TOTAL] * 100.0
        } else {
            0.0
        };
        [100.0 - v[CPU_IDLE], memory, v[LOAD_1]]
    };
    Ok(bucketed(&points, step, |v| derived(v).to_vec())
        .into_iter()
        .filter_map(|(at, avg, _)| {
            Some(Sample {
                at: jiff::Timestamp::from_second(at).ok()?,
                cpu: avg[0],
                memory: avg[1],
                load: avg[2],
            })
        })
        .collect())
}

/// Groups points in `step`-wide buckets: each instance's values in a bucket are averaged, then
/// the bucket gets the average and the sum over instances of `f(values)`. Oldest first.
fn bucketed(
    points: &[Point],
    step: i64,
    f: impl Fn(&Values) -> Vec<f64>,
) -> Vec<(i64, Vec<f64>, Vec<f64>)> {
    // bucket → instance → (count, sums)
    let mut buckets: BTreeMap<i64, HashMap<&str, (f64, Vec<f64>)>> = BTreeMap::new();
    for p in points {
        let b = p.at.div_euclid(step) * step;
        let vals = f(&p.values);
        let e = buckets
            .entry(b)
            .or_default()
            .entry(p.instance_id.as_str())
            .or_insert_with(|| (0.0, vec![0.0; vals.len()]));
        e.0 += 1.0;
        e.1.iter_mut().zip(vals).for_each(|(s, x)| *s += x);
    }
    buckets
        .into_iter()
        .map(|(at, per)| {
            let n = per.len() as f64;
            let width = per.values().next().map_or(0, |e| e.1.len());
            let mut sum = vec![0.0; width];
            for (count, sums) in per.values() {
                sum.iter_mut().zip(sums).for_each(|(t, x)| *t += x / count);
            }
            let avg = sum.iter().map(|x| x / n).collect();
            (at, avg, sum)
        })
        .collect()
}

/// The instances of a layer (of stack `stack_id`).
async fn layer_instances(
    app: &App,
    stack_id: &str,
    layer_id: &str,
) -> Result<Vec<Value>, ApiError> {
    Ok(list(app, Kind::Instance, Filter::Stack(stack_id))
        .await?
        .into_iter()
        .filter(|i| layer_ids(i).iter().any(|l| l == layer_id))
        .collect())
}

fn layer_ids(inst: &Value) -> Vec<String> {
    inst.get("LayerIds")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// What a read asks about.
struct Scope {
    /// `InstanceId`, `LayerId` or `StackId`.
    kind: &'static str,
    id: String,
    /// A readable name (the hostname, the layer's or stack's name).
    name: String,
    instances: Vec<String>,
}

async fn scope(app: &App, q: &HashMap<String, String>) -> Result<Scope, ApiError> {
    let given: Vec<&'static str> = ["InstanceId", "LayerId", "StackId"]
        .into_iter()
        .filter(|k| q.contains_key(*k))
        .collect();
    let [kind] = given[..] else {
        return Err(ApiError::Validation(
            "give exactly one of InstanceId, LayerId or StackId".into(),
        ));
    };
    let id = q[kind].clone();
    match kind {
        "InstanceId" => {
            let inst = load(app, Kind::Instance, "instance", &id).await?;
            Ok(Scope {
                kind,
                name: s(&inst, "Hostname").to_string(),
                instances: vec![id.clone()],
                id,
            })
        }
        "LayerId" => {
            let layer = load(app, Kind::Layer, "layer", &id).await?;
            let instances = layer_instances(app, s(&layer, "StackId"), &id)
                .await?
                .iter()
                .map(|i| s(i, "InstanceId").to_string())
                .collect();
            Ok(Scope {
                kind,
                name: s(&layer, "Name").to_string(),
                instances,
                id,
            })
        }
        _ => {
            let stack = load(app, Kind::Stack, "stack", &id).await?;
            let instances = list(app, Kind::Instance, Filter::Stack(&id))
                .await?
                .iter()
                .map(|i| s(i, "InstanceId").to_string())
                .collect();
            Ok(Scope {
                kind,
                name: s(&stack, "Name").to_string(),
                instances,
                id,
            })
        }
    }
}

/// The console's periods: `1h`, `8h`, `24h`, `1w`, `2w`.
fn period(q: &HashMap<String, String>) -> Result<(String, i64), ApiError> {
    let p = q.get("Period").map(String::as_str).unwrap_or("1h");
    let seconds = match p {
        "1h" => 3600,
        "8h" => 8 * 3600,
        "24h" => 24 * 3600,
        "1w" => 7 * 24 * 3600,
        "2w" => 14 * 24 * 3600,
        other => {
            return Err(ApiError::Validation(format!(
                "Period must be one of 1h, 8h, 24h, 1w, 2w, not {other:?}"
            )));
        }
    };
    Ok((p.to_string(), seconds))
}

/// The series of a read: time buckets, with per-metric averages and sums over the instances.
struct Series {
    resolution: &'static str,
    step: i64,
    from: i64,
    to: i64,
    rows: Vec<(i64, Vec<f64>, Vec<f64>)>,
}

async fn read_series(app: &App, scope: &Scope, seconds: i64) -> Result<Series, ApiError> {
    let config = app.metrics_config();
    let to = jiff::Timestamp::now().as_second();
    let from = to - seconds;
    // Up to 8 hours of raw samples; longer periods (or past the raw retention) read the averages.
    let raw = seconds <= 8 * 3600 && seconds <= config.retention.raw_seconds;
    let (resolution, step, res) = if raw {
        (
            "raw",
            config.interval_seconds.max(1) as i64,
            Resolution::Raw,
        )
    } else {
        ("5m", ROLLUP_SECONDS, Resolution::Rollup)
    };
    let points = app
        .store()
        .metrics()
        .points(&scope.instances, res, from, to + 1)
        .await
        .map_err(store_error)?;
    let rows = bucketed(&points, step, |v| v.to_vec());
    Ok(Series {
        resolution,
        step,
        from,
        to,
        rows,
    })
}

async fn series_json(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let run = async {
        authorize(&app, &method, &uri, &headers, false)?;
        let scope = scope(&app, &q).await.map_err(Denied::Api)?;
        let (period, seconds) = period(&q).map_err(Denied::Api)?;
        let series = read_series(&app, &scope, seconds)
            .await
            .map_err(Denied::Api)?;
        let aggregate = scope.kind != "InstanceId";
        let timestamps: Vec<i64> = series.rows.iter().map(|r| r.0).collect();
        let metrics: Vec<Value> = (0..METRIC_NAMES.len())
            .map(|i| {
                let (label, unit) = describe(i);
                let mut m = json!({
                    "Name": METRIC_NAMES[i],
                    "Label": label,
                    "Unit": unit,
                    "Average": series.rows.iter().map(|r| round(r.1[i])).collect::<Vec<_>>(),
                });
                if aggregate && summable(i) {
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
        Ok::<_, Denied>(json!({
            scope.kind: scope.id,
            "Name": scope.name,
            "InstanceIds": scope.instances,
            "Period": period,
            "Resolution": series.resolution,
            "StepSeconds": series.step,
            "From": series.from,
            "To": series.to,
            "Timestamps": timestamps,
            "Metrics": metrics,
        }))
    };
    match run.await {
        Ok(body) => (
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------------------------
// SVG charts

async fn chart_svg(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let run = async {
        authorize(&app, &method, &uri, &headers, false)?;
        chart(&app, &q).await.map_err(Denied::Api)
    };
    match run.await {
        Ok(svg) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The SVG chart a query asks for (`InstanceId`/`LayerId`/`StackId`, `Metric`, `Period`), for
/// whoever already decided the caller may see it (the endpoint above, the console).
pub async fn chart(app: &App, q: &HashMap<String, String>) -> Result<String, ApiError> {
    let scope = scope(app, q).await?;
    let (period, seconds) = period(q)?;
    let name = q.get("Metric").map(String::as_str).unwrap_or("cpu_user");
    let i = index(name).ok_or_else(|| {
        ApiError::Validation(format!(
            "Metric must be one of {}, not {name:?}",
            METRIC_NAMES.join(", ")
        ))
    })?;
    let series = read_series(app, &scope, seconds).await?;
    let (label, unit) = describe(i);
    let what = match scope.kind {
        "InstanceId" => format!("instance {}", scope.name),
        "LayerId" => format!("layer {} (average)", scope.name),
        _ => format!("stack {} (average)", scope.name),
    };
    let points: Vec<(i64, f64)> = series.rows.iter().map(|r| (r.0, r.1[i])).collect();
    Ok(render_chart(
        &format!("{label} — {what}, last {period}"),
        unit,
        series.from,
        series.to,
        series.step,
        &points,
    ))
}

/// Escapes text for XML.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" upper bound and tick step for values up to `max`.
fn nice_scale(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 0.25);
    }
    let raw = max / 4.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn number(x: f64) -> String {
    if x.abs() >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x.abs() >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// A line chart of `points` (Unix seconds, value) between `from` and `to`: title, y axis with
/// its unit and ticks, x axis with UTC times, gaps where samples are missing.
pub fn render_chart(
    title: &str,
    unit: &str,
    from: i64,
    to: i64,
    step: i64,
    points: &[(i64, f64)],
) -> String {
    const W: f64 = 640.0;
    const H: f64 = 260.0;
    const L: f64 = 64.0;
    const R: f64 = 16.0;
    const T: f64 = 36.0;
    const B: f64 = 40.0;
    let (pw, ph) = (W - L - R, H - T - B);
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let (top, ystep) = if unit == "Percent" {
        (100.0, 25.0)
    } else {
        nice_scale(max)
    };
    let span = (to - from).max(1) as f64;
    let x = |t: i64| L + (t - from) as f64 / span * pw;
    let y = |v: f64| T + ph - (v.clamp(0.0, top) / top) * ph;
    let mut out = String::new();
    out.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"11\">\n"
    ));
    out.push_str(&format!("<title>{}</title>\n", xml(title)));
    out.push_str(&format!(
        "<rect width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>\n"
    ));
    out.push_str(&format!(
        "<text x=\"{L}\" y=\"20\" font-size=\"13\" font-weight=\"bold\" fill=\"#222\">{}</text>\n",
        xml(title)
    ));
    // Y grid and ticks.
    let mut v = 0.0;
    while v <= top + ystep / 2.0 {
        let yy = y(v);
        out.push_str(&format!(
            "<line x1=\"{L}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#e5e5e5\"/>\n<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>\n",
            L + pw,
            L - 6.0,
            yy + 4.0,
            number(v)
        ));
        v += ystep;
    }
    out.push_str(&format!(
        "<text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\" fill=\"#555\">{}</text>\n",
        T + ph / 2.0,
        T + ph / 2.0,
        xml(unit)
    ));
    // X ticks: 6 intervals, labelled in UTC.
    for k in 0..=6 {
        let t = from + (to - from) * k / 6;
        let xx = x(t);
        let label = jiff::Timestamp::from_second(t)
            .map(|ts| {
                if to - from > 2 * 24 * 3600 {
                    ts.strftime("%m-%d %H:%M").to_string()
                } else {
                    ts.strftime("%H:%M").to_string()
                }
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "<line x1=\"{xx:.1}\" y1=\"{:.1}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>\n<text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{label}</text>\n",
            T + ph,
            T + ph + 4.0,
            T + ph + 16.0
        ));
    }
    out.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#888\">UTC</text>\n",
        L + pw,
        H - 6.0
    ));
    // Axes.
    out.push_str(&format!(
        "<path d=\"M{L} {T} V{:.1} H{:.1}\" fill=\"none\" stroke=\"#333\"/>\n",
        T + ph,
        L + pw
    ));
    if points.is_empty() {
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#888\" font-size=\"13\">No data</text>\n",
            L + pw / 2.0,
            T + ph / 2.0
        ));
    } else {
        // A new segment wherever samples are missing for more than two steps.
        let mut d = String::new();
        let mut last: Option<i64> = None;
        for (t, v) in points {
            let cmd = match last {
                Some(l) if t - l <= 2 * step => 'L',
                _ => 'M',
            };
            d.push_str(&format!("{cmd}{:.1} {:.1} ", x(*t), y(*v)));
            last = Some(*t);
        }
        out.push_str(&format!(
            "<path d=\"{}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" stroke-linejoin=\"round\"/>\n",
            d.trim_end()
        ));
    }
    out.push_str("</svg>\n");
    out
}

// ---------------------------------------------------------------------------------------------
// Prometheus

/// Latency histogram bounds, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The server's own counters, exposed at `/metrics`.
#[derive(Debug, Default)]
pub struct ServerMetrics {
    inner: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    /// API requests by (operation, HTTP status).
    requests: BTreeMap<(String, u16), u64>,
    /// Latency histogram: counts per bucket (the last is +Inf), sum, count.
    latency: [u64; LATENCY_BUCKETS.len() + 1],
    latency_sum: f64,
    latency_count: u64,
    samples: u64,
}

impl ServerMetrics {
    /// Counts an API request. Operations the model does not know count as `unknown`, so callers
    /// cannot grow the label set.
    pub fn record_request(&self, operation: &str, status: u16, latency: Duration) {
        let op = if opsworks_api::model().operation(operation).is_some() {
            operation
        } else {
            "unknown"
        };
        let secs = latency.as_secs_f64();
        let mut c = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *c.requests.entry((op.to_string(), status)).or_default() += 1;
        let b = LATENCY_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(LATENCY_BUCKETS.len());
        c.latency[b] += 1;
        c.latency_sum += secs;
        c.latency_count += 1;
    }

    /// Counts samples stored.
    pub fn record_samples(&self, n: usize) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).samples += n as u64;
    }
}

/// Escapes a label value of the text exposition.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Samples older than this are not exported (Prometheus's own staleness horizon).
const STALE_SECONDS: i64 = 300;

async fn prometheus(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = authorize(&app, &method, &uri, &headers, true) {
        return e.into_response();
    }
    match exposition(&app).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => Denied::Api(e).into_response(),
    }
}

/// The text exposition: every instance's latest sample (one series per layer it belongs to),
/// then the server's own metrics.
pub async fn exposition(app: &App) -> Result<String, ApiError> {
    use std::fmt::Write as _;
    let now = jiff::Timestamp::now().as_second();
    let latest = app.store().metrics().latest().await.map_err(store_error)?;
    let instances: HashMap<String, Value> = list(app, Kind::Instance, Filter::All)
        .await?
        .into_iter()
        .map(|i| (s(&i, "InstanceId").to_string(), i))
        .collect();
    // (labels, sample) for each instance and layer.
    let mut series: Vec<(String, &Point)> = Vec::new();
    for p in latest.iter().filter(|p| now - p.at <= STALE_SECONDS) {
        let Some(inst) = instances.get(&p.instance_id) else {
            continue;
        };
        for layer in layer_ids(inst) {
            series.push((
                format!(
                    "stack_id=\"{}\",layer_id=\"{}\",instance_id=\"{}\",hostname=\"{}\"",
                    label(s(inst, "StackId")),
                    label(&layer),
                    label(&p.instance_id),
                    label(s(inst, "Hostname"))
                ),
                p,
            ));
        }
    }
    let mut out = String::new();
    for (i, name) in METRIC_NAMES.iter().enumerate() {
        let (desc, unit) = describe(i);
        let _ = writeln!(
            out,
            "# HELP opsworks_instance_{name} {desc} ({unit}), the instance's latest sample.\n# TYPE opsworks_instance_{name} gauge"
        );
        for (labels, p) in &series {
            let _ = writeln!(out, "opsworks_instance_{name}{{{labels}}} {}", p.values[i]);
        }
    }
    let _ = writeln!(
        out,
        "# HELP opsworks_instance_sample_timestamp_seconds When the instance's latest sample was taken.\n# TYPE opsworks_instance_sample_timestamp_seconds gauge"
    );
    for (labels, p) in &series {
        let _ = writeln!(
            out,
            "opsworks_instance_sample_timestamp_seconds{{{labels}}} {}",
            p.at
        );
    }
    // Commands by status, from the store.
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    for c in list(app, Kind::Command, Filter::All).await? {
        *by_status.entry(s(&c, "Status").to_string()).or_default() += 1;
    }
    let _ = writeln!(
        out,
        "# HELP opsworks_commands Commands in the store by status.\n# TYPE opsworks_commands gauge"
    );
    for (status, n) in &by_status {
        let _ = writeln!(out, "opsworks_commands{{status=\"{}\"}} {n}", label(status));
    }
    let within = Duration::from_secs(crate::agents::HEARTBEAT_SECONDS * 3);
    let _ = writeln!(
        out,
        "# HELP opsworks_agents_connected Agents polling now or heard from in the last {}s.\n# TYPE opsworks_agents_connected gauge\nopsworks_agents_connected {}",
        within.as_secs(),
        app.agents_connected(within)
    );
    let c = app
        .server_metrics()
        .inner
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let _ = writeln!(
        out,
        "# HELP opsworks_metrics_samples_total Instance metric samples stored.\n# TYPE opsworks_metrics_samples_total counter\nopsworks_metrics_samples_total {}",
        c.samples
    );
    let _ = writeln!(
        out,
        "# HELP opsworks_api_requests_total API requests by operation and HTTP status.\n# TYPE opsworks_api_requests_total counter"
    );
    for ((op, status), n) in &c.requests {
        let _ = writeln!(
            out,
            "opsworks_api_requests_total{{operation=\"{}\",status=\"{status}\"}} {n}",
            label(op)
        );
    }
    let _ = writeln!(
        out,
        "# HELP opsworks_api_request_duration_seconds API request latency.\n# TYPE opsworks_api_request_duration_seconds histogram"
    );
    let mut cumulative = 0;
    for (k, le) in LATENCY_BUCKETS.iter().enumerate() {
        cumulative += c.latency[k];
        let _ = writeln!(
            out,
            "opsworks_api_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "opsworks_api_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\nopsworks_api_request_duration_seconds_sum {}\nopsworks_api_request_duration_seconds_count {}",
        c.latency_count, c.latency_sum, c.latency_count
    );
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Authorization

/// Why a read was refused, or failed.
enum Denied {
    /// No credentials at all (401).
    Missing(String),
    /// Credentials that do not pass (403).
    Forbidden(ApiError),
    /// A bad request or a failure while answering.
    Api(ApiError),
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Denied::Missing(m) => (
                StatusCode::UNAUTHORIZED,
                "MissingAuthenticationTokenException",
                m,
            ),
            Denied::Forbidden(e) => (StatusCode::FORBIDDEN, e.code(), e.message().to_string()),
            Denied::Api(e) => {
                if let ApiError::Internal(m) = &e {
                    tracing::error!("metrics: {m}");
                }
                let status = match e {
                    ApiError::ResourceNotFound(_) => StatusCode::NOT_FOUND,
                    ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    _ => StatusCode::BAD_REQUEST,
                };
                let message = match &e {
                    ApiError::Internal(_) => "internal error; see the server's log".to_string(),
                    other => other.message().to_string(),
                };
                (status, e.code(), message)
            }
        };
        let mut r = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"__type": code, "message": message}).to_string(),
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"opsworks-metrics\""),
            );
        }
        r
    }
}

/// Lets a read through: a SigV4-signed request of a user's key, the bearer token, or anyone at
/// `/metrics` with `--metrics-public`.
fn authorize(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    exposition: bool,
) -> Result<(), Denied> {
    let config = app.metrics_config();
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth {
        Some(a) if a.len() > 7 && a[..7].eq_ignore_ascii_case("bearer ") => {
            let given = a[7..].trim().as_bytes();
            match &config.token {
                Some(t) if bool::from(t.as_bytes().ct_eq(given)) => Ok(()),
                Some(_) => Err(Denied::Forbidden(ApiError::AccessDenied(
                    "the bearer token is not the metrics token".into(),
                ))),
                None => Err(Denied::Forbidden(ApiError::AccessDenied(
                    "bearer tokens are not accepted: the server has no --metrics-token".into(),
                ))),
            }
        }
        Some(_) => {
            let caller = crate::http::authenticate(app, method, uri, headers, b"")
                .map_err(Denied::Forbidden)?;
            if caller
                .principal
                .starts_with(crate::agents::INSTANCE_PRINCIPAL)
            {
                return Err(Denied::Forbidden(ApiError::AccessDenied(format!(
                    "User: {} is not authorized to read metrics",
                    caller.principal
                ))));
            }
            Ok(())
        }
        None if exposition && config.public => Ok(()),
        None => Err(Denied::Missing(
            "metrics need a SigV4-signed request or Authorization: Bearer <--metrics-token>".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(id: &str, at: i64, idle: f64, used: f64, load: f64) -> Point {
        let mut values = [0.0; 16];
        values[CPU_IDLE] = idle;
        values[MEMORY_TOTAL] = 1000.0;
        values[MEMORY_USED] = used;
        values[LOAD_1] = load;
        Point {
            instance_id: id.into(),
            at,
            values,
        }
    }

    #[test]
    fn buckets_average_each_instance_then_across_instances() {
        let points = [
            point("a", 100, 90.0, 100.0, 1.0),
            point("a", 105, 70.0, 300.0, 3.0),
            point("b", 101, 50.0, 500.0, 0.0),
            point("b", 112, 40.0, 500.0, 0.0),
        ];
        let rows = bucketed(&points, 10, |v| vec![100.0 - v[CPU_IDLE], v[LOAD_1]]);
        assert_eq!(rows.len(), 2);
        // Bucket 100: a averages 20 % and 2.0, b is 50 % and 0: average 35 %, 1.0; sum 70, 2.
        assert_eq!(rows[0], (100, vec![35.0, 1.0], vec![70.0, 2.0]));
        assert_eq!(rows[1], (110, vec![60.0, 0.0], vec![60.0, 0.0]));
    }

    #[test]
    fn charts_scale_escape_and_break_at_gaps() {
        assert_eq!(nice_scale(7.3), (8.0, 2.0));
        assert_eq!(nice_scale(16_310_716.0), (20_000_000.0, 5_000_000.0));
        let svg = render_chart(
            "a <b> & c",
            "KiB",
            0,
            100,
            10,
            &[(0, 1.0), (10, 2.0), (50, 3.0)],
        );
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        assert!(svg.contains("d=\"M64.0"));
        assert_eq!(svg.matches(" M").count() + 1, 2, "{svg}");
        assert!(render_chart("t", "Percent", 0, 100, 10, &[]).contains("No data"));
    }
}
