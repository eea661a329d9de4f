//! The supervisor's wire protocol: one JSON object per line over the Unix socket
//! `<state-dir>/supervisor.sock`. A client writes a [`Request`] line and reads one [`Response`]
//! line back; a connection may carry any number of such exchanges, in order.
//!
//! ```text
//! -> {"op":"define","def":{"name":"web","command":"/usr/bin/web --port 80","env":{}}}
//! <- {"result":"ok","service":{"name":"web","state":"stopped",...},"changed":true}
//! -> {"op":"start","name":"web"}
//! <- {"result":"ok","service":{"name":"web","state":"running","pid":4242,...},"changed":true}
//! -> {"op":"status","name":"nope"}
//! <- {"result":"ok","changed":false}
//! -> {"op":"reload","name":"nope"}
//! <- {"result":"error","code":"unknown_service","message":"unknown service `nope`"}
//! ```

use serde::{Deserialize, Serialize};

use crate::definition::ServiceDef;

/// The longest request line the supervisor accepts, in bytes.
pub const MAX_LINE: usize = 1024 * 1024;

/// How long `stop` waits after SIGTERM before it sends SIGKILL, unless the request says.
pub const DEFAULT_STOP_TIMEOUT_MS: u64 = 10_000;

/// A request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Is the supervisor there? Answered with [`Response::Pong`].
    Ping,
    /// Create or update a service definition (persisted). A running service keeps running with
    /// its old definition until it is restarted (the answer's `def_changed` says so).
    Define {
        /// The definition.
        def: ServiceDef,
    },
    /// Start a service; a running one is left alone.
    Start {
        /// Service name.
        name: String,
    },
    /// Stop a service: SIGTERM to its process group, SIGKILL after the timeout.
    Stop {
        /// Service name.
        name: String,
        /// Milliseconds between SIGTERM and SIGKILL; [`DEFAULT_STOP_TIMEOUT_MS`] when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Stop (if running) and start again with the current definition.
    Restart {
        /// Service name.
        name: String,
        /// As for [`Request::Stop`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Send the reload signal (the definition's, default SIGHUP) to the main process.
    Reload {
        /// Service name.
        name: String,
    },
    /// Mark the service to be started whenever the supervisor starts (persisted; does not start
    /// it now).
    Enable {
        /// Service name.
        name: String,
    },
    /// Undo [`Request::Enable`] (does not stop it).
    Disable {
        /// Service name.
        name: String,
    },
    /// The state of one service; `{"result":"ok"}` without `service` when it is not defined.
    Status {
        /// Service name.
        name: String,
    },
    /// The state of every service, sorted by name.
    List,
    /// Stop a service and forget its definition.
    Remove {
        /// Service name.
        name: String,
    },
    /// Stop every service and exit. Enabled services start again with the next supervisor.
    Shutdown,
}

/// A response line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    /// The request succeeded; `service` is the service's state after it, when there is one.
    Ok {
        /// State of the service the request named.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<ServiceInfo>,
        /// Whether the request changed anything: a new or different definition, a start of a
        /// stopped service, a stop of a running one, a flipped enabled flag; always true for
        /// restart and reload.
        #[serde(default)]
        changed: bool,
    },
    /// Answer to [`Request::List`].
    List {
        /// Every service, sorted by name.
        services: Vec<ServiceInfo>,
    },
    /// Answer to [`Request::Ping`].
    Pong {
        /// The supervisor's process id.
        pid: u32,
        /// The crate version of the supervisor.
        version: String,
    },
    /// The request failed; `message` says why.
    Error {
        /// What kind of failure, for clients that react differently.
        code: ErrorCode,
        /// Lowercase, human-readable reason.
        message: String,
    },
}

/// The kinds of [`Response::Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request named a service that is not defined.
    UnknownService,
    /// The line was not a valid request, or a definition was invalid.
    BadRequest,
    /// The request was valid but carrying it out failed (for example the command could not be
    /// started, or a reload was asked of a stopped service).
    Failed,
}

/// Where a service is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Not running and not meant to run.
    Stopped,
    /// Its process is alive.
    Running,
    /// It died while meant to run; it will be started again after a delay.
    Backoff,
}

/// How a service's main process last ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// Signal number, when a signal killed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// When it ended (RFC 3339).
    pub at: String,
}

/// The observable state of one service. Deliberately without the definition's environment,
/// which may hold secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// Service name.
    pub name: String,
    /// Running, stopped or waiting to be restarted.
    pub state: RunState,
    /// Started whenever the supervisor starts.
    pub enabled: bool,
    /// Main process id (also its process group and session id) while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// How many times the supervisor restarted it after it died.
    pub restarts: u64,
    /// How its main process last ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<ExitInfo>,
    /// When the current process started (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// The definition changed while it was running; the change applies at the next start.
    pub def_changed: bool,
    /// The command line from the definition.
    pub command: String,
    /// The user it runs as, when not root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl Request {
    /// The service this request is about, if any.
    pub fn service_name(&self) -> Option<&str> {
        match self {
            Request::Define { def } => Some(&def.name),
            Request::Start { name }
            | Request::Stop { name, .. }
            | Request::Restart { name, .. }
            | Request::Reload { name }
            | Request::Enable { name }
            | Request::Disable { name }
            | Request::Status { name }
            | Request::Remove { name } => Some(name),
            Request::Ping | Request::List | Request::Shutdown => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_a_stable_wire_form() {
        let line = serde_json::to_string(&Request::Stop {
            name: "web".into(),
            timeout_ms: Some(500),
        })
        .unwrap();
        assert_eq!(line, r#"{"op":"stop","name":"web","timeout_ms":500}"#);
        let parsed: Request = serde_json::from_str(r#"{"op":"start","name":"web"}"#).unwrap();
        assert_eq!(parsed, Request::Start { name: "web".into() });
        assert!(serde_json::from_str::<Request>(r#"{"op":"explode"}"#).is_err());
        let ok = serde_json::to_string(&Response::Ok {
            service: None,
            changed: false,
        })
        .unwrap();
        assert_eq!(ok, r#"{"result":"ok","changed":false}"#);
    }
}
