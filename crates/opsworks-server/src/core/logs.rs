//! Command logs: the files agents stream into (`DIR/logs/<command id>.log`), and the signed,
//! hour-long links (`LogUrl`) that serve them, as the original's presigned S3 links did.

use std::io::Write as _;
use std::path::PathBuf;

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

/// The file holding a command's log, for IDs only (anything else names no file).
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
pub fn append(
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
    let io = |e: std::io::Error| CoreError::Io(format!("writing the log of {command_id}: {e}"));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let have = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let end = offset.saturating_add(text.len() as u64);
    if end <= have {
        return Ok(());
    }
    if ended {
        return Err(CoreError::Invalid(format!(
            "command {command_id} has ended; its log takes no more text"
        )));
    }
    if offset > have {
        return Err(CoreError::Invalid(format!(
            "log piece at {offset} leaves a gap after {have}"
        )));
    }
    if end > MAX_LOG_BYTES {
        return Err(CoreError::Invalid(format!(
            "the log of command {command_id} would pass {MAX_LOG_BYTES} bytes; the server keeps no more of it"
        )));
    }
    let skip = usize::try_from(have - offset).unwrap_or(usize::MAX);
    let tail = text.get(skip..).unwrap_or("");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io)?;
    f.write_all(tail.as_bytes()).map_err(io)
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

/// The signed link to a command's log, when the command has a log and the server knows its URL.
/// A link handed to an IAM user (`user`: their user ID) names them: it opens only while they
/// may still read the command's stack.
pub fn url(core: &Core, command_id: &str, user: Option<&str>) -> Option<String> {
    let endpoint = core.endpoint()?;
    if !path(core, command_id)?.exists() {
        return None;
    }
    let expires = jiff::Timestamp::now().as_second() + LINK_SECONDS;
    let principal = user.map(|u| format!("&Principal={u}")).unwrap_or_default();
    Some(format!(
        "{endpoint}/logs/{command_id}?Expires={expires}{principal}&Signature={}",
        signature(core, command_id, expires, user)
    ))
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

/// Checks a link's signature and expiry; returns the log's path.
pub fn open_link(
    core: &Core,
    command_id: &str,
    expires: i64,
    user: Option<&str>,
    sig: &str,
    now: i64,
) -> Result<PathBuf, LinkError> {
    let path = path(core, command_id).ok_or(LinkError::NotAnId)?;
    let expected = signature(core, command_id, expires, user);
    if !bool::from(expected.as_bytes().ct_eq(sig.as_bytes())) {
        return Err(LinkError::BadSignature);
    }
    if now > expires {
        return Err(LinkError::Expired);
    }
    Ok(path)
}
