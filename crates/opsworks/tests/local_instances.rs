//! End-to-end tests of local instances as a person meets them, with the real `opsworks` binary
//! as the machines' helper: `opsworks exec` into a running instance, `opsworks` on the
//! instance's PATH, and an instance's metrics taken from its own control group (a busy machine
//! reads busy, the idle one beside it idle, each with its own memory). Real namespaces and
//! control groups: root needed, and run under `flock /var/tmp/opsworks-instances.lock`.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use opsworks_sandbox::{
    Limits, LocalConfig, LocalProvider, MachineSpec, MainProcess, Provider, RootDevice,
};
use serde_json::Value;

const OPSWORKS: &str = env!("CARGO_BIN_EXE_opsworks");

/// A data dir with the server's layout (`DIR/machines`) and the provider a server would open on
/// it; dropping it destroys the machines.
struct Instances {
    dir: tempfile::TempDir,
    provider: LocalProvider,
    rt: tokio::runtime::Runtime,
}

impl Instances {
    fn new() -> Instances {
        // Not under /tmp: that is a fresh tmpfs inside machines.
        let dir = tempfile::Builder::new()
            .prefix("instances-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let mut config = LocalConfig::new(dir.path().join("machines"))
            .with_helper(OPSWORKS, [OsString::from("sandbox-init")]);
        config.helper_link = LocalConfig::new("/").helper_link;
        let provider = LocalProvider::new(config).unwrap();
        if let Err(e) = provider.check_host() {
            panic!("local instances must work on this host (root, namespaces): {e}");
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Instances { dir, provider, rt }
    }

    fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Boots a sleeper with the limits of `instance_type`.
    fn start(&self, id: &str, hostname: &str, instance_type: &str) {
        let size = opsworks_model::instance_types::size_of(instance_type);
        let mut spec = MachineSpec::new(
            id,
            hostname,
            RootDevice::InstanceStore,
            MainProcess::new("/bin/sleep", ["1000"]),
        );
        spec.limits = Some(Limits::new(size.vcpus, size.memory_mib));
        self.rt.block_on(self.provider.provision(spec)).unwrap();
    }

    /// `opsworks exec --data-dir DIR ID -- argv...` with `stdin` piped in.
    fn exec(&self, id: &str, argv: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(OPSWORKS)
            .arg("exec")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg(id)
            .arg("--")
            .args(argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// What `opsworks agent-cli metrics` reports inside the machine.
    fn metrics(&self, id: &str, seconds: u32) -> Value {
        let argv: Vec<String> = [
            "opsworks",
            "agent-cli",
            "metrics",
            "--seconds",
            &seconds.to_string(),
        ]
        .map(String::from)
        .to_vec();
        let out = self.rt.block_on(self.provider.exec(id, &argv)).unwrap();
        assert_eq!(
            out.exit_code,
            0,
            "agent-cli metrics in {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Instances {
    fn drop(&mut self) {
        for machine in self.provider.list_blocking().unwrap_or_default() {
            if let Err(e) = self.provider.destroy_blocking(&machine.id) {
                eprintln!("cleanup of {} failed: {e}", machine.id);
            }
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn exec_runs_commands_and_a_login_shell_in_the_instance() {
    let inst = Instances::new();
    inst.start("i-exec", "exec-host", "t3.micro");

    let out = inst.exec("i-exec", &["hostname"], "");
    assert_eq!(text(&out.stdout), "exec-host\n", "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(0));

    // The exit status passes through; stdin reaches the command.
    let out = inst.exec(
        "i-exec",
        &["sh", "-c", "read line; echo \"got $line\"; exit 7"],
        "hi\n",
    );
    assert_eq!(text(&out.stdout), "got hi\n");
    assert_eq!(out.status.code(), Some(7));

    // A command that does not exist inside: 127 and a message naming it.
    let out = inst.exec("i-exec", &["/no/such/program"], "");
    assert_eq!(out.status.code(), Some(127));
    assert!(
        text(&out.stderr).contains("/no/such/program"),
        "{}",
        text(&out.stderr)
    );

    // No command: root's login shell, which reads its commands from stdin here.
    let mut shell = Command::new(OPSWORKS)
        .arg("exec")
        .arg("--data-dir")
        .arg(inst.data_dir())
        .arg("i-exec")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    shell
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo \"$0 $(id -u) $(hostname) $(cat /proc/1/comm)\"; exit 3\n")
        .unwrap();
    let out = shell.wait_with_output().unwrap();
    let said = text(&out.stdout);
    assert!(
        said.starts_with('-'),
        "a login shell's $0 starts with '-': {said:?}"
    );
    assert!(
        said.ends_with(" 0 exec-host sleep\n") || said.contains(" 0 exec-host "),
        "{said:?}"
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    // opsworks is on the instance's PATH, as the README promises.
    let out = inst.exec(
        "i-exec",
        &["sh", "-c", "command -v opsworks && opsworks --version"],
        "",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("/usr/local/bin/opsworks\nopsworks "),
        "{}",
        text(&out.stdout)
    );

    // The command runs in the instance's control group, which it sees as its root.
    let out = inst.exec("i-exec", &["cat", "/proc/self/cgroup"], "");
    for line in text(&out.stdout).lines() {
        if line.contains(":memory:") || line.contains(":cpu:") || line.starts_with("0::") {
            assert!(line.ends_with(":/"), "{line}");
        }
    }

    // What cannot be entered says why.
    let out = inst.exec("i-nope", &["true"], "");
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("not a local instance"),
        "{}",
        text(&out.stderr)
    );
    let elsewhere = inst.dir.path().join("empty");
    std::fs::create_dir(&elsewhere).unwrap();
    let out = Command::new(OPSWORKS)
        .args(["exec", "--data-dir"])
        .arg(&elsewhere)
        .args(["i-exec", "--", "true"])
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("holds no local instances"),
        "{}",
        text(&out.stderr)
    );
    let out = Command::new(OPSWORKS)
        .args(["exec", "--data-dir"])
        .arg(inst.data_dir())
        .args(["i-exec", "--", "true"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("takes root on the host"),
        "{}",
        text(&out.stderr)
    );
    inst.rt
        .block_on(
            inst.provider
                .stop("i-exec", std::time::Duration::from_secs(2)),
        )
        .unwrap();
    let out = inst.exec("i-exec", &["true"], "");
    assert!(
        text(&out.stderr).contains("is not running"),
        "{}",
        text(&out.stderr)
    );
}

fn metric(doc: &Value, name: &str) -> f64 {
    doc["Metrics"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("no {name} in {doc}"))
}

#[test]
fn each_instance_reports_its_own_cpu_memory_and_load() {
    let inst = Instances::new();
    inst.start("i-busy", "busy", "t3.micro");
    inst.start("i-idle", "idle", "t3.micro");
    // One CPU burner in the busy machine, bounded in case the test dies.
    let burn = [
        "sh",
        "-c",
        "timeout 120 sh -c 'while :; do :; done' </dev/null >/dev/null 2>&1 &",
    ]
    .map(String::from)
    .to_vec();
    let out = inst
        .rt
        .block_on(inst.provider.exec("i-busy", &burn))
        .unwrap();
    assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));

    // Both sample at the same time, over the same seconds.
    let (busy, idle) = std::thread::scope(|s| {
        let busy = s.spawn(|| inst.metrics("i-busy", 6));
        let idle = s.spawn(|| inst.metrics("i-idle", 6));
        (busy.join().unwrap(), idle.join().unwrap())
    });
    eprintln!("busy: {busy}\nidle: {idle}");
    for doc in [&busy, &idle] {
        let source = doc["Source"].as_str().unwrap();
        assert!(source.contains("control group"), "{source}");
        // t3.micro: 1 GiB, not the host's memory.
        assert_eq!(metric(doc, "memory_total"), 1024.0 * 1024.0);
        let used = metric(doc, "memory_used");
        assert!(used > 0.0 && used < 1024.0 * 1024.0, "{used}");
        // The machine's own processes: init, sleep, the sampler (and the burner), not the host's.
        let procs = metric(doc, "procs");
        assert!((2.0..=10.0).contains(&procs), "{procs}");
        let cpu: f64 = [
            "cpu_idle",
            "cpu_nice",
            "cpu_steal",
            "cpu_system",
            "cpu_user",
            "cpu_waitio",
        ]
        .iter()
        .map(|n| metric(doc, n))
        .sum();
        assert!((cpu - 100.0).abs() < 1e-6, "{cpu}");
    }
    // The burner takes up to one of the machine's two CPUs (50 %), less on a busy host; the idle
    // machine stays idle whatever the host does.
    let (busy_user, idle_user) = (metric(&busy, "cpu_user"), metric(&idle, "cpu_user"));
    assert!(busy_user >= 10.0, "busy machine's cpu_user {busy_user}");
    assert!(
        idle_user < 5.0 && idle_user < busy_user / 2.0,
        "idle machine's cpu_user {idle_user}"
    );
    assert!(metric(&idle, "cpu_idle") > 90.0);
    // Load: the burner is runnable at every count, nothing is in the idle machine.
    assert!(
        metric(&busy, "load_1") > 0.05,
        "{}",
        metric(&busy, "load_1")
    );
    assert!(metric(&idle, "load_1") < metric(&busy, "load_1"));
}

/// The host itself (no limited group) keeps the /proc source.
#[test]
fn the_host_is_sampled_from_proc() {
    let out = Command::new(OPSWORKS)
        .args(["agent-cli", "metrics", "--seconds", "1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["Source"], "the host's /proc");
    let host_kib: f64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert_eq!(metric(&doc, "memory_total"), host_kib);
}
