//! The server's own counters and the Prometheus text exposition of `/metrics`: every instance's
//! latest sample (one series per layer it belongs to), commands by status, connected agents,
//! ingested samples, API requests and their latency.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use opsworks_model::metrics::METRICS;
use opsworks_model::resource::{Command, Instance};
use opsworks_store::Filter;
use opsworks_store::metrics::Point;

use crate::core::{Core, CoreResult};

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

/// How long an agent counts as connected after it last spoke.
pub const CONNECTED_WITHIN: Duration = Duration::from_secs(30);

/// The text exposition: every instance's latest sample (one series per layer it belongs to),
/// then the server's own metrics.
pub async fn exposition(core: &Core) -> CoreResult<String> {
    use std::fmt::Write as _;
    let now = jiff::Timestamp::now().as_second();
    let latest = core.store().metrics().latest().await?;
    let instances: HashMap<String, _> = core
        .list::<Instance>(Filter::All)
        .await?
        .into_iter()
        .map(|i| (i.instance_id.clone(), i))
        .collect();
    // (labels, sample) for each instance and layer.
    let mut series: Vec<(String, &Point)> = Vec::new();
    for p in latest.iter().filter(|p| now - p.at <= STALE_SECONDS) {
        let Some(inst) = instances.get(&p.instance_id) else {
            continue;
        };
        for layer in &inst.layer_ids {
            series.push((
                format!(
                    "stack_id=\"{}\",layer_id=\"{}\",instance_id=\"{}\",hostname=\"{}\"",
                    label(&inst.stack_id),
                    label(layer),
                    label(&p.instance_id),
                    label(&inst.hostname)
                ),
                p,
            ));
        }
    }
    let mut out = String::new();
    for (i, def) in METRICS.iter().enumerate() {
        let (name, desc, unit) = (def.name, def.label, def.unit);
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
    for c in core.list::<Command>(Filter::All).await? {
        *by_status.entry(c.status.as_str().to_string()).or_default() += 1;
    }
    let _ = writeln!(
        out,
        "# HELP opsworks_commands Commands in the store by status.\n# TYPE opsworks_commands gauge"
    );
    for (status, n) in &by_status {
        let _ = writeln!(out, "opsworks_commands{{status=\"{}\"}} {n}", label(status));
    }
    let within = CONNECTED_WITHIN;
    let _ = writeln!(
        out,
        "# HELP opsworks_agents_connected Agents polling now or heard from in the last {}s.\n# TYPE opsworks_agents_connected gauge\nopsworks_agents_connected {}",
        within.as_secs(),
        core.presence().connected(within)
    );
    let c = core
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
