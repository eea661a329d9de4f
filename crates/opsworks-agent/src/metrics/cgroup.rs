//! The 16 metrics of a machine confined to a control group with CPU and memory limits (a local
//! instance): `/proc/stat`, `/proc/meminfo` and `/proc/loadavg` are the host's, whatever the
//! namespaces, so inside such a group they are taken from the group instead, with the meaning
//! they have on a machine of their own:
//!
//! - `cpu_*`: percent of the CPU the group may use over the interval: its usage counters
//!   (v1 `cpuacct.usage` split by `cpuacct.stat`, v2 `cpu.stat`) against its quota (v1
//!   `cpu.cfs_quota_us`, v2 `cpu.max`; no more CPUs than the process may run on). `cpu_user` and
//!   `cpu_system` are the group's. `cpu_steal` is what a virtual machine's steal is: time the
//!   group's tasks were ready to run but the host ran something else (the growth of each task's
//!   run-queue wait, `/proc/<tid>/schedstat`), at most the quota the group did not use.
//!   `cpu_idle` is the rest; `cpu_nice` and `cpu_waitio` are not accounted per group and read 0.
//! - `memory_*`: KiB. `memory_total` is the limit (v1 `memory.limit_in_bytes`, v2 `memory.max`;
//!   the host's memory if that is less), `memory_cached` the group's page cache (`memory.stat`'s
//!   `total_cache`/`cache`, v2 `file`), `memory_free` = total - usage, `memory_used` = usage -
//!   cached (so again total - free - buffers - cached), `memory_buffers` 0, `memory_swap` the
//!   group's swap where the kernel counts it.
//! - `load_1/5/15`: the kernel's load averages computed over the group alone: every 5 s the
//!   group's runnable and uninterruptible tasks are counted and folded into exponentially damped
//!   averages of 1, 5 and 15 minutes (`e^(-5/60)`, `e^(-5/300)`, `e^(-5/900)`), from 0 at start
//!   as after a boot.
//! - `procs`: the processes in the group (`cgroup.procs`).
//!
//! The group is found as the kernel shows it to the process: `/proc/self/cgroup` for its path in
//! each hierarchy, `/proc/self/mountinfo` for where each hierarchy is mounted (inside a local
//! instance, its own cgroup namespace mounted at `/sys/fs/cgroup`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opsworks_protocol::MetricSample;

/// How often the load averages take a count, as the kernel's do.
pub const LOAD_PERIOD: Duration = Duration::from_secs(5);
/// A memory limit at or above this is no limit (the kernel's "max" is near 2^63).
const NO_LIMIT: u64 = 1 << 60;

/// Where the group's control files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupFiles {
    /// The group's directory in the cpu (v1) or unified (v2) hierarchy.
    pub cpu: PathBuf,
    /// In the cpuacct hierarchy (v1; the same as `cpu` on v2).
    pub cpuacct: PathBuf,
    /// In the memory hierarchy (v1; the same as `cpu` on v2).
    pub memory: PathBuf,
    /// Whether these are v2 files.
    pub v2: bool,
}

/// A group's limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupLimits {
    /// CPUs' worth of time per period.
    pub cpus: f64,
    /// Memory in bytes.
    pub memory_bytes: u64,
}

/// One mount of a cgroup file system: its root inside the hierarchy, where it is mounted, its
/// type and super options.
struct Mount<'a> {
    root: &'a str,
    point: PathBuf,
    fstype: &'a str,
    options: &'a str,
}

fn mounts(mountinfo: &str) -> Vec<Mount<'_>> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let mut f = before.split(' ');
            let root = f.nth(3)?;
            let point = f.next()?;
            let mut a = after.split(' ');
            let fstype = a.next()?;
            let options = a.nth(1).unwrap_or("");
            Some(Mount {
                root,
                point: PathBuf::from(unescape(point)),
                fstype,
                options,
            })
        })
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .collect()
}

fn unescape(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// `point` + (`path` below `root`), if `path` is inside the mount.
fn place(point: &Path, root: &str, path: &str) -> Option<PathBuf> {
    let rest = if root == "/" {
        path.strip_prefix('/')?
    } else {
        let rest = path.strip_prefix(root)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        rest.trim_start_matches('/')
    };
    Some(if rest.is_empty() {
        point.to_path_buf()
    } else {
        point.join(rest)
    })
}

/// Finds the process's group from the texts of `/proc/self/mountinfo` and `/proc/self/cgroup`:
/// v1 when the cpu, cpuacct and memory controllers are on v1 hierarchies, else v2 when the
/// unified hierarchy has them (`has_file` tells which control files exist).
pub fn find(
    mountinfo: &str,
    self_cgroup: &str,
    has_file: impl Fn(&Path) -> bool,
) -> Option<CgroupFiles> {
    let mounts = mounts(mountinfo);
    let lines: Vec<(&str, &str)> = self_cgroup
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let _id = f.next()?;
            Some((f.next()?, f.next()?))
        })
        .collect();
    let v1 = |controller: &str| -> Option<PathBuf> {
        let (_, path) = lines
            .iter()
            .find(|(cs, _)| cs.split(',').any(|c| c == controller))?;
        mounts
            .iter()
            .filter(|m| m.fstype == "cgroup" && m.options.split(',').any(|o| o == controller))
            .find_map(|m| place(&m.point, m.root, path))
    };
    if let (Some(cpu), Some(cpuacct), Some(memory)) = (v1("cpu"), v1("cpuacct"), v1("memory")) {
        return Some(CgroupFiles {
            cpu,
            cpuacct,
            memory,
            v2: false,
        });
    }
    let (_, path) = lines.iter().find(|(cs, _)| cs.is_empty())?;
    let dir = mounts
        .iter()
        .filter(|m| m.fstype == "cgroup2")
        .find_map(|m| place(&m.point, m.root, path))?;
    (has_file(&dir.join("cpu.max")) && has_file(&dir.join("memory.max"))).then(|| CgroupFiles {
        cpu: dir.clone(),
        cpuacct: dir.clone(),
        memory: dir,
        v2: true,
    })
}

/// The group's limits from its control files' texts; `None` unless both a CPU quota and a
/// memory limit are set (a group without them is not a machine of its own).
pub fn limits(files: &CgroupFiles, read: impl Fn(&Path) -> Option<String>) -> Option<GroupLimits> {
    let (cpus, memory) = if files.v2 {
        let max = read(&files.cpu.join("cpu.max"))?;
        let mut f = max.split_whitespace();
        let (quota, period) = (f.next()?, f.next().unwrap_or("100000"));
        let cpus = quota.parse::<f64>().ok()? / period.parse::<f64>().ok()?;
        let memory = read(&files.memory.join("memory.max"))?
            .trim()
            .parse()
            .ok()?;
        (cpus, memory)
    } else {
        let quota: i64 = read(&files.cpu.join("cpu.cfs_quota_us"))?
            .trim()
            .parse()
            .ok()?;
        let period: i64 = read(&files.cpu.join("cpu.cfs_period_us"))?
            .trim()
            .parse()
            .ok()?;
        let memory = read(&files.memory.join("memory.limit_in_bytes"))?
            .trim()
            .parse()
            .ok()?;
        (quota as f64 / period as f64, memory)
    };
    (cpus > 0.0 && memory < NO_LIMIT).then_some(GroupLimits {
        cpus,
        memory_bytes: memory,
    })
}

/// The group's cumulative CPU time, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuUsage {
    /// All CPU time.
    pub total: u64,
    /// User time (v1: in USER_HZ ticks, only its share of user + system matters).
    pub user: u64,
    /// System time, in the unit of `user`.
    pub system: u64,
}

/// v1: `cpuacct.usage` (ns) and `cpuacct.stat` (`user N`, `system N` in ticks).
pub fn parse_cpuacct(usage: &str, stat: &str) -> Option<CpuUsage> {
    Some(CpuUsage {
        total: usage.trim().parse().ok()?,
        user: field(stat, "user")?,
        system: field(stat, "system")?,
    })
}

/// v2: `cpu.stat` (`usage_usec`, `user_usec`, `system_usec`).
pub fn parse_cpu_stat(stat: &str) -> Option<CpuUsage> {
    Some(CpuUsage {
        total: field(stat, "usage_usec")?.checked_mul(1000)?,
        user: field(stat, "user_usec")?,
        system: field(stat, "system_usec")?,
    })
}

/// The value of `key value` line in a flat-keyed control file.
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// `[idle, nice, steal, system, user, waitio]` in percent of `cpus` CPUs over `elapsed`
/// seconds, from two readings of the group's usage and the nanoseconds its tasks waited for a
/// CPU in between.
pub fn cpu_percent(
    a: &CpuUsage,
    b: &CpuUsage,
    elapsed: f64,
    cpus: f64,
    waited_ns: f64,
) -> [f64; 6] {
    let capacity = elapsed * cpus * 1e9;
    if capacity <= 0.0 || b.total < a.total {
        return [0.0; 6];
    }
    let used = ((b.total - a.total) as f64 / capacity * 100.0).min(100.0);
    let (du, ds) = (
        b.user.saturating_sub(a.user) as f64,
        b.system.saturating_sub(a.system) as f64,
    );
    let user_share = if du + ds > 0.0 { du / (du + ds) } else { 1.0 };
    let (user, system) = (used * user_share, used * (1.0 - user_share));
    let steal = (waited_ns.max(0.0) / capacity * 100.0).min(100.0 - used);
    [100.0 - used - steal, 0.0, steal, system, user, 0.0]
}

/// The run-queue wait (ns) of a task from its `/proc/<tid>/schedstat` (`run wait slices`).
fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Nanoseconds the tasks of `now` waited since `before`: each task's growth (a task new to the
/// group counts whole), at most `elapsed_ns` per task.
pub fn waited(
    before: &std::collections::HashMap<String, u64>,
    now: &std::collections::HashMap<String, u64>,
    elapsed_ns: f64,
) -> f64 {
    now.iter()
        .map(|(tid, wait)| {
            let grown = wait.saturating_sub(before.get(tid).copied().unwrap_or(0));
            (grown as f64).min(elapsed_ns)
        })
        .sum()
}

/// `[buffers, cached, free, swap used, total, used]` in KiB from the group's usage, its
/// `memory.stat`, its limit, its swap in use and the host's memory (KiB).
pub fn memory_kib(
    usage: u64,
    stat: &str,
    limit: u64,
    swap: u64,
    host_kib: f64,
    v2: bool,
) -> [f64; 6] {
    let cache = if v2 {
        field(stat, "file")
    } else {
        field(stat, "total_cache").or_else(|| field(stat, "cache"))
    }
    .unwrap_or(0);
    let kib = |b: u64| b as f64 / 1024.0;
    let total = if host_kib > 0.0 {
        kib(limit).min(host_kib)
    } else {
        kib(limit)
    };
    let usage = kib(usage).min(total);
    let cached = kib(cache).min(usage);
    [0.0, cached, total - usage, kib(swap), total, usage - cached]
}

/// The kernel's load averages over one group.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadAverage {
    loads: [f64; 3],
    last: Option<Instant>,
}

impl Default for LoadAverage {
    fn default() -> Self {
        Self::new()
    }
}

impl LoadAverage {
    /// All zero, as at boot.
    pub fn new() -> LoadAverage {
        LoadAverage {
            loads: [0.0; 3],
            last: None,
        }
    }

    /// Folds in `active` runnable and uninterruptible tasks for `periods` 5-s periods (more
    /// than one when a count came late, as the kernel catches up after a tickless idle).
    pub fn fold(&mut self, active: usize, periods: u32) {
        for (load, minutes) in self.loads.iter_mut().zip([1.0, 5.0, 15.0]) {
            let decay =
                (-(LOAD_PERIOD.as_secs_f64()) * f64::from(periods) / (minutes * 60.0)).exp();
            *load = *load * decay + active as f64 * (1.0 - decay);
        }
    }

    /// Folds a count taken now, covering the periods since the last one.
    pub fn fold_now(&mut self, active: usize) {
        let now = Instant::now();
        let periods = self.last.map_or(1, |last| {
            ((now - last).as_secs_f64() / LOAD_PERIOD.as_secs_f64())
                .round()
                .max(1.0) as u32
        });
        self.last = Some(now);
        self.fold(active, periods.min(10_000));
    }

    /// `[load_1, load_5, load_15]`.
    pub fn get(&self) -> [f64; 3] {
        self.loads
    }
}

/// Whether a `/proc/<pid>/stat` text is of a runnable (R) or uninterruptible (D) task.
fn is_active(stat: &str) -> bool {
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next())
        .is_some_and(|state| state == 'R' || state == 'D')
}

/// Counts `1` in a CPU list such as `0-3,8,10-11`.
pub fn count_cpu_list(list: &str) -> usize {
    list.trim()
        .split(',')
        .filter(|r| !r.is_empty())
        .map(|r| match r.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => usize::from(r.parse::<usize>().is_ok()),
        })
        .sum()
}

/// Samples a group: CPU from its usage against its quota, memory from its usage and limit,
/// load from the shared [`LoadAverage`] the 5-s counter updates, procs from its processes.
pub struct CgroupSampler {
    files: CgroupFiles,
    limits: GroupLimits,
    proc_dir: PathBuf,
    last_cpu: Option<(Instant, CpuUsage)>,
    last_waits: std::collections::HashMap<String, u64>,
    load: Arc<Mutex<LoadAverage>>,
}

impl CgroupSampler {
    /// The sampler of the process's own group, if it is in one with limits.
    pub fn detect() -> Option<CgroupSampler> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let files = find(&mountinfo, &own, Path::exists)?;
        CgroupSampler::new(files, "/proc")
    }

    /// The sampler of the group at `files` (reading tasks' states under `proc_dir`), if the
    /// group has limits.
    pub fn new(files: CgroupFiles, proc_dir: impl Into<PathBuf>) -> Option<CgroupSampler> {
        let limits = limits(&files, |p| std::fs::read_to_string(p).ok())?;
        let mut s = CgroupSampler {
            files,
            limits,
            proc_dir: proc_dir.into(),
            last_cpu: None,
            last_waits: Default::default(),
            load: Arc::new(Mutex::new(LoadAverage::new())),
        };
        s.last_cpu = s.read_cpu().map(|u| (Instant::now(), u));
        s.last_waits = s.read_waits();
        Some(s)
    }

    /// What the sampler reads, for the log.
    pub fn describe(&self) -> String {
        format!(
            "control group {} (cgroup {}; {} CPUs, {} MiB)",
            self.files.cpu.display(),
            if self.files.v2 { "v2" } else { "v1" },
            self.limits.cpus,
            self.limits.memory_bytes >> 20
        )
    }

    /// The load averages, shared with whoever counts every [`LOAD_PERIOD`].
    pub fn load(&self) -> Arc<Mutex<LoadAverage>> {
        self.load.clone()
    }

    fn read(path: &Path) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    fn read_cpu(&self) -> Option<CpuUsage> {
        if self.files.v2 {
            parse_cpu_stat(&Self::read(&self.files.cpuacct.join("cpu.stat"))?)
        } else {
            parse_cpuacct(
                &Self::read(&self.files.cpuacct.join("cpuacct.usage"))?,
                &Self::read(&self.files.cpuacct.join("cpuacct.stat"))?,
            )
        }
    }

    /// CPUs the group can use: its quota, but no more than the CPUs this process may run on.
    fn cpus(&self) -> f64 {
        let allowed = Self::read(&self.proc_dir.join("self/status"))
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:").map(count_cpu_list))
            })
            .filter(|n| *n > 0);
        match allowed {
            Some(n) => self.limits.cpus.min(n as f64),
            None => self.limits.cpus,
        }
    }

    fn read_memory(&self) -> Option<[f64; 6]> {
        let dir = &self.files.memory;
        let (usage, swap) = if self.files.v2 {
            let usage = Self::read(&dir.join("memory.current"))?
                .trim()
                .parse()
                .ok()?;
            let swap = Self::read(&dir.join("memory.swap.current"))
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            (usage, swap)
        } else {
            let usage = Self::read(&dir.join("memory.usage_in_bytes"))?
                .trim()
                .parse()
                .ok()?;
            (usage, 0)
        };
        let stat = Self::read(&dir.join("memory.stat"))?;
        let swap = if self.files.v2 {
            swap
        } else {
            field(&stat, "total_swap")
                .or_else(|| field(&stat, "swap"))
                .unwrap_or(0)
        };
        let host_kib = Self::read(&self.proc_dir.join("meminfo"))
            .and_then(|m| super::parse_meminfo(&m))
            .map_or(0.0, |m| m[4]);
        Some(memory_kib(
            usage,
            &stat,
            self.limits.memory_bytes,
            swap,
            host_kib,
            self.files.v2,
        ))
    }

    /// Runnable and uninterruptible tasks of the group now.
    pub fn active_tasks(&self) -> usize {
        (self.task_counter())()
    }

    /// Counts the group's runnable and uninterruptible tasks, the counting thread itself left
    /// out (it is running only because it counts); owns what it needs, for the 5-s counter.
    pub fn task_counter(&self) -> impl Fn() -> usize + Send + 'static {
        let list = self.files.cpu.join(if self.files.v2 {
            "cgroup.threads"
        } else {
            "tasks"
        });
        let proc_dir = self.proc_dir.clone();
        move || {
            let me = current_tid();
            Self::read(&list)
                .map(|text| {
                    text.split_whitespace()
                        .filter(|tid| Some(*tid) != me.as_deref())
                        .filter(|tid| {
                            Self::read(&proc_dir.join(tid).join("stat"))
                                .is_some_and(|s| is_active(&s))
                        })
                        .count()
                })
                .unwrap_or(0)
        }
    }

    /// The group's tasks and how long each has waited for a CPU so far (ns).
    fn read_waits(&self) -> std::collections::HashMap<String, u64> {
        let list = if self.files.v2 {
            "cgroup.threads"
        } else {
            "tasks"
        };
        Self::read(&self.files.cpu.join(list))
            .map(|text| {
                text.split_whitespace()
                    .filter_map(|tid| {
                        let stat = Self::read(&self.proc_dir.join(tid).join("schedstat"))?;
                        Some((tid.to_string(), parse_schedstat(&stat)?))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Takes a count for the load averages now.
    pub fn count_load(&self) {
        let active = self.active_tasks();
        if let Ok(mut load) = self.load.lock() {
            load.fold_now(active);
        }
    }

    /// One sample taken now at `at` (Unix seconds); `None` when the group cannot be read.
    pub fn sample(&mut self, at: i64) -> Option<MetricSample> {
        let now = Instant::now();
        let usage = self.read_cpu()?;
        let waits = self.read_waits();
        let before_waits = std::mem::replace(&mut self.last_waits, waits);
        let cpu = match self.last_cpu.replace((now, usage)) {
            Some((then, before)) => {
                let elapsed = (now - then).as_secs_f64();
                let waited = waited(&before_waits, &self.last_waits, elapsed * 1e9);
                cpu_percent(&before, &usage, elapsed, self.cpus(), waited)
            }
            None => [0.0; 6],
        };
        let memory = self.read_memory()?;
        let load = self.load.lock().map(|l| l.get()).unwrap_or([0.0; 3]);
        let procs = Self::read(&self.files.cpu.join("cgroup.procs"))
            .map_or(0, |t| t.split_whitespace().count()) as f64;
        let values = super::pack(cpu, memory, load, procs);
        Some(MetricSample { at, values })
    }
}

/// This thread's id as `/proc` names it.
fn current_tid() -> Option<String> {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()))
}

#[cfg(test)]
mod tests;
