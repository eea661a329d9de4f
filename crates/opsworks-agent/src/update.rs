//! Installed agents update themselves, and put the old release back when the new one does not
//! report in.
//!
//! The install directory holds `releases/<version>-<sha>/{opsworks,release.json}` and `current`,
//! the link the service runs. When the server names another release (its answers carry the one
//! the instance should run), the agent — between commands — downloads it, checks its SHA-256,
//! stages it as a new release, records the pending update (`update.json`), starts a guard
//! (`opsworks agent-guard`, from its own, old executable, outside the service so a restart does
//! not end it), points `current` at the new release and executes it in its own place. The new
//! agent confirms the update once the server answered its hello (it removes `update.json`). If
//! that does not happen within the release's `confirm_seconds`, the guard points `current` back,
//! remembers the release as rejected (it is not tried again), leaves a note the old agent reports
//! in its next hello, and restarts the service.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use opsworks_host::service::{self, Backend};
use opsworks_protocol::{AgentRelease, RolledBack, RunningRelease};
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::{AgentError, Result};

/// The releases' directory, under the install directory.
pub const RELEASES: &str = "releases";
/// What a release directory says about itself.
pub const RELEASE_FILE: &str = "release.json";
const CURRENT: &str = "current";
const PENDING_FILE: &str = "update.json";
const REJECTED_FILE: &str = "rejected.json";
const ROLLED_BACK_FILE: &str = "rolled-back.json";
const LOCK_FILE: &str = "update.lock";
/// How long after a failed download the same release is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(300);

/// An update under way: what `current` pointed at, what it points at now, and by when the new
/// release must report in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    from: String,
    to: String,
    version: String,
    sha256: String,
    confirm_seconds: u64,
    /// Unix seconds.
    started_at: i64,
}

/// A release that failed to report in: never tried again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Rejected {
    version: String,
    sha256: String,
}

/// The release directory's name: `<version>-<first 12 of the SHA-256>`.
pub fn release_dir_name(r: &RunningRelease) -> String {
    let version: String = r
        .version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{version}-{}", &r.sha256[..12.min(r.sha256.len())])
}

/// Points `<install_dir>/current` at `release_dir` atomically (a new link renamed over the old).
pub fn point_current(install_dir: &Path, release_dir: &Path) -> std::io::Result<()> {
    let name = release_dir
        .file_name()
        .ok_or_else(|| std::io::Error::other("a release directory has a name"))?;
    let target = Path::new(RELEASES).join(name);
    let tmp = install_dir.join(format!(".{CURRENT}.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&target, &tmp)?;
    std::fs::rename(&tmp, install_dir.join(CURRENT))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    crate::state::read_json(path).ok()
}

/// Through the agent's own atomic write (a temporary file of this process, then a rename).
fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    crate::state::write_json(path, value).map_err(std::io::Error::other)
}

/// Holds `update.lock` (the agent confirming and the guard rolling back never both act).
struct Locked(std::fs::File);

fn lock(install_dir: &Path) -> std::io::Result<Locked> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(install_dir.join(LOCK_FILE))?;
    if !crate::state::flock(&f, libc::LOCK_EX) {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Locked(f))
}

impl Drop for Locked {
    fn drop(&mut self) {
        crate::state::flock(&self.0, libc::LOCK_UN);
    }
}

/// An agent run from an install directory (a registered machine's).
#[derive(Debug)]
pub struct Installed {
    dir: PathBuf,
    /// The release this process runs, and its directory's name.
    running: Option<(RunningRelease, String)>,
    /// The last release whose download failed, and when.
    failed: Mutex<Option<(String, Instant)>>,
}

impl Installed {
    /// The installation at `dir`, and the release this executable is (when it runs from one of
    /// its release directories).
    pub fn detect(dir: &Path) -> Installed {
        let running = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.canonicalize().ok())
            .and_then(|exe| {
                let release_dir = exe.parent()?;
                let releases = dir.join(RELEASES).canonicalize().ok()?;
                if release_dir.parent()? != releases {
                    return None;
                }
                let release: RunningRelease = read_json(&release_dir.join(RELEASE_FILE))?;
                Some((
                    release,
                    release_dir.file_name()?.to_string_lossy().into_owned(),
                ))
            });
        Installed {
            dir: dir.to_path_buf(),
            running,
            failed: Mutex::new(None),
        }
    }

    /// The release this agent runs, as its hello reports it.
    pub fn release(&self) -> Option<&RunningRelease> {
        self.running.as_ref().map(|(r, _)| r)
    }

    /// An update undone since the last hello, to report.
    pub fn rolled_back(&self) -> Option<RolledBack> {
        read_json(&self.dir.join(ROLLED_BACK_FILE))
    }

    /// The server heard this agent: an update to this release is confirmed (the guard stands
    /// down, older releases go), and a reported roll-back is forgotten.
    pub fn reported_in(&self) {
        let _ = std::fs::remove_file(self.dir.join(ROLLED_BACK_FILE));
        let Some((release, name)) = &self.running else {
            return;
        };
        let Ok(_lock) = lock(&self.dir) else { return };
        let path = self.dir.join(PENDING_FILE);
        let Some(pending) = read_json::<Pending>(&path) else {
            return;
        };
        if &pending.to != name {
            return;
        }
        if std::fs::remove_file(&path).is_ok() {
            tracing::info!(version = %release.version, "the update reported in: confirmed");
            self.prune(&[name.as_str(), pending.from.as_str()]);
        }
    }

    /// Removes release directories other than `keep`.
    fn prune(&self, keep: &[&str]) {
        let Ok(entries) = std::fs::read_dir(self.dir.join(RELEASES)) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name.as_str()) && !name.starts_with('.') {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Whether the agent should move to `wanted`: another release, not rejected before, and not
    /// one whose download just failed.
    pub fn wants(&self, wanted: &AgentRelease) -> bool {
        let Some((mine, _)) = &self.running else {
            return false;
        };
        if mine.version == wanted.version && mine.sha256 == wanted.sha256 {
            return false;
        }
        let rejected: Vec<Rejected> = read_json(&self.dir.join(REJECTED_FILE)).unwrap_or_default();
        if rejected
            .iter()
            .any(|r| r.version == wanted.version && r.sha256 == wanted.sha256)
        {
            return false;
        }
        let failed = self.failed.lock().ok().and_then(|f| f.clone());
        !failed.is_some_and(|(sha, at)| sha == wanted.sha256 && at.elapsed() < RETRY_AFTER)
    }

    /// Moves to `wanted`: downloads and checks it, stages it, starts the guard, points
    /// `current` at it and executes it in this process's place. Returns only when something
    /// failed (nothing is changed then).
    pub async fn apply(&self, client: &Client, wanted: &AgentRelease) -> Result<()> {
        let result = self.try_apply(client, wanted).await;
        if result.is_err()
            && let Ok(mut f) = self.failed.lock()
        {
            *f = Some((wanted.sha256.clone(), Instant::now()));
        }
        result
    }

    async fn try_apply(&self, client: &Client, wanted: &AgentRelease) -> Result<()> {
        let Some((mine, mine_dir)) = &self.running else {
            return Err(AgentError::invalid(
                "update",
                "this agent does not run from a release",
            ));
        };
        let release = RunningRelease {
            version: wanted.version.clone(),
            sha256: wanted.sha256.clone(),
        };
        let releases = self.dir.join(RELEASES);
        let name = release_dir_name(&release);
        let target = releases.join(&name);
        tracing::info!(from = %mine.version, to = %wanted.version, "updating the agent");
        if !target.join("opsworks").is_file() {
            // Staged beside the releases, then renamed into place: never half a release.
            let staging = releases.join(format!(".staging-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&staging);
            std::fs::create_dir_all(&staging)
                .map_err(|e| AgentError::io("cannot create", &staging, e))?;
            let file = staging.join("opsworks");
            let fetched = client
                .download(&wanted.path, &file, &wanted.sha256, wanted.size)
                .await;
            if let Err(e) = fetched {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
            set_mode(&file, 0o755)?;
            write_json(&staging.join(RELEASE_FILE), &release)
                .map_err(|e| AgentError::io("cannot write", &staging, e))?;
            let _ = std::fs::remove_dir_all(&target);
            std::fs::rename(&staging, &target)
                .map_err(|e| AgentError::io("cannot move into place", &target, e))?;
        }
        let pending = Pending {
            from: mine_dir.clone(),
            to: name,
            version: wanted.version.clone(),
            sha256: wanted.sha256.clone(),
            confirm_seconds: wanted.confirm_seconds.max(1),
            started_at: jiff::Timestamp::now().as_second(),
        };
        {
            let _lock = lock(&self.dir).map_err(|e| AgentError::io("cannot lock", &self.dir, e))?;
            write_json(&self.dir.join(PENDING_FILE), &pending)
                .map_err(|e| AgentError::io("cannot write", &self.dir, e))?;
        }
        let exe = releases.join(mine_dir).join("opsworks");
        let dir = self.dir.as_os_str().to_owned();
        if let Err(e) = detach(
            "guard",
            &exe,
            &["agent-guard".into(), "--install-dir".into(), dir],
        ) {
            let _ = std::fs::remove_file(self.dir.join(PENDING_FILE));
            return Err(AgentError::io("cannot start the update guard", &exe, e));
        }
        point_current(&self.dir, &target)
            .map_err(|e| AgentError::io("cannot point current at", &target, e))?;
        tracing::info!(version = %wanted.version, "running the new agent");
        let args: Vec<OsString> = std::env::args_os().skip(1).collect();
        let err = std::process::Command::new(self.dir.join(CURRENT).join("opsworks"))
            .args(&args)
            .exec();
        // Still here: the new executable did not start; put the old one back at once.
        let _lock = lock(&self.dir);
        let _ = point_current(&self.dir, &releases.join(mine_dir));
        let _ = std::fs::remove_file(self.dir.join(PENDING_FILE));
        Err(AgentError::io("cannot execute the new agent", &target, err))
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| AgentError::io("cannot set the mode of", path, e))
}

/// Starts `program args` outside the agent's service, so that stopping or restarting the service
/// does not end it: a transient systemd unit where systemd runs, else a process of its own
/// session whose parent has already exited.
pub fn detach(what: &str, program: &Path, args: &[OsString]) -> std::io::Result<()> {
    if service::backend() == Backend::Systemd {
        let unit = format!("opsworks-agent-{what}-{}", std::process::id());
        let status = std::process::Command::new("systemd-run")
            .args(["--unit", &unit, "--collect", "--quiet", "--"])
            .arg(program)
            .args(args)
            .status()?;
        return if status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "systemd-run exited with {status}"
            )))
        };
    }
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).stdin(std::process::Stdio::null());
    // SAFETY: between fork and exec the closure calls only fork, setsid and _exit, which are
    // async-signal-safe.
    unsafe {
        cmd.pre_exec(|| match libc::fork() {
            -1 => Err(std::io::Error::last_os_error()),
            0 => {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            }
            _ => libc::_exit(0),
        });
    }
    cmd.spawn()?.wait()?;
    Ok(())
}

/// `opsworks agent-guard`: waits for the pending update of the installation at `dir` to be
/// confirmed; past its deadline, puts the old release back, rejects the new one, leaves a note
/// for the old agent's hello and restarts the service (with `restart`).
pub fn guard(dir: &Path, restart: &dyn Fn() -> anyhow::Result<()>) -> anyhow::Result<()> {
    let path = dir.join(PENDING_FILE);
    let Some(pending) = read_json::<Pending>(&path) else {
        println!(
            "opsworks agent-guard: no update pending in {}",
            dir.display()
        );
        return Ok(());
    };
    let deadline = pending.started_at + pending.confirm_seconds as i64;
    println!(
        "opsworks agent-guard: waiting up to {} s for agent {} to report in",
        pending.confirm_seconds, pending.version
    );
    loop {
        match read_json::<Pending>(&path) {
            Some(p) if p == pending => {}
            // Confirmed (the file is gone) or replaced by a newer update with its own guard.
            _ => return Ok(()),
        }
        if jiff::Timestamp::now().as_second() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    {
        let _lock = lock(dir)?;
        if read_json::<Pending>(&path).as_ref() != Some(&pending) {
            return Ok(());
        }
        point_current(dir, &dir.join(RELEASES).join(&pending.from))?;
        let rejected_path = dir.join(REJECTED_FILE);
        let mut rejected: Vec<Rejected> = read_json(&rejected_path).unwrap_or_default();
        rejected.push(Rejected {
            version: pending.version.clone(),
            sha256: pending.sha256.clone(),
        });
        write_json(&rejected_path, &rejected)?;
        let reason = format!(
            "it did not report in within {} s; the previous agent runs again",
            pending.confirm_seconds
        );
        write_json(
            &dir.join(ROLLED_BACK_FILE),
            &RolledBack {
                version: pending.version.clone(),
                sha256: pending.sha256.clone(),
                reason,
            },
        )?;
        std::fs::remove_file(&path)?;
        let _ = std::fs::remove_dir_all(dir.join(RELEASES).join(&pending.to));
    }
    println!(
        "opsworks agent-guard: agent {} did not report in; the previous release runs again",
        pending.version
    );
    let _ = std::io::stdout().flush();
    restart()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(v: &str, sha: &str) -> RunningRelease {
        RunningRelease {
            version: v.into(),
            sha256: sha.into(),
        }
    }

    #[test]
    fn release_directories_are_named_by_version_and_hash() {
        let sha = "0123456789abcdef".repeat(4);
        assert_eq!(
            release_dir_name(&release("0.1.0", &sha)),
            "0.1.0-0123456789ab"
        );
        assert_eq!(
            release_dir_name(&release("a/b c", &sha)),
            "a_b_c-0123456789ab"
        );
    }

    #[test]
    fn current_moves_atomically_between_releases() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a", "b"] {
            std::fs::create_dir_all(dir.path().join(RELEASES).join(name)).unwrap();
            std::fs::write(dir.path().join(RELEASES).join(name).join("opsworks"), name).unwrap();
        }
        point_current(dir.path(), &dir.path().join("releases/a")).unwrap();
        point_current(dir.path(), &dir.path().join("releases/b")).unwrap();
        let link = std::fs::read_link(dir.path().join(CURRENT)).unwrap();
        assert_eq!(link, Path::new("releases/b"));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("current/opsworks")).unwrap(),
            "b"
        );
    }

    #[test]
    fn rejected_and_same_releases_are_not_wanted() {
        let dir = tempfile::tempdir().unwrap();
        let sha = "ab".repeat(32);
        let installed = Installed {
            dir: dir.path().to_path_buf(),
            running: Some((release("1.0", &sha), "1.0-abababababab".into())),
            failed: Mutex::new(None),
        };
        let offer = |v: &str, s: &str| AgentRelease {
            version: v.into(),
            sha256: s.into(),
            size: 1,
            path: format!("/agent/releases/{s}"),
            confirm_seconds: 60,
        };
        assert!(!installed.wants(&offer("1.0", &sha)));
        let other = "cd".repeat(32);
        assert!(installed.wants(&offer("2.0", &other)));
        write_json(
            &dir.path().join(REJECTED_FILE),
            &vec![Rejected {
                version: "2.0".into(),
                sha256: other.clone(),
            }],
        )
        .unwrap();
        assert!(!installed.wants(&offer("2.0", &other)));
        // The same file under another version is a move too (it reports another version).
        assert!(installed.wants(&offer("1.0-renamed", &sha)));
        // An agent not run from a release never updates itself.
        let loose = Installed {
            dir: dir.path().to_path_buf(),
            running: None,
            failed: Mutex::new(None),
        };
        assert!(!loose.wants(&offer("2.0", &"ef".repeat(32))));
    }

    #[test]
    fn the_guard_puts_the_old_release_back_past_the_deadline_and_stands_down_when_confirmed() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["old", "new"] {
            std::fs::create_dir_all(dir.path().join(RELEASES).join(name)).unwrap();
        }
        point_current(dir.path(), &dir.path().join("releases/new")).unwrap();
        let pending = Pending {
            from: "old".into(),
            to: "new".into(),
            version: "2.0".into(),
            sha256: "cd".repeat(32),
            confirm_seconds: 1,
            started_at: jiff::Timestamp::now().as_second() - 5,
        };
        let restarted = std::cell::Cell::new(0);
        let restart = || {
            restarted.set(restarted.get() + 1);
            Ok(())
        };
        // Confirmed: nothing to do.
        guard(dir.path(), &restart).unwrap();
        assert_eq!(restarted.get(), 0);
        assert_eq!(
            std::fs::read_link(dir.path().join(CURRENT)).unwrap(),
            Path::new("releases/new")
        );
        // Past its deadline.
        write_json(&dir.path().join(PENDING_FILE), &pending).unwrap();
        guard(dir.path(), &restart).unwrap();
        assert_eq!(restarted.get(), 1);
        assert_eq!(
            std::fs::read_link(dir.path().join(CURRENT)).unwrap(),
            Path::new("releases/old")
        );
        assert!(!dir.path().join(PENDING_FILE).exists());
        assert!(!dir.path().join("releases/new").exists());
        let note: RolledBack = read_json(&dir.path().join(ROLLED_BACK_FILE)).unwrap();
        assert_eq!(note.version, "2.0");
        assert!(note.reason.contains("did not report in within 1 s"));
        let rejected: Vec<Rejected> = read_json(&dir.path().join(REJECTED_FILE)).unwrap();
        assert_eq!(rejected.len(), 1);
    }
}
