//! HTTP and HTTPS downloads verified by sha256 and written atomically (a temporary file beside the
//! destination, renamed over it only when the checksum matches).

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::cmd::redact;
use crate::error::{HostError, Result};

/// How long to wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a single read or write may stall before the download fails (not a total limit:
/// large files may take as long as they need while data keeps arriving).
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// What a successful [`download`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadOutcome {
    /// The sha256 of the content, lowercase hex.
    pub sha256: String,
    /// The number of bytes written.
    pub bytes: u64,
}

/// Downloads `url` (http or https) to `dest`. The content goes to a temporary file in the same
/// directory, is hashed on the way, and replaces `dest` with a rename only when it matches
/// `expected_sha256` (when given); otherwise nothing is written and the error names both sums.
/// A new file gets mode 0644; a replaced file keeps the mode it had.
///
/// This blocks; do not call it from inside an async runtime.
pub fn download(url: &str, dest: &Path, expected_sha256: Option<&str>) -> Result<DownloadOutcome> {
    let shown = redact(url);
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(HostError::invalid(
            "download url",
            format!("{shown} is not an http:// or https:// URL"),
        ));
    }
    let expected = expected_sha256
        .map(|s| {
            let s = s.trim().to_ascii_lowercase();
            if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
                Ok(s)
            } else {
                Err(HostError::invalid(
                    "sha256 checksum",
                    format!("`{}` is not 64 hex digits", s.escape_debug()),
                ))
            }
        })
        .transpose()?;
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if dest.file_name().is_none() {
        return Err(HostError::invalid(
            "download destination",
            format!("{} does not name a file", dest.display()),
        ));
    }

    let http = |e: reqwest::Error| HostError::Http {
        url: shown.clone(),
        // reqwest's messages include the URL; show ours, which has credentials redacted.
        message: redact(&error_chain(&e.without_url())),
    };
    let client = reqwest::blocking::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(IO_TIMEOUT)
        .user_agent(concat!("opsworks-host/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(http)?;
    let mut response = client.get(url).send().map_err(http)?;
    if !response.status().is_success() {
        return Err(HostError::HttpStatus {
            url: shown,
            status: response.status().as_u16(),
        });
    }

    let mut tmp = tempfile::Builder::new()
        .prefix(".opsworks-download-")
        .tempfile_in(dir)
        .map_err(|e| HostError::io("cannot create a temporary file in", dir, e))?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match response.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(HostError::Http {
                    url: shown,
                    message: format!("reading the body: {e}"),
                });
            }
        };
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(|e| HostError::io("cannot write", tmp.path(), e))?;
        bytes += n as u64;
    }
    let sha256 = hex::encode(hasher.finalize());
    if let Some(expected) = expected
        && expected != sha256
    {
        // Dropping `tmp` deletes the temporary file: nothing is left behind.
        return Err(HostError::ChecksumMismatch {
            url: shown,
            expected,
            actual: sha256,
        });
    }
    set_mode(tmp.as_file(), dest, tmp.path())?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| HostError::io("cannot flush", tmp.path(), e))?;
    tmp.persist(dest)
        .map_err(|e| HostError::io("cannot rename the download to", dest, e.error))?;
    Ok(DownloadOutcome { sha256, bytes })
}

/// The sha256 of a file's content, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| HostError::io("cannot open", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(HostError::io("cannot read", path, e)),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Gives the temporary file the mode of the file it replaces, or 0644 (tempfile creates 0600).
fn set_mode(file: &std::fs::File, dest: &Path, tmp_path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dest)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| HostError::io("cannot set the mode of", tmp_path, e))
}

/// An error and its causes on one line (reqwest's top-level message alone is often vague).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_inputs_are_rejected_before_any_request() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f");
        assert!(matches!(
            download("ftp://example.com/x", &dest, None),
            Err(HostError::InvalidInput { .. })
        ));
        assert!(matches!(
            download("http://127.0.0.1:9/x", &dest, Some("abc")),
            Err(HostError::InvalidInput { .. })
        ));
        assert!(!dest.exists());
    }

    #[test]
    fn sha256_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(
            sha256_file(&p).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
