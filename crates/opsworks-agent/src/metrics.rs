//! The metrics sampler: the original OpsWorks's 16 metrics read every few seconds, kept in a
//! bounded buffer and sent in batches to `POST /agent/v1/metrics`.
//!
//! A machine confined to a control group with CPU and memory limits (a local instance) is
//! sampled from its group ([`cgroup`]); any other (a registered server) from `/proc`, where
//! each value means (in the order of `opsworks_model::metrics::METRICS`):
//! - `cpu_*`: percent of the CPU time of all cores over the interval, from `/proc/stat` deltas.
//!   `cpu_system` counts kernel time including interrupts (`system + irq + softirq`);
//!   `cpu_user` and `cpu_nice` include guest time as the kernel does.
//! - `memory_*`: KiB from `/proc/meminfo`. `memory_used` = `MemTotal - MemFree - Buffers - Cached`
//!   (what applications hold), `memory_swap` = swap in use (`SwapTotal - SwapFree`).
//! - `load_1`, `load_5`, `load_15`: `/proc/loadavg`.
//! - `procs`: the number of processes (numeric entries of `/proc`).
//!
//! Samples are timestamped when taken. What the server cannot take yet waits in the buffer (one
//! day of samples at most; the oldest go first and are counted), so an outage leaves no gap
//! once the server is back.

pub mod cgroup;

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use opsworks_model::metrics::{self, CPU, LOAD, MEMORY, Metric};
use opsworks_protocol::{MAX_METRICS_BATCH, MetricSample, MetricsBatch};
use serde_json::Value;

use crate::client::Client;
use crate::error::AgentError;

/// The interval when the server does not say.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// How long samples may wait for the server: one day.
const BUFFER_SPAN: Duration = Duration::from_secs(24 * 3600);

/// Cumulative CPU times of the `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// user (guest included).
    pub user: u64,
    /// nice (guest_nice included).
    pub nice: u64,
    /// system + irq + softirq.
    pub system: u64,
    /// idle.
    pub idle: u64,
    /// iowait.
    pub iowait: u64,
    /// steal.
    pub steal: u64,
}

impl CpuTimes {
    fn total(&self) -> u64 {
        self.user + self.nice + self.system + self.idle + self.iowait + self.steal
    }
}

/// Parses the aggregate `cpu` line of `/proc/stat`.
pub fn parse_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    if f.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal guest guest_nice; user and nice already
    // include guest and guest_nice.
    Some(CpuTimes {
        user: at(0),
        nice: at(1),
        system: at(2) + at(5) + at(6),
        idle: at(3),
        iowait: at(4),
        steal: at(7),
    })
}

/// `[idle, nice, steal, system, user, waitio]` in percent of the time between `a` and `b`
/// (all zero when no tick passed or the counters went back).
pub fn cpu_percent(a: &CpuTimes, b: &CpuTimes) -> [f64; 6] {
    let total = b.total().saturating_sub(a.total());
    if total == 0 || b.total() < a.total() {
        return [0.0; 6];
    }
    let pct = |x: u64, y: u64| y.saturating_sub(x) as f64 * 100.0 / total as f64;
    [
        pct(a.idle, b.idle),
        pct(a.nice, b.nice),
        pct(a.steal, b.steal),
        pct(a.system, b.system),
        pct(a.user, b.user),
        pct(a.iowait, b.iowait),
    ]
}

/// `[buffers, cached, free, swap used, total, used]` in KiB from `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> Option<[f64; 6]> {
    let get = |key: &str| -> Option<f64> {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse().ok()
        })
    };
    let total = get("MemTotal")?;
    let free = get("MemFree")?;
    let buffers = get("Buffers").unwrap_or(0.0);
    let cached = get("Cached").unwrap_or(0.0);
    let swap = get("SwapTotal").unwrap_or(0.0) - get("SwapFree").unwrap_or(0.0);
    let used = (total - free - buffers - cached).max(0.0);
    Some([buffers, cached, free, swap.max(0.0), total, used])
}

/// `[load_1, load_5, load_15]` from `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(str::parse::<f64>);
    Some([it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?])
}

/// The number of processes: the numeric entries of a `/proc` directory.
pub fn count_processes(proc_dir: &Path) -> usize {
    std::fs::read_dir(proc_dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Reads `/proc` (or another directory laid out like it, for tests) and makes samples.
pub struct Sampler {
    proc_dir: std::path::PathBuf,
    last_cpu: Option<CpuTimes>,
}

impl Sampler {
    /// A sampler of `proc_dir` (`/proc`); it reads the CPU counters once so the first sample
    /// covers the interval that follows.
    pub fn new(proc_dir: impl Into<std::path::PathBuf>) -> Sampler {
        let mut s = Sampler {
            proc_dir: proc_dir.into(),
            last_cpu: None,
        };
        s.last_cpu = s.read_cpu();
        s
    }

    fn read(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.proc_dir.join(name)).ok()
    }

    fn read_cpu(&self) -> Option<CpuTimes> {
        parse_stat(&self.read("stat")?)
    }

    /// One sample taken now at `at` (Unix seconds); `None` when `/proc` cannot be read.
    pub fn sample(&mut self, at: i64) -> Option<MetricSample> {
        let cpu_now = self.read_cpu()?;
        let cpu = match self.last_cpu.replace(cpu_now) {
            Some(before) => cpu_percent(&before, &cpu_now),
            None => [0.0; 6],
        };
        let mem = parse_meminfo(&self.read("meminfo")?)?;
        let load = parse_loadavg(&self.read("loadavg")?)?;
        let procs = count_processes(&self.proc_dir) as f64;
        Some(MetricSample {
            at,
            values: pack(cpu, mem, load, procs),
        })
    }
}

/// A sample's values from its groups (CPU shares, memory figures, load averages, processes),
/// each put where `opsworks_model::metrics::METRICS` says it goes.
pub(crate) fn pack(
    cpu: [f64; 6],
    memory: [f64; 6],
    load: [f64; 3],
    procs: f64,
) -> [f64; metrics::COUNT] {
    let mut values = [0.0; metrics::COUNT];
    for (m, v) in CPU.iter().zip(cpu) {
        values[m.index()] = v;
    }
    for (m, v) in MEMORY.iter().zip(memory) {
        values[m.index()] = v;
    }
    for (m, v) in LOAD.iter().zip(load) {
        values[m.index()] = v;
    }
    values[Metric::Procs.index()] = procs;
    values
}

/// Samples waiting for the server, oldest first, at most `capacity` of them.
#[derive(Debug)]
pub struct Buffer {
    samples: VecDeque<MetricSample>,
    capacity: usize,
    /// How many samples were dropped because the buffer was full, since the agent started.
    pub dropped: u64,
}

impl Buffer {
    /// An empty buffer holding at most `capacity` samples.
    pub fn new(capacity: usize) -> Buffer {
        Buffer {
            samples: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Adds a sample, dropping the oldest when full; true when one was dropped.
    pub fn push(&mut self, s: MetricSample) -> bool {
        let full = self.samples.len() >= self.capacity;
        if full {
            self.samples.pop_front();
            self.dropped += 1;
        }
        self.samples.push_back(s);
        full
    }

    /// The oldest `n` samples (without removing them).
    pub fn oldest(&self, n: usize) -> Vec<MetricSample> {
        self.samples.iter().take(n).copied().collect()
    }

    /// Removes the oldest `n` samples (they reached the server).
    pub fn remove_oldest(&mut self, n: usize) {
        self.samples.drain(..n.min(self.samples.len()));
    }

    /// How many samples wait.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

/// Where samples come from: the machine's control group, or the host's `/proc`.
pub enum Source {
    /// `/proc`: the machine is the host.
    Host(Sampler),
    /// The control group the agent runs in, which has limits.
    Cgroup(cgroup::CgroupSampler),
}

impl Source {
    /// The group's sampler when this process is in a group with limits, else `/proc`'s.
    pub fn detect() -> Source {
        match cgroup::CgroupSampler::detect() {
            Some(group) => Source::Cgroup(group),
            None => Source::Host(Sampler::new("/proc")),
        }
    }

    /// What is sampled, for the log.
    pub fn describe(&self) -> String {
        match self {
            Source::Host(_) => "the host's /proc".to_string(),
            Source::Cgroup(group) => group.describe(),
        }
    }

    /// One sample taken now, stamped `at` (Unix seconds).
    pub fn sample(&mut self, at: i64) -> Option<MetricSample> {
        match self {
            Source::Host(s) => s.sample(at),
            Source::Cgroup(s) => s.sample(at),
        }
    }

    /// Counts the group's active tasks every [`cgroup::LOAD_PERIOD`] for its load averages,
    /// forever; `/proc` has the kernel's, so for the host this never completes and does nothing.
    pub fn count_load(&self) -> impl Future<Output = ()> + Send + 'static {
        let count = match self {
            Source::Cgroup(group) => Some(group_counter(group)),
            Source::Host(_) => None,
        };
        async move {
            let Some(count) = count else {
                return std::future::pending().await;
            };
            let mut tick = tokio::time::interval(cgroup::LOAD_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                count();
            }
        }
    }
}

/// A counter of the group's active tasks that folds into its shared load averages.
fn group_counter(group: &cgroup::CgroupSampler) -> impl Fn() + Send + 'static {
    let load = group.load();
    let counter = group.task_counter();
    move || {
        let active = counter();
        if let Ok(mut load) = load.lock() {
            load.fold_now(active);
        }
    }
}

/// One sample over `period`, as the agent would take it, with what it was read from (for
/// `opsworks agent-cli metrics`). A control group's load averages take a count at the start and
/// every [`cgroup::LOAD_PERIOD`] of the period.
pub fn sample_for(period: Duration) -> (String, Option<MetricSample>) {
    let mut source = Source::detect();
    let started = std::time::Instant::now();
    if let Source::Cgroup(group) = &source {
        group.count_load();
        while started.elapsed() + cgroup::LOAD_PERIOD <= period {
            std::thread::sleep(cgroup::LOAD_PERIOD);
            group.count_load();
        }
    }
    std::thread::sleep(period.saturating_sub(started.elapsed()));
    let at = jiff::Timestamp::now().as_second();
    (source.describe(), source.sample(at))
}

/// Samples every `every` and sends what waits, forever. A server that is away is tried again at
/// the next tick; a batch the server refuses as invalid is dropped (it would never pass).
pub async fn run(client: Client, instance_id: String, every: Duration) {
    let every = every.max(Duration::from_secs(1));
    let capacity = (BUFFER_SPAN.as_secs() / every.as_secs()).max(1) as usize;
    let mut buffer = Buffer::new(capacity);
    let mut source = Source::detect();
    tracing::info!("metrics are sampled from {}", source.describe());
    let count_load = source.count_load();
    let sample_and_send = async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = jiff::Timestamp::now().as_second();
            match source.sample(now) {
                Some(s) => {
                    if buffer.push(s) && buffer.dropped.is_power_of_two() {
                        tracing::warn!(
                            dropped = buffer.dropped,
                            "metrics buffer full: the oldest samples were dropped"
                        );
                    }
                }
                None => tracing::debug!("cannot read {} for metrics", source.describe()),
            }
            send(&client, &instance_id, &mut buffer).await;
        }
    };
    // One task: the 5-s counts go on while a batch is being sent.
    tokio::select! {
        () = count_load => {}
        () = sample_and_send => {}
    }
}

/// Sends what waits in `buffer`, in batches, until it is empty or the server fails.
pub async fn send(client: &Client, instance_id: &str, buffer: &mut Buffer) {
    while !buffer.is_empty() {
        let samples = buffer.oldest(MAX_METRICS_BATCH);
        let n = samples.len();
        let batch = MetricsBatch {
            instance_id: instance_id.to_string(),
            samples,
        };
        match client
            .call::<_, Value>("metrics", &batch, Duration::from_secs(15))
            .await
        {
            Ok(_) => buffer.remove_oldest(n),
            Err(AgentError::Refused {
                status: 400,
                message,
                ..
            }) => {
                tracing::warn!(
                    samples = n,
                    "the server refused a metrics batch as invalid; dropped: {message}"
                );
                buffer.remove_oldest(n);
            }
            Err(e) => {
                tracing::debug!(waiting = buffer.len(), error = %e, "metrics kept for later");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real text from a Debian 12 host (4 cores).
    const STAT_A: &str = "cpu  10132153 290696 3084719 46828483 16683 0 25195 0 0 0
cpu0 1393280 32966 363610 6175920 3053 0 17337 0 0 0
cpu1 1228394 33282 363447 6212706 3319 0 5003 0 0 0
intr 1462898 26 10 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
ctxt 1990473
btime 1062191376
processes 2915
procs_running 1
procs_blocked 0
softirq 183433 0 21755 12 39 1137 231 21459 2263
";
    const STAT_B: &str = "cpu  10132253 290696 3084749 46828843 16703 0 25215 30 0 0
cpu0 1393280 32966 363610 6175920 3053 0 17337 0 0 0
";
    const MEMINFO: &str = "MemTotal:       16310716 kB
MemFree:         8374604 kB
MemAvailable:   12560092 kB
Buffers:          355316 kB
Cached:          3972212 kB
SwapCached:            0 kB
Active:          4727396 kB
Inactive:        2350664 kB
SwapTotal:       1000444 kB
SwapFree:         900444 kB
Dirty:               148 kB
";
    const LOADAVG: &str = "0.52 0.58 0.59 2/1177 264371\n";

    #[test]
    fn cpu_shares_come_from_stat_deltas() {
        let a = parse_stat(STAT_A).unwrap();
        let b = parse_stat(STAT_B).unwrap();
        assert_eq!(a.system, 3084719 + 25195);
        // deltas: user 100, system 30+20, idle 360, iowait 20, steal 30 → 560 ticks
        let [idle, nice, steal, system, user, waitio] = cpu_percent(&a, &b);
        let close = |x: f64, y: f64| (x - y).abs() < 1e-9;
        assert!(close(idle, 360.0 * 100.0 / 560.0));
        assert!(close(user, 100.0 * 100.0 / 560.0));
        assert!(close(system, 50.0 * 100.0 / 560.0));
        assert!(close(waitio, 20.0 * 100.0 / 560.0));
        assert!(close(steal, 30.0 * 100.0 / 560.0));
        assert_eq!(nice, 0.0);
        assert!(close(idle + nice + steal + system + user + waitio, 100.0));
        // No tick, or counters that went back (a reboot): zeros, not nonsense.
        assert_eq!(cpu_percent(&a, &a), [0.0; 6]);
        assert_eq!(cpu_percent(&b, &a), [0.0; 6]);
        assert_eq!(parse_stat("intr 1 2\n"), None);
    }

    #[test]
    fn memory_used_is_total_less_free_buffers_and_cached() {
        let [buffers, cached, free, swap, total, used] = parse_meminfo(MEMINFO).unwrap();
        assert_eq!(buffers, 355316.0);
        assert_eq!(cached, 3972212.0);
        assert_eq!(free, 8374604.0);
        assert_eq!(swap, 100000.0);
        assert_eq!(total, 16310716.0);
        assert_eq!(used, 16310716.0 - 8374604.0 - 355316.0 - 3972212.0);
        assert_eq!(parse_meminfo("Buffers: 1 kB\n"), None);
    }

    #[test]
    fn load_averages_are_the_first_three_fields() {
        assert_eq!(parse_loadavg(LOADAVG), Some([0.52, 0.58, 0.59]));
        assert_eq!(parse_loadavg("0.1 x"), None);
    }

    #[test]
    fn a_sampler_reads_a_proc_tree() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("stat"), STAT_A).unwrap();
        std::fs::write(p.join("meminfo"), MEMINFO).unwrap();
        std::fs::write(p.join("loadavg"), LOADAVG).unwrap();
        for pid in ["1", "42", "777"] {
            std::fs::create_dir(p.join(pid)).unwrap();
        }
        std::fs::create_dir(p.join("self1")).unwrap();
        let mut sampler = Sampler::new(p);
        std::fs::write(p.join("stat"), STAT_B).unwrap();
        let s = sampler.sample(1_700_000_000).unwrap();
        assert_eq!(s.at, 1_700_000_000);
        assert!((s.values[Metric::CpuIdle.index()] - 360.0 * 100.0 / 560.0).abs() < 1e-9);
        assert_eq!(s.values[Metric::MemoryTotal.index()], 16310716.0);
        assert_eq!(s.values[Metric::Load1.index()], 0.52);
        assert_eq!(s.values[Metric::Procs.index()], 3.0);
        // The real /proc works too.
        let real = Sampler::new("/proc").sample(0).unwrap();
        assert!(
            real.values[Metric::MemoryTotal.index()] > 0.0
                && real.values[Metric::Procs.index()] >= 1.0
        );
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_and_counts() {
        let mut b = Buffer::new(3);
        let s = |at| MetricSample {
            at,
            values: [0.0; 16],
        };
        for at in 0..5 {
            b.push(s(at));
        }
        assert_eq!(b.dropped, 2);
        assert_eq!(
            b.oldest(10).iter().map(|s| s.at).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        b.remove_oldest(2);
        assert_eq!(b.oldest(10).iter().map(|s| s.at).collect::<Vec<_>>(), [4]);
    }
}
