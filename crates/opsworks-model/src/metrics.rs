//! The 16 metrics every agent samples, the original OpsWorks's: one table of name, label, unit
//! and how instances combine, shared by the agent (what it fills), the server (ingest, averages,
//! scaling), the console (charts) and `/metrics` (Prometheus names).

/// One of the 16 metrics; its discriminant is its position in a sample's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum Metric {
    /// CPU idle, percent of the interval.
    CpuIdle = 0,
    /// CPU in niced user processes, percent.
    CpuNice,
    /// CPU stolen by the hypervisor, percent.
    CpuSteal,
    /// CPU in the kernel, percent.
    CpuSystem,
    /// CPU in user processes, percent.
    CpuUser,
    /// CPU waiting for I/O, percent.
    CpuWaitio,
    /// Memory in buffers, KiB.
    MemoryBuffers,
    /// Memory in the page cache, KiB.
    MemoryCached,
    /// Free memory, KiB.
    MemoryFree,
    /// Swap in use, KiB.
    MemorySwap,
    /// Total memory, KiB.
    MemoryTotal,
    /// Used memory (total - free - buffers - cached), KiB.
    MemoryUsed,
    /// 1-minute load average.
    Load1,
    /// 5-minute load average.
    Load5,
    /// 15-minute load average.
    Load15,
    /// Number of processes.
    Procs,
}

/// How the values of several instances combine into a layer's or a stack's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Only the average means something (CPU shares).
    Average,
    /// The sum means something too (memory, load, processes).
    AverageAndSum,
}

/// What one metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    /// The metric.
    pub metric: Metric,
    /// Its name (`cpu_idle`): the original's, used on the wire and in `/metrics`.
    pub name: &'static str,
    /// Its label for people.
    pub label: &'static str,
    /// Its unit (`Percent`, `KiB`, `Count`).
    pub unit: &'static str,
    /// How instances combine.
    pub combine: Combine,
}

/// How many metrics a sample carries.
pub const COUNT: usize = 16;

const fn def(
    metric: Metric,
    name: &'static str,
    label: &'static str,
    unit: &'static str,
    combine: Combine,
) -> MetricDef {
    MetricDef {
        metric,
        name,
        label,
        unit,
        combine,
    }
}

use Combine::{Average as AVG, AverageAndSum as SUM};

/// The 16 metrics, in the order of a sample's values.
pub const METRICS: [MetricDef; COUNT] = [
    def(Metric::CpuIdle, "cpu_idle", "CPU idle", "Percent", AVG),
    def(Metric::CpuNice, "cpu_nice", "CPU nice", "Percent", AVG),
    def(Metric::CpuSteal, "cpu_steal", "CPU steal", "Percent", AVG),
    def(
        Metric::CpuSystem,
        "cpu_system",
        "CPU system",
        "Percent",
        AVG,
    ),
    def(Metric::CpuUser, "cpu_user", "CPU user", "Percent", AVG),
    def(
        Metric::CpuWaitio,
        "cpu_waitio",
        "CPU I/O wait",
        "Percent",
        AVG,
    ),
    def(
        Metric::MemoryBuffers,
        "memory_buffers",
        "Memory buffers",
        "KiB",
        SUM,
    ),
    def(
        Metric::MemoryCached,
        "memory_cached",
        "Memory cached",
        "KiB",
        SUM,
    ),
    def(Metric::MemoryFree, "memory_free", "Memory free", "KiB", SUM),
    def(Metric::MemorySwap, "memory_swap", "Swap used", "KiB", SUM),
    def(
        Metric::MemoryTotal,
        "memory_total",
        "Memory total",
        "KiB",
        SUM,
    ),
    def(Metric::MemoryUsed, "memory_used", "Memory used", "KiB", SUM),
    def(
        Metric::Load1,
        "load_1",
        "Load average (1 min)",
        "Count",
        SUM,
    ),
    def(
        Metric::Load5,
        "load_5",
        "Load average (5 min)",
        "Count",
        SUM,
    ),
    def(
        Metric::Load15,
        "load_15",
        "Load average (15 min)",
        "Count",
        SUM,
    ),
    def(Metric::Procs, "procs", "Processes", "Count", SUM),
];

/// The CPU shares, in sample order (idle first).
pub const CPU: [Metric; 6] = [
    Metric::CpuIdle,
    Metric::CpuNice,
    Metric::CpuSteal,
    Metric::CpuSystem,
    Metric::CpuUser,
    Metric::CpuWaitio,
];

/// The memory figures, in sample order.
pub const MEMORY: [Metric; 6] = [
    Metric::MemoryBuffers,
    Metric::MemoryCached,
    Metric::MemoryFree,
    Metric::MemorySwap,
    Metric::MemoryTotal,
    Metric::MemoryUsed,
];

/// The load averages, in sample order.
pub const LOAD: [Metric; 3] = [Metric::Load1, Metric::Load5, Metric::Load15];

impl Metric {
    /// Its position in a sample's values.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// What it is.
    pub const fn def(self) -> &'static MetricDef {
        &METRICS[self as usize]
    }

    /// The metric of a name (`cpu_user`).
    pub fn from_name(name: &str) -> Option<Self> {
        METRICS.iter().find(|d| d.name == name).map(|d| d.metric)
    }
}

/// Every metric's name, in sample order (`cpu_idle, cpu_nice, ...`), for messages.
pub fn names() -> impl Iterator<Item = &'static str> {
    METRICS.iter().map(|d| d.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_in_sample_order() {
        for (i, d) in METRICS.iter().enumerate() {
            assert_eq!(d.metric.index(), i, "{}", d.name);
            assert_eq!(Metric::from_name(d.name), Some(d.metric));
        }
        for group in [&CPU[..], &MEMORY[..], &LOAD[..]] {
            assert!(group.windows(2).all(|w| w[0].index() + 1 == w[1].index()));
        }
        assert_eq!(Metric::Procs.index(), COUNT - 1);
    }
}
