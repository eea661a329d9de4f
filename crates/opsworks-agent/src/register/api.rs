//! The OpsWorks API as `opsworks register` and the preconfig installer call it: the caller's
//! credentials found as the AWS tools find them (environment, then the shared credentials file),
//! and SigV4-signed JSON calls.

use std::path::PathBuf;
use std::time::Duration;

use opsworks_api::sigv4::{RequestParts, sign};
use opsworks_api::{CONTENT_TYPE, TARGET_PREFIX};
use opsworks_env as env;
use serde_json::Value;

/// An access key to sign with.
#[derive(Clone)]
pub struct Credentials {
    /// The access key ID.
    pub access_key_id: String,
    /// The secret (never printed).
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Credentials {
    /// The caller's credentials: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, else the
    /// profile `AWS_PROFILE` (default `default`) of the shared credentials file
    /// (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`). Answers where they came from.
    pub fn resolve() -> Result<(Credentials, String), String> {
        match (var(env::AWS_ACCESS_KEY_ID), var(env::AWS_SECRET_ACCESS_KEY)) {
            (Some(id), Some(secret)) => {
                return Ok((
                    Credentials {
                        access_key_id: id,
                        secret_access_key: secret,
                    },
                    "the environment".into(),
                ));
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(format!(
                    "set both {} and {}, or neither (to use the shared credentials file)",
                    env::AWS_ACCESS_KEY_ID,
                    env::AWS_SECRET_ACCESS_KEY
                ));
            }
            (None, None) => {}
        }
        let file = match var(env::AWS_SHARED_CREDENTIALS_FILE) {
            Some(f) => PathBuf::from(f),
            None => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(".aws/credentials"),
                None => {
                    return Err(format!(
                        "no AWS credentials: set {} and {}, or {}",
                        env::AWS_ACCESS_KEY_ID,
                        env::AWS_SECRET_ACCESS_KEY,
                        env::AWS_SHARED_CREDENTIALS_FILE
                    ));
                }
            },
        };
        let profile = var(env::AWS_PROFILE).unwrap_or_else(|| "default".into());
        let text = std::fs::read_to_string(&file).map_err(|e| {
            format!(
                "no AWS credentials: {} and {} are not set, and {} cannot be read ({e})",
                env::AWS_ACCESS_KEY_ID,
                env::AWS_SECRET_ACCESS_KEY,
                file.display()
            )
        })?;
        let (id, secret) = profile_keys(&text, &profile);
        match (id, secret) {
            (Some(id), Some(secret)) => Ok((
                Credentials {
                    access_key_id: id,
                    secret_access_key: secret,
                },
                format!("profile {profile} of {}", file.display()),
            )),
            _ => Err(format!(
                "no AWS credentials: {} has no aws_access_key_id and aws_secret_access_key in profile [{profile}]",
                file.display()
            )),
        }
    }
}

/// The keys of `[profile]` in a shared credentials file (an INI file).
fn profile_keys(text: &str, profile: &str) -> (Option<String>, Option<String>) {
    let (mut id, mut secret) = (None, None);
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == profile;
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                _ => {}
            }
        }
    }
    (id, secret)
}

/// The region requests are signed for: `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`.
pub fn region() -> String {
    var(env::AWS_REGION)
        .or_else(|| var(env::AWS_DEFAULT_REGION))
        .unwrap_or_else(|| "us-east-1".into())
}

/// How an API call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiFailure {
    /// The endpoint did not answer.
    Unreachable(String),
    /// An AWS error (`ResourceNotFoundException`, ...).
    Aws {
        /// The error code.
        code: String,
        /// Its message.
        message: String,
    },
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiFailure::Unreachable(why) => write!(f, "{why}"),
            ApiFailure::Aws { code, message } => write!(f, "{message} ({code})"),
        }
    }
}

/// A signed client of an OpsWorks endpoint.
#[derive(Debug, Clone)]
pub struct OpsWorks {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    creds: Credentials,
    region: String,
}

impl OpsWorks {
    /// A client of `endpoint` (`http://host:port`) signing with `creds` for `region`.
    pub fn new(endpoint: &str, creds: Credentials, region: String) -> Result<OpsWorks, String> {
        let url = reqwest::Url::parse(endpoint)
            .map_err(|e| format!("the endpoint URL {endpoint:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "the endpoint URL {endpoint:?} must be http:// or https:// with a host"
            ));
        }
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(OpsWorks {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            host,
            creds,
            region,
        })
    }

    /// The access key ID it signs with (for messages; the secret is never shown).
    pub fn access_key_id(&self) -> &str {
        &self.creds.access_key_id
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Calls `operation` with `body`; the answer's JSON, or why not.
    pub async fn call(&self, operation: &str, body: &Value) -> Result<Value, ApiFailure> {
        let target = format!("{TARGET_PREFIX}{operation}");
        self.post(
            "/",
            &[("content-type", CONTENT_TYPE), ("x-amz-target", &target)],
            body.to_string().into_bytes(),
        )
        .await
    }

    /// Adds an agent release to the server (`POST /api/agent-releases`, the root's only).
    pub async fn add_release(
        &self,
        version: &str,
        executable: Vec<u8>,
    ) -> Result<Value, ApiFailure> {
        self.post(
            "/api/agent-releases",
            &[
                ("content-type", "application/octet-stream"),
                ("x-opsworks-agent-version", version),
            ],
            executable,
        )
        .await
    }

    /// A signed POST of `body` to `path` with `extra` headers (all signed).
    async fn post(
        &self,
        path: &str,
        extra: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Value, ApiFailure> {
        let mut headers: Vec<(&str, &str)> = vec![("host", self.host.as_str())];
        headers.extend_from_slice(extra);
        let parts = RequestParts {
            method: "POST",
            path,
            query: "",
            headers: &headers,
            body: &body,
        };
        let (date, auth) = sign(
            &parts,
            &self.creds.access_key_id,
            &self.creds.secret_access_key,
            &self.region,
            jiff::Timestamp::now().as_second(),
        );
        let mut request = self
            .http
            .post(format!("{}{path}", self.endpoint))
            .header("x-amz-date", date)
            .header("authorization", auth);
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let sent = request
            .body(body)
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .map_err(|e| ApiFailure::Unreachable(crate::client::describe(&e)))?;
        let status = sent.status();
        let bytes = sent
            .bytes()
            .await
            .map_err(|e| ApiFailure::Unreachable(crate::client::describe(&e)))?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        let code = value["__type"]
            .as_str()
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
            .unwrap_or_else(|| format!("HTTP {status}"));
        let message = value["message"]
            .as_str()
            .or_else(|| value["Message"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(300).collect());
        Err(ApiFailure::Aws { code, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_of_a_shared_credentials_file() {
        let text = "[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key=sdef\n\n# note\n[ops]\naws_access_key_id=AKIDOPS\n aws_secret_access_key = sops \n";
        assert_eq!(
            profile_keys(text, "default"),
            (Some("AKIDDEF".into()), Some("sdef".into()))
        );
        assert_eq!(
            profile_keys(text, "ops"),
            (Some("AKIDOPS".into()), Some("sops".into()))
        );
        assert_eq!(profile_keys(text, "none"), (None, None));
    }

    #[test]
    fn credentials_never_print_their_secret() {
        let c = Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: "hush".into(),
        };
        assert!(!format!("{c:?}").contains("hush"));
    }
}
