//! The supervisor daemon: runs services where systemd is not PID 1 (containers, sandboxes). It
//! listens on `<state-dir>/supervisor.sock` (protocol in [`protocol`]), keeps each service in a
//! task of its own ([`unit`]), persists definitions ([`store`]) and outlives its clients.

pub mod client;
mod process;
pub mod protocol;
mod store;
mod unit;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, oneshot};

use protocol::{DEFAULT_STOP_TIMEOUT_MS, ErrorCode, MAX_LINE, Request, Response, ServiceInfo};
use store::{Saved, Store};
use unit::{Cmd, Failure, Handle};

/// The state directory when neither `--state-dir` nor `OPSWORKS_SUPERVISOR_DIR` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/opsworks/supervisor";
/// Environment variable naming the state directory (for clients and the daemon).
pub const STATE_DIR_ENV: &str = opsworks_env::OPSWORKS_SUPERVISOR_DIR;
/// Environment variable naming the executable clients start as `EXE supervisor --state-dir DIR`.
pub const EXE_ENV: &str = opsworks_env::OPSWORKS_SUPERVISOR_EXE;
/// The socket's file name inside the state directory.
pub const SOCKET_NAME: &str = "supervisor.sock";
/// How long a leftover process group from a crashed supervisor gets between SIGTERM and SIGKILL.
const LEFTOVER_GRACE: Duration = Duration::from_secs(5);

/// Arguments of `opsworks supervisor`.
#[derive(Debug, Clone, clap::Args)]
pub struct SupervisorArgs {
    /// Directory for the socket, service definitions, pid records and logs.
    #[arg(long, env = STATE_DIR_ENV, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
}

/// Runs the supervisor until SIGTERM, SIGINT or a `shutdown` request; services are stopped then
/// (enabled ones start again with the next supervisor). Only one supervisor runs per state
/// directory: a second one fails at once. Call it outside any async runtime (it builds its own).
pub fn serve(args: SupervisorArgs) -> anyhow::Result<()> {
    let dir = args.state_dir;
    store::create_private_dir(&dir)
        .with_context(|| format!("cannot create state directory {}", dir.display()))?;
    let _lock = lock(&dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run(&dir))
}

/// Takes the state directory's lock for the life of the process.
fn lock(dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = dir.join("supervisor.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        anyhow::bail!(
            "another supervisor is already running with state directory {}",
            dir.display()
        );
    }
    Ok(file)
}

async fn run(dir: &Path) -> anyhow::Result<()> {
    let store =
        Arc::new(Store::open(dir).with_context(|| format!("cannot prepare {}", dir.display()))?);
    process::become_subreaper();
    tokio::spawn(reap_orphans());
    end_leftovers(&store).await;
    let registry = Arc::new(Registry {
        units: Mutex::new(BTreeMap::new()),
        store: store.clone(),
        shutdown: Notify::new(),
    });
    // Enabled services start before the socket appears, so a client that sees the socket sees
    // them running.
    for saved in store.load_all() {
        let name = saved.def.name.clone();
        let enabled = saved.enabled;
        registry.insert(saved.def, enabled);
        if enabled && let Err((_, msg)) = registry.send(&name, Cmd::Start).await {
            eprintln!("opsworks-supervisor: cannot start enabled service {name}: {msg}");
        }
    }

    let socket = dir.join(SOCKET_NAME);
    // We hold the lock, so a socket file left here belongs to a dead supervisor.
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot restrict {}", socket.display()))?;
    }
    eprintln!(
        "opsworks-supervisor: pid {} listening on {}",
        std::process::id(),
        socket.display()
    );

    use tokio::signal::unix::{SignalKind, signal};
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    // SIGHUP must not end the daemon (the default action would).
    let mut sighup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(stream, registry.clone()));
                }
                Err(e) => {
                    eprintln!("opsworks-supervisor: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => eprintln!("opsworks-supervisor: SIGHUP ignored"),
            () = registry.shutdown.notified() => break,
        }
    }
    eprintln!("opsworks-supervisor: shutting down, stopping services");
    let _ = std::fs::remove_file(&socket);
    registry.stop_all().await;
    Ok(())
}

/// Collects orphaned descendants of services whenever a child changes state (and every few
/// seconds, in case a signal was coalesced away).
async fn reap_orphans() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigchld = match signal(SignalKind::child()) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("opsworks-supervisor: cannot watch SIGCHLD ({e}); reaping every 5 s");
            None
        }
    };
    loop {
        let tick = tokio::time::sleep(Duration::from_secs(5));
        match &mut sigchld {
            Some(s) => {
                tokio::select! {
                    _ = s.recv() => {}
                    () = tick => {}
                }
            }
            None => tick.await,
        }
        process::reap_orphans();
    }
}

/// Ends the process groups a crashed predecessor left running (recognised by pid and start
/// time), so enabled services are not started twice.
async fn end_leftovers(store: &Store) {
    let records = store.pid_records();
    let mut alive = Vec::new();
    for (name, rec) in records {
        if process::start_time(rec.pid) == Some(rec.start_time) {
            eprintln!(
                "opsworks-supervisor: ending {name} (pid {}) left by a previous supervisor",
                rec.pid
            );
            process::signal_group(rec.pid, libc::SIGTERM);
            alive.push(rec.pid);
        }
        store.clear_pid(&name);
    }
    let deadline = tokio::time::Instant::now() + LEFTOVER_GRACE;
    while alive.iter().any(|p| process::group_alive(*p)) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for pid in alive {
        process::signal_group(pid, libc::SIGKILL);
    }
}

/// The services the supervisor knows.
struct Registry {
    units: Mutex<BTreeMap<String, Handle>>,
    store: Arc<Store>,
    shutdown: Notify,
}

impl Registry {
    fn units(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Handle>> {
        self.units.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, def: crate::definition::ServiceDef, enabled: bool) {
        let name = def.name.clone();
        let handle = unit::launch(def, enabled, self.store.clone());
        self.units().insert(name, handle);
    }

    /// Sends a request to a unit and waits for its answer.
    async fn send(
        &self,
        name: &str,
        make: impl FnOnce(unit::Reply) -> Cmd,
    ) -> Result<(ServiceInfo, bool), Failure> {
        let tx = self
            .units()
            .get(name)
            .map(|h| h.tx.clone())
            .ok_or_else(|| unknown(name))?;
        let (reply, answer) = oneshot::channel();
        tx.send(make(reply)).await.map_err(|_| gone(name))?;
        answer.await.map_err(|_| gone(name))?
    }

    async fn dispatch(&self, request: Request) -> Response {
        let timeout =
            |ms: Option<u64>| Duration::from_millis(ms.unwrap_or(DEFAULT_STOP_TIMEOUT_MS));
        let result = match request {
            Request::Ping => {
                return Response::Pong {
                    pid: std::process::id(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                };
            }
            Request::List => {
                let services = self
                    .units()
                    .values()
                    .map(|h| {
                        h.info
                            .lock()
                            .map(|i| i.clone())
                            .unwrap_or_else(|p| p.into_inner().clone())
                    })
                    .collect();
                return Response::List { services };
            }
            Request::Status { name } => {
                let service = self.units().get(&name).map(|h| {
                    h.info
                        .lock()
                        .map(|i| i.clone())
                        .unwrap_or_else(|p| p.into_inner().clone())
                });
                return Response::Ok {
                    service,
                    changed: false,
                };
            }
            // serve_connection ends the daemon once this answer is written.
            Request::Shutdown => {
                return Response::Ok {
                    service: None,
                    changed: true,
                };
            }
            Request::Define { def } => self.define(def).await,
            Request::Start { name } => self.send(&name, Cmd::Start).await,
            Request::Stop { name, timeout_ms } => {
                self.send(&name, |r| Cmd::Stop(timeout(timeout_ms), r))
                    .await
            }
            Request::Restart { name, timeout_ms } => {
                self.send(&name, |r| Cmd::Restart(timeout(timeout_ms), r))
                    .await
            }
            Request::Reload { name } => self.send(&name, Cmd::Reload).await,
            Request::Enable { name } => self.send(&name, |r| Cmd::SetEnabled(true, r)).await,
            Request::Disable { name } => self.send(&name, |r| Cmd::SetEnabled(false, r)).await,
            Request::Remove { name } => {
                let result = self.send(&name, |r| Cmd::Remove(timeout(None), r)).await;
                if result.is_ok() {
                    self.units().remove(&name);
                }
                return match result {
                    Ok(_) => Response::Ok {
                        service: None,
                        changed: true,
                    },
                    Err((code, message)) => Response::Error { code, message },
                };
            }
        };
        match result {
            Ok((info, changed)) => Response::Ok {
                service: Some(info),
                changed,
            },
            Err((code, message)) => Response::Error { code, message },
        }
    }

    async fn define(
        &self,
        def: crate::definition::ServiceDef,
    ) -> Result<(ServiceInfo, bool), Failure> {
        def.validate()
            .map_err(|e| (ErrorCode::BadRequest, e.to_string()))?;
        let name = def.name.clone();
        let known = self.units().contains_key(&name);
        if !known {
            self.store
                .save(&Saved {
                    def: def.clone(),
                    enabled: false,
                })
                .map_err(|e| {
                    (
                        ErrorCode::Failed,
                        format!("cannot save service `{name}`: {e}"),
                    )
                })?;
            self.insert(def.clone(), false);
        }
        let (info, changed) = self.send(&name, |r| Cmd::Define(def, r)).await?;
        Ok((info, changed || !known))
    }

    /// Stops every service (all at once) and ends their tasks.
    async fn stop_all(&self) {
        let txs: Vec<(String, _)> = self
            .units()
            .iter()
            .map(|(n, h)| (n.clone(), h.tx.clone()))
            .collect();
        let mut answers = Vec::new();
        for (name, tx) in txs {
            let (reply, answer) = oneshot::channel();
            let stop = Duration::from_millis(DEFAULT_STOP_TIMEOUT_MS);
            if tx.send(Cmd::Shutdown(stop, reply)).await.is_ok() {
                answers.push((name, answer));
            }
        }
        for (name, answer) in answers {
            if let Ok(Err((_, msg))) = answer.await {
                eprintln!("opsworks-supervisor: stopping {name}: {msg}");
            }
        }
    }
}

fn unknown(name: &str) -> Failure {
    (
        ErrorCode::UnknownService,
        format!("unknown service `{name}`"),
    )
}

fn gone(name: &str) -> Failure {
    (
        ErrorCode::Failed,
        format!("service `{name}` is being removed"),
    )
}

/// Serves one client connection: a request line in, a response line out, until it hangs up.
async fn serve_connection(stream: UnixStream, registry: Arc<Registry>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = Vec::new();
        match (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let too_long = line.len() > MAX_LINE;
        let text = line.trim_ascii();
        if text.is_empty() && !too_long {
            continue;
        }
        let mut shutdown = false;
        let response = if too_long {
            Response::Error {
                code: ErrorCode::BadRequest,
                message: format!("request line longer than {MAX_LINE} bytes"),
            }
        } else {
            match serde_json::from_slice::<Request>(text) {
                Ok(request) => {
                    shutdown = request == Request::Shutdown;
                    registry.dispatch(request).await
                }
                Err(e) => Response::Error {
                    code: ErrorCode::BadRequest,
                    message: format!("bad request: {e}"),
                },
            }
        };
        let mut out = match serde_json::to_vec(&response) {
            Ok(out) => out,
            Err(_) => return,
        };
        out.push(b'\n');
        let written = write.write_all(&out).await.is_ok();
        if shutdown {
            registry.shutdown.notify_one();
        }
        if !written || too_long {
            return;
        }
    }
}
