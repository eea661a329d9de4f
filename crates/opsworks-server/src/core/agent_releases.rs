//! Agent releases: what the server can hand out to installed agents (registered machines) — its
//! own build, and the releases an operator added with `opsworks agent-version add` (their files in
//! `DIR/agent-releases/<sha256>`, their records in the store) — and which one an instance should
//! run: its own `AgentVersion`, else its stack's; `LATEST` is the newest offered.
//!
//! Agents download a release from `GET /agent/releases/<sha256>` and check the SHA-256 they were
//! told over the signed protocol before they run it.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use opsworks_model::catalog::{self, AGENT_VERSION};
use opsworks_model::resource::{AgentRelease, Instance, Stack};
use opsworks_protocol::RELEASES_PATH;
use opsworks_store::{Filter, Store};

use crate::core::{Core, CoreError, CoreResult, now};

/// The folder of the data dir that holds added releases' files, named by their SHA-256.
pub const RELEASES_DIR: &str = "agent-releases";

/// An agent release the server can hand out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    /// Its version.
    pub version: String,
    /// Its SHA-256 (lowercase hex).
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// The file served.
    pub file: PathBuf,
}

/// The server's own build as a release: its executable, hashed once (in the background at start,
/// or at first use).
pub struct AgentReleases {
    own_path: Option<PathBuf>,
    own: OnceCell<Option<Offered>>,
    releases_dir: PathBuf,
    confirm: Duration,
    /// The releases found missing from this server's data dir, said once each (every poll of
    /// every agent that should run one asks again).
    missing: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl AgentReleases {
    /// The releases of a server whose agents run `own_path` (its own executable) and keep their
    /// added releases under `data_dir`; a new release has `confirm` to report in.
    pub fn new(own_path: Option<PathBuf>, data_dir: &Path, confirm: Duration) -> Arc<Self> {
        Arc::new(Self {
            own_path,
            own: OnceCell::new(),
            releases_dir: data_dir.join(RELEASES_DIR),
            confirm,
            missing: Default::default(),
        })
    }

    /// The server's own build (version and hash), or `None` when its executable is unreadable.
    pub async fn own(&self) -> Option<&Offered> {
        self.own
            .get_or_init(|| async {
                let path = self.own_path.clone()?;
                let hashed = tokio::task::spawn_blocking(move || {
                    hash_file(&path).map(|(sha, size)| (path, sha, size))
                })
                .await;
                match hashed {
                    Ok(Ok((file, sha256, size))) => Some(Offered {
                        version: AGENT_VERSION.to_string(),
                        sha256,
                        size,
                        file,
                    }),
                    Ok(Err(e)) => {
                        tracing::warn!("the server's own agent cannot be handed out: {e}");
                        None
                    }
                    Err(e) => {
                        tracing::warn!("hashing the server's own agent: {e}");
                        None
                    }
                }
            })
            .await
            .as_ref()
    }

    /// How long a new release has to report in before the agent puts the old one back.
    pub fn confirm_window(&self) -> Duration {
        self.confirm
    }
}

/// Every release offered: the server's own build first, then the added ones in the order added.
pub async fn offered(core: &Core) -> CoreResult<Vec<Offered>> {
    let mut out: Vec<Offered> = core
        .agent_releases()
        .own()
        .await
        .cloned()
        .into_iter()
        .collect();
    let dir = &core.agent_releases().releases_dir;
    for r in core.list::<AgentRelease>(Filter::All).await? {
        out.push(Offered {
            version: r.version.clone(),
            sha256: r.sha256.clone(),
            size: r.size,
            file: dir.join(&r.sha256),
        });
    }
    Ok(out)
}

/// The versions DescribeAgentVersions lists: the server's own build and every added release.
pub async fn versions(core: &Core) -> CoreResult<Vec<String>> {
    let mut out = vec![AGENT_VERSION.to_string()];
    for r in core.list::<AgentRelease>(Filter::All).await? {
        if !out.contains(&r.version) {
            out.push(r.version.clone());
        }
    }
    Ok(out)
}

/// Whether `version` may be named as an `AgentVersion` (besides `LATEST` and `INHERIT`).
pub async fn is_offered(core: &Core, version: &str) -> CoreResult<bool> {
    Ok(catalog::is_agent_version(version) || versions(core).await?.iter().any(|v| v == version))
}

/// The version an instance should run: its own `AgentVersion`, else its stack's (`INHERIT`);
/// `LATEST` resolved to the newest offered.
pub async fn wanted_version(core: &Core, inst: &Instance, stack: &Stack) -> CoreResult<String> {
    let named = if inst.agent_version == "INHERIT" {
        &stack.agent_version
    } else {
        &inst.agent_version
    };
    if named != "LATEST" {
        return Ok(named.clone());
    }
    let all = versions(core).await?;
    Ok(catalog::newest(all.iter().map(String::as_str))
        .unwrap_or(AGENT_VERSION)
        .to_string())
}

/// The release an instance's installed agent should run, as the protocol tells it; `None` when
/// the version it should run cannot be handed out (a release whose file is gone is logged).
pub async fn desired(
    core: &Core,
    inst: &Instance,
    stack: &Stack,
) -> CoreResult<Option<opsworks_protocol::AgentRelease>> {
    let version = wanted_version(core, inst, stack).await?;
    let Some(offer) = offered(core)
        .await?
        .into_iter()
        .rev()
        .find(|o| o.version == version)
    else {
        return Ok(None);
    };
    // Added releases' files live in the data dir of each server they were added through: a
    // server without the file names none (its agents update once on a server that has it).
    if !offer.file.is_file() {
        let mut missing = core
            .agent_releases()
            .missing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !missing.insert(offer.sha256.clone()) {
            return Ok(None);
        }
        tracing::warn!(
            version = offer.version,
            sha256 = offer.sha256,
            "agent release {} is not in this server's data dir; run `opsworks agent-version add` against it too",
            offer.version
        );
        return Ok(None);
    }
    Ok(Some(opsworks_protocol::AgentRelease {
        path: format!("{RELEASES_PATH}/{}", offer.sha256),
        version: offer.version,
        sha256: offer.sha256,
        size: offer.size,
        confirm_seconds: core.agent_releases().confirm_window().as_secs().max(1),
    }))
}

/// The file of the release whose SHA-256 is `sha256`, if this server offers one.
pub async fn file_of(core: &Core, sha256: &str) -> CoreResult<Option<PathBuf>> {
    Ok(offered(core)
        .await?
        .into_iter()
        .find(|o| o.sha256 == sha256)
        .map(|o| o.file)
        .filter(|f| f.is_file()))
}

/// What can go wrong adding a release.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The file could not be read or copied.
    #[error("{path}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The file is not an executable this project can hand out.
    #[error("{path} is not a Linux executable (ELF): agents run it as the agent")]
    NotExecutable {
        /// The file.
        path: PathBuf,
    },
    /// Its version could not be found out.
    #[error("cannot tell the version of {path} ({why}); give it with --version")]
    NoVersion {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The version is not usable.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] opsworks_store::StoreError),
}

/// Adds `file` as agent release `version` (default: what `file --version` prints): copies it to
/// the data dir under its SHA-256 and records it, so DescribeAgentVersions lists it and stacks
/// and instances may name it. A version already offered with another file is refused; the same
/// file again changes nothing.
pub async fn add(
    store: &Store,
    data_dir: &Path,
    file: &Path,
    version: Option<&str>,
) -> Result<AgentRelease, AddError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AddError::Io { path, source }
    };
    let architecture =
        elf_architecture(file)
            .map_err(io(file))?
            .ok_or_else(|| AddError::NotExecutable {
                path: file.to_path_buf(),
            })?;
    let version = match version {
        Some(v) => v.to_string(),
        None => version_of(file)?,
    };
    check_version(&version)?;
    let (sha256, size) = {
        let f = file.to_path_buf();
        tokio::task::spawn_blocking(move || hash_file(&f))
            .await
            .map_err(|e| AddError::Invalid(format!("hashing {}: {e}", file.display())))?
            .map_err(io(file))?
    };
    if version == AGENT_VERSION {
        return Err(AddError::Invalid(format!(
            "version {version} is the server's own build; give the other file another version with --version"
        )));
    }
    let dir = data_dir.join(RELEASES_DIR);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let dest = dir.join(&sha256);
    if !dest.is_file() {
        // Copied under a temporary name, then renamed: a reader never sees half a file.
        let tmp = dir.join(format!(".{sha256}.partial"));
        std::fs::copy(file, &tmp).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
    }
    let release = AgentRelease {
        version: version.clone(),
        sha256: sha256.clone(),
        architecture,
        size,
        added_at: now(),
    };
    let mut txn = store.write().await?;
    match txn.get::<AgentRelease>(&version).await? {
        Some(old) if old.sha256 == sha256 => return Ok(old),
        Some(old) => {
            return Err(AddError::Invalid(format!(
                "version {version} is already offered with another file (SHA-256 {}); give this one another version",
                old.sha256
            )));
        }
        None => {}
    }
    txn.put(&release).await?;
    txn.commit().await?;
    Ok(release)
}

/// A version agents can report and people can type: 1 to 64 letters, digits, `.`, `-`, `+`,
/// `_`, not one of the API's words.
fn check_version(v: &str) -> Result<(), AddError> {
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'));
    if !ok {
        return Err(AddError::Invalid(format!(
            "version '{v}' must be 1 to 64 letters, digits, '.', '-', '+' or '_'"
        )));
    }
    if matches!(v, "LATEST" | "INHERIT") {
        return Err(AddError::Invalid(format!(
            "version '{v}' is a word of AgentVersion; choose another"
        )));
    }
    Ok(())
}

/// What `file --version` prints after the program's name (`opsworks 0.1.0` → `0.1.0`).
fn version_of(file: &Path) -> Result<String, AddError> {
    let no = |why: String| AddError::NoVersion {
        path: file.to_path_buf(),
        why,
    };
    let out = std::process::Command::new(file)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| no(format!("running it: {e}")))?;
    if !out.status.success() {
        return Err(no(format!("`--version` exited with {}", out.status)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(1)
        .map(str::to_string)
        .ok_or_else(|| no(format!("`--version` printed {:?}", text.trim())))
}

/// The SHA-256 (lowercase hex) and size of a file.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// The architecture an ELF executable is built for, in `uname -m`'s words; `None` for a file
/// that is not ELF.
pub fn elf_architecture(path: &Path) -> std::io::Result<Option<String>> {
    let mut head = [0u8; 20];
    let mut f = std::fs::File::open(path)?;
    if f.read_exact(&mut head).is_err() || head[..4] != *b"\x7fELF" {
        return Ok(None);
    }
    let machine = if head[5] == 2 {
        u16::from_be_bytes([head[18], head[19]])
    } else {
        u16::from_le_bytes([head[18], head[19]])
    };
    Ok(Some(
        match machine {
            3 => "i686",
            40 => "armv7l",
            62 => "x86_64",
            183 => "aarch64",
            243 => "riscv64",
            other => return Ok(Some(format!("elf-machine-{other}"))),
        }
        .to_string(),
    ))
}

/// The architecture this server's own build runs on, in `uname -m`'s words.
pub fn own_architecture() -> &'static str {
    std::env::consts::ARCH
}

impl From<AddError> for CoreError {
    fn from(e: AddError) -> Self {
        CoreError::Invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_checked() {
        assert!(check_version("0.2.0-test.1").is_ok());
        assert!(check_version("").is_err());
        assert!(check_version("LATEST").is_err());
        assert!(check_version("1 2").is_err());
        assert!(check_version(&"9".repeat(65)).is_err());
    }

    #[test]
    fn the_architecture_of_this_test_binary_is_this_machine_s() {
        let exe = std::env::current_exe().unwrap();
        assert_eq!(
            elf_architecture(&exe).unwrap().as_deref(),
            Some(own_architecture())
        );
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert_eq!(elf_architecture(&script).unwrap(), None);
    }
}
