//! The harness the local provider's end-to-end tests share: a provider on a fresh state dir
//! that destroys its machines when dropped, and checks that nothing of a machine is left.

#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use opsworks_sandbox::{
    LocalConfig, LocalProvider, MachineSpec, MachineState, MainProcess, NetworkConfig, Provider,
    RootDevice,
};

pub const HELPER: &str = env!("CARGO_BIN_EXE_opsworks-sandbox-helper");

/// Whether `opsw0` existed before this test binary touched it; if not, the last test to finish
/// with no machine attached removes it.
static BRIDGE_PREEXISTED: OnceLock<bool> = OnceLock::new();

/// One test's provider on its own state dir; dropping it destroys every machine it made.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub provider: LocalProvider,
    pub rt: tokio::runtime::Runtime,
}

impl Env {
    pub fn new() -> Env {
        // Before anything else, so that a host without namespaces (or a non-root run) fails with
        // the provider's own explanation.
        if let Err(e) = config(Path::new("/nonexistent")).check_host() {
            panic!("local instances must work on this host: {e}");
        }
        BRIDGE_PREEXISTED.get_or_init(|| Path::new("/sys/class/net/opsw0").exists());
        // Not under /tmp: that is a fresh tmpfs inside machines, and the state dir must be hidden
        // by the provider itself.
        let dir = tempfile::Builder::new()
            .prefix("sandbox-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let provider = LocalProvider::new(config(dir.path())).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Env { dir, provider, rt }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn upper(&self, id: &str) -> PathBuf {
        self.provider.machine_dir_of(id).unwrap().join("upper")
    }

    pub fn exec(&self, id: &str, argv: &[&str]) -> opsworks_sandbox::ExecOutput {
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        self.rt.block_on(self.provider.exec(id, &argv)).unwrap()
    }

    /// Runs a command inside and returns its trimmed stdout, failing on a non-zero exit.
    pub fn sh(&self, id: &str, script: &str) -> String {
        let out = self.exec(id, &["/bin/sh", "-c", script]);
        assert_eq!(
            out.exit_code,
            0,
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Ok(machines) = self.provider.list_blocking() {
            for machine in machines {
                if let Err(e) = self.provider.destroy_blocking(&machine.id) {
                    eprintln!("cleanup of {} failed: {e}", machine.id);
                }
            }
        }
        if BRIDGE_PREEXISTED.get() == Some(&false) {
            let _ = self.provider.remove_bridge_if_unused();
        }
    }
}

pub fn config(dir: &Path) -> LocalConfig {
    LocalConfig::new(dir.join("state")).with_helper(HELPER, Vec::<OsString>::new())
}

pub fn python() -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed on the host for these tests");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn sleeper_spec(id: &str, root_device: RootDevice) -> MachineSpec {
    MachineSpec::new(
        id,
        id,
        root_device,
        MainProcess::new("/bin/sleep", ["1000"]),
    )
}

/// Whether a pid exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

pub fn running_pid(state: MachineState) -> u32 {
    match state {
        MachineState::Running { pid } => pid,
        other => panic!("expected a running machine, got {other:?}"),
    }
}

/// Asserts that nothing of the machine is left on the host: netns, veth, mounts, directory.
pub fn assert_no_trace(env: &Env, id: &str) {
    let (netns, veth) = env.provider.net_names(id).unwrap();
    let dir = env.provider.machine_dir_of(id).unwrap();
    let groups = env.provider.cgroup_dirs(id).unwrap();
    assert!(!groups.is_empty(), "this host has control groups");
    for group in groups {
        assert!(
            !group.exists(),
            "control group {} left behind",
            group.display()
        );
    }
    assert_eq!(
        lease_of(&dir),
        None,
        "address lease of {} left behind",
        dir.display()
    );
    assert!(
        !Path::new("/run/netns").join(&netns).exists(),
        "netns {netns} left behind"
    );
    assert!(
        !Path::new("/sys/class/net").join(&veth).exists(),
        "veth {veth} left behind"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
    let dir_text = dir.to_string_lossy().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(mounts) = std::fs::read_to_string(entry.path().join("mountinfo")) {
            assert!(
                !mounts.contains(&dir_text),
                "a mount under {dir_text} is left in {}",
                entry.path().display()
            );
        }
    }
    assert_eq!(
        env.rt.block_on(env.provider.status(id)).unwrap(),
        MachineState::Absent
    );
}

/// The address leased to the machine directory `dir` in the host-wide registry, if any.
pub fn lease_of(dir: &Path) -> Option<String> {
    let net = NetworkConfig::default();
    let registry = net.run_dir.join(format!("{}.leases", net.bridge));
    std::fs::read_dir(registry)
        .ok()?
        .flatten()
        .find(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
                && std::fs::read(e.path())
                    .is_ok_and(|owner| owner == dir.as_os_str().as_encoded_bytes())
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
}
