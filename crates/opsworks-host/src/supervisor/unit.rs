//! One supervised service: a task that owns the service's process, carries out requests in
//! order, restarts the process when it dies (with backoff), and publishes its state.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::process;
use super::protocol::{ErrorCode, ExitInfo, RunState, ServiceInfo};
use super::store::{PidRecord, Saved, Store};
use crate::definition::ServiceDef;

/// A process that ran at least this long was healthy: its death restarts the backoff.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// The first restart delay; it doubles with each quick failure.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// The longest restart delay.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long to wait for a process to be reaped after SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// A failure to report to the client.
pub(crate) type Failure = (ErrorCode, String);
/// Where a request's answer goes: the state after it and whether it changed anything.
pub(crate) type Reply = oneshot::Sender<Result<(ServiceInfo, bool), Failure>>;

/// Requests a unit's task carries out.
pub(crate) enum Cmd {
    Define(ServiceDef, Reply),
    Start(Reply),
    Stop(Duration, Reply),
    Restart(Duration, Reply),
    Reload(Reply),
    SetEnabled(bool, Reply),
    /// Stop and forget the definition; the task ends.
    Remove(Duration, Reply),
    /// Stop, keep the definition; the task ends (supervisor shutdown).
    Shutdown(Duration, Reply),
}

/// The registry's handle on a unit's task.
pub(crate) struct Handle {
    /// Where to send requests.
    pub tx: mpsc::Sender<Cmd>,
    /// The latest published state, readable without waiting for the task.
    pub info: Arc<Mutex<ServiceInfo>>,
}

/// The running process of a unit.
struct Running {
    child: tokio::process::Child,
    pid: u32,
    since: Instant,
    started_at: String,
}

/// The state a unit's task owns.
struct Unit {
    def: ServiceDef,
    enabled: bool,
    store: Arc<Store>,
    info: Arc<Mutex<ServiceInfo>>,
    want_running: bool,
    proc: Option<Running>,
    restart_at: Option<Instant>,
    quick_failures: u32,
    restarts: u64,
    last_exit: Option<ExitInfo>,
    def_changed: bool,
}

/// Whether the task goes on after a request.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Exit,
}

/// Starts the task for a service (stopped) and returns its handle.
pub(crate) fn launch(def: ServiceDef, enabled: bool, store: Arc<Store>) -> Handle {
    let (tx, rx) = mpsc::channel(64);
    let mut unit = Unit {
        def,
        enabled,
        store,
        info: Arc::new(Mutex::new(placeholder_info())),
        want_running: false,
        proc: None,
        restart_at: None,
        quick_failures: 0,
        restarts: 0,
        last_exit: None,
        def_changed: false,
    };
    unit.publish();
    let info = unit.info.clone();
    tokio::spawn(unit.run(rx));
    Handle { tx, info }
}

impl Unit {
    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        loop {
            self.publish();
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else {
                        // The registry dropped us: leave the process running, as a crash would.
                        break;
                    };
                    if self.handle(cmd).await == Flow::Exit {
                        break;
                    }
                }
                status = wait_running(&mut self.proc) => self.on_exit(status.ok()),
                () = sleep_until(self.restart_at) => {
                    self.restart_at = None;
                    if self.want_running {
                        self.restarts += 1;
                        if let Err(msg) = self.spawn() {
                            eprintln!("opsworks-supervisor: {msg}");
                            self.schedule_restart();
                        }
                    }
                }
            }
        }
        self.publish();
    }

    async fn handle(&mut self, cmd: Cmd) -> Flow {
        match cmd {
            Cmd::Define(def, reply) => {
                let changed = def != self.def;
                let result = if changed {
                    self.def = def;
                    self.def_changed = self.proc.is_some();
                    self.save().map(|()| true)
                } else {
                    Ok(false)
                };
                self.answer(reply, result)
            }
            Cmd::Start(reply) => {
                let was_running = self.proc.is_some();
                let result = self.start().map(|()| !was_running);
                self.answer(reply, result)
            }
            Cmd::Stop(timeout, reply) => {
                let was_running = self.proc.is_some();
                let result = self.stop(timeout).await.map(|()| was_running);
                self.answer(reply, result)
            }
            Cmd::Restart(timeout, reply) => {
                let result = match self.stop(timeout).await {
                    Ok(()) => self.start().map(|()| true),
                    Err(e) => Err(e),
                };
                self.answer(reply, result)
            }
            Cmd::Reload(reply) => {
                let result = self.reload().map(|()| true);
                self.answer(reply, result)
            }
            Cmd::SetEnabled(enabled, reply) => {
                let result = if self.enabled != enabled {
                    self.enabled = enabled;
                    self.save().map(|()| true)
                } else {
                    Ok(false)
                };
                self.answer(reply, result)
            }
            Cmd::Remove(timeout, reply) => {
                let result = self.stop(timeout).await;
                if result.is_ok() {
                    self.store.forget(&self.def.name);
                }
                let exit = result.is_ok();
                self.answer(reply, result.map(|()| true));
                if exit { Flow::Exit } else { Flow::Continue }
            }
            Cmd::Shutdown(timeout, reply) => {
                let was_running = self.proc.is_some();
                let result = self.stop(timeout).await.map(|()| was_running);
                self.answer(reply, result);
                Flow::Exit
            }
        }
    }

    /// Publishes the state and sends it (or the failure) as the answer.
    fn answer(&mut self, reply: Reply, result: Result<bool, Failure>) -> Flow {
        self.publish();
        let info = self
            .info
            .lock()
            .map(|i| i.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        // A client that hung up does not care about the answer.
        let _ = reply.send(result.map(|changed| (info, changed)));
        Flow::Continue
    }

    fn start(&mut self) -> Result<(), Failure> {
        self.want_running = true;
        if self.proc.is_some() {
            return Ok(());
        }
        // An explicit start skips a pending backoff and forgets earlier crashes.
        self.restart_at = None;
        self.quick_failures = 0;
        self.spawn().map_err(|msg| {
            self.want_running = false;
            (ErrorCode::Failed, msg)
        })
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = self.store.log_path(&self.def.name);
        let spawned = process::spawn(&self.def, &log).inspect_err(|msg| {
            process::note(&log, &format!("cannot start: {msg}"));
        })?;
        let pid = spawned.pid;
        if let Some(start_time) = process::start_time(pid) {
            self.store
                .record_pid(&self.def.name, PidRecord { pid, start_time });
        }
        process::note(&log, &format!("started pid {pid}"));
        eprintln!("opsworks-supervisor: started {} (pid {pid})", self.def.name);
        self.proc = Some(Running {
            child: spawned.child,
            pid,
            since: Instant::now(),
            started_at: process::now(),
        });
        self.def_changed = false;
        Ok(())
    }

    /// The main process ended by itself.
    fn on_exit(&mut self, status: Option<std::process::ExitStatus>) {
        let Some(r) = self.proc.take() else {
            return;
        };
        process::untrack(r.pid);
        // Whatever the main process left behind in its group goes with it.
        process::signal_group(r.pid, libc::SIGKILL);
        self.store.clear_pid(&self.def.name);
        let info = process::exit_info(status);
        let how = process::describe_exit(&info);
        self.last_exit = Some(info);
        let log = self.store.log_path(&self.def.name);
        if self.want_running {
            if r.since.elapsed() >= STABLE_AFTER {
                self.quick_failures = 0;
            }
            let delay = self.schedule_restart();
            process::note(
                &log,
                &format!(
                    "pid {} exited ({how}); restarting in {} ms",
                    r.pid,
                    delay.as_millis()
                ),
            );
            eprintln!(
                "opsworks-supervisor: {} (pid {}) exited ({how}); restarting in {} ms",
                self.def.name,
                r.pid,
                delay.as_millis()
            );
        } else {
            process::note(&log, &format!("pid {} exited ({how})", r.pid));
        }
    }

    /// Schedules the next restart after the backoff for one more quick failure.
    fn schedule_restart(&mut self) -> Duration {
        self.quick_failures = self.quick_failures.saturating_add(1);
        let exp = self.quick_failures.saturating_sub(1).min(16);
        let delay = BACKOFF_START.saturating_mul(1u32 << exp).min(BACKOFF_MAX);
        self.restart_at = Some(Instant::now() + delay);
        delay
    }

    /// SIGTERM to the group; SIGKILL to what is left of it after `timeout`.
    async fn stop(&mut self, timeout: Duration) -> Result<(), Failure> {
        self.want_running = false;
        let log = self.store.log_path(&self.def.name);
        if self.restart_at.take().is_some() {
            process::note(&log, "stopped while waiting to restart");
        }
        let Some(mut r) = self.proc.take() else {
            return Ok(());
        };
        process::note(&log, &format!("stopping pid {} (SIGTERM)", r.pid));
        process::signal_group(r.pid, libc::SIGTERM);
        let deadline = Instant::now() + timeout;
        let mut status = tokio::time::timeout_at(deadline, r.child.wait())
            .await
            .ok()
            .and_then(Result::ok);
        // The main process is gone; give the rest of its group the same deadline.
        while status.is_some() && process::group_alive(r.pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if status.is_none() || process::group_alive(r.pid) {
            process::note(&log, &format!("pid {} still alive: SIGKILL", r.pid));
            process::signal_group(r.pid, libc::SIGKILL);
        }
        if status.is_none() {
            match tokio::time::timeout(KILL_GRACE, r.child.wait()).await {
                Ok(Ok(s)) => status = Some(s),
                _ => {
                    // Keep tracking it: it may still die, and the next stop can try again.
                    let pid = r.pid;
                    self.proc = Some(r);
                    return Err((
                        ErrorCode::Failed,
                        format!(
                            "service `{}`: pid {pid} did not die after SIGKILL",
                            self.def.name
                        ),
                    ));
                }
            }
        }
        process::untrack(r.pid);
        self.store.clear_pid(&self.def.name);
        let info = process::exit_info(status);
        process::note(
            &log,
            &format!("pid {} stopped ({})", r.pid, process::describe_exit(&info)),
        );
        self.last_exit = Some(info);
        Ok(())
    }

    fn reload(&mut self) -> Result<(), Failure> {
        let Some(r) = &self.proc else {
            return Err((
                ErrorCode::Failed,
                format!("service `{}` is not running", self.def.name),
            ));
        };
        let sig = self
            .def
            .reload_signal_number()
            .map_err(|e| (ErrorCode::BadRequest, e.to_string()))?;
        process::signal_pid(r.pid, sig).map_err(|e| {
            (
                ErrorCode::Failed,
                format!(
                    "service `{}`: cannot signal pid {}: {e}",
                    self.def.name, r.pid
                ),
            )
        })?;
        process::note(
            &self.store.log_path(&self.def.name),
            &format!("sent signal {sig} to pid {}", r.pid),
        );
        Ok(())
    }

    fn save(&self) -> Result<(), Failure> {
        self.store
            .save(&Saved {
                def: self.def.clone(),
                enabled: self.enabled,
            })
            .map_err(|e| {
                (
                    ErrorCode::Failed,
                    format!("cannot save service `{}`: {e}", self.def.name),
                )
            })
    }

    fn publish(&mut self) {
        let state = match (&self.proc, self.restart_at) {
            (Some(_), _) => RunState::Running,
            (None, Some(_)) => RunState::Backoff,
            (None, None) => RunState::Stopped,
        };
        let info = ServiceInfo {
            name: self.def.name.clone(),
            state,
            enabled: self.enabled,
            pid: self.proc.as_ref().map(|r| r.pid),
            restarts: self.restarts,
            last_exit: self.last_exit.clone(),
            started_at: self.proc.as_ref().map(|r| r.started_at.clone()),
            def_changed: self.def_changed,
            command: self.def.command.clone(),
            user: self.def.user.clone(),
        };
        match self.info.lock() {
            Ok(mut guard) => *guard = info,
            Err(poisoned) => *poisoned.into_inner() = info,
        }
    }
}

/// Waits for the running process, or forever when there is none.
async fn wait_running(proc: &mut Option<Running>) -> std::io::Result<std::process::ExitStatus> {
    match proc {
        Some(r) => r.child.wait().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`, or forever when there is no restart pending.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The state shown before the task publishes its first.
fn placeholder_info() -> ServiceInfo {
    ServiceInfo {
        name: String::new(),
        state: RunState::Stopped,
        enabled: false,
        pid: None,
        restarts: 0,
        last_exit: None,
        started_at: None,
        def_changed: false,
        command: String::new(),
        user: None,
    }
}
