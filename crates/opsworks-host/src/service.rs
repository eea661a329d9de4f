//! Services for the recipe engine: systemd units when systemd is PID 1, otherwise the project's
//! own supervisor (see [`crate::supervisor`]), reached over its Unix socket and started on demand.

mod systemd;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{HostError, Result};
use crate::supervisor::client::{self, Client};
use crate::supervisor::protocol::{ErrorCode, Request, Response};

/// Environment variable that forces a backend: `systemd` or `supervisor`.
pub const BACKEND_ENV: &str = "OPSWORKS_SERVICE_BACKEND";

/// Who runs services on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// systemd is PID 1: services are units in /etc/systemd/system.
    Systemd,
    /// No systemd (containers, sandboxes): the opsworks supervisor runs them.
    Supervisor,
}

/// How to run a service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDef {
    /// Service name: letters, digits and `_.@-`, at most 128 characters, used in file names.
    pub name: String,
    /// The command line. Without shell syntax it is split on whitespace and executed directly;
    /// with any (quotes, `$`, `|`, `&&`, redirections…) it runs under `/bin/sh -c`.
    pub command: String,
    /// Working directory; default the user's home (root: `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// The user to run as; default root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Environment variables, added to a minimal environment (PATH, HOME, USER, LOGNAME, SHELL).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The signal `reload` sends, by name (`HUP`, `SIGUSR1`, …) or number; default HUP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_signal: Option<String>,
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

impl ServiceDef {
    /// Checks the definition: a usable name, a non-empty single-line command, an absolute
    /// working directory, sensible environment names and a known reload signal.
    pub fn validate(&self) -> Result<()> {
        check_name(&self.name)?;
        if self.command.trim().is_empty() {
            return Err(HostError::invalid(
                "service command",
                format!("service `{}` has an empty command", self.name),
            ));
        }
        if self.command.contains('\0') {
            return Err(HostError::invalid(
                "service command",
                "it contains a NUL byte",
            ));
        }
        if let Some(cwd) = &self.cwd
            && !cwd.is_absolute()
        {
            return Err(HostError::invalid(
                "service cwd",
                format!("{} is not an absolute path", cwd.display()),
            ));
        }
        if let Some(user) = &self.user
            && (user.is_empty() || user.contains([':', '\n', '/', '\0']) || user.starts_with('-'))
        {
            return Err(HostError::invalid(
                "service user",
                format!("`{}` is not a user name", user.escape_debug()),
            ));
        }
        for (k, v) in &self.env {
            let ok_key = !k.is_empty()
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok_key {
                return Err(HostError::invalid(
                    "service environment",
                    format!("`{}` is not a variable name", k.escape_debug()),
                ));
            }
            if v.contains(['\0', '\n']) {
                return Err(HostError::invalid(
                    "service environment",
                    format!("the value of {k} contains a NUL byte or a newline"),
                ));
            }
        }
        self.reload_signal_number()?;
        Ok(())
    }

    /// The reload signal as a number (default SIGHUP).
    pub fn reload_signal_number(&self) -> Result<i32> {
        match &self.reload_signal {
            None => Ok(libc::SIGHUP),
            Some(s) => parse_signal(s),
        }
    }

    /// The argument vector the command runs as: split on whitespace when it holds no shell
    /// syntax, otherwise `/bin/sh -c COMMAND`.
    pub fn argv(&self) -> Vec<String> {
        const SHELL_CHARS: &[char] = &[
            '|', '&', ';', '<', '>', '(', ')', '$', '`', '\\', '"', '\'', '*', '?', '[', '\n',
        ];
        let command = self.command.trim();
        let words: Vec<&str> = command.split_whitespace().collect();
        let needs_shell = command.contains(SHELL_CHARS)
            // `FOO=1 cmd` sets a variable; `~` and `#` mean something at the start of a word.
            || words.first().is_some_and(|w| w.contains('='))
            || words.iter().any(|w| w.starts_with(['~', '#']));
        if needs_shell {
            vec!["/bin/sh".into(), "-c".into(), command.into()]
        } else {
            words.into_iter().map(str::to_string).collect()
        }
    }
}

/// Parses a signal given as `HUP`, `SIGHUP` or a number.
pub fn parse_signal(text: &str) -> Result<i32> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>()
        && (1..=64).contains(&n)
    {
        return Ok(n);
    }
    let upper = t.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let n = match bare {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "ALRM" => libc::SIGALRM,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "WINCH" => libc::SIGWINCH,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "PWR" => libc::SIGPWR,
        _ => {
            return Err(HostError::invalid(
                "signal",
                format!("`{}` is not a signal name or number", t.escape_debug()),
            ));
        }
    };
    Ok(n)
}

/// The name of a signal number, for systemd's `kill -NAME` and messages.
pub(crate) fn signal_name(n: i32) -> String {
    let name = match n {
        libc::SIGHUP => "HUP",
        libc::SIGINT => "INT",
        libc::SIGQUIT => "QUIT",
        libc::SIGKILL => "KILL",
        libc::SIGUSR1 => "USR1",
        libc::SIGUSR2 => "USR2",
        libc::SIGTERM => "TERM",
        libc::SIGALRM => "ALRM",
        libc::SIGCONT => "CONT",
        libc::SIGSTOP => "STOP",
        libc::SIGWINCH => "WINCH",
        libc::SIGTTIN => "TTIN",
        libc::SIGTTOU => "TTOU",
        libc::SIGPWR => "PWR",
        other => return other.to_string(),
    };
    name.to_string()
}

/// A service name: used in file names and unit names, so restricted to a safe alphabet.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'));
    if ok {
        Ok(())
    } else {
        Err(HostError::invalid(
            "service name",
            format!(
                "`{}` must be 1-128 letters, digits, '_', '.', '@' or '-', not starting with '.' or '-'",
                name.escape_debug()
            ),
        ))
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
