//! The agent's state directory: the local history of commands (`commands/<stamp>_<type>_<id>/`
//! with `command.json`, `attribs.json`, `data_bags/`, `log` and `result.json`), the outbox of
//! completions not yet delivered, `agent.json` for the inspection CLI, and the locks.
//!
//! Everything here may hold secrets (app environments, source passwords), so the directory is
//! 0700 and its files 0600.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use opsworks_protocol::{AgentCommand, Completion};
use serde::{Deserialize, Serialize};

use crate::error::{AgentError, Result};

/// How many commands the history keeps (as the original agent did).
pub const KEEP_COMMANDS: usize = 30;

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// What `agent.json` records about the running (or last) agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// The agent's version.
    pub version: String,
    /// Its process ID.
    pub pid: u32,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// The last time it heard from the server or ran something.
    pub last_activity: String,
    /// The server's URL.
    pub server: String,
    /// The instance it runs for.
    pub instance_id: String,
    /// The converge executable it runs.
    pub converge_exe: PathBuf,
    /// The built-in cookbooks directory, if any.
    pub builtin_cookbooks: Option<PathBuf>,
    /// Where apps are deployed.
    pub www_root: PathBuf,
    /// The command it runs right now.
    pub running: Option<String>,
    /// When the server last answered its hello (the installer waits for this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_in_at: Option<String>,
}

/// A command's result, as kept in `result.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredResult {
    /// What was (or will be) reported to the server.
    #[serde(flatten)]
    pub completion: Completion,
    /// When the agent started it (absent for skipped commands).
    pub started_at: Option<String>,
    /// When it ended.
    pub completed_at: String,
}

/// One command's directory in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The directory.
    pub dir: PathBuf,
}

impl Entry {
    /// The command as the server sent it.
    pub fn command(&self) -> Result<AgentCommand> {
        read_json(&self.dir.join("command.json"))
    }

    /// The result, once the command ended.
    pub fn result(&self) -> Result<Option<StoredResult>> {
        let path = self.dir.join("result.json");
        if !path.exists() {
            return Ok(None);
        }
        read_json(&path).map(Some)
    }

    /// Records the result.
    pub fn write_result(&self, result: &StoredResult) -> Result<()> {
        write_json(&self.dir.join("result.json"), result)
    }

    /// The command's log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log")
    }

    /// The node attributes the converge reads.
    pub fn attribs_path(&self) -> PathBuf {
        self.dir.join("attribs.json")
    }

    /// The data bags the converge searches.
    pub fn data_bags_dir(&self) -> PathBuf {
        self.dir.join("data_bags")
    }

    /// The directory's name (`<stamp>_<type>_<id>`).
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

impl StateDir {
    /// Opens (creating when needed) the state directory at `root`.
    pub fn open(root: &Path) -> Result<StateDir> {
        for dir in [
            root.to_path_buf(),
            root.join("commands"),
            root.join("outbox"),
        ] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| AgentError::io("cannot create directory", &dir, e))?;
        }
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| AgentError::io("cannot set the mode of", root, e))?;
        Ok(StateDir {
            root: root.to_path_buf(),
        })
    }

    /// Opens an existing state directory without creating anything (for the inspection CLI).
    pub fn existing(root: &Path) -> Result<StateDir> {
        if !root.join("commands").is_dir() {
            return Err(AgentError::invalid(
                "state directory",
                format!(
                    "{} holds no agent state (no commands/ directory)",
                    root.display()
                ),
            ));
        }
        Ok(StateDir {
            root: root.to_path_buf(),
        })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where git and archive custom cookbooks are kept.
    pub fn site_cookbooks(&self) -> PathBuf {
        self.root.join("site-cookbooks")
    }

    /// Scratch space for downloads.
    pub fn downloads(&self) -> PathBuf {
        self.root.join("downloads")
    }

    /// Every history entry, oldest first.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let dir = self.root.join("commands");
        let mut names = Vec::new();
        for item in std::fs::read_dir(&dir).map_err(|e| AgentError::io("cannot read", &dir, e))? {
            let item = item.map_err(|e| AgentError::io("cannot read", &dir, e))?;
            if item.file_type().is_ok_and(|t| t.is_dir()) {
                names.push(item.file_name());
            }
        }
        names.sort();
        Ok(names
            .into_iter()
            .map(|n| Entry { dir: dir.join(n) })
            .collect())
    }

    /// The history entry of `command_id`, if there is one.
    pub fn find(&self, command_id: &str) -> Result<Option<Entry>> {
        let suffix = format!("_{}", safe_name(command_id));
        Ok(self
            .entries()?
            .into_iter()
            .rev()
            .find(|e| e.name().ends_with(&suffix)))
    }

    /// Starts the history entry of `cmd`: its directory with `command.json`.
    pub fn create_entry(&self, cmd: &AgentCommand) -> Result<Entry> {
        let name = format!(
            "{}_{}_{}",
            stamp(&cmd.created_at),
            safe_name(cmd.kind.as_str()),
            safe_name(&cmd.command_id)
        );
        let dir = self.root.join("commands").join(name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| AgentError::io("cannot create directory", &dir, e))?;
        let entry = Entry { dir };
        write_json(&entry.dir.join("command.json"), cmd)?;
        Ok(entry)
    }

    /// Removes the oldest entries beyond [`KEEP_COMMANDS`], sparing `keep` (the entry in use).
    pub fn prune(&self, keep: Option<&Entry>) -> Result<usize> {
        let entries = self.entries()?;
        let excess = entries.len().saturating_sub(KEEP_COMMANDS);
        let mut removed = 0;
        for entry in entries.into_iter().take(excess) {
            if Some(&entry) == keep {
                continue;
            }
            std::fs::remove_dir_all(&entry.dir)
                .map_err(|e| AgentError::io("cannot remove", &entry.dir, e))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Puts a completion in the outbox (before the first attempt to send it).
    pub fn outbox_put(&self, completion: &Completion) -> Result<()> {
        write_json(&self.outbox_path(&completion.command_id), completion)
    }

    /// The completions waiting in the outbox, oldest first.
    pub fn outbox(&self) -> Result<Vec<Completion>> {
        let dir = self.root.join("outbox");
        let mut items = Vec::new();
        for item in std::fs::read_dir(&dir).map_err(|e| AgentError::io("cannot read", &dir, e))? {
            let item = item.map_err(|e| AgentError::io("cannot read", &dir, e))?;
            let path = item.path();
            if path.extension().is_some_and(|x| x == "json") {
                let modified = item.metadata().and_then(|m| m.modified()).ok();
                items.push((modified, path));
            }
        }
        items.sort();
        let mut out = Vec::new();
        for (_, path) in items {
            match read_json::<Completion>(&path) {
                Ok(c) => out.push(c),
                Err(e) => {
                    // A torn write cannot be delivered; keep it aside rather than loop on it.
                    tracing::error!(path = %path.display(), error = %e, "unreadable outbox entry set aside");
                    let _ = std::fs::rename(&path, path.with_extension("bad"));
                }
            }
        }
        Ok(out)
    }

    /// Removes a delivered completion from the outbox.
    pub fn outbox_remove(&self, command_id: &str) -> Result<()> {
        let path = self.outbox_path(command_id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(AgentError::io("cannot remove", &path, e))
            }
            _ => Ok(()),
        }
    }

    fn outbox_path(&self, command_id: &str) -> PathBuf {
        self.root
            .join("outbox")
            .join(format!("{}.json", safe_name(command_id)))
    }

    /// Reads `agent.json`.
    pub fn read_info(&self) -> Result<Option<AgentInfo>> {
        let path = self.root.join("agent.json");
        if !path.exists() {
            return Ok(None);
        }
        read_json(&path).map(Some)
    }

    /// Writes `agent.json`.
    pub fn write_info(&self, info: &AgentInfo) -> Result<()> {
        write_json(&self.root.join("agent.json"), info)
    }

    /// Takes the agent lock: one agent per state directory. Held until the value is dropped.
    pub fn lock_agent(&self) -> Result<FileLock> {
        let path = self.root.join("agent.lock");
        let file = open_lock(&path)?;
        if !flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            let pid = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            return Err(AgentError::AlreadyRunning {
                dir: self.root.clone(),
                pid,
            });
        }
        let mut f = &file;
        let _ = file.set_len(0);
        let _ = writeln!(f, "{}", std::process::id());
        Ok(FileLock { _file: file })
    }

    /// Takes the run lock, waiting while another run (an agent or `run-command`) holds it.
    /// Blocking: call it off the async runtime.
    pub fn lock_run(&self) -> Result<FileLock> {
        let path = self.root.join("run.lock");
        let file = open_lock(&path)?;
        if !flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            tracing::info!("another run holds {}; waiting", path.display());
            if !flock(&file, libc::LOCK_EX) {
                return Err(AgentError::io(
                    "cannot lock",
                    &path,
                    std::io::Error::last_os_error(),
                ));
            }
        }
        Ok(FileLock { _file: file })
    }
}

/// An exclusive `flock` held while this value lives.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

fn open_lock(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| AgentError::io("cannot open", path, e))
}

/// `flock(2)` with `op`, retried when a signal interrupts it; whether it took.
pub(crate) fn flock(file: &File, op: libc::c_int) -> bool {
    loop {
        // SAFETY: flock on a descriptor we own; no memory is shared with the kernel.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return true;
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// A name safe as one path component: anything outside `[A-Za-z0-9._-]` becomes `_`, and a name
/// made only of dots is not allowed to climb the tree.
pub fn safe_name(s: &str) -> String {
    let name: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.chars().all(|c| c == '.') {
        name.replace('.', "_") + "_"
    } else {
        name
    }
}

/// The sortable stamp of a command's `created_at` (`20261125T101500.123456Z`).
fn stamp(created_at: &str) -> String {
    match created_at.parse::<jiff::Timestamp>() {
        Ok(t) => format!(
            "{}.{:06}Z",
            t.strftime("%Y%m%dT%H%M%S"),
            t.subsec_microsecond()
        ),
        Err(_) => safe_name(created_at),
    }
}

/// Reads a JSON file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read(path).map_err(|e| AgentError::io("cannot read", path, e))?;
    serde_json::from_slice(&text).map_err(|e| AgentError::json(path.display().to_string(), e))
}

/// Writes a JSON file, mode 0600, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_vec_pretty(value)
        .map_err(|e| AgentError::json(path.display().to_string(), e))?;
    write_private(path, &text)
}

/// Writes a file with mode 0600 through a temporary file and a rename, so a reader never sees
/// half of it.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| AgentError::io("cannot write", &tmp, e))?;
    f.write_all(bytes)
        .map_err(|e| AgentError::io("cannot write", &tmp, e))?;
    // A file created earlier with another mode keeps it through open(); set it explicitly.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| AgentError::io("cannot write", &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| AgentError::io("cannot write", path, e))
}

/// Now, RFC 3339.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_the_history() {
        assert_eq!(safe_name("../../etc"), ".._.._etc");
        assert_eq!(safe_name(".."), "___");
        assert_eq!(safe_name(""), "_");
        assert_eq!(safe_name("a1b2-c3"), "a1b2-c3");
        assert!(!safe_name("a/b").contains('/'));
    }

    #[test]
    fn stamps_sort_like_times() {
        let a = stamp("2026-11-25T09:59:59.5+00:00");
        let b = stamp("2026-11-25T10:00:00Z");
        assert!(a < b, "{a} {b}");
        assert_eq!(stamp("garbage/../x"), "garbage_.._x");
    }

    #[test]
    fn the_agent_lock_is_exclusive() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path()).unwrap();
        let held = state.lock_agent().unwrap();
        let err = state.lock_agent().unwrap_err();
        assert!(
            matches!(err, AgentError::AlreadyRunning { pid, .. } if pid == std::process::id()),
            "{err}"
        );
        drop(held);
        state.lock_agent().unwrap();
    }
}
