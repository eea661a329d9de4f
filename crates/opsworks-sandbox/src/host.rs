//! Up-front checks that this host can run local machines, so that a missing piece is named
//! clearly instead of surfacing as an obscure failure halfway through a provision.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// Looks a program up in `PATH`, then in the sbin directories root's `PATH` usually has.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Fails with [`Error::NotRoot`] naming `action` unless this process runs as root.
pub fn ensure_root(action: &str) -> Result<()> {
    let euid = nix::unistd::geteuid();
    if euid.is_root() {
        Ok(())
    } else {
        Err(Error::NotRoot {
            action: action.to_string(),
            uid: euid.as_raw(),
        })
    }
}

/// Checks root, iproute2, overlayfs and namespace creation; reports everything missing at once.
pub(crate) fn check(ip: Option<&Path>, helper: &Path, helper_args: &[OsString]) -> Result<()> {
    let mut missing = Vec::new();
    let euid = nix::unistd::geteuid();
    if !euid.is_root() {
        missing.push(format!("root privileges (running as uid {euid})"));
    }
    match ip {
        Some(ip) if is_executable(ip) => {}
        Some(ip) => missing.push(format!(
            "iproute2's `ip` command ({} is not an executable file)",
            ip.display()
        )),
        None => missing
            .push("iproute2's `ip` command (not found in PATH; install iproute2)".to_string()),
    }
    match fs::read_to_string("/proc/filesystems") {
        Ok(list)
            if list
                .lines()
                .any(|l| l.split_whitespace().last() == Some("overlay")) => {}
        Ok(_) => missing.push(
            "overlayfs (no `overlay` in /proc/filesystems; try `modprobe overlay`)".to_string(),
        ),
        Err(e) => missing.push(format!("/proc/filesystems ({e}); is /proc mounted?")),
    }
    if !is_executable(helper) {
        missing.push(format!(
            "the sandbox helper executable {}",
            helper.display()
        ));
    } else if missing.is_empty() {
        // The helper tries unshare(2) with every namespace a machine needs.
        match Command::new(helper)
            .args(helper_args)
            .arg("probe")
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
        {
            Ok(out) if out.status.success() => {}
            Ok(out) => missing.push(format!(
                "Linux namespaces ({})",
                String::from_utf8_lossy(&out.stderr)
                    .trim()
                    .trim_start_matches("opsworks-sandbox: ")
            )),
            Err(e) => missing.push(format!("the sandbox helper {} ({e})", helper.display())),
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Unavailable {
            missing: missing.join("; "),
        })
    }
}
