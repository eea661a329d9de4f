//! End-to-end tests of what keeps machines apart on one host: host-wide address leases across
//! providers, reaping machines whose directory is gone, and each machine's control group with
//! its instance type's limits. Real namespaces and control groups; root needed.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use common::*;
use opsworks_sandbox::{Limits, Machine, MachineSpec, MachineState, Provider, RootDevice};

/// Provisions `count` sleepers named `<prefix>-<i>` on each env at once, across envs too.
fn provision_many(envs: &[&Env], prefix: &str, count: usize) -> Vec<Machine> {
    let rt = &envs[0].rt;
    rt.block_on(async {
        let mut tasks = Vec::new();
        for (e, env) in envs.iter().enumerate() {
            for i in 0..count {
                let provider = env.provider.clone();
                let spec = sleeper_spec(&format!("{prefix}{e}-{i}"), RootDevice::InstanceStore);
                tasks.push(tokio::spawn(async move { provider.provision(spec).await }));
            }
        }
        let mut machines = Vec::new();
        for task in tasks {
            machines.push(task.await.unwrap().unwrap());
        }
        machines
    })
}

/// The IPv4 address configured on the machine's eth0, as the machine's kernel has it.
fn eth0_address(env: &Env, id: &str) -> Ipv4Addr {
    let out = env.sh(id, "ip -4 -o addr show dev eth0");
    let cidr = out
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or_else(|| panic!("no inet address in {out:?}"));
    cidr.split('/').next().unwrap().parse().unwrap()
}

#[test]
fn providers_with_different_state_dirs_never_share_an_address() {
    let (a, b) = (Env::new(), Env::new());
    assert_ne!(a.state_dir(), b.state_dir());
    let first = provision_many(&[&a, &b], "p", 4);
    let ips: BTreeSet<Ipv4Addr> = first.iter().map(|m| m.private_ip).collect();
    assert_eq!(
        ips.len(),
        first.len(),
        "an address was given twice: {first:?}"
    );
    for m in &first {
        let env = if m.id.starts_with("p0-") { &a } else { &b };
        assert_eq!(eth0_address(env, &m.id), m.private_ip, "{}", m.id);
    }

    // A's state dir vanishes while its machines run (its server and data dir deleted): their
    // addresses stay theirs, so machines made now get others.
    let a_ips: BTreeSet<Ipv4Addr> = first
        .iter()
        .filter(|m| m.id.starts_with("p0-"))
        .map(|m| m.private_ip)
        .collect();
    std::fs::remove_dir_all(a.state_dir()).unwrap();
    let later = provision_many(&[&b], "q", 4);
    for m in &later {
        assert!(
            !a_ips.contains(&m.private_ip),
            "{} got {}, still held by a running machine whose dir was deleted",
            m.id,
            m.private_ip
        );
        assert!(!ips.contains(&m.private_ip), "{} got a taken address", m.id);
    }
    let later_ips: BTreeSet<Ipv4Addr> = later.iter().map(|m| m.private_ip).collect();
    assert_eq!(later_ips.len(), later.len());
    // Clean up A's orphans the way a server's start does.
    let reaped = b.provider.reap_orphans().unwrap();
    for ip in &a_ips {
        assert!(
            reaped.iter().any(|r| r.private_ip == Some(*ip)),
            "{ip} not reaped: {reaped:?}"
        );
    }
}

#[test]
fn a_machine_whose_dir_is_gone_is_reaped_and_one_whose_dir_exists_is_not() {
    let (a, b) = (Env::new(), Env::new());
    let orphan =
        a.rt.block_on(
            a.provider
                .provision(sleeper_spec("orphan", RootDevice::Ebs)),
        )
        .unwrap();
    let kept =
        b.rt.block_on(b.provider.provision(sleeper_spec("kept", RootDevice::Ebs)))
            .unwrap();
    let orphan_pid = running_pid(orphan.state);
    let kept_pid = running_pid(kept.state);
    let orphan_dir = a.provider.machine_dir_of("orphan").unwrap();
    let (orphan_netns, orphan_veth) = a.provider.net_names("orphan").unwrap();
    let orphan_groups = a.provider.cgroup_dirs("orphan").unwrap();
    assert!(orphan_groups.iter().all(|g| g.exists()));

    // The reaper leaves both alone while their directories exist.
    let reaped = b.provider.reap_orphans().unwrap();
    assert!(
        !reaped
            .iter()
            .any(|r| r.name == "orphan" || r.name == "kept"),
        "{reaped:?}"
    );
    assert!(alive(orphan_pid) && alive(kept_pid));

    std::fs::remove_dir_all(a.state_dir()).unwrap();
    let reaped = b.provider.reap_orphans().unwrap();
    let entry = reaped
        .iter()
        .find(|r| r.machine_dir.as_deref() == Some(orphan_dir.as_path()))
        .unwrap_or_else(|| panic!("the orphan was not reaped: {reaped:?}"));
    assert_eq!(entry.private_ip, Some(orphan.private_ip));
    assert_eq!(entry.name, "orphan");
    assert!(entry.processes >= 2, "init and sleep: {entry:?}");
    assert!(entry.to_string().contains("is gone"), "{entry}");
    assert!(!alive(orphan_pid), "the orphan's init survived");
    assert!(!Path::new("/run/netns").join(&orphan_netns).exists());
    assert!(!Path::new("/sys/class/net").join(&orphan_veth).exists());
    for group in &orphan_groups {
        assert!(!group.exists(), "{} left behind", group.display());
    }
    assert_eq!(
        lease_of(&orphan_dir),
        None,
        "the orphan's address is still leased"
    );

    // The machine whose directory exists runs on, untouched, with its address.
    assert!(!reaped.iter().any(|r| r.name == "kept"), "{reaped:?}");
    assert_eq!(
        b.rt.block_on(b.provider.status("kept")).unwrap(),
        MachineState::Running { pid: kept_pid }
    );
    assert_eq!(eth0_address(&b, "kept"), kept.private_ip);
    // Reaping again finds nothing of it.
    let again = b.provider.reap_orphans().unwrap();
    assert!(
        !again
            .iter()
            .any(|r| r.machine_dir.as_deref() == Some(orphan_dir.as_path())),
        "{again:?}"
    );
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The group directory of the hierarchy carrying `controller` (v1) or the only one (v2).
fn group_dir(groups: &[PathBuf], controller: &str) -> PathBuf {
    groups
        .iter()
        .find(|g| {
            g.parent()
                .and_then(Path::parent)
                .and_then(Path::file_name)
                .is_some_and(|h| h.to_string_lossy().split(',').any(|c| c == controller))
        })
        .or(groups.first().filter(|_| groups.len() == 1))
        .unwrap_or_else(|| panic!("no {controller} hierarchy in {groups:?}"))
        .clone()
}

#[test]
fn a_t3_micro_gets_the_tables_limits_in_its_own_control_group() {
    let env = Env::new();
    let size = opsworks_model::instance_types::size_of("t3.micro");
    let mut spec = sleeper_spec("micro", RootDevice::Ebs);
    spec.limits = Some(Limits::new(size.vcpus, size.memory_mib));
    let machine = env.rt.block_on(env.provider.provision(spec)).unwrap();
    let init = running_pid(machine.state);
    let groups = env.provider.cgroup_dirs("micro").unwrap();
    let v2 = groups.len() == 1;
    if v2 {
        let dir = &groups[0];
        assert_eq!(read(dir.join("cpu.max")), "200000 100000");
        assert_eq!(read(dir.join("cpu.weight")), "200");
        assert_eq!(read(dir.join("memory.max")), (1u64 << 30).to_string());
    } else {
        let cpu = group_dir(&groups, "cpu");
        let memory = group_dir(&groups, "memory");
        assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
        assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "200000", "2 vCPUs");
        assert_eq!(read(cpu.join("cpu.shares")), "2048");
        assert_eq!(
            read(memory.join("memory.limit_in_bytes")),
            (1u64 << 30).to_string(),
            "1 GiB"
        );
    }
    // Everything of the machine is in its group: the init and its main process.
    for dir in &groups {
        let procs = read(dir.join("cgroup.procs"));
        assert!(
            procs.split_whitespace().any(|p| p == init.to_string()),
            "{}: {procs}",
            dir.display()
        );
    }

    // Inside, /sys/fs/cgroup is the machine's own group, read-only.
    let own = env.sh("micro", "cat /proc/self/cgroup");
    for line in own.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (
            fields.next(),
            fields.next().unwrap(),
            fields.next().unwrap(),
        );
        if controllers
            .split(',')
            .any(|c| ["cpu", "memory", ""].contains(&c))
        {
            assert_eq!(path, "/", "{line}");
        }
    }
    let inside_limit = if v2 {
        env.sh("micro", "cat /sys/fs/cgroup/memory.max")
    } else {
        env.sh("micro", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
    };
    assert_eq!(inside_limit, (1u64 << 30).to_string());
    let raise = if v2 {
        "echo max > /sys/fs/cgroup/memory.max"
    } else {
        "echo -1 > /sys/fs/cgroup/memory/memory.limit_in_bytes"
    };
    let out = env.exec("micro", &["/bin/sh", "-c", raise]);
    assert_ne!(out.exit_code, 0, "the machine raised its own memory limit");

    // The limit holds: 1.5 GiB of touched memory does not fit in 1 GiB without swap.
    let hog = env.exec(
        "micro",
        &[&python(), "-c", "b = b'x' * (1536 << 20); print(len(b))"],
    );
    assert_eq!(
        hog.exit_code,
        128 + 9,
        "the kernel's OOM killer should end it: {}",
        String::from_utf8_lossy(&hog.stderr)
    );

    // A stop frees the group; a start makes it again; destroy leaves nothing.
    env.rt
        .block_on(env.provider.stop("micro", Duration::from_secs(5)))
        .unwrap();
    for dir in &groups {
        assert!(!dir.exists(), "{} kept after stop", dir.display());
    }
    let mut again = sleeper_spec("micro", RootDevice::Ebs);
    again.limits = Some(Limits::new(1, 512));
    env.rt.block_on(env.provider.provision(again)).unwrap();
    if !v2 {
        assert_eq!(
            read(group_dir(&groups, "cpu").join("cpu.cfs_quota_us")),
            "100000"
        );
    }
    env.rt.block_on(env.provider.destroy("micro")).unwrap();
    assert_no_trace(&env, "micro");
}

#[test]
fn a_machine_without_limits_still_has_a_group_and_an_unlimited_one_at_that() {
    let env = Env::new();
    let spec: MachineSpec = sleeper_spec("free", RootDevice::InstanceStore);
    assert!(spec.limits.is_none());
    env.rt.block_on(env.provider.provision(spec)).unwrap();
    let groups = env.provider.cgroup_dirs("free").unwrap();
    assert!(groups.iter().all(|g| g.exists()));
    if groups.len() == 1 {
        assert!(read(groups[0].join("cpu.max")).starts_with("max"));
    } else {
        assert_eq!(
            read(group_dir(&groups, "cpu").join("cpu.cfs_quota_us")),
            "-1"
        );
    }
    env.rt.block_on(env.provider.destroy("free")).unwrap();
    assert_no_trace(&env, "free");
}
