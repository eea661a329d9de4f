//! Tests of the control-group sampler over real texts of v1 and v2 control files (v2 cannot be
//! exercised on the project's v1 CI hosts, so its files are fixtures taken from a v2 host).

use opsworks_model::metrics::Metric;
use std::fs;

use super::*;

// Inside a local instance on a v1 host: its cgroup namespace mounted at /sys/fs/cgroup.
const MOUNTINFO_V1_INSIDE: &str = "\
612 598 0:95 / / rw,relatime - overlay overlay rw,lowerdir=/,upperdir=/u,workdir=/w
615 612 0:97 / /sys ro,nosuid,nodev,noexec,relatime - sysfs sysfs ro
616 615 0:98 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - tmpfs tmpfs ro,size=64k,mode=755
617 616 0:29 / /sys/fs/cgroup/cpu ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu
618 616 0:30 / /sys/fs/cgroup/cpuacct ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpuacct
619 616 0:32 / /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,memory
620 616 0:36 / /sys/fs/cgroup/pids ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,pids
";
const CGROUP_V1_INSIDE: &str = "\
9:name=systemd:/../..
8:pids:/
7:blkio:/../..
4:memory:/
2:cpuacct:/
1:cpu:/
0::/
";
// A v2 host (Debian 12), a process in a service's group, seen from the host.
const MOUNTINFO_V2: &str = "\
25 1 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";
const CGROUP_V2: &str = "0::/opsworks/opsw-0123456789\n";
// cpu.stat of a v2 group (Linux 6.1).
const CPU_STAT_V2: &str = "usage_usec 2500000
user_usec 2000000
system_usec 500000
core_sched.force_idle_usec 0
nr_periods 41
nr_throttled 3
throttled_usec 84000
nr_bursts 0
burst_usec 0
";
// memory.stat of a v2 group (abridged, Linux 6.1).
const MEMORY_STAT_V2: &str = "anon 104857600
file 52428800
kernel 4194304
kernel_stack 327680
pagetables 1081344
sock 0
shmem 0
file_mapped 20971520
file_dirty 0
";
// memory.stat of a v1 group (abridged, Linux 6.18).
const MEMORY_STAT_V1: &str = "cache 10485760
rss 20971520
rss_huge 0
shmem 0
mapped_file 4194304
swap 0
total_cache 31457280
total_rss 41943040
total_swap 1048576
";

#[test]
fn a_v1_group_is_found_inside_its_namespace() {
    let files = find(MOUNTINFO_V1_INSIDE, CGROUP_V1_INSIDE, |_| false).unwrap();
    assert_eq!(files.cpu, Path::new("/sys/fs/cgroup/cpu"));
    assert_eq!(files.cpuacct, Path::new("/sys/fs/cgroup/cpuacct"));
    assert_eq!(files.memory, Path::new("/sys/fs/cgroup/memory"));
    assert!(!files.v2);
}

#[test]
fn a_v1_group_below_the_root_is_found_on_the_host() {
    let mountinfo = "\
27 26 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
30 26 0:28 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
";
    let own = "3:memory:/opsworks/m1\n2:cpu,cpuacct:/opsworks/m1\n";
    let files = find(mountinfo, own, |_| false).unwrap();
    assert_eq!(
        files.cpu,
        Path::new("/sys/fs/cgroup/cpu,cpuacct/opsworks/m1")
    );
    assert_eq!(files.cpu, files.cpuacct);
    assert_eq!(files.memory, Path::new("/sys/fs/cgroup/memory/opsworks/m1"));
    // A path outside what a mount shows is not reachable through it.
    let bind = "27 26 0:25 /docker/x /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu,cpuacct\n";
    assert_eq!(find(bind, "2:cpu,cpuacct:/other\n", |_| false), None);
    assert_eq!(place(Path::new("/c"), "/docker/x", "/docker/xy"), None);
    assert_eq!(
        place(Path::new("/c"), "/docker/x", "/docker/x/a"),
        Some(PathBuf::from("/c/a"))
    );
}

#[test]
fn a_v2_group_needs_its_cpu_and_memory_files() {
    let files = find(MOUNTINFO_V2, CGROUP_V2, |_| true).unwrap();
    assert_eq!(
        files.cpu,
        Path::new("/sys/fs/cgroup/opsworks/opsw-0123456789")
    );
    assert!(files.v2 && files.memory == files.cpu);
    // Without the controllers enabled for the group, its files are missing.
    assert_eq!(find(MOUNTINFO_V2, CGROUP_V2, |_| false), None);
    // Not in any group at all (no cgroup file system).
    assert_eq!(find("", CGROUP_V2, |_| true), None);
}

fn reader<'a>(files: &'a [(&'a str, &'a str)]) -> impl Fn(&Path) -> Option<String> + 'a {
    move |p| {
        files
            .iter()
            .find(|(name, _)| p.ends_with(name))
            .map(|(_, text)| text.to_string())
    }
}

#[test]
fn limits_need_both_a_quota_and_a_memory_limit() {
    let v1 = CgroupFiles {
        cpu: "/c".into(),
        cpuacct: "/c".into(),
        memory: "/m".into(),
        v2: false,
    };
    let limited = [
        ("cpu.cfs_quota_us", "200000\n"),
        ("cpu.cfs_period_us", "100000\n"),
        ("memory.limit_in_bytes", "1073741824\n"),
    ];
    assert_eq!(
        limits(&v1, reader(&limited)),
        Some(GroupLimits {
            cpus: 2.0,
            memory_bytes: 1 << 30
        })
    );
    let no_quota = [
        ("cpu.cfs_quota_us", "-1\n"),
        ("cpu.cfs_period_us", "100000\n"),
        ("memory.limit_in_bytes", "1073741824\n"),
    ];
    assert_eq!(limits(&v1, reader(&no_quota)), None);
    let no_memory_limit = [
        ("cpu.cfs_quota_us", "50000\n"),
        ("cpu.cfs_period_us", "100000\n"),
        ("memory.limit_in_bytes", "9223372036854771712\n"),
    ];
    assert_eq!(limits(&v1, reader(&no_memory_limit)), None);

    let v2 = CgroupFiles {
        v2: true,
        memory: "/c".into(),
        ..v1
    };
    let limited = [
        ("cpu.max", "150000 100000\n"),
        ("memory.max", "536870912\n"),
    ];
    assert_eq!(
        limits(&v2, reader(&limited)),
        Some(GroupLimits {
            cpus: 1.5,
            memory_bytes: 512 << 20
        })
    );
    for unlimited in [
        [("cpu.max", "max 100000\n"), ("memory.max", "536870912\n")],
        [("cpu.max", "100000 100000\n"), ("memory.max", "max\n")],
    ] {
        assert_eq!(limits(&v2, reader(&unlimited)), None);
    }
}

#[test]
fn cpu_shares_are_of_the_quota() {
    // v1: 1.5 s of CPU in 1 s on 2 CPUs = 75 %, user 3 ticks to system 1.
    let a = parse_cpuacct("1000000000\n", "user 100\nsystem 50\n").unwrap();
    let b = parse_cpuacct("2500000000\n", "user 130\nsystem 60\n").unwrap();
    let [idle, nice, steal, system, user, waitio] = cpu_percent(&a, &b, 1.0, 2.0, 0.0);
    let close = |x: f64, y: f64| (x - y).abs() < 1e-9;
    assert!(
        close(user, 75.0 * 0.75) && close(system, 75.0 * 0.25),
        "{user} {system}"
    );
    assert!(close(idle, 25.0));
    assert_eq!((nice, steal, waitio), (0.0, 0.0, 0.0));
    // More than the quota in an interval (a late tick) reads 100 %, never more.
    assert!(close(cpu_percent(&a, &b, 0.5, 1.0, 0.0)[0], 0.0));
    // Counters going back (the group was made again) read zero.
    assert_eq!(cpu_percent(&b, &a, 1.0, 2.0, 0.0), [0.0; 6]);
    // Waiting for a CPU the host gave elsewhere is steal, up to the quota left unused.
    let [idle, _, steal, _, user, _] = cpu_percent(&a, &b, 1.0, 2.0, 0.2e9);
    assert!(
        close(steal, 10.0) && close(idle, 15.0) && close(user, 56.25),
        "{steal} {idle}"
    );
    let [idle, _, steal, ..] = cpu_percent(&a, &b, 1.0, 2.0, 5e9);
    assert!(close(steal, 25.0) && close(idle, 0.0), "{steal} {idle}");
    // v2: cpu.stat in microseconds.
    let v2 = parse_cpu_stat(CPU_STAT_V2).unwrap();
    assert_eq!(
        v2,
        CpuUsage {
            total: 2_500_000_000,
            user: 2_000_000,
            system: 500_000
        }
    );
    let shares = cpu_percent(&CpuUsage::default(), &v2, 5.0, 1.0, 0.0);
    assert!(close(shares[4], 40.0) && close(shares[3], 10.0) && close(shares[0], 50.0));
    assert_eq!(parse_cpu_stat("user_usec 1\n"), None);
    assert_eq!(parse_cpuacct("x", "user 1\nsystem 1\n"), None);
}

#[test]
fn memory_is_the_groups_against_its_limit() {
    let gib = 1u64 << 30;
    // v1: 100 MiB used of which 30 MiB page cache (hierarchical totals), 1 MiB swapped.
    let [buffers, cached, free, swap, total, used] =
        memory_kib(100 << 20, MEMORY_STAT_V1, gib, 1 << 20, 16_000_000.0, false);
    assert_eq!(total, 1024.0 * 1024.0, "the limit, in KiB");
    assert_eq!(cached, 30.0 * 1024.0);
    assert_eq!(free, total - 100.0 * 1024.0);
    assert_eq!(used, 70.0 * 1024.0);
    assert_eq!((buffers, swap), (0.0, 1024.0));
    assert_eq!(used, total - free - buffers - cached);
    // v2: `file` is the page cache.
    let [_, cached, _, _, _, used] = memory_kib(200 << 20, MEMORY_STAT_V2, gib, 0, 16e6, true);
    assert_eq!((cached, used), (50.0 * 1024.0, 150.0 * 1024.0));
    // A limit above the host's memory is the host's memory.
    let [_, _, _, _, total, _] = memory_kib(1 << 20, "", 64 * gib, 0, 2_000_000.0, true);
    assert_eq!(total, 2_000_000.0);
}

#[test]
fn load_averages_are_damped_as_the_kernels() {
    let mut load = LoadAverage::new();
    assert_eq!(load.get(), [0.0; 3]);
    // One busy task for a minute: load_1 reaches 1 - 1/e of the way, load_15 far less.
    load.fold(1, 12);
    let [one, five, fifteen] = load.get();
    assert!((one - (1.0 - (-1.0f64).exp())).abs() < 1e-9, "{one}");
    assert!((five - (1.0 - (-0.2f64).exp())).abs() < 1e-9, "{five}");
    assert!(fifteen < five && five < one);
    // Folding period by period is the same as folding them at once.
    let mut stepwise = LoadAverage::new();
    for _ in 0..12 {
        stepwise.fold(1, 1);
    }
    for (a, b) in stepwise.get().iter().zip(load.get()) {
        assert!((a - b).abs() < 1e-9);
    }
    // Two tasks for an hour: all three near 2; then idle decays them.
    load.fold(2, 720);
    assert!(
        load.get().iter().all(|l| (l - 2.0).abs() < 0.05),
        "{:?}",
        load.get()
    );
    load.fold(0, 12);
    assert!(load.get()[0] < 0.75);
}

#[test]
fn waits_grow_per_task_and_are_bounded() {
    let map = |pairs: &[(&str, u64)]| -> std::collections::HashMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    let before = map(&[("1", 100), ("7", 1_000)]);
    // 7 waited 500 ns more, 9 is new (all of its 300 counts), 1 is unchanged, 8 left.
    let now = map(&[("1", 100), ("7", 1_500), ("9", 300)]);
    assert_eq!(waited(&before, &now, 1e9), 800.0);
    // No task waits longer than the interval.
    assert_eq!(waited(&map(&[]), &map(&[("5", 5_000_000_000)]), 1e9), 1e9);
    assert_eq!(
        parse_schedstat("256577092 705437712 839\n"),
        Some(705437712)
    );
    assert_eq!(parse_schedstat("1"), None);
}

#[test]
fn task_states_and_cpu_lists_parse() {
    assert!(is_active("42 (sh) R 1 42 42 0 -1"));
    assert!(is_active("42 (a) b) D 1"));
    assert!(!is_active("42 (sleep) S 1"));
    assert!(!is_active("42 (zombie) Z 1"));
    assert_eq!(count_cpu_list("0-3,8,10-11\n"), 7);
    assert_eq!(count_cpu_list("0"), 1);
    assert_eq!(count_cpu_list(""), 0);
    assert_eq!(count_cpu_list("3-1"), 0);
}

/// A v2 group laid out in a directory, with a /proc of three tasks beside it.
#[test]
fn a_sampler_reads_a_v2_group_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let group = tmp.path().join("group");
    let proc_dir = tmp.path().join("proc");
    fs::create_dir_all(&group).unwrap();
    for (tid, state) in [("1", "S"), ("7", "R"), ("9", "D")] {
        fs::create_dir_all(proc_dir.join(tid)).unwrap();
        fs::write(
            proc_dir.join(tid).join("stat"),
            format!("{tid} (x) {state} 0"),
        )
        .unwrap();
    }
    fs::create_dir_all(proc_dir.join("self")).unwrap();
    fs::write(
        proc_dir.join("self/status"),
        "Name:\tagent\nCpus_allowed_list:\t0-3\n",
    )
    .unwrap();
    fs::write(
        proc_dir.join("meminfo"),
        "MemTotal: 16000000 kB\nMemFree: 1 kB\n",
    )
    .unwrap();
    let write = |name: &str, text: &str| fs::write(group.join(name), text).unwrap();
    write("cpu.max", "200000 100000\n");
    write("memory.max", "1073741824\n");
    write("cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n");
    write("memory.current", "209715200\n");
    write("memory.stat", MEMORY_STAT_V2);
    write("cgroup.procs", "1\n7\n");
    write("cgroup.threads", "1\n7\n9\n");
    let files = CgroupFiles {
        cpu: group.clone(),
        cpuacct: group.clone(),
        memory: group.clone(),
        v2: true,
    };
    let mut sampler = CgroupSampler::new(files, &proc_dir).unwrap();
    assert!(sampler.describe().contains("v2"), "{}", sampler.describe());
    assert_eq!(sampler.active_tasks(), 2, "R and D count, S does not");
    sampler.count_load();
    std::thread::sleep(Duration::from_millis(100));
    write(
        "cpu.stat",
        &format!("usage_usec {}\nuser_usec 10\nsystem_usec 0\n", 100_000),
    );
    let s = sampler.sample(1_700_000_000).unwrap();
    assert_eq!(s.at, 1_700_000_000);
    // 0.1 s of CPU in a bit over 0.1 s on 2 CPUs: just under half, all of it user.
    assert!(
        s.values[Metric::CpuUser.index()] > 30.0 && s.values[Metric::CpuUser.index()] <= 50.0,
        "{:?}",
        s.values
    );
    assert_eq!(s.values[Metric::CpuSystem.index()], 0.0);
    assert!(
        (s.values[Metric::CpuIdle.index()] + s.values[Metric::CpuUser.index()] - 100.0).abs()
            < 1e-9
    );
    assert_eq!(s.values[Metric::CpuSteal.index()], 0.0, "nothing waited");
    // Task 7 then waits 0.05 s for a CPU: steal.
    fs::write(proc_dir.join("7/schedstat"), "1000 50000000 2\n").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let s = sampler.sample(1_700_000_001).unwrap();
    assert!(
        s.values[Metric::CpuSteal.index()] > 10.0 && s.values[Metric::CpuSteal.index()] <= 25.0,
        "{:?}",
        s.values
    );
    assert_eq!(s.values[Metric::MemoryTotal.index()], 1024.0 * 1024.0);
    assert_eq!(s.values[Metric::MemoryUsed.index()], 150.0 * 1024.0);
    assert!(
        s.values[Metric::Load1.index()] > 0.0 && s.values[Metric::Load1.index()] < 2.0,
        "load_1 after one count"
    );
    assert_eq!(s.values[Metric::Procs.index()], 2.0);
    // A group without limits gives no sampler: the host's /proc stays in charge.
    write("memory.max", "max\n");
    let files = CgroupFiles {
        cpu: group.clone(),
        cpuacct: group.clone(),
        memory: group,
        v2: true,
    };
    assert!(CgroupSampler::new(files, &proc_dir).is_none());
}
