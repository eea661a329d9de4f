//! The agent's error type.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A file or directory operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done (`cannot read`, ...).
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file or message could not be read or written.
    #[error("invalid JSON in {what}: {source}")]
    Json {
        /// Which file or message.
        what: String,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// Input from the server, a file or the command line is not acceptable.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// What is invalid.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// A host operation (git, download) failed.
    #[error(transparent)]
    Host(#[from] opsworks_host::HostError),
    /// An archive could not be unpacked.
    #[error("cannot unpack archive {}: {message}", path.display())]
    Archive {
        /// The archive.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The server could not be reached, or answered with a server error; worth retrying.
    #[error("server unavailable: {0}")]
    Unavailable(String),
    /// The server refused a request (a 4xx answer); retrying the same request will not help.
    #[error("server refused {call} ({status}): {code}: {message}")]
    Refused {
        /// The protocol call (`hello`, `poll`, ...).
        call: &'static str,
        /// The HTTP status.
        status: u16,
        /// The protocol error code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// Another agent already runs with this state directory.
    #[error("another agent (pid {pid}) already runs with state directory {}", dir.display())]
    AlreadyRunning {
        /// The state directory.
        dir: PathBuf,
        /// The other agent's pid, as it recorded it (0 when unknown).
        pid: u32,
    },
    /// An app's deploy hook (`deploy/<hook>.star`) failed.
    #[error(
        "deploy hook {hook} of app {app} failed ({status}); its output is in the command's log"
    )]
    HookFailed {
        /// The app's short name.
        app: String,
        /// The hook.
        hook: String,
        /// How the converge ended.
        status: String,
    },
    /// No stored command matches.
    #[error("no stored command matches `{0}`")]
    NoSuchCommand(String),
}

/// The agent's result type.
pub type Result<T, E = AgentError> = std::result::Result<T, E>;

impl AgentError {
    /// An [`AgentError::Io`] for `path`.
    pub fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        AgentError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// An [`AgentError::Invalid`].
    pub fn invalid(what: &'static str, message: impl Into<String>) -> Self {
        AgentError::Invalid {
            what,
            message: message.into(),
        }
    }

    /// An [`AgentError::Json`].
    pub fn json(what: impl Into<String>, source: serde_json::Error) -> Self {
        AgentError::Json {
            what: what.into(),
            source,
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, AgentError::Unavailable(_))
    }
}
