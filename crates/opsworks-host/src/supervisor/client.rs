//! The synchronous client of the supervisor: finds the socket, starts the daemon when nobody
//! answers, and exchanges request and response lines.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::protocol::{DEFAULT_STOP_TIMEOUT_MS, MAX_LINE, Request, Response};
use super::{DEFAULT_STATE_DIR, EXE_ENV, SOCKET_NAME, STATE_DIR_ENV};
use crate::error::{HostError, Result};

/// How long a client waits for a supervisor it started to open its socket. Generous: a
/// supervisor first ends leftovers of a crashed predecessor (up to 5 s) and starts enabled
/// services.
const START_WAIT: Duration = Duration::from_secs(30);
/// How long any answer may take beyond the stop timeout a request carries.
const ANSWER_WAIT: Duration = Duration::from_secs(60);

/// The state directory clients use: `OPSWORKS_SUPERVISOR_DIR`, or the default.
pub fn state_dir() -> PathBuf {
    match std::env::var_os(STATE_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_STATE_DIR),
    }
}

/// The socket path for a state directory.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(SOCKET_NAME)
}

/// A connection to the supervisor.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects to a running supervisor.
    pub fn connect(dir: &Path) -> Result<Client> {
        let socket = socket_path(dir);
        let stream = UnixStream::connect(&socket).map_err(|e| HostError::Supervisor {
            message: format!("cannot connect to {}: {e}", socket.display()),
        })?;
        let writer = stream.try_clone().map_err(|e| HostError::Supervisor {
            message: format!("cannot use {}: {e}", socket.display()),
        })?;
        writer
            .set_write_timeout(Some(ANSWER_WAIT))
            .map_err(|e| HostError::Supervisor {
                message: format!("cannot use {}: {e}", socket.display()),
            })?;
        Ok(Client {
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Connects to the supervisor of `dir`, starting it first when it is not running: the
    /// executable named by `OPSWORKS_SUPERVISOR_EXE`, else the current one, as
    /// `EXE supervisor --state-dir DIR`.
    pub fn connect_or_start(dir: &Path) -> Result<Client> {
        let exe = match std::env::var_os(EXE_ENV) {
            Some(exe) if !exe.is_empty() => PathBuf::from(exe),
            _ => std::env::current_exe().map_err(|e| HostError::Supervisor {
                message: format!("cannot find the current executable to start the supervisor: {e}"),
            })?,
        };
        Client::connect_or_start_with(dir, &exe)
    }

    /// [`Client::connect_or_start`] with the supervisor executable given.
    pub fn connect_or_start_with(dir: &Path, exe: &Path) -> Result<Client> {
        if let Ok(mut c) = Client::connect(dir)
            && matches!(c.call(&Request::Ping), Ok(Response::Pong { .. }))
        {
            return Ok(c);
        }
        start_daemon(dir, exe)?;
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Ok(mut c) = Client::connect(dir)
                && matches!(c.call(&Request::Ping), Ok(Response::Pong { .. }))
            {
                return Ok(c);
            }
            if Instant::now() >= deadline {
                return Err(HostError::Supervisor {
                    message: format!(
                        "started a supervisor for {} but it did not answer within {} s; its log ends with: {}",
                        dir.display(),
                        START_WAIT.as_secs(),
                        log_tail(&dir.join("supervisor.log"))
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends one request and reads its response.
    pub fn call(&mut self, request: &Request) -> Result<Response> {
        let stop_ms = match request {
            Request::Stop { timeout_ms, .. } | Request::Restart { timeout_ms, .. } => {
                timeout_ms.unwrap_or(DEFAULT_STOP_TIMEOUT_MS)
            }
            Request::Remove { .. } | Request::Shutdown => DEFAULT_STOP_TIMEOUT_MS,
            _ => 0,
        };
        let wait = ANSWER_WAIT + Duration::from_millis(stop_ms);
        let fail = |what: &str, e: std::io::Error| HostError::Supervisor {
            message: format!("{what}: {e}"),
        };
        self.reader
            .get_ref()
            .set_read_timeout(Some(wait))
            .map_err(|e| fail("cannot set a timeout", e))?;
        let mut line = serde_json::to_vec(request).map_err(|e| HostError::Supervisor {
            message: format!("cannot encode request: {e}"),
        })?;
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .map_err(|e| fail("cannot send request", e))?;
        let mut answer = Vec::new();
        // Answers (a list of many services) may be longer than requests may.
        (&mut self.reader)
            .take(4 * MAX_LINE as u64)
            .read_until(b'\n', &mut answer)
            .map_err(|e| fail("no answer", e))?;
        if answer.is_empty() {
            return Err(HostError::Supervisor {
                message: "the supervisor closed the connection without answering".into(),
            });
        }
        serde_json::from_slice(answer.trim_ascii()).map_err(|e| HostError::Supervisor {
            message: format!("unreadable answer: {e}"),
        })
    }
}

/// Starts `EXE supervisor --state-dir DIR` detached: a new session, double-forked so the daemon
/// is nobody's child, output appended to `<dir>/supervisor.log`.
fn start_daemon(dir: &Path, exe: &Path) -> Result<()> {
    use std::os::unix::process::CommandExt;
    super::store::create_private_dir(dir)
        .map_err(|e| HostError::io("cannot create directory", dir, e))?;
    let log_path = dir.join("supervisor.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| HostError::io("cannot open", &log_path, e))?;
    let log_err = log
        .try_clone()
        .map_err(|e| HostError::io("cannot open", &log_path, e))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("supervisor")
        .arg("--state-dir")
        .arg(dir)
        .env(STATE_DIR_ENV, dir)
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // SAFETY: only async-signal-safe calls (setsid, fork, _exit) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // Fork again and let the intermediate process exit: the daemon is adopted by init
            // and never becomes a zombie of the client that started it.
            match libc::fork() {
                -1 => Err(std::io::Error::last_os_error()),
                0 => Ok(()),
                _ => libc::_exit(0),
            }
        });
    }
    let mut child = cmd.spawn().map_err(|e| HostError::Supervisor {
        message: format!("cannot start {} supervisor: {e}", exe.display()),
    })?;
    // The intermediate process exits at once.
    let _ = child.wait();
    Ok(())
}

/// The last lines of the supervisor's log, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    if lines.is_empty() {
        return "(nothing)".into();
    }
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}
