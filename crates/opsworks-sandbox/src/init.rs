//! The machine side of the local provider: the code the helper executable runs when re-executed
//! with a hidden subcommand. `run` moves into the machine's control group, enters its namespaces,
//! forks the machine's init (PID 1 inside), builds the overlay root and starts the main process;
//! `exec` runs a command inside a running machine (`exec.rs`); `probe` checks that namespaces can
//! be created.
//!
//! Everything here runs in a fresh single-threaded process, which is what makes `fork` and
//! `unshare(CLONE_NEWNS)` sound.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::Read;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, setsid};
use serde::{Deserialize, Serialize};

mod exec;
mod rootfs;

use crate::cgroup::{self, InnerMount};
use crate::error::{Error, Result};
use crate::procfs;
use crate::spec::{Disk, FileSpec, MainProcess};

/// `PATH` of processes started inside a machine.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Prefix of `exec` errors that happen before the command runs (reported with exit code 125).
pub(crate) const EXEC_ERROR_PREFIX: &str = "opsworks-sandbox exec: ";
/// Exit code of `exec` when it cannot enter the machine.
pub(crate) const EXEC_ERROR_CODE: i32 = 125;

/// What the provider hands the helper on stdin (never on the command line: it holds secrets).
#[derive(Serialize, Deserialize)]
pub(crate) struct LaunchSpec {
    pub hostname: String,
    pub private_ip: Ipv4Addr,
    /// `/run/netns/<name>`, created by the provider.
    pub netns: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Upper and work directories of the overlays over the host's other file systems.
    pub mounts: PathBuf,
    /// Where the overlay is mounted before `pivot_root`.
    pub merged: PathBuf,
    /// Paths covered with an empty file system inside, the provider's state dir included.
    pub hidden: Vec<PathBuf>,
    pub files: Vec<FileSpec>,
    /// Replacement for `/etc/resolv.conf`, or `None` to keep the host's.
    pub resolv_conf: Option<String>,
    pub main: MainProcess,
    /// The machine's control group, if the host has control groups.
    pub cgroup: Option<CgroupSpec>,
    /// Symbolic links placed inside (`path` → `target`), replacing what is there.
    pub links: Vec<(PathBuf, PathBuf)>,
    /// Disk images mounted inside.
    #[serde(default)]
    pub disks: Vec<Disk>,
}

/// The machine's control group: the directories the init joins (before its cgroup namespace is
/// made) and the hierarchies mounted at `/sys/fs/cgroup` inside.
#[derive(Serialize, Deserialize)]
pub(crate) struct CgroupSpec {
    pub dirs: Vec<PathBuf>,
    pub mounts: Vec<InnerMount>,
}

/// Progress lines the helper writes to the provider on stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub(crate) enum Report {
    /// The init was forked: its host pid and start time.
    Pid { pid: u32, start_time: u64 },
    /// The main process was started.
    Ready,
    /// Boot failed; the init exits.
    Failed { reason: String },
}

/// Entry point of the helper: `opsworks sandbox-init <run|exec|probe> ...` or
/// `opsworks-sandbox-helper <run|exec|probe> ...` call this with the arguments after their own
/// subcommand.
///
/// It must be called from `main` before any other thread exists (no async runtime yet): it
/// forks and unshares the mount namespace, which a multi-threaded process cannot do safely.
pub fn init_main<I: IntoIterator<Item = OsString>>(args: I) -> ! {
    let args: Vec<OsString> = args.into_iter().collect();
    let threads = fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1);
    if threads > 1 {
        eprintln!(
            "opsworks-sandbox: init_main must run before any other thread starts (found {threads} threads); \
             call it from main before building the async runtime"
        );
        std::process::exit(EXEC_ERROR_CODE);
    }
    let code = match args.first().and_then(|a| a.to_str()) {
        Some("run") => run(),
        Some("exec") => exec::exec(&args[1..]),
        Some("probe") => probe(),
        _ => {
            eprintln!(
                "opsworks-sandbox: internal entry point of the local instance provider\n\
                 usage: run (spec on stdin) | exec PID START_TIME [--cgroup DIR]... [--attach] [--term TERM] -- [COMMAND...] | probe"
            );
            2
        }
    };
    std::process::exit(code)
}

/// Writes one progress line to the provider; a failed write only means the provider is gone.
fn report(report: &Report) {
    if let Ok(mut line) = serde_json::to_string(report) {
        line.push('\n');
        let _ = nix::unistd::write(std::io::stdout().as_fd(), line.as_bytes());
    }
}

fn probe() -> i32 {
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWCGROUP;
    match unshare(flags) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!(
                "opsworks-sandbox: unshare of mount, pid, network, uts, ipc and cgroup namespaces failed: {e}"
            );
            1
        }
    }
}

fn run() -> i32 {
    let spec = match read_spec() {
        Ok(spec) => spec,
        Err(e) => {
            report(&Report::Failed {
                reason: e.to_string(),
            });
            return 1;
        }
    };
    if let Err(e) = enter_namespaces(&spec) {
        report(&Report::Failed {
            reason: e.to_string(),
        });
        return 1;
    }
    // SAFETY: the helper is single-threaded (init_main's contract), so the child may do anything.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => {
            let pid = child.as_raw() as u32;
            // The child cannot be reaped before we exit, so its stat is readable even if it died.
            let start_time = procfs::start_time(pid).unwrap_or(0);
            report(&Report::Pid { pid, start_time });
            // Exiting detaches the init: it is re-parented to the host's init, outside the caller's
            // process tree, so the control plane can restart while machines keep running.
            0
        }
        Ok(ForkResult::Child) => init(spec),
        Err(e) => {
            report(&Report::Failed {
                reason: format!("fork of the machine's init failed: {e}"),
            });
            1
        }
    }
}

fn read_spec() -> Result<LaunchSpec> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(Error::io("reading the launch spec"))?;
    serde_json::from_slice(&input).map_err(|source| Error::State {
        path: PathBuf::from("<stdin>"),
        source,
    })
}

fn enter_namespaces(spec: &LaunchSpec) -> Result<()> {
    setsid().map_err(Error::sys("setsid"))?;
    // Into the group first: the cgroup namespace made below takes the group the caller is in
    // as its root, and the init forked next inherits both.
    let mut flags = CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWPID;
    if let Some(cgroup) = &spec.cgroup {
        cgroup::join(&cgroup.dirs)?;
        flags |= CloneFlags::CLONE_NEWCGROUP;
    }
    let netns =
        File::open(&spec.netns).map_err(Error::io(format!("opening {}", spec.netns.display())))?;
    setns(netns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(Error::sys(format!(
        "entering network namespace {}",
        spec.netns.display()
    )))?;
    // CLONE_NEWPID applies to children: the forked init becomes PID 1. The mount namespace is
    // the init's own (see `boot`), not shared with this helper.
    unshare(flags).map_err(Error::sys("unshare of uts, ipc, pid and cgroup namespaces"))
}

/// Signals the init waits for: SIGCHLD to reap, the others to forward to the whole machine.
fn init_signals() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        set.add(signal);
    }
    set
}

/// PID 1 of the machine: boots, reports, then reaps and forwards signals until the main process exits.
fn init(spec: LaunchSpec) -> i32 {
    let signals = init_signals();
    // Blocked before the main process exists, so no SIGCHLD or SIGTERM is lost; blocked signals
    // are queued even for a namespace init without handlers, and sigwait picks them up.
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None) {
        report(&Report::Failed {
            reason: format!("blocking signals in the machine's init: {e}"),
        });
        return 1;
    }
    let main = match boot(&spec) {
        Ok(main) => main,
        Err(e) => {
            report(&Report::Failed {
                reason: e.to_string(),
            });
            return 1;
        }
    };
    report(&Report::Ready);
    // Stop talking to the provider: from now on stdout is the console log, like stderr.
    let _ = nix::unistd::dup2_stdout(std::io::stderr().as_fd());
    supervise(main, &signals)
}

fn boot(spec: &LaunchSpec) -> Result<Pid> {
    // A mount namespace of the init's own: pivot_root moves every process of its mount namespace
    // that sits at the old root, and the helper, still reading this init's start time from the
    // host's /proc, must not be moved into the machine with it.
    unshare(CloneFlags::CLONE_NEWNS).map_err(Error::sys("unshare of the mount namespace"))?;
    rootfs::build(spec)?;
    start_main(&spec.main, &spec.hostname)
}

fn start_main(main: &MainProcess, hostname: &str) -> Result<Pid> {
    let console = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(Error::io("duplicating the console"))?;
    let mut command = Command::new(&main.program);
    // SAFETY: the closure only calls sigprocmask(2), which is async-signal-safe. Without it the
    // main process would inherit the init's blocked signals and ignore SIGTERM.
    unsafe {
        command.pre_exec(|| {
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(std::io::Error::from)
        });
    }
    let child = command
        .args(&main.args)
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .env("HOME", "/root")
        .env("HOSTNAME", hostname)
        .envs(main.env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::from(console))
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(Error::io(format!(
            "starting the main process {}",
            main.program.display()
        )))?;
    Ok(Pid::from_raw(child.id() as i32))
}

fn supervise(main: Pid, signals: &SigSet) -> i32 {
    loop {
        let signal = match signals.wait() {
            Ok(signal) => signal,
            Err(e) => {
                eprintln!(
                    "opsworks-sandbox init: waiting for signals failed: {e}; stopping the machine"
                );
                return 1;
            }
        };
        if signal == Signal::SIGCHLD {
            if let Some(code) = reap(main) {
                // The kernel kills whatever else runs in the machine when its PID 1 exits.
                return code;
            }
        } else {
            // From PID 1, kill(-1) reaches every other process of the machine's PID namespace.
            let _ = kill(Pid::from_raw(-1), signal);
        }
    }
}

/// Reaps every exited child; returns the main process's exit code once it is among them.
fn reap(main: Pid) -> Option<i32> {
    let mut main_code = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == main => {
                eprintln!("opsworks-sandbox init: main process exited with status {code}");
                main_code = Some(code);
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == main => {
                // The console log tells a graceful stop (SIGTERM) from a forced one.
                eprintln!("opsworks-sandbox init: main process was killed by {signal}");
                main_code = Some(128 + signal as i32);
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return main_code,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip() {
        let line = serde_json::to_string(&Report::Pid {
            pid: 42,
            start_time: 7,
        })
        .unwrap();
        assert!(matches!(
            serde_json::from_str(&line).unwrap(),
            Report::Pid {
                pid: 42,
                start_time: 7
            }
        ));
        let line = serde_json::to_string(&Report::Failed {
            reason: "no".into(),
        })
        .unwrap();
        assert!(
            matches!(serde_json::from_str(&line).unwrap(), Report::Failed { reason } if reason == "no")
        );
    }
}
