//! `exec`: runs a command inside a running machine — its namespaces, its root and its control
//! group — either with captured output (the provider's `exec`) or attached to the caller's
//! terminal (`opsworks exec`), where no command means root's login shell.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sched::{CloneFlags, setns};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, chdir, fork};

use super::{DEFAULT_PATH, EXEC_ERROR_CODE, EXEC_ERROR_PREFIX};
use crate::procfs;

/// What the provider asked for on the command line.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    pid: u32,
    start_time: u64,
    cgroups: Vec<PathBuf>,
    attach: bool,
    term: Option<OsString>,
    argv: Vec<OsString>,
}

const USAGE: &str =
    "usage: exec PID START_TIME [--cgroup DIR]... [--attach] [--term TERM] -- [COMMAND...]";

fn parse(args: &[OsString]) -> Result<Request, String> {
    let usage = || USAGE.to_string();
    let [pid, start, rest @ ..] = args else {
        return Err(usage());
    };
    let pid = pid
        .to_str()
        .and_then(|p| p.parse().ok())
        .ok_or_else(usage)?;
    let start_time = start
        .to_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(usage)?;
    let mut request = Request {
        pid,
        start_time,
        cgroups: Vec::new(),
        attach: false,
        term: None,
        argv: Vec::new(),
    };
    let mut it = rest.iter();
    loop {
        match it.next().and_then(|a| a.to_str()) {
            Some("--") => break,
            Some("--attach") => request.attach = true,
            Some("--cgroup") => request
                .cgroups
                .push(PathBuf::from(it.next().ok_or_else(usage)?)),
            Some("--term") => request.term = Some(it.next().ok_or_else(usage)?.clone()),
            _ => return Err(usage()),
        }
    }
    request.argv = it.cloned().collect();
    if request.argv.is_empty() && !request.attach {
        return Err(usage());
    }
    Ok(request)
}

/// The `exec` subcommand: the command's exit code, or [`EXEC_ERROR_CODE`] with a message on
/// stderr when the machine cannot be entered.
pub(super) fn exec(args: &[OsString]) -> i32 {
    match parse(args).and_then(|request| exec_inside(&request)) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("{EXEC_ERROR_PREFIX}{message}");
            EXEC_ERROR_CODE
        }
    }
}

fn exec_inside(request: &Request) -> Result<i32, String> {
    let pid = request.pid;
    if !procfs::is_running(pid, request.start_time) {
        return Err(format!("the machine's init (pid {pid}) is not running"));
    }
    // Opened now, on the host's paths, and written by the child only: this waiting helper stays
    // out of the machine's group and out of its process count.
    let mut groups = Vec::new();
    for dir in &request.cgroups {
        let path = dir.join("cgroup.procs");
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| format!("opening {}: {e}", path.display()))?;
        groups.push((file, path));
    }
    // Every namespace is opened first: entering the mount namespace changes what /proc means.
    let open = |name: &str| {
        let path = format!("/proc/{pid}/ns/{name}");
        File::open(&path)
            .map(|f| (f, path.clone()))
            .map_err(|e| format!("opening {path}: {e}"))
    };
    let cgroup_ns = open("cgroup")?;
    let mut namespaces = Vec::new();
    for (name, flag) in [
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        let (file, path) = open(name)?;
        namespaces.push((file, flag, path));
    }
    for (file, flag, path) in &namespaces {
        setns(file.as_fd(), *flag).map_err(|e| format!("entering {path}: {e}"))?;
    }
    // SAFETY: the helper is single-threaded; the fork puts the child into the PID namespace.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let err = child(request, &mut groups, &cgroup_ns);
            eprintln!("{EXEC_ERROR_PREFIX}{err}");
            std::process::exit(if err.starts_with("cannot run") {
                127
            } else {
                EXEC_ERROR_CODE
            })
        }
        Ok(ForkResult::Parent { child }) => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(code),
                Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(128 + signal as i32),
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(format!("waiting for the command: {e}")),
            }
        },
        Err(e) => Err(format!("fork inside the machine failed: {e}")),
    }
}

/// The forked child: joins the machine's group and cgroup namespace, then becomes the command.
/// Returns only on failure, with the reason.
fn child(request: &Request, groups: &mut [(File, PathBuf)], cgroup_ns: &(File, String)) -> String {
    for (file, path) in groups.iter_mut() {
        // "0" is the writer itself, whatever its pid in this namespace.
        if let Err(e) = file.write_all(b"0") {
            return format!("joining {}: {e}", path.display());
        }
    }
    if let Err(e) = setns(cgroup_ns.0.as_fd(), CloneFlags::CLONE_NEWCGROUP) {
        return format!("entering {}: {e}", cgroup_ns.1);
    }
    let _ = chdir("/");
    let mut command = if request.argv.is_empty() {
        // A login shell: argv[0] starts with '-', as login(1) runs it.
        let shell = root_shell();
        let name = shell.file_name().unwrap_or(OsStr::new("sh"));
        let mut arg0 = OsString::from("-");
        arg0.push(name);
        let mut command = Command::new(&shell);
        command.arg0(arg0);
        command
    } else {
        let mut command = Command::new(&request.argv[0]);
        command.args(&request.argv[1..]);
        command
    };
    command
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .env("HOME", "/root");
    if request.attach {
        command.env("USER", "root").env("LOGNAME", "root");
        if let Some(term) = &request.term {
            command.env("TERM", term);
        }
    }
    if request.argv.is_empty() {
        command.env("SHELL", root_shell());
    }
    let err = command.exec();
    let what = request
        .argv
        .first()
        .map_or_else(|| root_shell().into_os_string(), Clone::clone);
    format!("cannot run {what:?}: {err}")
}

/// Root's shell from the machine's `/etc/passwd`, else `/bin/sh`.
fn root_shell() -> PathBuf {
    fs::read("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.split(|b| *b == b'\n').find_map(|line| {
                let fields: Vec<&[u8]> = line.split(|b| *b == b':').collect();
                (fields.first() == Some(&&b"root"[..]) && fields.len() >= 7)
                    .then(|| PathBuf::from(OsStr::from_bytes(fields[6])))
            })
        })
        .filter(|shell| shell.is_absolute() && Path::new(shell).exists())
        .unwrap_or_else(|| PathBuf::from("/bin/sh"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn requests_parse_and_bad_ones_are_refused() {
        let r = parse(&args(&[
            "42", "7", "--cgroup", "/a", "--cgroup", "/b", "--", "ls", "-l",
        ]))
        .unwrap();
        assert_eq!((r.pid, r.start_time), (42, 7));
        assert_eq!(r.cgroups, [PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(r.argv, args(&["ls", "-l"]));
        assert!(!r.attach);
        let r = parse(&args(&["42", "7", "--attach", "--term", "xterm", "--"])).unwrap();
        assert!(r.attach && r.argv.is_empty());
        assert_eq!(r.term, Some("xterm".into()));
        for bad in [
            &["42", "7", "--"][..],
            &["x", "7", "--", "ls"],
            &["42", "7", "ls"],
            &["42", "7", "--cgroup"],
            &["42"],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
