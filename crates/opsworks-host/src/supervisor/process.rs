//! Starting a service's process (own session and process group, user, cwd, environment, output
//! appended to its log) and signalling it.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;

use super::protocol::ExitInfo;
use crate::definition::ServiceDef;
use crate::users;

/// PATH given to services (they do not inherit the supervisor's environment).
const SERVICE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A log bigger than this is moved to `<name>.log.1` before the service starts again.
const LOG_ROTATE_BYTES: u64 = 64 * 1024 * 1024;

/// Main pids of services, reaped by their unit's task (through tokio); every other child of
/// the supervisor is an orphan [`reap_orphans`] may collect.
static TRACKED: Mutex<BTreeSet<u32>> = Mutex::new(BTreeSet::new());

/// A started service process.
pub(crate) struct Spawned {
    /// The child, for waiting on it.
    pub child: tokio::process::Child,
    /// Its pid, which is also its process group and session id.
    pub pid: u32,
}

/// Starts `def` in a new session with output appended to `log`. Errors are messages for the
/// client (the service's environment values never appear in them).
pub(crate) fn spawn(def: &ServiceDef, log: &Path) -> Result<Spawned, String> {
    let argv = def.argv();
    let Some((program, args)) = argv.split_first() else {
        return Err(format!("service `{}` has an empty command", def.name));
    };
    // Resolve the user now, in the parent: the child may only make async-signal-safe calls.
    let (uid, gid, groups, home, user_name, shell) = match &def.user {
        Some(name) => {
            let u = users::get_user(name)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("service `{}`: unknown user `{name}`", def.name))?;
            let groups = users::supplementary_gids(name).map_err(|e| e.to_string())?;
            (Some(u.uid), Some(u.gid), groups, u.home, u.name, u.shell)
        }
        None => (
            None,
            None,
            Vec::new(),
            "/root".into(),
            "root".to_string(),
            "/bin/sh".to_string(),
        ),
    };
    let cwd = match &def.cwd {
        Some(cwd) => cwd.clone(),
        None if def.user.is_some() && home.is_dir() => home.clone(),
        None => "/".into(),
    };
    if !cwd.is_dir() {
        return Err(format!(
            "service `{}`: working directory {} does not exist",
            def.name,
            cwd.display()
        ));
    }

    rotate_if_large(log);
    let out = open_log(log)?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;

    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", SERVICE_PATH)
        .env("HOME", &home)
        .env("USER", &user_name)
        .env("LOGNAME", &user_name)
        .env("SHELL", &shell)
        .envs(&def.env)
        .current_dir(&cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(false);
    // SAFETY: the closure only makes async-signal-safe system calls (setsid, setgroups, setgid,
    // setuid) on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // A session of its own: the service's processes form one group the supervisor can
            // signal as a whole, and they survive the supervisor's own end.
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            if let (Some(uid), Some(gid)) = (uid, gid)
                && (libc::setgroups(groups.len(), groups.as_ptr()) == -1
                    || libc::setgid(gid) == -1
                    || libc::setuid(uid) == -1)
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("service `{}`: cannot start `{program}`: {e}", def.name))?;
    let pid = child
        .id()
        .ok_or_else(|| format!("service `{}` exited at once", def.name))?;
    // Before any await, so the orphan reaper can never take this child's exit status.
    tracked().insert(pid);
    Ok(Spawned { child, pid })
}

/// Forgets a main pid once its exit status has been collected.
pub(crate) fn untrack(pid: u32) {
    tracked().remove(&pid);
}

fn tracked() -> std::sync::MutexGuard<'static, BTreeSet<u32>> {
    TRACKED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes the supervisor the "init" of its services' descendants: processes a service leaves
/// behind are re-parented to the supervisor instead of PID 1, and [`reap_orphans`] collects
/// them. This matters when the supervisor is PID 1 of a container itself, or PID 1 reaps slowly.
pub(crate) fn become_subreaper() {
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// Reaps zombie children of the supervisor that are not service main processes (those belong to
/// their unit's task).
pub(crate) fn reap_orphans() {
    let me = std::process::id();
    let tracked = tracked().clone();
    for (pid, stat) in processes() {
        if stat.state == 'Z' && stat.ppid == me && !tracked.contains(&pid) {
            let Ok(pid) = libc::pid_t::try_from(pid) else {
                continue;
            };
            let mut status = 0;
            // SAFETY: waitpid on a specific pid with a valid status pointer.
            unsafe {
                libc::waitpid(pid, &mut status, libc::WNOHANG);
            }
        }
    }
}

/// The fields of /proc/PID/stat the supervisor needs.
struct Stat {
    state: char,
    ppid: u32,
    pgrp: u32,
}

/// Every process in /proc with its state, parent and process group.
fn processes() -> Vec<(u32, Stat)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // The command name (field 2) may hold spaces and parentheses.
            let rest = &stat[stat.rfind(')')? + 1..];
            let mut f = rest.split_whitespace();
            let state = f.next()?.chars().next()?;
            let ppid = f.next()?.parse().ok()?;
            let pgrp = f.next()?.parse().ok()?;
            Some((pid, Stat { state, ppid, pgrp }))
        })
        .collect()
}

/// Sends `sig` to every process of the group `pgid`; false when the group no longer exists.
pub(crate) fn signal_group(pgid: u32, sig: i32) -> bool {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    // A pgid of 0 or 1 would signal our own group or everything: never.
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(-pgid, sig) == 0 }
}

/// Sends `sig` to one process.
pub(crate) fn signal_pid(pid: u32, sig: i32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|p| *p > 1)
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether any process of group `pgid` is still alive. Zombies do not count: they are dead and
/// only wait for their parent (us, or PID 1) to collect them.
pub(crate) fn group_alive(pgid: u32) -> bool {
    signal_group(pgid, 0)
        && processes()
            .iter()
            .any(|(_, s)| s.pgrp == pgid && s.state != 'Z' && s.state != 'X')
}

/// The start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat), which with
/// the pid identifies a process even after its pid is reused.
pub(crate) fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// How a process ended, for status answers.
pub(crate) fn exit_info(status: Option<ExitStatus>) -> ExitInfo {
    ExitInfo {
        code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        at: now(),
    }
}

/// A human description of an exit.
pub(crate) fn describe_exit(info: &ExitInfo) -> String {
    match (info.code, info.signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "unknown status".into(),
    }
}

/// The current time, RFC 3339.
pub(crate) fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// Appends a supervisor note (`=== ...`) to a service's log, so the log shows starts and exits
/// between the service's own lines.
pub(crate) fn note(log: &Path, text: &str) {
    if let Ok(mut f) = open_log(log) {
        let _ = writeln!(f, "=== {} opsworks-supervisor: {text}", now());
    }
}

/// Opens a log for appending, creating it with mode 0640.
fn open_log(log: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))
}

/// Moves a log past [`LOG_ROTATE_BYTES`] aside (one generation is kept).
fn rotate_if_large(log: &Path) {
    if std::fs::metadata(log).is_ok_and(|m| m.len() > LOG_ROTATE_BYTES) {
        let mut old = log.as_os_str().to_owned();
        old.push(".1");
        let _ = std::fs::rename(log, old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_readable() {
        let me = std::process::id();
        assert!(start_time(me).is_some());
        assert_eq!(start_time(me), start_time(me));
    }

    #[test]
    fn never_signals_init_or_own_group_by_accident() {
        assert!(!signal_group(0, 0));
        assert!(!signal_group(1, 0));
        assert!(signal_pid(1, 0).is_err());
    }
}
