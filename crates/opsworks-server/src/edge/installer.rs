//! What machines download to join a stack: the installer tarball `AgentInstallerUrl` names
//! (`GET /agent/installer`, whose `opsworks-agent-installer/boot-registration` is what
//! `aws opsworks register` runs over SSH with a preconfig file), and the agent executables
//! (`GET /agent/releases/<sha256>`). Both are public, as the original's S3 buckets were: the
//! executable's SHA-256 reaches the machine over a signed channel (the agent protocol) or inside
//! the installer, and is checked before the file runs.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use opsworks_protocol::{INSTALLER_PATH, RELEASES_PATH};

use crate::core::Core;
use crate::core::agent_releases::{self, own_architecture};

/// The installer's routes.
pub fn routes() -> Router<Core> {
    Router::new()
        .route(INSTALLER_PATH, get(installer))
        .route(&format!("{RELEASES_PATH}/{{sha256}}"), get(release))
}

/// The directory inside the tarball, as the original's.
const TOP: &str = "opsworks-agent-installer";

fn plain(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message + "\n",
    )
        .into_response()
}

/// `GET /agent/installer`: a gzipped tarball with `boot-registration`, which downloads this
/// server's own agent, checks it and runs `opsworks agent-install --preconfig`.
async fn installer(State(core): State<Core>) -> Response {
    let Some(endpoint) = core.endpoint().map(str::to_string) else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is starting".into(),
        );
    };
    let Some(own) = core.agent_releases().own().await.cloned() else {
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server cannot hand out its own agent (its executable is unreadable); see its log"
                .into(),
        );
    };
    let script = boot_registration(&endpoint, &own.version, &own.sha256, own_architecture());
    match tarball(&script) {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/gzip"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"opsworks-agent-installer.tgz\"",
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("building the installer: {e}"),
        ),
    }
}

/// `GET /agent/releases/<sha256>`: an agent executable this server offers, streamed.
async fn release(State(core): State<Core>, Path(sha256): Path<String>) -> Response {
    let valid = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !valid {
        return plain(
            StatusCode::BAD_REQUEST,
            format!("{sha256:?} is not a SHA-256 in lowercase hex"),
        );
    }
    let file = match agent_releases::file_of(&core, &sha256).await {
        Ok(Some(f)) => f,
        Ok(None) => {
            return plain(
                StatusCode::NOT_FOUND,
                format!("this server offers no agent release with SHA-256 {sha256}"),
            );
        }
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let opened = match tokio::fs::File::open(&file).await {
        Ok(f) => f,
        Err(e) => {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading the release: {e}"),
            );
        }
    };
    let len = opened.metadata().await.map(|m| m.len()).ok();
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(opened));
    let mut response = ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response();
    if let Some(len) = len {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    }
    response
}

/// The gzipped tarball holding `boot-registration` (mode 0755) and a README.
fn tarball(script: &str) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut add = |name: &str, mode: u32, body: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(mode);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, format!("{TOP}/{name}"), body)
    };
    add("boot-registration", 0o755, script.as_bytes())?;
    add(
        "README",
        0o644,
        b"The OpsWorks agent installer: boot-registration installs the agent from this server\n\
          and registers the machine, reading the preconfig file beside it (written by\n\
          `aws opsworks register`). `opsworks register` does the same without this tarball.\n",
    )?;
    tar.into_inner()?.finish()
}

/// Single-quotes a value for `sh`.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The `boot-registration` script: refuses a machine of another architecture, downloads the
/// agent, checks its SHA-256 and hands over to `opsworks agent-install --preconfig`, which
/// registers the machine and installs the agent (and removes what it wrote when a step fails).
pub fn boot_registration(endpoint: &str, version: &str, sha256: &str, arch: &str) -> String {
    format!(
        r#"#!/bin/sh
# Written by the OpsWorks server at {endpoint}: installs its agent and registers this machine.
set -eu
server={server}
version={version}
sha256={sha256}
arch={arch}
here=$(cd "$(dirname "$0")" && pwd)
say() {{ echo "boot-registration: $*"; }}
fail() {{ echo "boot-registration: $*" >&2; exit 1; }}
[ "$(id -u)" = 0 ] || fail "run me as root (aws opsworks register runs me with sudo)"
[ -f "$here/preconfig" ] || fail "$here/preconfig is missing: it is written by aws opsworks register"
[ "$(uname -s)" = Linux ] || fail "this machine runs $(uname -s); the agent runs on Linux only"
machine=$(uname -m)
[ "$machine" = "$arch" ] || fail "this machine is $machine, and this server hands out its agent for $arch only; register it with an opsworks built for $machine"
command -v curl >/dev/null 2>&1 || fail "curl is needed to download the agent"
command -v sha256sum >/dev/null 2>&1 || fail "sha256sum is needed to check the agent"
say "downloading the agent $version from $server"
curl -fsS --retry 3 -o "$here/opsworks" "$server/agent/releases/$sha256" || fail "downloading the agent from $server failed"
echo "$sha256  $here/opsworks" | sha256sum -c --status - || {{ rm -f "$here/opsworks"; fail "the downloaded agent's SHA-256 is not $sha256"; }}
chmod 0755 "$here/opsworks"
say "installing the agent and registering this machine"
exec "$here/opsworks" agent-install --preconfig "$here/preconfig"
"#,
        server = quoted(endpoint),
        version = quoted(version),
        sha256 = quoted(sha256),
        arch = quoted(arch),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn the_tarball_holds_an_executable_boot_registration() {
        let script = boot_registration("http://10.0.0.1:9730", "0.1.0", &"a".repeat(64), "x86_64");
        assert!(script.contains("server='http://10.0.0.1:9730'"), "{script}");
        let bytes = tarball(&script).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        let mut found = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().display().to_string();
            let mode = entry.header().mode().unwrap();
            let mut body = String::new();
            entry.read_to_string(&mut body).unwrap();
            found.push((path, mode, body));
        }
        assert_eq!(found[0].0, "opsworks-agent-installer/boot-registration");
        assert_eq!(found[0].1, 0o755);
        assert_eq!(found[0].2, script);
        assert_eq!(found[1].0, "opsworks-agent-installer/README");
    }

    #[test]
    fn boot_registration_is_valid_sh_and_refuses_without_a_preconfig() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boot-registration");
        std::fs::write(
            &path,
            boot_registration(
                "http://127.0.0.1:1",
                "0.1.0",
                &"b".repeat(64),
                own_architecture(),
            ),
        )
        .unwrap();
        let syntax = std::process::Command::new("sh")
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap();
        assert!(syntax.status.success(), "{syntax:?}");
        let run = std::process::Command::new("sh")
            .arg(&path)
            .output()
            .unwrap();
        assert!(!run.status.success());
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(
            err.contains("preconfig is missing") || err.contains("run me as root"),
            "{err}"
        );
    }
}
