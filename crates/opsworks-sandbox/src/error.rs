//! The crate's error type: every way provisioning, inspecting or tearing down a machine can fail.

use std::path::PathBuf;

/// Errors returned by instance providers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The host cannot run local instances; `missing` names each missing requirement.
    #[error("local instances are unavailable on this host: {missing}")]
    Unavailable {
        /// What is missing, e.g. "root privileges" or "overlayfs".
        missing: String,
    },
    /// The provider's own configuration is unusable.
    #[error("invalid provider configuration: {reason}")]
    Config {
        /// Why the configuration was rejected.
        reason: String,
    },
    /// A machine spec was rejected before anything was created.
    #[error("invalid machine spec: {reason}")]
    InvalidSpec {
        /// Why the spec was rejected.
        reason: String,
    },
    /// No machine with this id exists.
    #[error("machine {id} not found")]
    NotFound {
        /// The machine id.
        id: String,
    },
    /// `provision` was called for a machine that is already running.
    #[error("machine {id} is already running (pid {pid})")]
    AlreadyRunning {
        /// The machine id.
        id: String,
        /// Host pid of the machine's init.
        pid: u32,
    },
    /// The operation takes root on the host and the caller is not root.
    #[error(
        "{action} takes root on the host (running as uid {uid}); run it as root, e.g. with sudo"
    )]
    NotRoot {
        /// What was asked, e.g. "entering a machine".
        action: String,
        /// The caller's effective uid.
        uid: u32,
    },
    /// The operation needs a running machine.
    #[error("machine {id} is not running")]
    NotRunning {
        /// The machine id.
        id: String,
    },
    /// Every address of the machine subnet is leased.
    #[error("no free address left in {subnet}")]
    AddressesExhausted {
        /// The subnet, in CIDR notation.
        subnet: String,
    },
    /// An address is leased to someone else on this host.
    #[error("address {ip} is already in use on this host (held by {holder})")]
    AddressInUse {
        /// The address.
        ip: std::net::Ipv4Addr,
        /// What holds it (a machine's directory, or a reservation's).
        holder: String,
    },
    /// The machine was created but its init or main process did not come up.
    #[error("machine {id} failed to boot: {reason}")]
    Boot {
        /// The machine id.
        id: String,
        /// What went wrong inside, as reported by the machine's init.
        reason: String,
    },
    /// The machine's processes could not be ended.
    #[error("machine {id} did not stop: {reason}")]
    Stop {
        /// The machine id.
        id: String,
        /// Why.
        reason: String,
    },
    /// Running a command inside the machine failed before the command itself ran.
    #[error("cannot run a command in machine {id}: {reason}")]
    Exec {
        /// The machine id.
        id: String,
        /// Why.
        reason: String,
    },
    /// An external tool (iproute2, iptables) reported a failure.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line that failed.
        command: String,
        /// What it printed on stderr (or its exit status).
        stderr: String,
    },
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("{context}: {source}")]
    Sys {
        /// What was being done.
        context: String,
        /// The errno.
        source: nix::errno::Errno,
    },
    /// A state file of the provider could not be parsed.
    #[error("state file {} is unreadable: {source}", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A blocking task running a provider operation panicked or was cancelled.
    #[error("provider task failed: {reason}")]
    Task {
        /// The join error.
        reason: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with a description of what was being done.
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    /// Wraps an errno with a description of what was being done.
    pub(crate) fn sys(context: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> Error {
        let context = context.into();
        move |source| Error::Sys { context, source }
    }
}
