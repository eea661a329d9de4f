//! Monitoring: the agents' samples in ([`ingest`]), and out as layer averages for load-based
//! scaling ([`layer_averages`]), series for JSON and charts ([`series`], [`chart`]) and the
//! Prometheus text exposition ([`prometheus::exposition`]), plus the maintenance that rolls
//! samples up and prunes them ([`maintain`]). The HTTP side is the edge's.
//!
//! What each metric is comes from one table, [`opsworks_model::metrics::METRICS`].

pub mod chart;
pub mod prometheus;

use std::collections::{BTreeMap, HashMap};

use opsworks_model::InstanceStatus;
use opsworks_model::metrics::{self as m, Metric};
use opsworks_model::resource::{Instance, Layer, Stack};
use opsworks_model::scaling::Sample;
use opsworks_protocol::{MAX_METRICS_BATCH, MetricsBatch};
use opsworks_store::Filter;
use opsworks_store::metrics::{Point, ROLLUP_SECONDS, Resolution, Values};

pub use prometheus::ServerMetrics;

use crate::core::{Core, CoreError, CoreResult};

/// Stores an agent's batch: at most [`MAX_METRICS_BATCH`] samples of finite values, none more
/// than five minutes ahead of the server's clock; samples already past the raw retention are
/// dropped quietly.
pub async fn ingest(core: &Core, batch: &MetricsBatch) -> CoreResult<()> {
    if batch.samples.len() > MAX_METRICS_BATCH {
        return Err(CoreError::Invalid(format!(
            "a metrics batch holds at most {MAX_METRICS_BATCH} samples, not {}",
            batch.samples.len()
        )));
    }
    let now = jiff::Timestamp::now().as_second();
    let oldest = now - core.metrics_config().retention.raw_seconds;
    let mut rows = Vec::with_capacity(batch.samples.len());
    for sample in &batch.samples {
        if sample.at > now + 300 {
            return Err(CoreError::Invalid(format!(
                "sample time {} is ahead of the server's clock ({now}); check the instance's clock",
                sample.at
            )));
        }
        if let Some(bad) = sample.values.iter().position(|v| !v.is_finite()) {
            return Err(CoreError::Invalid(format!(
                "sample at {} has a value for {} that is not a finite number",
                sample.at,
                m::METRICS[bad].name
            )));
        }
        if sample.at >= oldest {
            rows.push((sample.at, sample.values));
        }
    }
    core.get::<Instance>(&batch.instance_id).await?;
    core.store()
        .metrics()
        .insert_samples(&batch.instance_id, &rows)
        .await?;
    core.server_metrics().record_samples(rows.len());
    Ok(())
}

/// One maintenance pass at `now`: complete 5-minute buckets rolled up, old data pruned.
pub async fn maintain(core: &Core, now: i64) -> CoreResult<()> {
    let retention = core.metrics_config().retention;
    let done = core.store().metrics().maintain(now, retention).await?;
    tracing::debug!(?done, "metrics maintenance");
    Ok(())
}

/// Whether a sample has a CPU reading: an agent's first sample (or a second with no tick) has all
/// shares zero, and its cpu_idle of 0 would read as 100 % busy.
fn has_cpu(v: &Values) -> bool {
    m::CPU.iter().any(|c| v[c.index()] != 0.0)
}

/// The average over a layer's online instances, per sample-time bucket since `since`: cpu =
/// 100 - cpu_idle, memory = memory_used / memory_total * 100, load = load_1. Buckets are the
/// sampling interval wide; oldest first. This is what load-based scaling reads.
pub async fn layer_averages(
    core: &Core,
    layer_id: &str,
    since: jiff::Timestamp,
) -> CoreResult<Vec<Sample>> {
    let layer = core.get::<Layer>(layer_id).await?;
    let ids: Vec<String> = core
        .list::<Instance>(Filter::Stack(&layer.stack_id))
        .await?
        .iter()
        .filter(|i| i.in_layer(layer_id) && i.status == InstanceStatus::Online)
        .map(|i| i.instance_id.clone())
        .collect();
    let step = core.metrics_config().interval_seconds.max(1) as i64;
    let points: Vec<Point> = core
        .store()
        .metrics()
        .points(&ids, Resolution::Raw, since.as_second(), i64::MAX)
        .await?
        .into_iter()
        .filter(|p| has_cpu(&p.values))
        .collect();
    let derived = |v: &Values| {
        let total = v[Metric::MemoryTotal.index()];
        let memory = if total > 0.0 {
            v[Metric::MemoryUsed.index()] / total * 100.0
        } else {
            0.0
        };
        vec![
            100.0 - v[Metric::CpuIdle.index()],
            memory,
            v[Metric::Load1.index()],
        ]
    };
    Ok(bucketed(&points, step, derived)
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

/// What a read is about: one instance, a layer or a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// `InstanceId`.
    Instance,
    /// `LayerId`.
    Layer,
    /// `StackId`.
    Stack,
}

impl ScopeKind {
    /// The query parameter naming it.
    pub fn param(self) -> &'static str {
        match self {
            Self::Instance => "InstanceId",
            Self::Layer => "LayerId",
            Self::Stack => "StackId",
        }
    }
}

/// A read's scope, resolved: its name and instances.
#[derive(Debug, Clone)]
pub struct Scope {
    /// What kind of thing.
    pub kind: ScopeKind,
    /// Its ID.
    pub id: String,
    /// A readable name (the hostname, the layer's or stack's name).
    pub name: String,
    /// Its stack.
    pub stack_id: String,
    /// The instances it covers.
    pub instances: Vec<String>,
}

/// Resolves a read's scope from a query with exactly one of `InstanceId`, `LayerId`, `StackId`.
pub async fn scope(core: &Core, q: &HashMap<String, String>) -> CoreResult<Scope> {
    let given: Vec<ScopeKind> = [ScopeKind::Instance, ScopeKind::Layer, ScopeKind::Stack]
        .into_iter()
        .filter(|k| q.contains_key(k.param()))
        .collect();
    let [kind] = given[..] else {
        return Err(CoreError::Invalid(
            "give exactly one of InstanceId, LayerId or StackId".into(),
        ));
    };
    let id = q[kind.param()].clone();
    let (name, stack_id, instances) = match kind {
        ScopeKind::Instance => {
            let inst = core.get::<Instance>(&id).await?;
            (
                inst.hostname.clone(),
                inst.stack_id.clone(),
                vec![id.clone()],
            )
        }
        ScopeKind::Layer => {
            let layer = core.get::<Layer>(&id).await?;
            let instances = core
                .list::<Instance>(Filter::Stack(&layer.stack_id))
                .await?
                .iter()
                .filter(|i| i.in_layer(&id))
                .map(|i| i.instance_id.clone())
                .collect();
            (layer.name.clone(), layer.stack_id.clone(), instances)
        }
        ScopeKind::Stack => {
            let stack = core.get::<Stack>(&id).await?;
            let instances = core
                .list::<Instance>(Filter::Stack(&id))
                .await?
                .iter()
                .map(|i| i.instance_id.clone())
                .collect();
            (stack.name.clone(), id.clone(), instances)
        }
    };
    Ok(Scope {
        kind,
        id,
        name,
        stack_id,
        instances,
    })
}

/// The console's periods: `1h`, `8h`, `24h`, `1w`, `2w` (default `1h`), in seconds.
pub fn period(q: &HashMap<String, String>) -> CoreResult<(String, i64)> {
    let p = q.get("Period").map(String::as_str).unwrap_or("1h");
    let seconds = match p {
        "1h" => 3600,
        "8h" => 8 * 3600,
        "24h" => 24 * 3600,
        "1w" => 7 * 24 * 3600,
        "2w" => 14 * 24 * 3600,
        other => {
            return Err(CoreError::Invalid(format!(
                "Period must be one of 1h, 8h, 24h, 1w, 2w, not {other:?}"
            )));
        }
    };
    Ok((p.to_string(), seconds))
}

/// A read's series: time buckets, with per-metric averages and sums over the scope's instances.
#[derive(Debug, Clone)]
pub struct Series {
    /// `raw` or `5m`.
    pub resolution: &'static str,
    /// Bucket width in seconds.
    pub step: i64,
    /// Start (Unix seconds).
    pub from: i64,
    /// End (Unix seconds).
    pub to: i64,
    /// (bucket start, averages, sums), oldest first; each vector in metric order.
    pub rows: Vec<(i64, Vec<f64>, Vec<f64>)>,
}

/// The series of the last `seconds` over a scope: raw samples up to 8 hours (and within the raw
/// retention), 5-minute averages beyond.
pub async fn series(core: &Core, scope: &Scope, seconds: i64) -> CoreResult<Series> {
    let config = core.metrics_config();
    let to = jiff::Timestamp::now().as_second();
    let from = to - seconds;
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
    let points = core
        .store()
        .metrics()
        .points(&scope.instances, res, from, to + 1)
        .await?;
    Ok(Series {
        resolution,
        step,
        from,
        to,
        rows: bucketed(&points, step, |v| v.to_vec()),
    })
}

/// The SVG chart a query asks for (`InstanceId`/`LayerId`/`StackId`, `Metric`, `Period`), for
/// whoever already decided the caller may see it (the edge, the console).
pub async fn chart(core: &Core, q: &HashMap<String, String>) -> CoreResult<String> {
    let scope = scope(core, q).await?;
    let (period, seconds) = period(q)?;
    let name = q.get("Metric").map(String::as_str).unwrap_or("cpu_user");
    let metric = Metric::from_name(name).ok_or_else(|| {
        CoreError::Invalid(format!(
            "Metric must be one of {}, not {name:?}",
            m::names().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let series = series(core, &scope, seconds).await?;
    let def = metric.def();
    let what = match scope.kind {
        ScopeKind::Instance => format!("instance {}", scope.name),
        ScopeKind::Layer => format!("layer {} (average)", scope.name),
        ScopeKind::Stack => format!("stack {} (average)", scope.name),
    };
    let points: Vec<(i64, f64)> = series
        .rows
        .iter()
        .map(|r| (r.0, r.1[metric.index()]))
        .collect();
    Ok(chart::render_chart(
        &format!("{} — {what}, last {period}", def.label),
        def.unit,
        series.from,
        series.to,
        series.step,
        &points,
    ))
}

#[cfg(test)]
mod tests {
    use super::chart::{nice_scale, render_chart};
    use super::*;

    fn point(id: &str, at: i64, idle: f64, used: f64, load: f64) -> Point {
        let mut values = [0.0; m::COUNT];
        values[Metric::CpuIdle.index()] = idle;
        values[Metric::MemoryTotal.index()] = 1000.0;
        values[Metric::MemoryUsed.index()] = used;
        values[Metric::Load1.index()] = load;
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
        let rows = bucketed(&points, 10, |v| {
            vec![100.0 - v[Metric::CpuIdle.index()], v[Metric::Load1.index()]]
        });
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

    #[test]
    fn memory_axes_read_in_binary_units() {
        // The y ticks' labels, bottom up.
        let labels = |svg: &str| -> Vec<String> {
            let marker = "text-anchor=\"end\" fill=\"#555\">";
            svg.lines()
                .filter_map(|l| l.split_once(marker)?.1.strip_suffix("</text>"))
                .map(String::from)
                .collect()
        };
        // 4,000,000 KiB used (3.8 GiB): ticks in GiB, the axis says GiB.
        let svg = render_chart(
            "m",
            "KiB",
            0,
            100,
            10,
            &[(0, 3_000_000.0), (10, 4_000_000.0)],
        );
        assert_eq!(
            labels(&svg),
            ["0 GiB", "1 GiB", "2 GiB", "3 GiB", "4 GiB"],
            "{svg}"
        );
        assert!(svg.contains(">GiB</text>"), "{svg}");
        assert!(!svg.contains("M</text>"), "{svg}");
        // 300 MiB.
        let svg = render_chart("m", "KiB", 0, 100, 10, &[(0, 307_200.0)]);
        assert_eq!(
            labels(&svg),
            ["0 MiB", "100 MiB", "200 MiB", "300 MiB"],
            "{svg}"
        );
        // Other units keep their numbers.
        let svg = render_chart("p", "Count", 0, 100, 10, &[(0, 7.0)]);
        assert_eq!(labels(&svg), ["0", "2", "4", "6", "8"], "{svg}");
    }
}
