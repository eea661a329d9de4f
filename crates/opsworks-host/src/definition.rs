//! What a service is: its definition (command, working directory, user, environment, reload
//! signal) and the rules on names and signals, shared by the `service` resource's backends and by
//! the supervisor, so neither reaches into the other for it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{HostError, Result};

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
