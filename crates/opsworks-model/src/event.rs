//! The kinds of event the event log records, as its `Type` spells them.

use std::fmt;
use std::str::FromStr;

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// An instance's status changed (`Detail`: `From`, `To`, `Cause`).
    InstanceStatus,
    /// A command ended (`Detail`: `Type`, `Status`, `ExitCode`).
    CommandStatus,
    /// A deployment's status changed (`Detail`: `Command`, `From`, `Status`).
    DeploymentStatus,
    /// A service error (`Detail`: `ServiceErrorId`, `Type`, `Message`).
    ServiceError,
    /// A time-based start or stop (`Detail`: `Action`, `Hour`).
    TimeScaling,
    /// A load-based scaling event of a layer (`Detail`: `Direction`, `InstanceIds`).
    LoadScaling,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 6] = [
        Self::InstanceStatus,
        Self::CommandStatus,
        Self::DeploymentStatus,
        Self::ServiceError,
        Self::TimeScaling,
        Self::LoadScaling,
    ];

    /// The log's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InstanceStatus => "instance_status",
            Self::CommandStatus => "command_status",
            Self::DeploymentStatus => "deployment_status",
            Self::ServiceError => "service_error",
            Self::TimeScaling => "time_scaling",
            Self::LoadScaling => "load_scaling",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown event kind {s}"))
    }
}

crate::serde_str::serde_as_str!(EventKind);
