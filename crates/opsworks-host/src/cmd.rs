//! Running external tools: capture output, turn failures into `HostError`s, redact credentials.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::error::{HostError, Result};

/// How much of a tool's stderr an error keeps; package managers can print pages.
const STDERR_TAIL: usize = 2000;

/// A printable form of `cmd` for error messages, with credentials in URLs replaced by `***`.
pub(crate) fn display(cmd: &Command) -> String {
    let mut parts = vec![redact(&cmd.get_program().to_string_lossy())];
    parts.extend(cmd.get_args().map(|a| redact(&a.to_string_lossy())));
    parts.join(" ")
}

/// Replaces the userinfo part of any `scheme://user:pass@host` in `text` with `***`.
pub(crate) fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or whitespace.
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Runs `cmd` with stdin closed and returns its output if it exited successfully.
pub(crate) fn run(cmd: &mut Command) -> Result<Output> {
    let output = output(cmd, None)?;
    check(cmd, output)
}

/// Runs `cmd` feeding `input` on stdin and returns its output if it exited successfully.
pub(crate) fn run_with_input(cmd: &mut Command, input: &[u8]) -> Result<Output> {
    let output = output(cmd, Some(input))?;
    check(cmd, output)
}

/// Runs `cmd` and returns its output whatever the exit status (callers inspect it).
pub(crate) fn output(cmd: &mut Command, input: Option<&[u8]>) -> Result<Output> {
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| spawn_error(cmd, source))?;
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        // A tool that exits early closes the pipe; its exit status tells the story then.
        let _ = stdin.write_all(data);
    }
    child
        .wait_with_output()
        .map_err(|source| spawn_error(cmd, source))
}

/// The error for a tool that could not be started, naming a missing binary plainly.
fn spawn_error(cmd: &Command, source: std::io::Error) -> HostError {
    if source.kind() == std::io::ErrorKind::NotFound {
        let tool = cmd.get_program().to_string_lossy().into_owned();
        return HostError::ToolMissing {
            hint: hint_for(&tool).to_string(),
            tool,
        };
    }
    HostError::CommandSpawn {
        command: display(cmd),
        source,
    }
}

/// Which package usually provides `tool`.
fn hint_for(tool: &str) -> &'static str {
    match tool {
        "crontab" => {
            "install the `cron` package (cronie on Fedora/RHEL, busybox or cronie on Alpine)"
        }
        "git" => "install the `git` package",
        "useradd" | "usermod" | "userdel" | "groupadd" | "groupmod" | "groupdel" | "gpasswd" => {
            "install the `passwd` package (shadow-utils on Fedora/RHEL, shadow on Alpine)"
        }
        "systemctl" => "systemd is not installed",
        _ => "install it or fix PATH",
    }
}

/// Turns a non-zero exit into [`HostError::CommandFailed`].
pub(crate) fn check(cmd: &Command, output: Output) -> Result<Output> {
    if output.status.success() {
        return Ok(output);
    }
    Err(failure(cmd, &output))
}

/// The [`HostError::CommandFailed`] describing `output`.
pub(crate) fn failure(cmd: &Command, output: &Output) -> HostError {
    let text = if output.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
        &output.stderr
    } else {
        &output.stdout
    };
    let text = String::from_utf8_lossy(text);
    let text = text.trim();
    let tail = if text.len() > STDERR_TAIL {
        let mut start = text.len() - STDERR_TAIL;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        format!("...{}", &text[start..])
    } else {
        text.to_string()
    };
    HostError::CommandFailed {
        command: display(cmd),
        status: output.status.to_string(),
        stderr: redact(&tail),
    }
}

/// Whether an executable named `name` is on PATH.
pub(crate) fn on_path(name: impl AsRef<OsStr>) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(name.as_ref()))
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo_only() {
        assert_eq!(
            redact("git clone https://bob:s3cret@example.com/r.git /srv/x"),
            "git clone https://***@example.com/r.git /srv/x"
        );
        assert_eq!(redact("https://example.com/a@b"), "https://example.com/a@b");
        assert_eq!(redact("no url here"), "no url here");
    }

    #[test]
    fn failure_names_command_and_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo oops >&2; exit 3"]);
        let err = run(&mut cmd).unwrap_err().to_string();
        assert!(err.contains("sh -c"), "{err}");
        assert!(err.contains("oops"), "{err}");
        assert!(err.contains("3"), "{err}");
    }

    #[test]
    fn missing_tool_is_named() {
        let err = run(&mut Command::new("definitely-not-a-tool-xyz")).unwrap_err();
        assert!(
            matches!(err, HostError::ToolMissing { ref tool, .. } if tool == "definitely-not-a-tool-xyz")
        );
    }
}
