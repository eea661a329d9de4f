//! The agent's side of the protocol: SigV4-signed JSON POSTs to the server, with capped, jittered
//! exponential backoff for the calls that must eventually get through.
//!
//! Several servers on one database are one control plane: the client knows every server's URL
//! (given on the command line, and learned from the hello and heartbeat answers) and talks to one
//! at a time; when that one stops answering (no connection, a timeout, a 5xx), the next call goes
//! to the next. Every call is idempotent on every server, so nothing is lost or done twice.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opsworks_api::sigv4::{RequestParts, sign};
use opsworks_protocol::{PREFIX, ProtocolError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{AgentError, Result};

/// The region the agent signs for (the server checks only that it is well formed).
const REGION: &str = "us-east-1";
/// The first retry delay.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// The longest retry delay: short enough that a restarted server sees its agents back within
/// seconds, long enough that a fleet of agents does not hammer a server that is down.
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// How long an ordinary call (not a poll) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The instance's own access key, as the server issued it.
#[derive(Clone, serde::Deserialize)]
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
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// Reads `{"access_key_id": ..., "secret_access_key": ...}` from `path`.
    pub fn load(path: &Path) -> Result<Credentials> {
        let text =
            std::fs::read_to_string(path).map_err(|e| AgentError::io("cannot read", path, e))?;
        let creds: Credentials = serde_json::from_str(&text)
            .map_err(|e| AgentError::json(format!("credentials file {}", path.display()), e))?;
        if creds.access_key_id.is_empty() || creds.secret_access_key.is_empty() {
            return Err(AgentError::invalid(
                "credentials",
                format!(
                    "{} needs a non-empty access_key_id and secret_access_key",
                    path.display()
                ),
            ));
        }
        Ok(creds)
    }
}

/// A server the client may talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    /// The server's base URL without a trailing slash (`http://10.0.0.1:8080`).
    base: String,
    /// The `host` header value the signature covers.
    host: String,
}

impl Endpoint {
    fn parse(server: &str) -> Result<Endpoint> {
        let url = reqwest::Url::parse(server.trim())
            .map_err(|e| AgentError::invalid("server URL", format!("`{server}`: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(AgentError::invalid(
                "server URL",
                format!("`{server}` is not an http:// URL"),
            ));
        }
        let Some(host) = url.host_str() else {
            return Err(AgentError::invalid(
                "server URL",
                format!("`{server}` has no host"),
            ));
        };
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        Ok(Endpoint {
            base: server.trim().trim_end_matches('/').to_string(),
            host,
        })
    }
}

/// The servers, and the one in use.
#[derive(Debug)]
struct Servers {
    list: Mutex<Vec<Endpoint>>,
    current: AtomicUsize,
}

/// A signed client of the servers of one control plane.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    servers: Arc<Servers>,
    creds: Credentials,
}

impl Client {
    /// A client of the server at `server` (`http://host:port`, an optional path prefix allowed).
    pub fn new(server: &str, creds: Credentials) -> Result<Client> {
        Self::with_servers(&[server.to_string()], creds)
    }

    /// A client of several servers sharing one database, the first in use first.
    pub fn with_servers(servers: &[String], creds: Credentials) -> Result<Client> {
        let list = servers
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| Endpoint::parse(s))
            .collect::<Result<Vec<_>>>()?;
        if list.is_empty() {
            return Err(AgentError::invalid(
                "server URL",
                "no server given".to_string(),
            ));
        }
        // One connection at rest: the long poll's. A call made while the poll waits (metrics)
        // opens a second, closed again soon after, so a server holding ten thousand agents
        // holds about ten thousand connections, not twice as many.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| AgentError::invalid("HTTP client", e.to_string()))?;
        Ok(Client {
            http,
            servers: Arc::new(Servers {
                list: Mutex::new(list),
                current: AtomicUsize::new(0),
            }),
            creds,
        })
    }

    fn list(&self) -> std::sync::MutexGuard<'_, Vec<Endpoint>> {
        self.servers.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The server in use, and its place in the list.
    fn endpoint(&self) -> (usize, Endpoint) {
        let list = self.list();
        let i = self.servers.current.load(Ordering::SeqCst) % list.len();
        (i, list[i].clone())
    }

    /// The URL of the server in use.
    pub fn server(&self) -> String {
        self.endpoint().1.base
    }

    /// Every server known, in order.
    pub fn servers(&self) -> Vec<String> {
        self.list().iter().map(|e| e.base.clone()).collect()
    }

    /// Moves to the next server after the one at `failed` stopped answering (unless another call
    /// moved already).
    fn failed(&self, failed: usize, why: &str) {
        let list = self.list();
        if list.len() < 2 {
            return;
        }
        let next = (failed + 1) % list.len();
        if self
            .servers
            .current
            .compare_exchange(failed, next, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            tracing::warn!(from = %list[failed].base, to = %list[next].base, "the server stopped answering ({why}); moving to another");
        }
    }

    /// Adds the servers a server named (its cluster's); the one in use stays in use.
    pub fn learn(&self, servers: &[String]) {
        let mut list = self.list();
        let current = list[self.servers.current.load(Ordering::SeqCst) % list.len()].clone();
        let mut added = Vec::new();
        for s in servers {
            match Endpoint::parse(s) {
                Ok(e) if !list.contains(&e) => {
                    added.push(e.base.clone());
                    list.push(e);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!("ignoring a server URL: {e}"),
            }
        }
        if !added.is_empty() {
            let i = list.iter().position(|e| *e == current).unwrap_or(0);
            self.servers.current.store(i, Ordering::SeqCst);
            tracing::info!(servers = ?added, "learned the other servers of the control plane");
        }
    }

    /// One signed call, no retry. `timeout` bounds the whole exchange.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        name: &'static str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp> {
        let (index, server) = self.endpoint();
        let result = self.call_at(&server, name, body, timeout).await;
        if let Err(AgentError::Unavailable(why)) = &result {
            self.failed(index, why);
        }
        result
    }

    async fn call_at<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        server: &Endpoint,
        name: &'static str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp> {
        let body =
            serde_json::to_vec(body).map_err(|e| AgentError::json(format!("{name} request"), e))?;
        let url = format!("{}{PREFIX}/{name}", server.base);
        // Sign the path exactly as it goes on the wire, prefix of the base URL included.
        let path = reqwest::Url::parse(&url)
            .map(|u| u.path().to_string())
            .unwrap_or_else(|_| format!("{PREFIX}/{name}"));
        let headers = [
            ("host", server.host.as_str()),
            ("content-type", "application/json"),
        ];
        let parts = RequestParts {
            method: "POST",
            path: &path,
            query: "",
            headers: &headers,
            body: &body,
        };
        let now = jiff::Timestamp::now().as_second();
        let (amz_date, auth) = sign(
            &parts,
            &self.creds.access_key_id,
            &self.creds.secret_access_key,
            REGION,
            now,
        );
        let sent = self
            .http
            .post(&url)
            .header("host", &server.host)
            .header("content-type", "application/json")
            .header("x-amz-date", amz_date)
            .header("authorization", auth)
            .body(body)
            .timeout(timeout)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            // Connection refused, reset, timed out: the server is away or restarting.
            Err(e) => {
                return Err(AgentError::Unavailable(format!(
                    "{name}: {}",
                    error_chain(&e)
                )));
            }
        };
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| {
            AgentError::Unavailable(format!("{name}: reading the answer: {}", error_chain(&e)))
        })?;
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(AgentError::Unavailable(format!("{name}: HTTP {status}")));
        }
        if !status.is_success() {
            let (code, message) = match serde_json::from_slice::<ProtocolError>(&bytes) {
                Ok(e) => (e.code, e.message),
                Err(_) => (
                    "http".to_string(),
                    String::from_utf8_lossy(&bytes).chars().take(500).collect(),
                ),
            };
            return Err(AgentError::Refused {
                call: name,
                status: status.as_u16(),
                code,
                message,
            });
        }
        // An empty body answers calls whose reply carries nothing.
        let bytes = if bytes.is_empty() {
            &b"null"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(bytes).map_err(|e| AgentError::json(format!("{name} answer"), e))
    }

    /// Downloads `path` (a release on the server, no signature needed) to `dest`, checking its
    /// size and SHA-256 as it arrives; a file that does not match is removed and refused.
    /// A server that does not answer is left for the next, as for calls.
    pub async fn download(&self, path: &str, dest: &Path, sha256: &str, size: u64) -> Result<()> {
        let (index, server) = self.endpoint();
        let result = self.download_from(&server, path, dest, sha256, size).await;
        if let Err(AgentError::Unavailable(why)) = &result {
            self.failed(index, why);
        }
        result
    }

    async fn download_from(
        &self,
        server: &Endpoint,
        path: &str,
        dest: &Path,
        sha256: &str,
        size: u64,
    ) -> Result<()> {
        use sha2::Digest as _;
        use std::io::Write as _;
        let url = format!("{}{path}", server.base);
        let unavailable = |e: &reqwest::Error| {
            AgentError::Unavailable(format!("download {url}: {}", error_chain(e)))
        };
        let mut response = self
            .http
            .get(&url)
            .timeout(Duration::from_secs(600))
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        if !response.status().is_success() {
            return Err(AgentError::Unavailable(format!(
                "download {url}: HTTP {}",
                response.status()
            )));
        }
        let mut file =
            std::fs::File::create(dest).map_err(|e| AgentError::io("cannot create", dest, e))?;
        let mut hasher = sha2::Sha256::new();
        let mut got = 0u64;
        while let Some(chunk) = response.chunk().await.map_err(|e| unavailable(&e))? {
            got += chunk.len() as u64;
            if got > size {
                break;
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .map_err(|e| AgentError::io("cannot write", dest, e))?;
        }
        let actual = hex::encode(hasher.finalize());
        if got != size || actual != sha256 {
            let _ = std::fs::remove_file(dest);
            return Err(AgentError::invalid(
                "agent release",
                format!(
                    "{url} is not the release announced ({got} bytes with SHA-256 {actual}; expected {size} bytes with SHA-256 {sha256})"
                ),
            ));
        }
        file.sync_all()
            .map_err(|e| AgentError::io("cannot write", dest, e))
    }

    /// [`Client::call`] with the ordinary timeout, retried on transient failures up to
    /// `attempts` times (`None`: until it gets through). A refusal is returned at once.
    pub async fn call_retrying<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        name: &'static str,
        body: &Req,
        attempts: Option<u32>,
    ) -> Result<Resp> {
        let mut backoff = Backoff::default();
        let mut tried = 0u32;
        loop {
            match self.call(name, body, CALL_TIMEOUT).await {
                Err(e) if e.is_transient() => {
                    tried += 1;
                    if attempts.is_some_and(|n| tried >= n) {
                        return Err(e);
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(call = name, error = %e, retry_in_ms = delay.as_millis() as u64, "server call failed");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }
}

/// A reqwest error with its causes, on one line.
pub fn describe(e: &reqwest::Error) -> String {
    error_chain(e)
}

/// The error and its sources, one line (reqwest's own message hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Exponential backoff from [`BACKOFF_START`] to [`BACKOFF_CAP`] with jitter (each delay drawn
/// from the upper half of the current step, so agents that lost the server together spread out).
#[derive(Debug)]
pub struct Backoff {
    step: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            step: BACKOFF_START,
        }
    }
}

impl Backoff {
    /// The next delay to wait.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(BACKOFF_CAP);
        let half = step / 2;
        let jitter = rand::random_range(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter)
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.step = BACKOFF_START;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_and_stays_there() {
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..12).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= BACKOFF_START);
        assert!(delays.iter().all(|d| *d <= BACKOFF_CAP));
        assert!(delays[11] >= BACKOFF_CAP / 2);
        b.reset();
        assert!(b.next_delay() <= BACKOFF_START);
    }

    #[test]
    fn server_urls_are_checked() {
        let creds = Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: "topsecret".into(),
        };
        assert!(Client::new("ftp://x", creds.clone()).is_err());
        assert!(Client::new("not a url", creds.clone()).is_err());
        let c = Client::new("http://127.0.0.1:8080/", creds.clone()).unwrap();
        let (_, e) = c.endpoint();
        assert_eq!(e.host, "127.0.0.1:8080");
        assert_eq!(e.base, "http://127.0.0.1:8080");
        assert!(!format!("{creds:?}").contains("topsecret"));
        assert!(Client::with_servers(&[], creds.clone()).is_err());
        assert!(Client::with_servers(&["http://a:1".into(), "nope".into()], creds).is_err());
    }

    #[test]
    fn a_failed_server_hands_over_to_the_next_and_learned_ones_join() {
        let creds = Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: "s".into(),
        };
        let c = Client::with_servers(&["http://a:1".into(), "http://b:2/".into()], creds).unwrap();
        assert_eq!(c.server(), "http://a:1");
        c.failed(0, "refused");
        assert_eq!(c.server(), "http://b:2");
        // A second call that failed on the old server does not move it on again.
        c.failed(0, "refused");
        assert_eq!(c.server(), "http://b:2");
        c.learn(&["http://b:2".into(), "http://c:3".into(), "bad url".into()]);
        assert_eq!(c.servers(), ["http://a:1", "http://b:2", "http://c:3"]);
        assert_eq!(c.server(), "http://b:2", "the server in use stays in use");
        c.failed(1, "timeout");
        assert_eq!(c.server(), "http://c:3");
        c.failed(2, "timeout");
        assert_eq!(c.server(), "http://a:1");
    }
}
