//! Command logs: what agents stream into, and the signed, hour-long links (`LogUrl`) that serve
//! them, as the original's presigned S3 links did.
//!
//! Where they are kept follows the database. One server on its embedded database: files in its
//! data dir (`DIR/logs/<command id>.log`). Several servers on one PostgreSQL: the database itself
//! (`Cluster::append_log`), so every server serves every log (the link names the cluster's
//! address and its key is the database's), a log outlives the server that took it, and an agent
//! that moves to another server in the middle of a command goes on at the same offset.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::PathBuf;

use opsworks_store::LogAppend;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::core::{Core, CoreError, CoreResult};

/// How long a `LogUrl` stays valid.
pub const LINK_SECONDS: i64 = 3600;

/// The largest piece of log one message may carry.
pub const MAX_PIECE_BYTES: usize = 1 << 20;

/// The largest log a command may have; past it the server refuses more (the agent keeps the
/// whole log locally, `opsworks agent-cli show-log`).
pub const MAX_LOG_BYTES: u64 = 16 << 20;

/// The file holding a command's log, for IDs only (anything else names no file); the embedded
/// database's servers only (a shared database keeps logs itself).
pub fn path(core: &Core, command_id: &str) -> Option<PathBuf> {
    opsworks_model::ids::looks_like_id(command_id).then(|| {
        core.data_dir()
            .join("logs")
            .join(format!("{command_id}.log"))
    })
}

/// Appends `text` at byte `offset` of a command's log. A piece the server already has (a retry)
/// is skipped; a gap is refused so a log never has holes; a command that has ended takes no new
/// text, and no log grows past [`MAX_LOG_BYTES`].
pub async fn append(
    core: &Core,
    command_id: &str,
    offset: u64,
    text: &str,
    ended: bool,
) -> CoreResult<()> {
    let path = path(core, command_id)
        .ok_or_else(|| CoreError::Invalid(format!("{command_id} is not a command ID")))?;
    if text.len() > MAX_PIECE_BYTES {
        return Err(CoreError::Invalid(format!(
            "a log piece holds at most {MAX_PIECE_BYTES} bytes, not {}",
            text.len()
        )));
    }
    if let Some(cluster) = core.store().backend().cluster() {
        return match cluster
            .append_log(command_id, offset, text, ended, MAX_LOG_BYTES)
            .await?
        {
            LogAppend::Appended | LogAppend::Duplicate => Ok(()),
            LogAppend::Ended => Err(ended_error(command_id)),
            LogAppend::Gap { have } => Err(gap_error(offset, have)),
            LogAppend::TooLarge => Err(too_large_error(command_id)),
        };
    }
    append_file(command_id, &path, offset, text, ended)
}

fn ended_error(command_id: &str) -> CoreError {
    CoreError::Invalid(format!(
        "command {command_id} has ended; its log takes no more text"
    ))
}

fn gap_error(offset: u64, have: u64) -> CoreError {
    CoreError::Invalid(format!("log piece at {offset} leaves a gap after {have}"))
}

fn too_large_error(command_id: &str) -> CoreError {
    CoreError::Invalid(format!(
        "the log of command {command_id} would pass {MAX_LOG_BYTES} bytes; the server keeps no more of it"
    ))
}

fn append_file(
    command_id: &str,
    path: &std::path::Path,
    offset: u64,
    text: &str,
    ended: bool,
) -> CoreResult<()> {
    let io = |e: std::io::Error| CoreError::Io(format!("writing the log of {command_id}: {e}"));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let have = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let end = offset.saturating_add(text.len() as u64);
    if end <= have {
        return Ok(());
    }
    if ended {
        return Err(ended_error(command_id));
    }
    if offset > have {
        return Err(gap_error(offset, have));
    }
    if end > MAX_LOG_BYTES {
        return Err(too_large_error(command_id));
    }
    let skip = usize::try_from(have - offset).unwrap_or(usize::MAX);
    let tail = text.get(skip..).unwrap_or("");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    f.write_all(tail.as_bytes()).map_err(io)
}

/// The end of a command's log (its last `tail` bytes at most, a character cut at the start shown
/// as U+FFFD), when it has one.
pub async fn read_tail(core: &Core, command_id: &str, tail: u64) -> CoreResult<Option<String>> {
    let Some(path) = path(core, command_id) else {
        return Ok(None);
    };
    if let Some(cluster) = core.store().backend().cluster() {
        return Ok(cluster.read_log(command_id, tail).await?);
    }
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        if len > tail {
            file.seek(SeekFrom::Start(len - tail))?;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    })
    .await
    .map_err(|e| CoreError::Io(format!("reading the log of {command_id}: {e}")))?;
    match read {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CoreError::Io(format!(
            "reading the log of {command_id}: {e}"
        ))),
    }
}

/// The whole log of a command, when it has one.
pub async fn read(core: &Core, command_id: &str) -> CoreResult<Option<String>> {
    read_tail(core, command_id, MAX_LOG_BYTES).await
}

fn signature(core: &Core, command_id: &str, expires: i64, user: Option<&str>) -> String {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(core.link_key())
        .expect("hmac takes any key length");
    mac.update(format!("{command_id}\n{expires}").as_bytes());
    if let Some(u) = user {
        mac.update(format!("\n{u}").as_bytes());
    }
    hex::encode(mac.finalize().into_bytes())
}

/// The signed links to the logs of commands, in order: `None` for a command without a log (or
/// while the server does not know its URL). A link handed to an IAM user (`user`: their user ID)
/// names them: it opens only while they may still read the command's stack.
pub async fn urls(
    core: &Core,
    command_ids: &[String],
    user: Option<&str>,
) -> CoreResult<Vec<Option<String>>> {
    let Some(endpoint) = core.endpoint() else {
        return Ok(vec![None; command_ids.len()]);
    };
    let have: HashSet<String> = match core.store().backend().cluster() {
        Some(cluster) => cluster.logs_present(command_ids).await?,
        None => command_ids
            .iter()
            .filter(|id| path(core, id).is_some_and(|p| p.exists()))
            .cloned()
            .collect(),
    };
    let expires = jiff::Timestamp::now().as_second() + LINK_SECONDS;
    let principal = user.map(|u| format!("&Principal={u}")).unwrap_or_default();
    Ok(command_ids
        .iter()
        .map(|id| {
            have.contains(id).then(|| {
                format!(
                    "{endpoint}/logs/{id}?Expires={expires}{principal}&Signature={}",
                    signature(core, id, expires, user)
                )
            })
        })
        .collect())
}

/// Why a log link does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The ID is not a command ID.
    #[error("no such log")]
    NotAnId,
    /// The signature does not match.
    #[error("the link's signature does not match")]
    BadSignature,
    /// The link is older than an hour.
    #[error("the link has expired; describe the command again for a fresh one")]
    Expired,
}

/// Checks a link's signature and expiry.
pub fn open_link(
    core: &Core,
    command_id: &str,
    expires: i64,
    user: Option<&str>,
    sig: &str,
    now: i64,
) -> Result<(), LinkError> {
    path(core, command_id).ok_or(LinkError::NotAnId)?;
    let expected = signature(core, command_id, expires, user);
    if !bool::from(expected.as_bytes().ct_eq(sig.as_bytes())) {
        return Err(LinkError::BadSignature);
    }
    if now > expires {
        return Err(LinkError::Expired);
    }
    Ok(())
}
