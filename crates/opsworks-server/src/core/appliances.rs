//! Service machines ("appliances"): a machine of the instance provider that runs one server
//! process the control plane itself needs — a database for RDS, a load balancer for ELB — rather
//! than an agent. The process is the machine's main process, its files are placed before it
//! starts, its disk (an `ebs` root) survives stop, reboot and a restart of the control plane.
//!
//! What this module knows is generic: start a machine from an [`ApplianceSpec`] and wait until
//! its port answers, reboot it, keep it running (a machine whose process died is started again on
//! the same disk; one that runs after a control-plane restart is adopted as it is), stop it,
//! destroy it, remove machines of a family that nothing owns. A step that fails leaves nothing
//! half-made: a machine that never came up is destroyed, a rebooted one that does not come back
//! is stopped with its disk kept. Callers (`core::rds`) decide what runs and when.
//!
//! Operations on one machine are serialised (a per-machine lock), so a reboot and the upkeep
//! pass never race to boot the same machine.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opsworks_sandbox::{
    ExecOutput, FileSpec, Limits, MachineSpec, MachineState, MainProcess, Provider, RootDevice,
};

/// How long a machine's main process may take to answer on its port (a database initialising
/// its data dir on a busy host takes tens of seconds).
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a machine's processes get to stop before they are killed.
pub const STOP_GRACE: Duration = Duration::from_secs(20);

/// Where to find a machine's console log (its main process's output), for error messages.
pub type ConsoleLog = Arc<dyn Fn(&str) -> Option<PathBuf> + Send + Sync>;

/// The ID prefixes of every family of service machines (`core::rds`, `core::elb`). They share the
/// instance provider with instances' machines, so what reconciles instances' machines at start
/// must leave these to their families' upkeep.
pub const FAMILIES: [&str; 2] = [RDS_PREFIX, ELB_PREFIX];

/// The machine IDs of DB instances start with this (`core::rds`).
pub const RDS_PREFIX: &str = "rds-";
/// The machine IDs of load balancers start with this (`core::elb`).
pub const ELB_PREFIX: &str = "elb-";

/// Whether `machine_id` belongs to a family of service machines rather than to an instance.
pub fn is_appliance(machine_id: &str) -> bool {
    FAMILIES.iter().any(|p| machine_id.starts_with(p))
}

/// What an appliance is: the machine, its one process, its files, the port that answers once it
/// is ready.
#[derive(Debug, Clone)]
pub struct ApplianceSpec {
    /// The machine's ID (a family prefix such as `rds-` and a name), 1 to 64 of
    /// `A-Z a-z 0-9 . _ -`.
    pub id: String,
    /// Its host name.
    pub hostname: String,
    /// The server process: when it exits, the machine stops (and upkeep starts it again).
    pub main: MainProcess,
    /// Files placed before the process starts, at every boot (secrets only for the boot that
    /// needs them: the caller leaves them out of later ones).
    pub files: Vec<FileSpec>,
    /// CPU and memory.
    pub limits: Option<Limits>,
    /// The TCP port the process answers on once ready.
    pub port: u16,
}

/// Why an appliance operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplianceError {
    /// The provider refused or failed.
    #[error("machine {id}: {reason}")]
    Machine {
        /// The machine.
        id: String,
        /// What the provider said.
        reason: String,
    },
    /// The process exited before answering.
    #[error("machine {id}: its server process exited before answering on port {port}{tail}")]
    Exited {
        /// The machine.
        id: String,
        /// The port waited for.
        port: u16,
        /// The end of the console log, as `: ...`, if any.
        tail: String,
    },
    /// The process did not answer in time.
    #[error("machine {id}: nothing answered on {addr} within {seconds} s{tail}")]
    NotReady {
        /// The machine.
        id: String,
        /// Where it was asked.
        addr: SocketAddr,
        /// How long.
        seconds: u64,
        /// The end of the console log, as `: ...`, if any.
        tail: String,
    },
}

/// What [`Appliances::keep_running`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upkeep {
    /// It runs at this address.
    Running(Ipv4Addr),
    /// Its process had died: it was started again on its disk and answers at this address.
    Restarted(Ipv4Addr),
    /// There is no such machine (its disk is gone): nothing can bring it back.
    Gone,
}

/// The appliances of this server, on its instance provider. Cheap to clone.
#[derive(Clone)]
pub struct Appliances {
    provider: Arc<dyn Provider>,
    /// Host paths no machine may see (the data dir).
    hidden: Vec<PathBuf>,
    console: Option<ConsoleLog>,
    ready_timeout: Duration,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    claims: Arc<Mutex<HashSet<String>>>,
}

/// An operation in flight on one machine (a creation, a reboot, a removal), held until it ends;
/// the upkeep pass leaves a claimed machine alone. Dropping it releases the machine.
pub struct Claim {
    id: String,
    claims: Arc<Mutex<HashSet<String>>>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.claims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl Appliances {
    /// Appliances on `provider`, hiding `hidden` from every machine.
    pub fn new(provider: Arc<dyn Provider>, hidden: Vec<PathBuf>) -> Self {
        Self {
            provider,
            hidden,
            console: None,
            ready_timeout: DEFAULT_READY_TIMEOUT,
            locks: Arc::default(),
            claims: Arc::default(),
        }
    }

    /// Claims the machine for an operation; `None` while another holds it.
    pub fn claim(&self, id: &str) -> Option<Claim> {
        let mut claims = self.claims.lock().unwrap_or_else(|e| e.into_inner());
        claims.insert(id.to_string()).then(|| Claim {
            id: id.to_string(),
            claims: self.claims.clone(),
        })
    }

    /// Whether an operation holds the machine.
    pub fn is_claimed(&self, id: &str) -> bool {
        self.claims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    /// Quotes the end of a machine's console log in errors.
    pub fn with_console_log(mut self, console: ConsoleLog) -> Self {
        self.console = Some(console);
        self
    }

    /// Waits at most `timeout` for a machine's port.
    pub fn with_ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// The lock of one machine's operations.
    fn lock_of(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(id.to_string()).or_default().clone()
    }

    fn machine_error(id: &str, e: impl std::fmt::Display) -> ApplianceError {
        ApplianceError::Machine {
            id: id.to_string(),
            reason: e.to_string(),
        }
    }

    fn machine_spec(&self, spec: &ApplianceSpec) -> MachineSpec {
        let mut m = MachineSpec::new(&spec.id, &spec.hostname, RootDevice::Ebs, spec.main.clone());
        m.files = spec.files.clone();
        m.hidden_paths = self.hidden.clone();
        m.limits = spec.limits;
        m
    }

    /// Creates the machine and waits for its port. On failure the machine is destroyed (disk
    /// and all): nothing is left of an appliance that never came up.
    pub async fn create(&self, spec: &ApplianceSpec) -> Result<Ipv4Addr, ApplianceError> {
        let lock = self.lock_of(&spec.id);
        let _held = lock.lock().await;
        let outcome = self.boot(spec).await;
        if outcome.is_err()
            && let Err(e) = self.provider.destroy(&spec.id).await
        {
            tracing::warn!(
                machine = spec.id,
                "destroying a machine that did not come up: {e}"
            );
        }
        outcome
    }

    /// Stops the machine and boots it again on its disk, then waits for its port. On failure the
    /// machine is left stopped with its disk.
    pub async fn reboot(&self, spec: &ApplianceSpec) -> Result<Ipv4Addr, ApplianceError> {
        let lock = self.lock_of(&spec.id);
        let _held = lock.lock().await;
        self.restart_locked(spec).await
    }

    async fn restart_locked(&self, spec: &ApplianceSpec) -> Result<Ipv4Addr, ApplianceError> {
        self.provider
            .stop(&spec.id, STOP_GRACE)
            .await
            .map_err(|e| Self::machine_error(&spec.id, e))?;
        let outcome = self.boot(spec).await;
        if outcome.is_err() {
            let _ = self.provider.stop(&spec.id, Duration::ZERO).await;
        }
        outcome
    }

    /// Keeps the machine running: adopts it when it runs (after a control-plane restart too),
    /// boots it again on its disk when its process died, and reports it gone when its disk is.
    pub async fn keep_running(&self, spec: &ApplianceSpec) -> Result<Upkeep, ApplianceError> {
        let lock = self.lock_of(&spec.id);
        let _held = lock.lock().await;
        let machine = self
            .provider
            .describe(&spec.id)
            .await
            .map_err(|e| Self::machine_error(&spec.id, e))?;
        match machine {
            None => Ok(Upkeep::Gone),
            Some(m) if matches!(m.state, MachineState::Running { .. }) => {
                Ok(Upkeep::Running(m.private_ip))
            }
            Some(_) => {
                tracing::warn!(
                    machine = spec.id,
                    "the machine's server process had stopped: starting it again"
                );
                self.restart_locked(spec).await.map(Upkeep::Restarted)
            }
        }
    }

    /// Provisions (its disk kept if it has one) and waits until the port answers.
    async fn boot(&self, spec: &ApplianceSpec) -> Result<Ipv4Addr, ApplianceError> {
        let machine = self
            .provider
            .provision(self.machine_spec(spec))
            .await
            .map_err(|e| Self::machine_error(&spec.id, e))?;
        let ip = machine.private_ip;
        self.wait_ready(&spec.id, SocketAddr::from((ip, spec.port)))
            .await?;
        Ok(ip)
    }

    async fn wait_ready(&self, id: &str, addr: SocketAddr) -> Result<(), ApplianceError> {
        let started = Instant::now();
        loop {
            let attempt =
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr))
                    .await;
            if let Ok(Ok(_)) = attempt {
                return Ok(());
            }
            let state = self
                .provider
                .status(id)
                .await
                .map_err(|e| Self::machine_error(id, e))?;
            if !matches!(state, MachineState::Running { .. }) {
                return Err(ApplianceError::Exited {
                    id: id.to_string(),
                    port: addr.port(),
                    tail: self.console_tail(id),
                });
            }
            if started.elapsed() >= self.ready_timeout {
                return Err(ApplianceError::NotReady {
                    id: id.to_string(),
                    addr,
                    seconds: self.ready_timeout.as_secs(),
                    tail: self.console_tail(id),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The last lines of the machine's console log, as `: line | line`, or empty.
    fn console_tail(&self, id: &str) -> String {
        let Some(path) = self.console.as_ref().and_then(|c| c(id)) else {
            return String::new();
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            return String::new();
        };
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let tail = &lines[lines.len().saturating_sub(3)..];
        if tail.is_empty() {
            String::new()
        } else {
            format!(": {}", tail.join(" | "))
        }
    }

    /// Stops the machine (its disk kept).
    pub async fn stop(&self, id: &str) -> Result<(), ApplianceError> {
        let lock = self.lock_of(id);
        let _held = lock.lock().await;
        match self.provider.stop(id, STOP_GRACE).await {
            Ok(()) => Ok(()),
            // Stopping what does not exist is done.
            Err(opsworks_sandbox::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Self::machine_error(id, e)),
        }
    }

    /// Removes the machine and its disk; an absent machine is already removed.
    pub async fn destroy(&self, id: &str) -> Result<(), ApplianceError> {
        let lock = self.lock_of(id);
        let _held = lock.lock().await;
        let outcome = self
            .provider
            .destroy(id)
            .await
            .map_err(|e| Self::machine_error(id, e));
        self.locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        outcome
    }

    /// Runs `argv` inside the running machine.
    pub async fn exec(&self, id: &str, argv: &[String]) -> Result<ExecOutput, ApplianceError> {
        self.provider
            .exec(id, argv)
            .await
            .map_err(|e| Self::machine_error(id, e))
    }

    /// The machine's address and whether it runs, if it exists.
    pub async fn describe(&self, id: &str) -> Result<Option<(Ipv4Addr, bool)>, ApplianceError> {
        Ok(self
            .provider
            .describe(id)
            .await
            .map_err(|e| Self::machine_error(id, e))?
            .map(|m| {
                (
                    m.private_ip,
                    matches!(m.state, MachineState::Running { .. }),
                )
            }))
    }

    /// Destroys the machines whose ID starts with `prefix` that are not in `keep`: what a crash
    /// between making a machine and recording it left behind. Returns their IDs.
    pub async fn reap(
        &self,
        prefix: &str,
        keep: &HashSet<String>,
    ) -> Result<Vec<String>, ApplianceError> {
        let machines = self
            .provider
            .list()
            .await
            .map_err(|e| Self::machine_error(prefix, e))?;
        let mut reaped = Vec::new();
        for m in machines {
            if m.id.starts_with(prefix) && !keep.contains(&m.id) {
                tracing::warn!(machine = m.id, "removing a service machine nothing owns");
                self.destroy(&m.id).await?;
                reaped.push(m.id);
            }
        }
        Ok(reaped)
    }
}

#[cfg(test)]
mod tests;
