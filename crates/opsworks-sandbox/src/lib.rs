//! Instance providers: the machines OpsWorks instances run on, behind one interface
//! ([`Provider`]), and the local provider ([`LocalProvider`]) that isolates each instance on the
//! server's own host with Linux namespaces and overlayfs.
//!
//! The local provider re-executes a helper (the `opsworks` binary's hidden `sandbox-init`
//! subcommand, or `opsworks-sandbox-helper` in this crate's tests) that must call [`init_main`]
//! before any thread or async runtime starts.
//!
//! Wiring, in short: build a [`LocalProvider`] from [`LocalConfig::new`] with the server's data
//! dir as `state_dir` (or a subdirectory), call [`LocalProvider::prepare`] once at start-up (it
//! checks the host and returns the bridge address, 10.217.0.1 by default, where the control
//! plane should listen for agents), then drive machines through [`Provider`]: `provision` on
//! StartInstance with the agent as the main process and its credential as a file, `stop` with
//! the layer's shutdown timeout as grace, `destroy` on DeleteInstance, `list` after a restart.
//! Pass the server's data dir and other host secrets in [`MachineSpec::hidden_paths`], and the
//! instance type's CPUs and memory in [`MachineSpec::limits`]: each machine gets its own control
//! group (cgroup v2, or v1 where the host has that) with those limits, and a cgroup namespace
//! in which `/sys/fs/cgroup` shows that group. Call [`LocalProvider::reap_orphans`] at start to
//! kill machines whose data dir is gone. [`LocalProvider::exec_attached`] runs a shell or a
//! command inside a machine on the caller's terminal (`opsworks exec`).
//!
//! This is isolation for convenience, not a security boundary: machines run as root in the host
//! user namespace, with the host's root file system as their lower layer.

mod cgroup;
pub mod disk;
mod error;
mod host;
mod init;
mod local;
mod procfs;
mod spec;

use std::net::Ipv4Addr;
use std::time::Duration;

pub use error::{Error, Result};
pub use host::ensure_root;
pub use init::init_main;
pub use local::{
    AddressRange, DEFAULT_RESERVED, LocalConfig, LocalProvider, NetworkConfig, Reaped,
};
pub use spec::{
    Disk, ExecOutput, FileSpec, Limits, Machine, MachineSpec, MachineState, MainProcess,
    RootDevice, validate_id,
};

/// Where instances run. The control plane drives machines only through this trait, so that
/// containers, registered machines and clouds can follow the local provider.
#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    /// Creates (or restarts, keeping an `ebs` disk) and boots a machine running `spec.main`;
    /// returns once the main process has been started.
    async fn provision(&self, spec: MachineSpec) -> Result<Machine>;

    /// Whether the machine runs, is stopped, or does not exist.
    async fn status(&self, id: &str) -> Result<MachineState>;

    /// The machine with its addresses and state, if it exists.
    async fn describe(&self, id: &str) -> Result<Option<Machine>>;

    /// Every machine the provider knows, running or stopped; works after a control-plane restart.
    async fn list(&self) -> Result<Vec<Machine>>;

    /// Sends SIGTERM to everything in the machine and SIGKILL after `grace`; keeps its disk and
    /// address. Stopping a stopped machine succeeds.
    async fn stop(&self, id: &str, grace: Duration) -> Result<()>;

    /// Kills the machine and removes every trace of it; destroying an absent machine succeeds.
    async fn destroy(&self, id: &str) -> Result<()>;

    /// Runs `argv` inside the running machine (its namespaces and root) and collects its output.
    async fn exec(&self, id: &str, argv: &[String]) -> Result<ExecOutput>;

    /// Reserves `ip` host-wide for addresses that move between machines (Elastic IPs);
    /// reserving it again succeeds, [`Error::AddressInUse`] says who holds it otherwise.
    async fn reserve_address(&self, ip: Ipv4Addr) -> Result<()> {
        let _ = ip;
        Err(unmovable())
    }

    /// Gives a reserved address back.
    async fn release_address(&self, ip: Ipv4Addr) -> Result<()> {
        let _ = ip;
        Err(unmovable())
    }

    /// The addresses this provider holds in reserve.
    async fn reserved_addresses(&self) -> Result<Vec<Ipv4Addr>> {
        Err(unmovable())
    }

    /// Adds a reserved address to a running machine and announces it there.
    async fn add_address(&self, id: &str, ip: Ipv4Addr) -> Result<()> {
        let _ = (id, ip);
        Err(unmovable())
    }

    /// Takes an address off a machine (nothing to do when it does not run or lacks it).
    async fn remove_address(&self, id: &str, ip: Ipv4Addr) -> Result<()> {
        let _ = (id, ip);
        Err(unmovable())
    }

    /// The addresses a running machine answers on besides its own.
    async fn extra_addresses(&self, id: &str) -> Result<Vec<Ipv4Addr>> {
        let _ = id;
        Err(unmovable())
    }
}

fn unmovable() -> Error {
    Error::Unavailable {
        missing: "addresses that move between machines (this provider has none)".to_string(),
    }
}
