//! The local provider: each machine is a set of Linux namespaces (network, mount, PID, UTS, IPC)
//! on the server's own host, with an overlayfs root over the host's root file system, a veth
//! pair on a shared bridge, and a tiny init as PID 1 running the agent.
//!
//! On-disk layout under `state_dir`:
//! `machines/<id>/machine.json` (id, host name, address, root device), `pid` (init's host pid and
//! start time), `console.log` (stdout/stderr of init and the main process), `upper/` and `work/`
//! (the overlay's writable layer: the machine's disk), `root/` (mount point, empty on the host),
//! `lock`, `mounts/<hash of mount point>/{upper,work}` (the writable layers over the host's other
//! disk file systems, e.g. a separate `/var`). Address leases shared by every provider on the
//! bridge live in `<network.run_dir>/<bridge>.leases/<ip>` (content: the owning machine directory;
//! `<ip>.mntns` names the mount namespace it was leased from), under the host-wide
//! `<bridge>.lock`. A machine's control group is `<hierarchy>/opsworks/opsw-<hash>` and its
//! network namespace `opsw-<hash>`, `<hash>` naming its directory.

mod addresses;
mod arp;
mod exec;
mod net;
mod provider;
mod reap;

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

pub(crate) use net::short_hash;
pub use net::{AddressRange, DEFAULT_RESERVED, NetworkConfig};
use net::{NetNames, Network};
pub use reap::Reaped;

use crate::cgroup::{Group, Layout};
use crate::error::{Error, Result};
use crate::init::{CgroupSpec, LaunchSpec, Report};
use crate::spec::{Machine, MachineSpec, MachineState, RootDevice, validate_id};
use crate::{host, procfs};

/// How long a machine's init may take between spawn and starting the main process.
const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long to wait for a machine to vanish after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Configuration of a [`LocalProvider`].
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Where machines' disks and records live.
    pub state_dir: PathBuf,
    /// Executable re-run as the machine's init; `None` means the current executable.
    pub helper: Option<PathBuf>,
    /// Arguments placed before the helper's own subcommand (`["sandbox-init"]` for `opsworks`).
    pub helper_args: Vec<OsString>,
    /// iproute2's `ip`; `None` means looked up in `PATH`.
    pub ip_command: Option<PathBuf>,
    /// Bridge, subnet, lease directory and NAT.
    pub network: NetworkConfig,
    /// Upper bound on the time from spawning a machine's init to its main process running.
    pub boot_timeout: Duration,
    /// Where the helper executable is linked inside every machine, so that it is on the
    /// machine's `PATH`: `/usr/local/bin/opsworks` for the `opsworks` binary (`opsworks
    /// agent-cli` works inside); `None` for no link.
    pub helper_link: Option<PathBuf>,
}

impl LocalConfig {
    /// Defaults for the `opsworks` binary: re-execute itself as `opsworks sandbox-init ...`.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        LocalConfig {
            state_dir: state_dir.into(),
            helper: None,
            helper_args: vec![OsString::from("sandbox-init")],
            ip_command: None,
            network: NetworkConfig::default(),
            boot_timeout: DEFAULT_BOOT_TIMEOUT,
            helper_link: Some(PathBuf::from("/usr/local/bin/opsworks")),
        }
    }

    /// Checks that this host can run local machines (root, iproute2, overlayfs, namespaces)
    /// without touching the state dir; the error names everything missing.
    pub fn check_host(&self) -> Result<()> {
        let helper = match &self.helper {
            Some(helper) => helper.clone(),
            None => std::env::current_exe().map_err(Error::io(
                "finding the current executable for the sandbox helper",
            ))?,
        };
        let ip = self.ip_command.clone().or_else(|| host::find_program("ip"));
        host::check(ip.as_deref(), &helper, &self.helper_args)
    }

    /// Uses `program args... <subcommand>` as the helper instead of the current executable;
    /// it is linked nowhere inside machines (set [`LocalConfig::helper_link`] to link it).
    pub fn with_helper(
        mut self,
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Self {
        self.helper = Some(program.into());
        self.helper_args = args.into_iter().map(Into::into).collect();
        self.helper_link = None;
        self
    }
}

/// What `machine.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    id: String,
    hostname: String,
    private_ip: Ipv4Addr,
    root_device: RootDevice,
    /// The disk images of the last boot, released when the machine stops.
    #[serde(default)]
    disks: Vec<PathBuf>,
}

/// How long a stop waits for the kernel to release a machine's disk images.
const DISK_RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Machines as namespaces on this host. Cheap to clone; clones share nothing mutable but the
/// cached host check (all state is on disk, so a new provider on the same state dir sees the
/// same machines).
#[derive(Clone)]
pub struct LocalProvider {
    inner: Arc<Inner>,
}

struct Inner {
    state_dir: PathBuf,
    helper: PathBuf,
    helper_args: Vec<OsString>,
    ip: Option<PathBuf>,
    network: NetworkConfig,
    boot_timeout: Duration,
    helper_link: Option<PathBuf>,
    host_ok: OnceLock<()>,
}

impl LocalProvider {
    /// Opens (creating if needed) the state directory. Host requirements are checked on the
    /// first provision, or now with [`LocalProvider::check_host`].
    pub fn new(config: LocalConfig) -> Result<Self> {
        config.network.validate()?;
        let machines = config.state_dir.join("machines");
        fs::create_dir_all(&machines)
            .map_err(Error::io(format!("creating {}", machines.display())))?;
        let state_dir = config.state_dir.canonicalize().map_err(Error::io(format!(
            "resolving {}",
            config.state_dir.display()
        )))?;
        // The path ends up in overlayfs mount options, which use these as separators.
        let text = state_dir.to_string_lossy();
        if text.contains([',', ':', '\\', '\n']) {
            return Err(Error::Config {
                reason: format!(
                    "state dir {text} must not contain ',', ':', '\\' or a newline (overlayfs options)"
                ),
            });
        }
        let helper = match config.helper {
            Some(helper) => helper,
            None => std::env::current_exe().map_err(Error::io(
                "finding the current executable for the sandbox helper",
            ))?,
        };
        Ok(LocalProvider {
            inner: Arc::new(Inner {
                state_dir,
                helper,
                helper_args: config.helper_args,
                ip: config.ip_command.or_else(|| host::find_program("ip")),
                network: config.network,
                boot_timeout: config.boot_timeout,
                helper_link: config.helper_link,
                host_ok: OnceLock::new(),
            }),
        })
    }

    /// The (canonical) state directory.
    pub fn state_dir(&self) -> &Path {
        &self.inner.state_dir
    }

    /// Checks root, iproute2, overlayfs and namespaces; the error names everything missing.
    pub fn check_host(&self) -> Result<()> {
        if self.inner.host_ok.get().is_some() {
            return Ok(());
        }
        host::check(
            self.inner.ip.as_deref(),
            &self.inner.helper,
            &self.inner.helper_args,
        )?;
        let _ = self.inner.host_ok.set(());
        Ok(())
    }

    /// Checks the host and creates the bridge; returns the host's address on it, where the
    /// control plane should listen for agents. Provisioning does this too.
    pub fn prepare(&self) -> Result<Ipv4Addr> {
        self.check_host()?;
        self.network()?.ensure_bridge()?;
        Ok(self.inner.network.gateway)
    }

    /// The host's address on the machine bridge (the machines' default gateway).
    pub fn gateway(&self) -> Ipv4Addr {
        self.inner.network.gateway
    }

    /// Deletes the bridge if no machine is attached; returns whether it did. For tests and
    /// uninstall: a running control plane keeps the bridge.
    pub fn remove_bridge_if_unused(&self) -> Result<bool> {
        self.network()?.remove_bridge_if_unused()
    }

    /// Kernel names of a machine's network namespace and host-side veth, for inspection.
    pub fn net_names(&self, id: &str) -> Result<(String, String)> {
        validate_id(id)?;
        let names = NetNames::for_machine(&self.machine_dir(id));
        Ok((names.netns, names.veth_host))
    }

    /// The machine's control group directories on the host, one per hierarchy (whether they
    /// exist or not: a stopped machine has none), for inspection; empty without control groups.
    pub fn cgroup_dirs(&self, id: &str) -> Result<Vec<PathBuf>> {
        validate_id(id)?;
        Ok(self
            .group_of(&self.machine_dir(id))?
            .map(|group| group.dirs)
            .unwrap_or_default())
    }

    /// The machine's directory (disk, records, console log); see the module docs for its layout.
    pub fn machine_dir_of(&self, id: &str) -> Result<PathBuf> {
        validate_id(id)?;
        Ok(self.machine_dir(id))
    }

    fn network(&self) -> Result<Network<'_>> {
        let ip = self.inner.ip.as_deref().ok_or_else(|| Error::Unavailable {
            missing: "iproute2's `ip` command (not found in PATH; install iproute2)".to_string(),
        })?;
        Ok(Network {
            cfg: &self.inner.network,
            ip,
        })
    }

    fn machine_dir(&self, id: &str) -> PathBuf {
        self.inner.state_dir.join("machines").join(id)
    }

    /// Blocking form of [`Provider::provision`].
    pub fn provision_blocking(&self, spec: MachineSpec) -> Result<Machine> {
        spec.validate()?;
        self.check_host()?;
        let dir = self.machine_dir(&spec.id);
        fs::create_dir_all(&dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        let _lock = lock(&dir)?;
        if let Some((pid, _)) = running_pid(&dir) {
            return Err(Error::AlreadyRunning { id: spec.id, pid });
        }
        for extra in &spec.addresses {
            self.check_reserved(*extra)?;
        }
        let previous = read_record(&dir)?;
        prepare_disk(&dir, spec.root_device)?;
        let network = self.network()?;
        let ip = network.lease(&dir, previous.map(|r| r.private_ip))?;
        let record = Record {
            id: spec.id.clone(),
            hostname: spec.hostname.clone(),
            private_ip: ip,
            root_device: spec.root_device,
            disks: spec.disks.iter().map(|d| d.image.clone()).collect(),
        };
        write_atomic(
            &dir.join("machine.json"),
            &serde_json::to_vec_pretty(&record).map_err(|source| Error::State {
                path: dir.join("machine.json"),
                source,
            })?,
        )?;
        let names = NetNames::for_machine(&dir);
        let layout = Layout::detect()?;
        if layout.is_none() && spec.limits.is_some() {
            return Err(Error::Unavailable {
                missing: "control groups for the machine's CPU and memory limits (cgroup v2 with \
                          the cpu and memory controllers, or cgroup v1 cpu, cpuacct and memory \
                          hierarchies)"
                    .to_string(),
            });
        }
        network.attach(&names, ip, &spec.addresses)?;
        let group = match &layout {
            Some(layout) => match layout.create(&names.netns, spec.limits.as_ref()) {
                Ok(group) => Some(group),
                Err(e) => {
                    let _ = network.detach(&names);
                    return Err(e);
                }
            },
            None => None,
        };
        let cgroup = layout
            .as_ref()
            .zip(group.as_ref())
            .map(|(layout, group)| CgroupSpec {
                dirs: group.dirs.clone(),
                mounts: layout.inner_mounts(),
            });
        match self.boot(&spec, &dir, &names, ip, cgroup) {
            Ok((pid, start_time)) => {
                write_atomic(&dir.join("pid"), format!("{pid} {start_time}\n").as_bytes())?;
                for extra in &spec.addresses {
                    // Only neighbours' caches are at stake: the address works once they expire.
                    if let Err(e) = self.announce(&names, *extra) {
                        tracing::warn!(id = %spec.id, %extra, "announcing an address failed: {e}");
                    }
                }
                Ok(machine(record, MachineState::Running { pid }))
            }
            Err(e) => {
                if let Some(group) = &group {
                    let _ = group.kill_all(KILL_TIMEOUT);
                    let _ = group.remove(KILL_TIMEOUT);
                }
                let _ = network.detach(&names);
                Err(e)
            }
        }
    }

    /// The machine's control group, if the host has control groups.
    fn group_of(&self, dir: &Path) -> Result<Option<Group>> {
        let name = NetNames::for_machine(dir).netns;
        Ok(Layout::detect()?.map(|layout| layout.group(&name)))
    }

    /// Spawns the helper, hands it the launch spec and waits for its init to report.
    fn boot(
        &self,
        spec: &MachineSpec,
        dir: &Path,
        names: &NetNames,
        ip: Ipv4Addr,
        cgroup: Option<CgroupSpec>,
    ) -> Result<(u32, u64)> {
        let boot_error = |reason: String| Error::Boot {
            id: spec.id.clone(),
            reason,
        };
        let console_path = dir.join("console.log");
        let console = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&console_path)
            .map_err(Error::io(format!("opening {}", console_path.display())))?;
        let mut hidden = spec.hidden_paths.clone();
        // The provider's own state (other machines' disks, leases) must not show through the
        // overlay's lower layer, which is the host's root.
        hidden.push(self.inner.state_dir.clone());
        hidden.push(self.inner.network.run_dir.clone());
        let launch = LaunchSpec {
            hostname: spec.hostname.clone(),
            private_ip: ip,
            netns: names.netns_path(),
            upper: dir.join("upper"),
            work: dir.join("work"),
            mounts: dir.join("mounts"),
            merged: dir.join("root"),
            hidden,
            files: spec.files.clone(),
            resolv_conf: self.resolv_conf(),
            main: spec.main.clone(),
            cgroup,
            disks: spec.disks.clone(),
            links: self
                .inner
                .helper_link
                .iter()
                .map(|link| (link.clone(), self.inner.helper.clone()))
                .collect(),
        };
        let input = serde_json::to_vec(&launch)
            .map_err(|e| boot_error(format!("encoding the launch spec: {e}")))?;
        let mut child = Command::new(&self.inner.helper)
            .args(&self.inner.helper_args)
            .arg("run")
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(console))
            .spawn()
            .map_err(|e| {
                boot_error(format!(
                    "cannot start the helper {}: {e}",
                    self.inner.helper.display()
                ))
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A write error means the helper died; what it reported (or did not) says why.
            let _ = stdin.write_all(&input);
        }
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let deadline = Instant::now() + self.inner.boot_timeout;
        let mut pid = None;
        let mut ready = false;
        let mut init_gone = false;
        let outcome = loop {
            if ready && let Some(pid) = pid {
                break Ok(pid);
            }
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => match serde_json::from_str::<Report>(&line) {
                    Ok(Report::Pid { pid: p, start_time }) if start_time != 0 => {
                        pid = Some((p, start_time))
                    }
                    // The init is already gone (its main process could not even start): keep
                    // reading, the helper's failure report or the console says why.
                    Ok(Report::Pid { .. }) => init_gone = true,
                    Ok(Report::Ready) => ready = true,
                    Ok(Report::Failed { reason }) => break Err(boot_error(reason)),
                    Err(_) => {}
                },
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    break Err(boot_error(format!(
                        "no report within {:?}",
                        self.inner.boot_timeout
                    )));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let last = std::fs::read_to_string(&console_path).ok().and_then(|c| {
                        c.lines()
                            .rev()
                            .find(|l| !l.trim().is_empty())
                            .map(String::from)
                    });
                    let why = match (init_gone, last) {
                        (true, Some(last)) => format!("the machine's init exited at once: {last}"),
                        (false, Some(last)) => format!(
                            "the machine's init exited during boot: {last} (see {})",
                            console_path.display()
                        ),
                        _ => format!(
                            "the machine's init{} exited during boot without a word; see {}",
                            pid.map(|(p, _)| format!(" (pid {p})")).unwrap_or_default(),
                            console_path.display()
                        ),
                    };
                    break Err(boot_error(why));
                }
            }
        };
        if outcome.is_err() {
            if let Some((p, start_time)) = pid
                && procfs::is_running(p, start_time)
            {
                let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
            }
            let _ = child.kill();
        }
        // The helper exits right after forking the init; reap it.
        let _ = child.wait();
        outcome
    }

    /// Without NAT the host's name servers are unreachable from a machine and every lookup of a
    /// name outside `/etc/hosts` would wait for timeouts; pointing at the gateway makes it fail
    /// at once (port 53 there is closed unless the control plane serves DNS).
    fn resolv_conf(&self) -> Option<String> {
        (!self.inner.network.nat).then(|| {
            format!(
                "nameserver {}\noptions timeout:1 attempts:1\n",
                self.inner.network.gateway
            )
        })
    }

    /// Blocking form of [`Provider::status`].
    pub fn status_blocking(&self, id: &str) -> Result<MachineState> {
        validate_id(id)?;
        let dir = self.machine_dir(id);
        if !dir.join("machine.json").exists() {
            return Ok(MachineState::Absent);
        }
        Ok(state_of(&dir))
    }

    /// Blocking form of [`Provider::describe`].
    pub fn describe_blocking(&self, id: &str) -> Result<Option<Machine>> {
        validate_id(id)?;
        let dir = self.machine_dir(id);
        Ok(read_record(&dir)?.map(|record| machine(record, state_of(&dir))))
    }

    /// Blocking form of [`Provider::list`].
    pub fn list_blocking(&self) -> Result<Vec<Machine>> {
        let machines = self.inner.state_dir.join("machines");
        let mut found = Vec::new();
        for entry in
            fs::read_dir(&machines).map_err(Error::io(format!("listing {}", machines.display())))?
        {
            let entry = entry.map_err(Error::io(format!("listing {}", machines.display())))?;
            let Some(id) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if validate_id(&id).is_err() {
                continue;
            }
            if let Some(record) = read_record(&entry.path())? {
                found.push(machine(record, state_of(&entry.path())));
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }

    /// Blocking form of [`Provider::stop`].
    pub fn stop_blocking(&self, id: &str, grace: Duration) -> Result<()> {
        validate_id(id)?;
        let dir = self.machine_dir(id);
        if !dir.join("machine.json").exists() {
            return Err(Error::NotFound { id: id.to_string() });
        }
        let _lock = lock(&dir)?;
        self.stop_locked(id, &dir, grace)
    }

    fn stop_locked(&self, id: &str, dir: &Path, grace: Duration) -> Result<()> {
        if let Some((pid, start_time)) = running_pid(dir) {
            let target = Pid::from_raw(pid as i32);
            // The init forwards SIGTERM to every process of the machine and exits with the main one.
            if !grace.is_zero() {
                let _ = kill(target, Signal::SIGTERM);
            }
            if !wait_gone(pid, start_time, grace) {
                // SIGKILL of a namespace's PID 1 kills everything in the namespace.
                let _ = kill(target, Signal::SIGKILL);
                if !wait_gone(pid, start_time, KILL_TIMEOUT) {
                    return Err(Error::Stop {
                        id: id.to_string(),
                        reason: format!("init (pid {pid}) survived SIGKILL for {KILL_TIMEOUT:?}"),
                    });
                }
            }
        }
        remove_if_exists(&dir.join("pid"))?;
        // What is left in the group (an exec'd command's helper, a task still exiting) goes,
        // and the group with it: a stopped machine holds no group.
        if let Some(group) = self.group_of(dir)? {
            group.kill_all(KILL_TIMEOUT)?;
            group.remove(KILL_TIMEOUT)?;
        }
        self.network()?.detach(&NetNames::for_machine(dir))?;
        // The kernel unmounts the machine's disks as its last process goes and then lets go of
        // their loop devices; a stopped machine holds none.
        for image in read_record(dir)?.map(|r| r.disks).unwrap_or_default() {
            if !crate::disk::wait_released(&image, DISK_RELEASE_TIMEOUT)? {
                return Err(Error::Stop {
                    id: id.to_string(),
                    reason: format!(
                        "disk image {} was still attached {DISK_RELEASE_TIMEOUT:?} after its processes ended",
                        image.display()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Blocking form of [`Provider::destroy`].
    pub fn destroy_blocking(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let dir = self.machine_dir(id);
        let network = self.network()?;
        if dir.exists() {
            let _lock = lock(&dir)?;
            self.stop_locked(id, &dir, Duration::ZERO)?;
            unmount_under(&dir)?;
            network.release(&dir)?;
            fs::remove_dir_all(&dir).map_err(Error::io(format!("removing {}", dir.display())))?;
        } else {
            // Leftovers of a crash between creating the network and the directory.
            if let Some(group) = self.group_of(&dir)? {
                group.kill_all(KILL_TIMEOUT)?;
                group.remove(KILL_TIMEOUT)?;
            }
            network.detach(&NetNames::for_machine(&dir))?;
            network.release(&dir)?;
        }
        Ok(())
    }

    async fn blocking<T, F>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&LocalProvider) -> Result<T> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || job(&this))
            .await
            .map_err(|e| Error::Task {
                reason: e.to_string(),
            })?
    }
}

fn machine(record: Record, state: MachineState) -> Machine {
    Machine {
        id: record.id,
        hostname: record.hostname,
        private_ip: record.private_ip,
        root_device: record.root_device,
        state,
    }
}

/// Serialises provision, stop and destroy of one machine, across providers and processes.
fn lock(dir: &Path) -> Result<Flock<File>> {
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io(format!("opening {}", path.display())))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| Error::sys(format!("locking {}", path.display()))(errno))
}

fn read_record(dir: &Path) -> Result<Option<Record>> {
    let path = dir.join("machine.json");
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::State { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            context: format!("reading {}", path.display()),
            source: e,
        }),
    }
}

/// The init's pid and start time, if the recorded init still runs.
fn running_pid(dir: &Path) -> Option<(u32, u64)> {
    let text = fs::read_to_string(dir.join("pid")).ok()?;
    let mut fields = text.split_whitespace();
    let pid = fields.next()?.parse().ok()?;
    let start_time = fields.next()?.parse().ok()?;
    procfs::is_running(pid, start_time).then_some((pid, start_time))
}

fn state_of(dir: &Path) -> MachineState {
    match running_pid(dir) {
        Some((pid, _)) => MachineState::Running { pid },
        None => MachineState::Stopped,
    }
}

fn wait_gone(pid: u32, start_time: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !procfs::is_running(pid, start_time) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Creates the overlay directories; an instance-store machine starts from an empty upper layer.
fn prepare_disk(dir: &Path, root_device: RootDevice) -> Result<()> {
    if root_device == RootDevice::InstanceStore {
        for sub in ["upper", "work", "mounts"] {
            let path = dir.join(sub);
            if path.exists() {
                fs::remove_dir_all(&path)
                    .map_err(Error::io(format!("wiping {}", path.display())))?;
            }
        }
    }
    for sub in ["upper", "work", "root"] {
        let path = dir.join(sub);
        fs::create_dir_all(&path).map_err(Error::io(format!("creating {}", path.display())))?;
    }
    Ok(())
}

fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, contents).map_err(Error::io(format!("writing {}", tmp.display())))?;
    fs::rename(&tmp, path).map_err(Error::io(format!(
        "renaming {} to {}",
        tmp.display(),
        path.display()
    )))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
            context: format!("removing {}", path.display()),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Detaches any host mount below `dir`. Machine mounts live in the machine's own mount namespace
/// and vanish with it; this only guards against a mount leaked into the host's namespace.
fn unmount_under(dir: &Path) -> Result<()> {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return Ok(());
    };
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(crate::procfs::unescape_mountinfo(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    // Deepest first.
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH)
            .map_err(Error::sys(format!("unmounting {}", point.display())))?;
    }
    Ok(())
}
