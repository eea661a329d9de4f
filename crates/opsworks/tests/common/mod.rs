//! What the tests of several servers on one PostgreSQL share: the real `opsworks server` binary
//! as a child process ([`Node`]), SigV4-signed calls to its API and its agent protocol, and a
//! PostgreSQL database of the test's own.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opsworks_api::sigv4::{self, RequestParts};
use serde_json::{Value, json};

pub const AKID: &str = "AKIDCLUSTERTEST";
pub const SECRET: &str = "cluster-test-secret";
pub const OPSWORKS: &str = env!("CARGO_BIN_EXE_opsworks");

static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The `opsworks` binary servers run as: the cargo-built one, copied to the disk when it lives
/// where local instances cannot see it (their `/tmp`, `/run` and `/dev` are their own, and the
/// server runs its agents as its own executable).
pub fn binary() -> &'static Path {
    BINARY.get_or_init(|| {
        let built = std::fs::canonicalize(OPSWORKS).unwrap_or_else(|_| PathBuf::from(OPSWORKS));
        if !["/tmp/", "/run/", "/dev/"]
            .iter()
            .any(|p| built.starts_with(p))
        {
            return built;
        }
        let dir = PathBuf::from(format!("/var/tmp/opsworks-test-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("opsworks");
        std::fs::copy(&built, &copy).unwrap();
        copy
    })
}

/// Removes the copy [`binary`] made, if any.
pub fn remove_binary_copy() {
    if let Some(b) = BINARY.get()
        && b.to_string_lossy()
            .starts_with("/var/tmp/opsworks-test-bin-")
        && let Some(dir) = b.parent()
    {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// One server process; killed (SIGKILL) when dropped.
pub struct Node {
    pub child: Option<Child>,
    pub endpoint: String,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub port: u16,
    pub http: reqwest::Client,
}

/// A port free now on loopback (a restarted server takes its old one back).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Node {
    /// `opsworks server` on `port` (0: a free one) with data dir `dir` and `--database-url url`,
    /// the root key from the environment, and `extra` flags; waits for `listening on`.
    pub fn start(dir: &Path, url: &str, port: u16, extra: &[&str]) -> Node {
        Self::try_start(dir, url, port, extra).unwrap_or_else(|log| panic!("{log}"))
    }

    /// As [`start`](Self::start); `Err` with the server's output when it exits instead.
    pub fn try_start(dir: &Path, url: &str, port: u16, extra: &[&str]) -> Result<Node, String> {
        std::fs::create_dir_all(dir).unwrap();
        let port = if port == 0 { free_port() } else { port };
        let log = dir.with_extension("log");
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = Command::new(binary())
            .args(["server", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir)
            .args(["--database-url", url])
            .args(extra)
            .env("OPSWORKS_ROOT_ACCESS_KEY_ID", AKID)
            .env("OPSWORKS_ROOT_SECRET_ACCESS_KEY", SECRET)
            .env("OPSWORKS_LOG", "info,sqlx=warn")
            .env_remove("OPSWORKS_DATABASE_URL")
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("spawn opsworks server");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let endpoint = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(e) = line.strip_prefix("listening on ") {
                        break e.trim().to_string();
                    }
                }
                _ => {
                    let _ = child.wait();
                    return Err(format!(
                        "the server exited before listening:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    ));
                }
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Ok(Node {
            child: Some(child),
            endpoint,
            dir: dir.to_path_buf(),
            log,
            port,
            http: reqwest::Client::new(),
        })
    }

    /// A handle on a server started elsewhere (for a task of its own): calls only.
    pub fn at(endpoint: &str, http: &reqwest::Client) -> Node {
        Node {
            child: None,
            endpoint: endpoint.to_string(),
            dir: PathBuf::new(),
            log: PathBuf::new(),
            port: 0,
            http: http.clone(),
        }
    }

    /// SIGKILL, as a crash: no lease released, nothing flushed.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, the way a service manager stops it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    /// What the server logged so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        self.endpoint.trim_start_matches("http://").to_string()
    }

    /// A signed OpsWorks API call as the root user: (HTTP status, JSON body).
    pub async fn call(&self, operation: &str, body: Value) -> (u16, Value) {
        let body = body.to_string();
        let host = self.host();
        let target = format!("OpsWorks_20130218.{operation}");
        let headers = [
            ("host", host.as_str()),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let parts = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        };
        let (date, auth) = sigv4::sign(
            &parts,
            AKID,
            SECRET,
            "us-east-1",
            jiff::Timestamp::now().as_second(),
        );
        let resp = self
            .http
            .post(format!("{}/", self.endpoint))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", target)
            .header("x-amz-date", date)
            .header("authorization", auth)
            .body(body)
            .timeout(Duration::from_secs(60))
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return (0, json!({"error": e.to_string()})),
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(json!({"raw": text})),
        )
    }

    /// [`call`](Self::call), which must succeed.
    pub async fn ok(&self, operation: &str, body: Value) -> Value {
        let (status, v) = self.call(operation, body.clone()).await;
        assert_eq!(status, 200, "{operation} {body} on {}: {v}", self.endpoint);
        v
    }

    /// A signed agent-protocol call with an instance's key: (HTTP status, JSON body).
    pub async fn agent(
        &self,
        akid: &str,
        secret: &str,
        name: &str,
        body: Value,
        timeout: Duration,
    ) -> (u16, Value) {
        let body = body.to_string();
        let host = self.host();
        let path = format!("/agent/v1/{name}");
        let headers = [
            ("host", host.as_str()),
            ("content-type", "application/json"),
        ];
        let parts = RequestParts {
            method: "POST",
            path: &path,
            query: "",
            headers: &headers,
            body: body.as_bytes(),
        };
        let (date, auth) = sigv4::sign(
            &parts,
            akid,
            secret,
            "us-east-1",
            jiff::Timestamp::now().as_second(),
        );
        let resp = self
            .http
            .post(format!("{}{path}", self.endpoint))
            .header("content-type", "application/json")
            .header("x-amz-date", date)
            .header("authorization", auth)
            .body(body)
            .timeout(timeout)
            .send()
            .await;
        match resp {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                (
                    status,
                    serde_json::from_str(&text).unwrap_or(json!({"raw": text})),
                )
            }
            Err(e) => (0, json!({"error": e.to_string()})),
        }
    }

    /// A GET signed with the root key (the events and metrics endpoints).
    pub fn signed_get(&self, path_and_query: &str) -> reqwest::RequestBuilder {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let host = self.host();
        let headers = [("host", host.as_str())];
        let parts = RequestParts {
            method: "GET",
            path,
            query,
            headers: &headers,
            body: b"",
        };
        let (date, auth) = sigv4::sign(
            &parts,
            AKID,
            SECRET,
            "us-east-1",
            jiff::Timestamp::now().as_second(),
        );
        self.http
            .get(format!("{}{path_and_query}", self.endpoint))
            .header("x-amz-date", date)
            .header("authorization", auth)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits up to `secs` for `cond`; how long it took, or a failure naming `what`.
pub async fn within<F, Fut>(secs: u64, what: &str, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if cond().await {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within {secs} s");
}

/// The count of `needle` in the server's log.
pub fn count(node: &Node, needle: &str) -> usize {
    node.output().matches(needle).count()
}

/// Copies `from`'s master key into the data dir `to` (made if absent), as an operator adding a
/// server to a database does.
pub fn share_master_key(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    std::fs::copy(from.join("master.key"), to.join("master.key")).unwrap();
    std::fs::set_permissions(
        to.join("master.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

pub fn stack_request(name: &str) -> Value {
    json!({
        "Name": name,
        "Region": "us-east-1",
        "ServiceRoleArn": "arn:aws:iam::123456789012:role/aws-opsworks-service-role",
        "DefaultInstanceProfileArn": "arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role",
    })
}

/// A stack with a custom layer through `node`: (stack ID, layer ID).
pub async fn stack_and_layer(node: &Node, name: &str) -> (String, String) {
    let stack = node.ok("CreateStack", stack_request(name)).await["StackId"]
        .as_str()
        .unwrap()
        .to_string();
    let layer = node
        .ok(
            "CreateLayer",
            json!({"StackId": stack, "Type": "custom", "Name": "Workers", "Shortname": "workers"}),
        )
        .await["LayerId"]
        .as_str()
        .unwrap()
        .to_string();
    (stack, layer)
}
