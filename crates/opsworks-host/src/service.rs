//! Services for the recipe engine: systemd units when systemd is PID 1, otherwise the project's
//! own supervisor (see [`crate::supervisor`]), reached over its Unix socket and started on demand.

mod systemd;

use std::path::Path;

pub use crate::definition::{ServiceDef, parse_signal};
pub(crate) use crate::definition::{check_name, signal_name};
use crate::error::{HostError, Result};
use crate::supervisor::client::{self, Client};
use crate::supervisor::protocol::{ErrorCode, Request, Response};

/// Environment variable that forces a backend: `systemd` or `supervisor`.
pub const BACKEND_ENV: &str = opsworks_env::OPSWORKS_SERVICE_BACKEND;

/// Who runs services on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// systemd is PID 1: services are units in /etc/systemd/system.
    Systemd,
    /// No systemd (containers, sandboxes): the opsworks supervisor runs them.
    Supervisor,
}

/// What [`status`] reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceStatus {
    /// The main process is alive.
    pub running: bool,
    /// The service starts at boot (systemd) or when the supervisor starts.
    pub enabled: bool,
    /// The main process id while running.
    pub pid: Option<u32>,
}

/// systemd when it is PID 1 (`/run/systemd/system` exists), otherwise the supervisor. The
/// environment variable [`BACKEND_ENV`] overrides the detection.
pub fn backend() -> Backend {
    match std::env::var(BACKEND_ENV).as_deref() {
        Ok("systemd") => return Backend::Systemd,
        Ok("supervisor") => return Backend::Supervisor,
        _ => {}
    }
    if Path::new("/run/systemd/system").is_dir() {
        Backend::Systemd
    } else {
        Backend::Supervisor
    }
}

/// What a machine's boot does for services where the supervisor stands in for systemd: when any
/// service was ever defined, start the supervisor, which starts the enabled ones. Returns whether
/// it had anything to do. With systemd, systemd does this itself.
pub fn start_enabled_services() -> Result<bool> {
    if backend() == Backend::Systemd {
        return Ok(false);
    }
    let dir = crate::supervisor::client::state_dir();
    let defined = std::fs::read_dir(dir.join("services"))
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if defined {
        crate::supervisor::client::Client::connect_or_start(&dir)?;
    }
    Ok(defined)
}

/// The state of `name`; a service nobody defined is neither running nor enabled.
pub fn status(name: &str) -> Result<ServiceStatus> {
    check_name(name)?;
    match backend() {
        Backend::Systemd => systemd::status(name),
        Backend::Supervisor => {
            let mut c = Client::connect_or_start(&client::state_dir())?;
            match c.call(&Request::Status { name: name.into() })? {
                Response::Ok {
                    service: Some(info),
                    ..
                } => Ok(ServiceStatus {
                    running: info.pid.is_some(),
                    enabled: info.enabled,
                    pid: info.pid,
                }),
                Response::Ok { service: None, .. } => Ok(ServiceStatus::default()),
                other => Err(unexpected(name, other)),
            }
        }
    }
}

/// Writes or updates the definition of `def.name` (the unit file, or the supervisor's record)
/// without starting or stopping anything; `true` when it changed. A running service picks a
/// change up at its next restart, so a caller that sees `true` may want to restart it.
pub fn define(def: &ServiceDef) -> Result<bool> {
    def.validate()?;
    match backend() {
        Backend::Systemd => systemd::write_unit(def),
        Backend::Supervisor => {
            let mut c = Client::connect_or_start(&client::state_dir())?;
            match c.call(&Request::Define { def: def.clone() })? {
                Response::Ok { changed, .. } => Ok(changed),
                other => Err(unexpected(&def.name, other)),
            }
        }
    }
}

/// Starts `name` (a running service is left alone). With `def`, the definition (unit file) is
/// written or updated first.
pub fn start(name: &str, def: Option<&ServiceDef>) -> Result<()> {
    act(name, def, Action::Start)
}

/// Stops `name`: SIGTERM to its processes, SIGKILL after a timeout. Stopping a service that is
/// not defined succeeds.
pub fn stop(name: &str, def: Option<&ServiceDef>) -> Result<()> {
    act(name, def, Action::Stop)
}

/// Stops `name` if it runs, then starts it.
pub fn restart(name: &str, def: Option<&ServiceDef>) -> Result<()> {
    act(name, def, Action::Restart)
}

/// Sends `name` its reload signal (default SIGHUP); fails when it is not running.
pub fn reload(name: &str, def: Option<&ServiceDef>) -> Result<()> {
    act(name, def, Action::Reload)
}

/// Makes `name` start at boot (systemd) or whenever the supervisor starts. Does not start it.
pub fn enable(name: &str, def: Option<&ServiceDef>) -> Result<()> {
    act(name, def, Action::Enable)
}

/// Undoes [`enable`]; does not stop it. Disabling a service that is not defined succeeds.
pub fn disable(name: &str, def: Option<&ServiceDef>) -> Result<()> {
    act(name, def, Action::Disable)
}

/// The operations [`act`] performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Start,
    Stop,
    Restart,
    Reload,
    Enable,
    Disable,
}

/// Defines (when `def` is given) and then performs `action` on the right backend.
fn act(name: &str, def: Option<&ServiceDef>, action: Action) -> Result<()> {
    check_name(name)?;
    if let Some(def) = def {
        if def.name != name {
            return Err(HostError::invalid(
                "service definition",
                format!("it is named `{}` but used as `{name}`", def.name),
            ));
        }
        def.validate()?;
    }
    match backend() {
        Backend::Systemd => systemd::act(name, def, action),
        Backend::Supervisor => {
            let mut c = Client::connect_or_start(&client::state_dir())?;
            if let Some(def) = def {
                expect_ok(name, c.call(&Request::Define { def: def.clone() })?)?;
            }
            let name = name.to_string();
            let request = match action {
                Action::Start => Request::Start { name: name.clone() },
                Action::Stop => Request::Stop {
                    name: name.clone(),
                    timeout_ms: None,
                },
                Action::Restart => Request::Restart {
                    name: name.clone(),
                    timeout_ms: None,
                },
                Action::Reload => Request::Reload { name: name.clone() },
                Action::Enable => Request::Enable { name: name.clone() },
                Action::Disable => Request::Disable { name: name.clone() },
            };
            match expect_ok(&name, c.call(&request)?) {
                // The end state of stop and disable holds for a service that does not exist.
                Err(HostError::UnknownService { .. })
                    if matches!(action, Action::Stop | Action::Disable) =>
                {
                    Ok(())
                }
                other => other,
            }
        }
    }
}

/// Turns a supervisor response into `Ok(())` or the matching error.
fn expect_ok(name: &str, response: Response) -> Result<()> {
    match response {
        Response::Ok { .. } => Ok(()),
        other => Err(unexpected(name, other)),
    }
}

/// The error for a response that is not the expected success.
fn unexpected(name: &str, response: Response) -> HostError {
    match response {
        Response::Error {
            code: ErrorCode::UnknownService,
            ..
        } => HostError::UnknownService {
            name: name.to_string(),
        },
        Response::Error { message, .. } => HostError::Supervisor { message },
        other => HostError::Supervisor {
            message: format!("unexpected answer {other:?}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_splits_plain_commands_and_shells_the_rest() {
        let def = |c: &str| ServiceDef {
            name: "x".into(),
            command: c.into(),
            ..ServiceDef::default()
        };
        assert_eq!(
            def("/usr/bin/sleep  100").argv(),
            vec!["/usr/bin/sleep", "100"]
        );
        assert_eq!(
            def("echo $HOME > /tmp/x").argv(),
            vec!["/bin/sh", "-c", "echo $HOME > /tmp/x"]
        );
    }

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("HUP").unwrap(), libc::SIGHUP);
        assert_eq!(parse_signal("sigusr2").unwrap(), libc::SIGUSR2);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
        assert_eq!(signal_name(libc::SIGUSR1), "USR1");
    }

    #[test]
    fn definitions_are_validated() {
        let good = ServiceDef {
            name: "web-1".into(),
            command: "/bin/true".into(),
            ..ServiceDef::default()
        };
        assert!(good.validate().is_ok());
        let bad_name = ServiceDef {
            name: "../etc".into(),
            ..good.clone()
        };
        assert!(bad_name.validate().is_err());
        let mut bad_env = good.clone();
        bad_env.env.insert("A-B".into(), "1".into());
        assert!(bad_env.validate().is_err());
        let bad_cwd = ServiceDef {
            cwd: Some("relative".into()),
            ..good.clone()
        };
        assert!(bad_cwd.validate().is_err());
        let bad_sig = ServiceDef {
            reload_signal: Some("FOO".into()),
            ..good
        };
        assert!(bad_sig.validate().is_err());
    }
}
