//! An agent release an operator added (`opsworks agent-version add`): a version agents can be
//! told to run, and the SHA-256 of its file, which every agent checks before it swaps.

use serde::{Deserialize, Serialize};

use super::{Kind, Resource};

/// An agent release offered besides the server's own build (stored under its version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentRelease {
    /// The version agents report when they run it (the ID).
    pub version: String,
    /// The SHA-256 of the executable, lowercase hex.
    pub sha256: String,
    /// The architecture the executable is built for (`x86_64`, `aarch64`).
    pub architecture: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was added (AWS timestamp).
    pub added_at: String,
}

impl Resource for AgentRelease {
    const KIND: Kind = Kind::AgentRelease;
    fn id(&self) -> &str {
        &self.version
    }
    fn stack_id(&self) -> Option<&str> {
        None
    }
}
