//! Installing the agent on a machine that joins a stack as a registered instance, and removing it
//! again: `opsworks agent-install` (run as root on the machine, by `opsworks register` over SSH or
//! with `--local`, or by the installer's `boot-registration` with a preconfig file) and
//! `opsworks agent-uninstall` (run by the agent itself once the machine is deregistered).
//!
//! What it writes:
//! - `/opt/opsworks/releases/<version>-<sha>/opsworks` (this executable) and `release.json`, with
//!   `/opt/opsworks/current` pointing at the release the agent runs (see [`crate::update`]);
//! - `/etc/opsworks/agent-credentials.json` (0600: the instance's own key, never the caller's)
//!   and `/etc/opsworks/registration.json` (what and where it is registered);
//! - the `opsworks-agent` service: a systemd unit where systemd is PID 1, else a service of the
//!   opsworks supervisor (started from the installed executable when it was not running).
//!
//! Each step is printed; when one fails, what the earlier ones wrote is removed before the error
//! is returned, so a machine is never left half-installed.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use opsworks_host::service::{self, Backend, ServiceDef};
use opsworks_host::supervisor::client::{self as supervisor, Client as SupervisorClient};
use opsworks_host::supervisor::protocol::{Request, Response};
use serde::{Deserialize, Serialize};

use crate::update::{RELEASE_FILE, RELEASES, release_dir_name};

/// Where releases and the `current` link live.
pub const INSTALL_DIR: &str = "/opt/opsworks";
/// The agent's configuration directory.
pub const CONFIG_DIR: &str = "/etc/opsworks";
/// The instance's own key (the same path local instances use).
pub const CREDENTIALS_FILE: &str = "agent-credentials.json";
/// What the machine is registered as.
pub const REGISTRATION_FILE: &str = "registration.json";
/// The service the agent runs as.
pub const SERVICE: &str = "opsworks-agent";
/// How long the installer waits for the agent to report in.
pub const REPORT_IN_WAIT: Duration = Duration::from_secs(60);

/// What the installer needs: where the server is and who the machine is to it.
#[derive(Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The server's URL, as the machine reaches it.
    pub server: String,
    /// The stack.
    pub stack_id: String,
    /// The registered instance.
    pub instance_id: String,
    /// The hostname it was registered with.
    pub hostname: String,
    /// The instance's own access key ID.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("server", &self.server)
            .field("stack_id", &self.stack_id)
            .field("instance_id", &self.instance_id)
            .field("hostname", &self.hostname)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// `/etc/opsworks/registration.json`: what the machine is registered as, and what the
/// installer set up (so the uninstaller removes exactly that).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The registered instance.
    pub instance_id: String,
    /// Its stack.
    pub stack_id: String,
    /// The server's URL.
    pub server: String,
    /// The hostname it was registered with.
    pub hostname: String,
    /// When it was installed.
    pub installed_at: String,
    /// `systemd` or `supervisor`.
    pub backend: String,
    /// Whether the installer started the opsworks supervisor (the uninstaller then stops it when
    /// it runs nothing else).
    #[serde(default)]
    pub started_supervisor: bool,
    /// Whether the installer created the supervisor's state directory.
    #[serde(default)]
    pub created_supervisor_dir: bool,
}

/// What can go wrong installing or removing the agent; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Not run as root.
    #[error(
        "the agent installs as root (it writes /opt/opsworks and /etc/opsworks and sets up a service); run it with sudo"
    )]
    NotRoot,
    /// The machine is registered already.
    #[error(
        "this machine is already registered: instance {instance_id} of stack {stack_id} at {server}; deregister it first (aws opsworks deregister-instance --instance-id {instance_id})"
    )]
    AlreadyRegistered {
        /// Its instance.
        instance_id: String,
        /// Its stack.
        stack_id: String,
        /// Its server.
        server: String,
    },
    /// Something of an earlier installation is in the way.
    #[error("{} exists, but this machine is not registered (no {CONFIG_DIR}/{REGISTRATION_FILE}); remove it before registering the machine", path.display())]
    Leftover {
        /// What is in the way.
        path: PathBuf,
    },
    /// The server cannot be reached from the machine.
    #[error(
        "this machine cannot reach the server at {server}: {why}; give an endpoint URL the machine can reach"
    )]
    Unreachable {
        /// The URL.
        server: String,
        /// Why.
        why: String,
    },
    /// The server refused the registration.
    #[error("the server refused to register this machine: {0}")]
    Refused(String),
    /// The agent did not report in.
    #[error("the agent did not report in to {server} within {} s{}", waited.as_secs(), log_tail(.log))]
    Silent {
        /// The server.
        server: String,
        /// How long it was waited for.
        waited: Duration,
        /// The end of its log, when readable.
        log: String,
    },
    /// A file could not be written, read or removed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A host operation (reading a file, hashing it) failed; it names the path.
    #[error(transparent)]
    Host(#[from] opsworks_host::HostError),
    /// The service could not be set up.
    #[error("setting up the {SERVICE} service: {0}")]
    Service(String),
    /// The preconfig or plan is not usable.
    #[error("{0}")]
    Invalid(String),
}

fn log_tail(log: &str) -> String {
    if log.trim().is_empty() {
        String::new()
    } else {
        format!("; the end of its log:\n{}", log.trim_end())
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> InstallError {
    let path = path.to_path_buf();
    move |source| InstallError::Io {
        action,
        path,
        source,
    }
}

/// The machine's paths, under `root` (`/` on a machine; a scratch directory in tests).
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Default for Layout {
    fn default() -> Self {
        Layout { root: "/".into() }
    }
}

impl Layout {
    /// The layout under `root`.
    pub fn under(root: &Path) -> Self {
        Layout {
            root: root.to_path_buf(),
        }
    }

    fn at(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// `/opt/opsworks`.
    pub fn install_dir(&self) -> PathBuf {
        self.at(INSTALL_DIR)
    }

    /// `/etc/opsworks`.
    pub fn config_dir(&self) -> PathBuf {
        self.at(CONFIG_DIR)
    }

    /// `/etc/opsworks/agent-credentials.json`.
    pub fn credentials(&self) -> PathBuf {
        self.config_dir().join(CREDENTIALS_FILE)
    }

    /// `/etc/opsworks/registration.json`.
    pub fn registration(&self) -> PathBuf {
        self.config_dir().join(REGISTRATION_FILE)
    }

    /// The agent's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.at(crate::DEFAULT_STATE_DIR)
    }

    /// What the machine is registered as, if it is.
    pub fn registered(&self) -> Result<Option<Registration>, InstallError> {
        let path = self.registration();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                InstallError::Invalid(format!(
                    "{} is damaged ({e}); the machine seems registered: remove the agent with `opsworks agent-uninstall` first",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("cannot read", &path)(e)),
        }
    }
}

/// Refuses a machine already registered, or with an earlier installation in the way.
pub fn check_free(layout: &Layout) -> Result<(), InstallError> {
    if let Some(r) = layout.registered()? {
        return Err(InstallError::AlreadyRegistered {
            instance_id: r.instance_id,
            stack_id: r.stack_id,
            server: r.server,
        });
    }
    for path in [layout.install_dir(), layout.credentials()] {
        if path.exists() {
            return Err(InstallError::Leftover { path });
        }
    }
    Ok(())
}

/// Checks that the machine reaches the server (its API answers `GET /`).
pub async fn check_reachable(server: &str) -> Result<(), InstallError> {
    let unreachable = |why: String| InstallError::Unreachable {
        server: server.to_string(),
        why,
    };
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| unreachable(e.to_string()))?;
    let url = format!("{}/", server.trim_end_matches('/'));
    match http.get(&url).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(unreachable(format!("GET / answered HTTP {}", r.status()))),
        Err(e) => Err(unreachable(crate::client::describe(&e))),
    }
}

/// Something the installer did, to undo when a later step fails.
enum Done {
    Removed(PathBuf),
    Service(Backend),
    Supervisor,
}

/// The steps taken so far, undone in reverse unless [`Undo::keep`] is called.
struct Undo {
    done: Vec<Done>,
    say: fn(&str),
}

impl Undo {
    fn keep(mut self) {
        self.done.clear();
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        for step in self.done.drain(..).rev() {
            match step {
                Done::Removed(path) => {
                    let gone = if path.is_dir() && !path.is_symlink() {
                        std::fs::remove_dir_all(&path)
                    } else {
                        std::fs::remove_file(&path)
                    };
                    match gone {
                        Ok(()) => (self.say)(&format!("removed {}", path.display())),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => (self.say)(&format!("could not remove {}: {e}", path.display())),
                    }
                }
                Done::Service(backend) => match remove_service(backend) {
                    Ok(()) => (self.say)(&format!("removed the {SERVICE} service")),
                    Err(e) => (self.say)(&format!("could not remove the {SERVICE} service: {e}")),
                },
                Done::Supervisor => {
                    stop_idle_supervisor();
                    (self.say)("stopped the opsworks supervisor it had started");
                }
            }
        }
    }
}

/// Creates `dir` (and missing parents); records the topmost directory it created for undo.
fn create_dir(dir: &Path, undo: &mut Undo) -> Result<(), InstallError> {
    let mut first_missing = None;
    let mut p = dir;
    while !p.exists() {
        first_missing = Some(p.to_path_buf());
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
    std::fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
    if let Some(top) = first_missing {
        undo.done.push(Done::Removed(top));
    }
    Ok(())
}

/// Writes a new file with `mode` (never readable by others when 0600), recorded for undo.
fn write_new(path: &Path, body: &[u8], mode: u32, undo: &mut Undo) -> Result<(), InstallError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io("cannot create", path))?;
    undo.done.push(Done::Removed(path.to_path_buf()));
    f.write_all(body).map_err(io("cannot write", path))?;
    f.sync_all().map_err(io("cannot write", path))
}

/// The service definition: the agent of `plan`'s instance, run from `current`.
pub fn service_def(layout: &Layout, plan: &Plan) -> ServiceDef {
    let install = layout.install_dir();
    ServiceDef {
        name: SERVICE.into(),
        command: format!(
            "{}/current/opsworks agent --server {} --instance-id {} --credentials {} --install-dir {}",
            install.display(),
            plan.server,
            plan.instance_id,
            layout.credentials().display(),
            install.display(),
        ),
        ..ServiceDef::default()
    }
}

/// Installs the agent for `plan` from this executable and waits until it reported in; prints
/// each step through `say`. On failure everything written is removed.
pub async fn install(layout: &Layout, plan: &Plan, say: fn(&str)) -> Result<(), InstallError> {
    if !nix_is_root() {
        return Err(InstallError::NotRoot);
    }
    check_free(layout)?;
    let bad = |what: &str, v: &str| {
        if v.is_empty()
            || v.chars()
                .any(|c| c.is_whitespace() || c == '\'' || c == '"')
        {
            Err(InstallError::Invalid(format!(
                "the {what} {v:?} is not usable"
            )))
        } else {
            Ok(())
        }
    };
    bad("server URL", &plan.server)?;
    bad("instance ID", &plan.instance_id)?;
    let mut undo = Undo {
        done: Vec::new(),
        say,
    };

    // The release: this executable, under its version and hash.
    let exe = std::env::current_exe().map_err(io("cannot find", Path::new("this executable")))?;
    let sha256 = opsworks_host::fetch::sha256_file(&exe)?;
    let release = opsworks_protocol::RunningRelease {
        version: crate::VERSION.to_string(),
        sha256,
    };
    let install_dir = layout.install_dir();
    let release_dir = install_dir.join(RELEASES).join(release_dir_name(&release));
    create_dir(&release_dir, &mut undo)?;
    let binary = release_dir.join("opsworks");
    std::fs::copy(&exe, &binary).map_err(io("cannot copy the agent to", &binary))?;
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755))
        .map_err(io("cannot set the mode of", &binary))?;
    let meta = serde_json::to_vec_pretty(&release).unwrap_or_default();
    write_new(&release_dir.join(RELEASE_FILE), &meta, 0o644, &mut undo)?;
    crate::update::point_current(&install_dir, &release_dir)
        .map_err(io("cannot link", &install_dir.join("current")))?;
    say(&format!(
        "installed the agent {} to {}",
        release.version,
        release_dir.display()
    ));

    // The instance's own key and what the machine is registered as.
    let config = layout.config_dir();
    create_dir(&config, &mut undo)?;
    let creds = serde_json::json!({
        "access_key_id": plan.access_key_id,
        "secret_access_key": plan.secret_access_key,
    });
    write_new(
        &layout.credentials(),
        creds.to_string().as_bytes(),
        0o600,
        &mut undo,
    )?;
    say(&format!(
        "wrote {} (the instance's own key, readable by root only)",
        layout.credentials().display()
    ));
    let state = layout.state_dir();
    if !state.exists() {
        undo.done.push(Done::Removed(state.clone()));
    }

    // The service.
    let backend = service::backend();
    let supervisor_dir = supervisor::state_dir();
    let created_supervisor_dir = backend == Backend::Supervisor && !supervisor_dir.exists();
    let mut started_supervisor = false;
    if backend == Backend::Supervisor {
        let running = SupervisorClient::connect(&supervisor_dir).is_ok();
        if !running {
            // Started from the installed executable: the one this installer runs from may be a
            // temporary copy that is about to go.
            let installed = install_dir.join("current/opsworks");
            let started = tokio::task::spawn_blocking(move || {
                SupervisorClient::connect_or_start_with(&supervisor_dir, &installed).map(drop)
            })
            .await
            .map_err(|e| InstallError::Service(e.to_string()))?;
            if created_supervisor_dir {
                undo.done.push(Done::Removed(supervisor::state_dir()));
            }
            started.map_err(|e| InstallError::Service(format!("starting the supervisor: {e}")))?;
            started_supervisor = true;
            undo.done.push(Done::Supervisor);
        }
    }
    let registration = Registration {
        instance_id: plan.instance_id.clone(),
        stack_id: plan.stack_id.clone(),
        server: plan.server.clone(),
        hostname: plan.hostname.clone(),
        installed_at: crate::state::now_rfc3339(),
        backend: match backend {
            Backend::Systemd => "systemd".into(),
            Backend::Supervisor => "supervisor".into(),
        },
        started_supervisor,
        created_supervisor_dir,
    };
    write_new(
        &layout.registration(),
        &serde_json::to_vec_pretty(&registration).unwrap_or_default(),
        0o644,
        &mut undo,
    )?;
    let def = service_def(layout, plan);
    undo.done.push(Done::Service(backend));
    tokio::task::spawn_blocking(move || -> opsworks_host::Result<()> {
        service::define(&def)?;
        service::enable(SERVICE, None)?;
        service::start(SERVICE, None)
    })
    .await
    .map_err(|e| InstallError::Service(e.to_string()))?
    .map_err(|e| InstallError::Service(e.to_string()))?;
    say(&match backend {
        Backend::Systemd => format!("started the {SERVICE} systemd service (enabled at boot)"),
        Backend::Supervisor => format!(
            "started the {SERVICE} service under the opsworks supervisor (systemd is not PID 1 here)"
        ),
    });

    // The agent's hello.
    let started = Instant::now();
    while started.elapsed() < REPORT_IN_WAIT {
        if reported_in(&state) {
            say(&format!(
                "the agent reported in to {} ({:.1} s)",
                plan.server,
                started.elapsed().as_secs_f64()
            ));
            undo.keep();
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(InstallError::Silent {
        server: plan.server.clone(),
        waited: REPORT_IN_WAIT,
        log: service_log(backend),
    })
}

/// Whether the agent with this state directory has said hello and been answered.
fn reported_in(state: &Path) -> bool {
    std::fs::read_to_string(state.join("agent.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<crate::state::AgentInfo>(&t).ok())
        .is_some_and(|i| i.reported_in_at.is_some())
}

/// The last lines of the agent service's log.
fn service_log(backend: Backend) -> String {
    let text = match backend {
        Backend::Supervisor => std::fs::read_to_string(
            supervisor::state_dir()
                .join("logs")
                .join(format!("{SERVICE}.log")),
        )
        .unwrap_or_default(),
        Backend::Systemd => std::process::Command::new("journalctl")
            .args(["-u", SERVICE, "-n", "20", "--no-pager", "-q"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default(),
    };
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(12)..].join("\n")
}

/// Stops the agent's service and removes its definition.
fn remove_service(backend: Backend) -> Result<(), String> {
    match backend {
        Backend::Supervisor => {
            let mut c =
                SupervisorClient::connect(&supervisor::state_dir()).map_err(|e| e.to_string())?;
            match c
                .call(&Request::Remove {
                    name: SERVICE.into(),
                })
                .map_err(|e| e.to_string())?
            {
                Response::Ok { .. } => Ok(()),
                Response::Error { message, .. } if message.contains("unknown service") => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
        Backend::Systemd => {
            let _ = service::stop(SERVICE, None);
            let _ = service::disable(SERVICE, None);
            let unit = PathBuf::from("/etc/systemd/system").join(format!("{SERVICE}.service"));
            match std::fs::remove_file(&unit) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("removing {}: {e}", unit.display())),
            }
            let _ = std::process::Command::new("systemctl")
                .arg("daemon-reload")
                .status();
            Ok(())
        }
    }
}

/// Stops the opsworks supervisor when it runs no service any more.
fn stop_idle_supervisor() {
    let Ok(mut c) = SupervisorClient::connect(&supervisor::state_dir()) else {
        return;
    };
    if let Ok(Response::List { services }) = c.call(&Request::List)
        && services.is_empty()
    {
        let _ = c.call(&Request::Shutdown);
        // The supervisor removes its socket as it exits; wait for that, briefly.
        let socket = supervisor::socket_path(&supervisor::state_dir());
        let deadline = Instant::now() + Duration::from_secs(10);
        while socket.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Removes the agent: its service, its releases, its key, its registration and its state; the
/// opsworks supervisor too when the installer started it and it runs nothing else. What recipes
/// and deployments put on the machine stays. Prints each step through `say`.
pub fn uninstall(layout: &Layout, say: fn(&str)) -> Result<(), InstallError> {
    if !nix_is_root() {
        return Err(InstallError::NotRoot);
    }
    let registration = layout.registered()?;
    let backend = match registration.as_ref().map(|r| r.backend.as_str()) {
        Some("systemd") => Backend::Systemd,
        Some(_) => Backend::Supervisor,
        None => service::backend(),
    };
    match remove_service(backend) {
        Ok(()) => say(&format!("stopped and removed the {SERVICE} service")),
        Err(e) => say(&format!("could not remove the {SERVICE} service: {e}")),
    }
    if backend == Backend::Supervisor {
        // The supervisor keeps a service's log after the service goes; the agent's goes too.
        let logs = supervisor::state_dir().join("logs");
        for name in [format!("{SERVICE}.log"), format!("{SERVICE}.log.1")] {
            let _ = std::fs::remove_file(logs.join(name));
        }
    }
    if registration.as_ref().is_some_and(|r| r.started_supervisor) {
        stop_idle_supervisor();
        if registration
            .as_ref()
            .is_some_and(|r| r.created_supervisor_dir)
            && !supervisor::socket_path(&supervisor::state_dir()).exists()
        {
            let _ = std::fs::remove_dir_all(supervisor::state_dir());
        }
    }
    let mut failed = None;
    for path in [
        layout.install_dir(),
        layout.credentials(),
        layout.registration(),
        layout.state_dir(),
    ] {
        let gone = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match gone {
            Ok(()) => say(&format!("removed {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => failed = Some(io("cannot remove", &path)(e)),
        }
    }
    // The configuration directory goes when nothing else is in it.
    let _ = std::fs::remove_dir(layout.config_dir());
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            server: "http://10.0.0.1:9730".into(),
            stack_id: "s".into(),
            instance_id: "i-1".into(),
            hostname: "h".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            secret_access_key: "shh".into(),
        }
    }

    #[test]
    fn the_plan_never_shows_its_secret() {
        assert!(!format!("{:?}", plan()).contains("shh"));
    }

    #[test]
    fn a_registered_machine_or_a_leftover_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::under(dir.path());
        assert!(check_free(&layout).is_ok());
        std::fs::create_dir_all(layout.install_dir()).unwrap();
        let err = check_free(&layout).unwrap_err().to_string();
        assert!(
            err.contains("is not registered") && err.contains("opt/opsworks"),
            "{err}"
        );
        std::fs::create_dir_all(layout.config_dir()).unwrap();
        let reg = Registration {
            instance_id: "i-9".into(),
            stack_id: "s-9".into(),
            server: "http://x".into(),
            hostname: "h".into(),
            installed_at: "t".into(),
            backend: "supervisor".into(),
            started_supervisor: false,
            created_supervisor_dir: false,
        };
        std::fs::write(layout.registration(), serde_json::to_vec(&reg).unwrap()).unwrap();
        let err = check_free(&layout).unwrap_err().to_string();
        assert!(
            err.contains("already registered: instance i-9 of stack s-9"),
            "{err}"
        );
    }

    #[test]
    fn undo_removes_what_was_made_and_keeps_what_was_there() {
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("etc");
        std::fs::create_dir_all(&kept).unwrap();
        {
            let mut undo = Undo {
                done: Vec::new(),
                say: |_| {},
            };
            create_dir(&dir.path().join("opt/opsworks/releases/x"), &mut undo).unwrap();
            create_dir(&kept.join("opsworks"), &mut undo).unwrap();
            write_new(&kept.join("opsworks/key"), b"k", 0o600, &mut undo).unwrap();
            let mode = std::fs::metadata(kept.join("opsworks/key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!dir.path().join("opt").exists());
        assert!(kept.exists() && !kept.join("opsworks").exists());
    }

    #[test]
    fn the_service_runs_the_current_release_with_the_instance_s_key() {
        let def = service_def(&Layout::default(), &plan());
        assert_eq!(
            def.command,
            "/opt/opsworks/current/opsworks agent --server http://10.0.0.1:9730 --instance-id i-1 --credentials /etc/opsworks/agent-credentials.json --install-dir /opt/opsworks"
        );
        assert!(!def.command.contains("shh"));
        assert!(def.validate().is_ok());
    }
}
