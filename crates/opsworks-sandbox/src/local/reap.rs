//! Reaping machines no data dir owns: a machine outlives its server by design (a restart finds
//! it again), so one whose directory was deleted — its server and data dir gone — would run
//! forever and keep its address. [`LocalProvider::reap_orphans`] kills such machines and frees
//! what they held, host-wide, and never touches a machine whose directory exists.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::net::{NetNames, Network, machine_remains, mount_ns};
use super::{KILL_TIMEOUT, LocalProvider};
use crate::cgroup::Layout;
use crate::error::{Error, Result};

/// A machine that was killed and cleaned away because no data dir owns it any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    /// The machine's directory, which no longer exists; `None` for a namespace or control
    /// group that no lease names.
    pub machine_dir: Option<PathBuf>,
    /// What it is known by: the machine id (its directory's name), else its kernel name
    /// (`opsw-<hash>`).
    pub name: String,
    /// The address it held, now free.
    pub private_ip: Option<Ipv4Addr>,
    /// How many of its processes were killed.
    pub processes: usize,
    /// Why it was reaped.
    pub reason: String,
}

impl fmt::Display for Reaped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "machine {}", self.name)?;
        if let Some(ip) = self.private_ip {
            write!(f, " ({ip})")?;
        }
        write!(f, ": {}; {} processes killed", self.reason, self.processes)
    }
}

impl LocalProvider {
    /// Kills every machine on this host whose directory is gone (its server and data dir were
    /// deleted while it ran), with whatever is left of it — processes, control group, network
    /// namespace, veth, address lease — and every `opsw-` namespace or group no lease names (left
    /// by a crash). Each one is logged; the server calls this at start and says when it reaped
    /// any.
    ///
    /// A machine whose directory exists is never touched, whoever owns it; nor is one leased
    /// from another mount namespace, where its directory cannot be seen from here.
    pub fn reap_orphans(&self) -> Result<Vec<Reaped>> {
        self.check_host()?;
        let network = self.network()?;
        // Under the registry's lock a lease is always made before its machine's namespace and
        // group, and dropped after them, so nothing half-made is mistaken for an orphan.
        let _lock = network.lock()?;
        let layout = Layout::detect()?;
        let mine = mount_ns();
        let mut reaped = Vec::new();
        for lease in network.lease_records()? {
            if !lease.owner_gone(mine.as_deref()) {
                if !lease.judged_from(mine.as_deref()) {
                    tracing::debug!(
                        owner = %lease.owner.display(),
                        "lease made from another mount namespace: its machine is left alone"
                    );
                }
                continue;
            }
            let names = NetNames::for_machine(&lease.owner);
            let remained = machine_remains(&names, layout.as_ref());
            let processes = clean(&network, &names, layout.as_ref())?;
            network.drop_lease(lease.ip)?;
            if remained {
                reaped.push(Reaped {
                    name: lease
                        .owner
                        .file_name()
                        .map_or_else(|| names.netns.clone(), |n| n.to_string_lossy().into_owned()),
                    reason: format!("its directory {} is gone", lease.owner.display()),
                    machine_dir: Some(lease.owner),
                    private_ip: Some(lease.ip),
                    processes,
                });
            }
        }
        let leased = network.all_leased_names();
        for name in unleased(&leased, layout.as_ref()) {
            let names = NetNames {
                veth_host: name.replacen("opsw-", "opswv", 1),
                veth_peer: name.replacen("opsw-", "opswp", 1),
                netns: name.clone(),
            };
            let processes = clean(&network, &names, layout.as_ref())?;
            reaped.push(Reaped {
                machine_dir: None,
                reason: "no address lease names it (left by a crash or an older provider)"
                    .to_string(),
                name,
                private_ip: None,
                processes,
            });
        }
        for machine in &reaped {
            tracing::warn!(
                machine = %machine.name,
                ip = ?machine.private_ip,
                processes = machine.processes,
                "reaped an orphaned machine: {}",
                machine.reason
            );
        }
        Ok(reaped)
    }
}

/// Machine names (`opsw-<hash>`) of network namespaces and control groups that no lease names.
fn unleased(leased: &BTreeSet<String>, layout: Option<&Layout>) -> BTreeSet<String> {
    let mut dirs = vec![PathBuf::from("/run/netns")];
    if let Some(layout) = layout {
        dirs.extend(layout.parents());
    }
    dirs.iter()
        .filter_map(|dir| fs::read_dir(dir).ok())
        .flat_map(|entries| entries.flatten())
        .filter_map(|entry| entry.file_name().to_str().map(str::to_string))
        .filter(|name| is_machine_name(name) && !leased.contains(name))
        .collect()
}

/// `opsw-` and the ten hex digits of [`super::short_hash`].
fn is_machine_name(name: &str) -> bool {
    name.strip_prefix("opsw-")
        .is_some_and(|h| h.len() == 10 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Kills everything of a machine and removes its group, veth and namespace; returns how many
/// processes were killed. The caller holds the network lock.
fn clean(network: &Network<'_>, names: &NetNames, layout: Option<&Layout>) -> Result<usize> {
    let mut killed = BTreeSet::new();
    let deadline = Instant::now() + KILL_TIMEOUT;
    loop {
        let group = layout.map(|l| l.group(&names.netns));
        let mut pids: BTreeSet<u32> = in_netns(&names.netns_path()).into_iter().collect();
        pids.extend(group.iter().flat_map(|g| g.procs()));
        if pids.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(Error::Stop {
                id: names.netns.clone(),
                reason: format!(
                    "{} processes survived SIGKILL for {KILL_TIMEOUT:?}",
                    pids.len()
                ),
            });
        }
        for pid in pids {
            if let Ok(raw) = i32::try_from(pid)
                && kill(Pid::from_raw(raw), Signal::SIGKILL).is_ok()
            {
                killed.insert(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Some(layout) = layout {
        layout.group(&names.netns).remove(KILL_TIMEOUT)?;
    }
    network.detach_locked(names)?;
    Ok(killed.len())
}

/// Host pids of the live processes in the network namespace mounted at `netns`.
fn in_netns(netns: &Path) -> Vec<u32> {
    let Ok(target) = fs::metadata(netns) else {
        return Vec::new();
    };
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| m.ino() == target.ino() && m.dev() == target.dev())
                && crate::procfs::start_time(*pid).is_some()
                && !is_zombie(*pid)
        })
        .collect()
}

fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_machine_names_are_considered() {
        assert!(is_machine_name("opsw-0123456789"));
        assert!(is_machine_name("opsw-abcdefabcd"));
        for other in ["opsw-xyz", "opsw-0123456789a", "opsw0", "docker", "opsw-"] {
            assert!(!is_machine_name(other), "{other}");
        }
    }

    #[test]
    fn a_reaped_machine_reads_well() {
        let r = Reaped {
            machine_dir: Some("/gone/machines/i-1".into()),
            name: "i-1".into(),
            private_ip: Some(Ipv4Addr::new(10, 217, 0, 4)),
            processes: 3,
            reason: "its directory /gone/machines/i-1 is gone".into(),
        };
        assert_eq!(
            r.to_string(),
            "machine i-1 (10.217.0.4): its directory /gone/machines/i-1 is gone; 3 processes killed"
        );
    }
}
