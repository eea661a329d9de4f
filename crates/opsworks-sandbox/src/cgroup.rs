//! Control groups of local machines: finding the host's hierarchies (cgroup v2's unified one
//! where it has the CPU and memory controllers, else cgroup v1's per-controller ones), making a
//! machine's group with CPU and memory limits, listing and killing what runs in it, and
//! removing it.
//!
//! A machine's CPU limit is a CFS quota of its vCPUs per 100 ms, and its weight against other
//! groups when the host's CPUs are contended is proportional to its vCPUs (v1 `cpu.shares`
//! 1024 per vCPU, v2 `cpu.weight` 100 per vCPU); its memory limit has no swap beyond it.
//!
//! Every machine's group is `<hierarchy>/opsworks/<name>` (in each v1 hierarchy the provider uses:
//! cpu, cpuacct, memory and pids when present). Groups sit under the hierarchy's root, not under
//! the server's own group: machines outlive the server, and v2 lets only the root (or an empty
//! group) hand controllers down.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::procfs::unescape_mountinfo;
use crate::spec::Limits;

/// The directory under each hierarchy's root that holds the machines' groups.
pub(crate) const PARENT: &str = "opsworks";
/// The CFS period the CPU quota is expressed in (the kernel's default, 100 ms).
const CFS_PERIOD_US: u64 = 100_000;
/// The v1 controllers a machine's group needs; `pids` is used where the host has it.
const V1_REQUIRED: [&str; 3] = ["cpu", "cpuacct", "memory"];
const V1_OPTIONAL: [&str; 1] = ["pids"];
/// Controllers v1 may mount (anything else in the super options is a mount option).
const V1_CONTROLLERS: [&str; 14] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "pids",
    "blkio",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "perf_event",
    "hugetlb",
    "rdma",
    "misc",
];
/// What the v2 unified hierarchy must offer for machines to use it.
const V2_REQUIRED: [&str; 2] = ["cpu", "memory"];

/// The host's hierarchies the provider uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Layout {
    /// The unified hierarchy mounted at `mount`, with `pids` among its controllers or not.
    V2 { mount: PathBuf, pids: bool },
    /// One v1 hierarchy per mount: its mount point and the controllers it carries (of those the
    /// provider uses).
    V1 {
        hierarchies: Vec<(PathBuf, Vec<String>)>,
    },
}

/// A file system the machine's init mounts under `/sys/fs/cgroup`, read-only, in the machine's
/// cgroup namespace, so that it shows the machine's own group as its root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InnerMount {
    /// `cgroup` or `cgroup2`.
    pub fstype: String,
    /// Mount options: the controllers of a v1 hierarchy, empty for v2.
    pub options: String,
    /// Directory under `/sys/fs/cgroup` (empty: `/sys/fs/cgroup` itself).
    pub dir: String,
    /// Symbolic links to `dir` under `/sys/fs/cgroup` (`cpu` → `cpu,cpuacct`).
    pub links: Vec<String>,
}

/// One machine's group: its directory in every hierarchy used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Group {
    /// `<hierarchy>/opsworks/<name>` for each hierarchy.
    pub dirs: Vec<PathBuf>,
    /// Whether the group is in the v2 unified hierarchy.
    pub v2: bool,
}

impl Layout {
    /// Finds the hierarchies from `/proc/self/mountinfo`; `None` when the host has neither a v2
    /// hierarchy with the CPU and memory controllers nor v1 hierarchies for cpu, cpuacct and memory.
    pub(crate) fn detect() -> Result<Option<Layout>> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(Error::io("reading /proc/self/mountinfo"))?;
        Ok(Layout::parse(&mountinfo, |mount| {
            fs::read_to_string(mount.join("cgroup.controllers")).ok()
        }))
    }

    /// [`Layout::detect`] over a mountinfo text; `v2_controllers` reads a v2 mount's
    /// `cgroup.controllers`. v2 wins where it has the controllers: a host with both (hybrid)
    /// has its controllers on whichever side it bound them to.
    pub(crate) fn parse(
        mountinfo: &str,
        v2_controllers: impl Fn(&Path) -> Option<String>,
    ) -> Option<Layout> {
        let mut v1: Vec<(PathBuf, Vec<String>)> = Vec::new();
        let mut v2 = None;
        for line in mountinfo.lines() {
            let Some((before, after)) = line.split_once(" - ") else {
                continue;
            };
            let Some(point) = before.split(' ').nth(4) else {
                continue;
            };
            let point = PathBuf::from(unescape_mountinfo(point));
            let mut after = after.split(' ');
            let (fstype, super_options) = (after.next(), after.nth(1).unwrap_or(""));
            match fstype {
                Some("cgroup2") if v2.is_none() => {
                    if let Some(list) = v2_controllers(&point) {
                        let has = |c: &str| list.split_whitespace().any(|x| x == c);
                        if V2_REQUIRED.iter().all(|c| has(c)) {
                            v2 = Some(Layout::V2 {
                                pids: has("pids"),
                                mount: point,
                            });
                        }
                    }
                }
                Some("cgroup") => {
                    let controllers: Vec<String> = super_options
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o))
                        .map(str::to_string)
                        .collect();
                    let used = controllers.iter().any(|c| {
                        V1_REQUIRED.contains(&c.as_str()) || V1_OPTIONAL.contains(&c.as_str())
                    });
                    // The same hierarchy may be mounted twice: the first mount serves.
                    if used && !v1.iter().any(|(_, c)| *c == controllers) {
                        v1.push((point, controllers));
                    }
                }
                _ => {}
            }
        }
        if v2.is_some() {
            return v2;
        }
        let has = |c: &str| v1.iter().any(|(_, cs)| cs.iter().any(|x| x == c));
        V1_REQUIRED
            .iter()
            .all(|c| has(c))
            .then_some(Layout::V1 { hierarchies: v1 })
    }

    /// The group of the machine named `name` (not created yet).
    pub(crate) fn group(&self, name: &str) -> Group {
        match self {
            Layout::V2 { mount, .. } => Group {
                dirs: vec![mount.join(PARENT).join(name)],
                v2: true,
            },
            Layout::V1 { hierarchies } => Group {
                dirs: hierarchies
                    .iter()
                    .map(|(mount, _)| mount.join(PARENT).join(name))
                    .collect(),
                v2: false,
            },
        }
    }

    /// The hierarchies' `opsworks` directories, where every machine's group lives.
    pub(crate) fn parents(&self) -> Vec<PathBuf> {
        match self {
            Layout::V2 { mount, .. } => vec![mount.join(PARENT)],
            Layout::V1 { hierarchies } => hierarchies.iter().map(|(m, _)| m.join(PARENT)).collect(),
        }
    }

    /// What the machine's init mounts under `/sys/fs/cgroup`.
    pub(crate) fn inner_mounts(&self) -> Vec<InnerMount> {
        match self {
            Layout::V2 { .. } => vec![InnerMount {
                fstype: "cgroup2".to_string(),
                options: String::new(),
                dir: String::new(),
                links: Vec::new(),
            }],
            Layout::V1 { hierarchies } => hierarchies
                .iter()
                .map(|(_, controllers)| {
                    let dir = controllers.join(",");
                    InnerMount {
                        fstype: "cgroup".to_string(),
                        options: dir.clone(),
                        links: if controllers.len() > 1 {
                            controllers.clone()
                        } else {
                            Vec::new()
                        },
                        dir,
                    }
                })
                .collect(),
        }
    }

    /// Creates the group `name` afresh with `limits` (none: accounting only). A leftover group
    /// of that name with nothing in it is replaced; on failure nothing of the group is left.
    pub(crate) fn create(&self, name: &str, limits: Option<&Limits>) -> Result<Group> {
        let group = self.group(name);
        if group.exists() {
            group.remove(Duration::from_secs(5))?;
        }
        let made = self.create_and_limit(&group, limits);
        if made.is_err() {
            let _ = group.remove(Duration::from_secs(1));
        }
        made.map(|()| group)
    }

    fn create_and_limit(&self, group: &Group, limits: Option<&Limits>) -> Result<()> {
        match self {
            Layout::V2 { mount, pids } => {
                let enable = if *pids {
                    "+cpu +memory +pids"
                } else {
                    "+cpu +memory"
                };
                let parent = mount.join(PARENT);
                enable_controllers(mount, enable)?;
                mkdir(&parent)?;
                enable_controllers(&parent, enable)?;
                let dir = &group.dirs[0];
                mkdir(dir)?;
                if let Some(limits) = limits {
                    let quota = u64::from(limits.cpu_millis) * CFS_PERIOD_US / 1000;
                    write(dir, "cpu.max", &format!("{quota} {CFS_PERIOD_US}"))?;
                    let weight = (u64::from(limits.cpu_millis) / 10).clamp(1, 10_000);
                    write(dir, "cpu.weight", &weight.to_string())?;
                    write(dir, "memory.max", &limits.memory_bytes.to_string())?;
                    // An EC2 instance has no swap: the limit is the limit.
                    if dir.join("memory.swap.max").exists() {
                        write(dir, "memory.swap.max", "0")?;
                    }
                }
            }
            Layout::V1 { hierarchies } => {
                for ((mount, controllers), dir) in hierarchies.iter().zip(&group.dirs) {
                    mkdir(&mount.join(PARENT))?;
                    mkdir(dir)?;
                    let Some(limits) = limits else { continue };
                    if controllers.iter().any(|c| c == "cpu") {
                        let quota = u64::from(limits.cpu_millis) * CFS_PERIOD_US / 1000;
                        write(dir, "cpu.cfs_period_us", &CFS_PERIOD_US.to_string())?;
                        write(dir, "cpu.cfs_quota_us", &quota.to_string())?;
                        let shares = (u64::from(limits.cpu_millis) * 1024 / 1000).max(2);
                        write(dir, "cpu.shares", &shares.to_string())?;
                    }
                    if controllers.iter().any(|c| c == "memory") {
                        write(
                            dir,
                            "memory.limit_in_bytes",
                            &limits.memory_bytes.to_string(),
                        )?;
                        // Memory plus swap, where the kernel accounts swap: no swap either.
                        if dir.join("memory.memsw.limit_in_bytes").exists() {
                            write(
                                dir,
                                "memory.memsw.limit_in_bytes",
                                &limits.memory_bytes.to_string(),
                            )?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Group {
    /// Whether any directory of the group exists.
    pub(crate) fn exists(&self) -> bool {
        self.dirs.iter().any(|d| d.exists())
    }

    /// Host pids of the processes in the group (in any of its hierarchies).
    pub(crate) fn procs(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self
            .dirs
            .iter()
            .filter_map(|d| fs::read_to_string(d.join("cgroup.procs")).ok())
            .flat_map(|text| {
                text.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// SIGKILLs everything in the group until it is empty; returns how many processes it killed.
    pub(crate) fn kill_all(&self, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        let mut killed = std::collections::BTreeSet::new();
        loop {
            let pids = self.procs();
            if pids.is_empty() {
                return Ok(killed.len());
            }
            if Instant::now() >= deadline {
                return Err(Error::Stop {
                    id: self.describe(),
                    reason: format!(
                        "{} processes of its control group survived SIGKILL for {timeout:?}",
                        pids.len()
                    ),
                });
            }
            for pid in pids {
                if let Ok(pid) = i32::try_from(pid)
                    && kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok()
                {
                    killed.insert(pid);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Removes the group's directories (waiting up to `timeout` for exiting tasks to leave).
    pub(crate) fn remove(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for dir in &self.dirs {
            loop {
                match fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::NotFound => break,
                    Err(e)
                        if e.raw_os_error() == Some(libc_ebusy()) && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => {
                        return Err(Error::Io {
                            context: format!("removing the control group {}", dir.display()),
                            source: e,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        self.dirs
            .first()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

fn libc_ebusy() -> i32 {
    nix::errno::Errno::EBUSY as i32
}

/// Moves the calling process into every directory of `dirs` (its children follow).
pub(crate) fn join(dirs: &[PathBuf]) -> Result<()> {
    for dir in dirs {
        write(dir, "cgroup.procs", "0")?;
    }
    Ok(())
}

fn mkdir(dir: &Path) -> Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => Err(Error::Io {
            context: format!("creating the control group {}", dir.display()),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    // One write(2): control files act on each write, and a short one would be a different value.
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(Error::io(format!(
            "writing {value:?} to {}",
            path.display()
        )))
}

/// Enables controllers for the children of a v2 group, explaining the one refusal a host makes
/// in practice.
fn enable_controllers(dir: &Path, list: &str) -> Result<()> {
    write(dir, "cgroup.subtree_control", list).map_err(|e| match e {
        Error::Io { context, source } if source.raw_os_error() == Some(libc_ebusy()) => {
            Error::Unavailable {
                missing: format!(
                    "cgroup v2 controllers for machines ({context}: {source}; the group has processes \
                     of its own, so it cannot hand controllers down: run the server where the \
                     cgroup root is the host's)"
                ),
            }
        }
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // This project's CI host: v1 hierarchies one per controller, plus an empty unified one.
    const HYBRID: &str = "\
25 1 0:23 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
27 26 0:25 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
28 26 0:26 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
29 26 0:27 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
30 26 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
31 26 0:29 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
32 26 0:30 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
33 26 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    // Debian 11 and later, systemd's default: the unified hierarchy only.
    const UNIFIED: &str = "\
25 1 0:23 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
    // Older distributions: cpu and cpuacct co-mounted.
    const COMOUNTED: &str = "\
27 26 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
30 26 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
";

    #[test]
    fn v1_hierarchies_are_found_and_the_empty_unified_one_ignored() {
        let layout = Layout::parse(HYBRID, |_| Some(String::new())).unwrap();
        let Layout::V1 { hierarchies } = &layout else {
            panic!("{layout:?}")
        };
        let names: Vec<String> = hierarchies.iter().map(|(_, c)| c.join(",")).collect();
        assert_eq!(names, ["cpu", "cpuacct", "memory", "pids"]);
        let group = layout.group("opsw-1");
        assert_eq!(
            group.dirs[2],
            Path::new("/sys/fs/cgroup/memory/opsworks/opsw-1")
        );
        assert!(!group.v2);
        let mounts = layout.inner_mounts();
        assert_eq!(mounts[0].options, "cpu");
        assert!(
            mounts
                .iter()
                .all(|m| m.fstype == "cgroup" && m.links.is_empty())
        );
    }

    #[test]
    fn the_unified_hierarchy_is_used_when_it_has_the_controllers() {
        let layout = Layout::parse(UNIFIED, |p| {
            assert_eq!(p, Path::new("/sys/fs/cgroup"));
            Some("cpuset cpu io memory hugetlb pids rdma misc\n".to_string())
        })
        .unwrap();
        assert_eq!(
            layout,
            Layout::V2 {
                mount: "/sys/fs/cgroup".into(),
                pids: true
            }
        );
        assert_eq!(
            layout.group("opsw-1").dirs,
            [PathBuf::from("/sys/fs/cgroup/opsworks/opsw-1")]
        );
        assert_eq!(layout.inner_mounts()[0].fstype, "cgroup2");
        // Without the memory controller (bound to v1 elsewhere) v2 is not enough.
        assert_eq!(Layout::parse(UNIFIED, |_| Some("cpu io".into())), None);
        // A hybrid host whose controllers moved to the unified side uses it.
        assert!(matches!(
            Layout::parse(HYBRID, |_| Some("cpu memory".into())),
            Some(Layout::V2 { pids: false, .. })
        ));
    }

    #[test]
    fn comounted_controllers_share_a_directory_and_get_links_inside() {
        let layout = Layout::parse(COMOUNTED, |_| None).unwrap();
        assert_eq!(layout.group("m").dirs.len(), 2);
        let mounts = layout.inner_mounts();
        assert_eq!(mounts[0].dir, "cpu,cpuacct");
        assert_eq!(mounts[0].links, ["cpu", "cpuacct"]);
        // Missing memory: no layout at all.
        assert_eq!(
            Layout::parse(COMOUNTED.lines().next().unwrap(), |_| None),
            None
        );
        assert_eq!(Layout::parse("", |_| None), None);
    }
}
