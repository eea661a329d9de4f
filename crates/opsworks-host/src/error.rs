//! The crate's error type, `HostError`, and the `Result` alias every module returns.

use std::path::PathBuf;

/// Everything that can go wrong while inspecting or changing the host.
///
/// Failures of external tools carry the command line that ran (with any credentials in URLs
/// redacted) and the tail of its stderr, so a converge report can show what the tool said.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A tool ran and exited unsuccessfully.
    #[error("command `{command}` failed ({status}): {stderr}")]
    CommandFailed {
        /// The command line, credentials redacted.
        command: String,
        /// How it ended, e.g. `exit status 100`.
        status: String,
        /// The end of its stderr (or stdout when stderr was empty), trimmed.
        stderr: String,
    },
    /// A tool could not be started at all (missing binary, permissions).
    #[error("cannot run `{command}`: {source}")]
    CommandSpawn {
        /// The command line, credentials redacted.
        command: String,
        /// The error from the operating system.
        #[source]
        source: std::io::Error,
    },
    /// A tool this operation needs is not installed.
    #[error("`{tool}` is not installed or not in PATH: {hint}")]
    ToolMissing {
        /// The binary that was looked for.
        tool: String,
        /// What to install to get it.
        hint: String,
    },
    /// None of apt-get, dnf, yum or apk was found.
    #[error("no supported package manager found (looked for apt-get, dnf, yum and apk in PATH)")]
    NoPackageManager,
    /// The package manager knows no package of that name.
    #[error("package `{name}` is not available from any configured repository")]
    PackageNotFound {
        /// The package name asked for.
        name: String,
    },
    /// An argument was malformed (a name with a newline, a bad checksum, an unsupported URL).
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// Which argument.
        what: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A file operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. `cannot read`.
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The error from the operating system.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP transfer failed before a status arrived or while reading the body.
    #[error("download from {url} failed: {message}")]
    Http {
        /// The URL, credentials redacted.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The server answered with a non-success status.
    #[error("download from {url} returned http status {status}")]
    HttpStatus {
        /// The URL, credentials redacted.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The downloaded content does not have the expected sha256; nothing was written.
    #[error("checksum mismatch for {url}: expected sha256 {expected}, got {actual}")]
    ChecksumMismatch {
        /// The URL, credentials redacted.
        url: String,
        /// The checksum the caller asked for.
        expected: String,
        /// The checksum of what arrived.
        actual: String,
    },
    /// A git branch, tag or commit could not be found in the repository.
    #[error("git revision `{revision}` not found in {repository}")]
    RevisionNotFound {
        /// The repository URL, credentials redacted.
        repository: String,
        /// The revision asked for.
        revision: String,
    },
    /// A checkout ended at another commit than the one it was asked for.
    #[error("git checkout in {path} is at {actual:?}, not at the resolved commit {expected}")]
    CheckoutMismatch {
        /// The checkout.
        path: PathBuf,
        /// The commit asked for.
        expected: String,
        /// The commit HEAD names (empty when none).
        actual: String,
    },
    /// A user name does not exist on this host.
    #[error("unknown user `{name}`")]
    UnknownUser {
        /// The user name.
        name: String,
    },
    /// A group name does not exist on this host.
    #[error("unknown group `{name}`")]
    UnknownGroup {
        /// The group name.
        name: String,
    },
    /// A service was named without a definition and none is known.
    #[error("service `{name}` is not defined: give it a command the first time it is used")]
    UnknownService {
        /// The service name.
        name: String,
    },
    /// The supervisor refused a request or could not be reached.
    #[error("supervisor: {message}")]
    Supervisor {
        /// What it said, or why it could not be asked.
        message: String,
    },
}

/// The result type of every host operation.
pub type Result<T> = std::result::Result<T, HostError>;

impl HostError {
    /// Shorthand for [`HostError::InvalidInput`].
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        HostError::InvalidInput {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`HostError::Io`].
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        HostError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
