//! The test harness of the agent's end-to-end tests, shared with the `opsworks` binary's own
//! agent test: a small server speaking the server side of the agent protocol over loopback HTTP
//! (SigV4 verified, metrics recorded), an agent on its own runtime, and a scratch environment
//! with a stand-in `converge` script and a git cookbook repository.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use opsworks_agent::AgentArgs;
use opsworks_agent::cli::{AgentCli, run_cli_to};
use opsworks_protocol::{
    Ack, AgentCommand, Completion, Heartbeat, Hello, HelloReply, LogChunk, MetricSample,
    MetricsBatch, PollReply, PollRequest, ProtocolError, SourceSpec,
};
use serde_json::json;

pub const AKID: &str = "AKIDAGENTTEST";
pub const SECRET: &str = "agent-test-secret";

// ---------------------------------------------------------------- the test server

#[derive(Default)]
pub struct Srv {
    pub pending: Vec<AgentCommand>,
    pub hellos: u32,
    pub heartbeats: u32,
    pub acks: Vec<String>,
    pub logs: HashMap<String, String>,
    pub completions: Vec<Completion>,
    /// Every metric sample received, in arrival order (duplicates kept, to be seen).
    pub metrics: Vec<MetricSample>,
    /// The sampling interval the hello answer asks for (the agent's default when `None`).
    pub metrics_seconds: Option<u64>,
    /// The servers the hello answer names (the control plane's, several on one database).
    pub peers: Vec<String>,
    /// Calls answered, by the port of the server that answered.
    pub answered_by: HashMap<u16, u32>,
}

#[derive(Default)]
pub struct Shared {
    pub srv: Mutex<Srv>,
    pub notify: tokio::sync::Notify,
    /// Files served at `/files/<name>` (archives for the agent to download).
    pub files: Mutex<HashMap<String, Vec<u8>>>,
}

impl Shared {
    /// Queues commands for the next poll, all in one batch.
    pub fn push(&self, cmds: Vec<AgentCommand>) {
        self.srv.lock().unwrap().pending.extend(cmds);
        self.notify.notify_one();
    }

    pub fn completion(&self, id: &str) -> Option<Completion> {
        self.srv
            .lock()
            .unwrap()
            .completions
            .iter()
            .rev()
            .find(|c| c.command_id == id)
            .cloned()
    }

    pub fn completions_of(&self, id: &str) -> usize {
        self.srv
            .lock()
            .unwrap()
            .completions
            .iter()
            .filter(|c| c.command_id == id)
            .count()
    }

    pub fn log(&self, id: &str) -> String {
        self.srv
            .lock()
            .unwrap()
            .logs
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    pub fn acks(&self) -> Vec<String> {
        self.srv.lock().unwrap().acks.clone()
    }
}

pub fn refuse(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        axum::Json(ProtocolError {
            code: code.into(),
            message,
        }),
    )
        .into_response()
}

pub async fn call(
    State(shared): State<Arc<Shared>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(port) = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.rsplit(':').next())
        .and_then(|p| p.parse::<u16>().ok())
    {
        *shared
            .srv
            .lock()
            .unwrap()
            .answered_by
            .entry(port)
            .or_default() += 1;
    }
    // Check the signature exactly as the server's verifier does.
    let pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let path = format!("/agent/v1/{name}");
    let parts = opsworks_api::sigv4::RequestParts {
        method: "POST",
        path: &path,
        query: "",
        headers: &refs,
        body: &body,
    };
    let now = jiff::Timestamp::now().as_second();
    if let Err(e) =
        opsworks_api::sigv4::verify(&parts, now, |k| (k == AKID).then(|| SECRET.to_string()))
    {
        return refuse(StatusCode::FORBIDDEN, "forbidden", format!("{e:?}"));
    }
    match name.as_str() {
        "hello" => {
            let _: Hello = serde_json::from_slice(&body).unwrap();
            let mut srv = shared.srv.lock().unwrap();
            srv.hellos += 1;
            axum::Json(HelloReply {
                stack_id: "stack-1".into(),
                heartbeat_seconds: 1,
                poll_seconds: 1,
                metrics_seconds: srv.metrics_seconds,
                servers: srv.peers.clone(),
                agent_release: None,
            })
            .into_response()
        }
        "heartbeat" => {
            let _: Heartbeat = serde_json::from_slice(&body).unwrap();
            shared.srv.lock().unwrap().heartbeats += 1;
            axum::Json(json!({})).into_response()
        }
        "poll" => {
            let req: PollRequest = serde_json::from_slice(&body).unwrap();
            let deadline =
                tokio::time::Instant::now() + Duration::from_secs(req.wait_seconds.min(2));
            loop {
                {
                    let mut srv = shared.srv.lock().unwrap();
                    if !srv.pending.is_empty() {
                        let commands = std::mem::take(&mut srv.pending);
                        return axum::Json(PollReply {
                            commands,
                            ..PollReply::default()
                        })
                        .into_response();
                    }
                }
                if tokio::time::timeout_at(deadline, shared.notify.notified())
                    .await
                    .is_err()
                {
                    return axum::Json(PollReply::default()).into_response();
                }
            }
        }
        "ack" => {
            let ack: Ack = serde_json::from_slice(&body).unwrap();
            let mut srv = shared.srv.lock().unwrap();
            if !srv.acks.contains(&ack.command_id) {
                srv.acks.push(ack.command_id);
            }
            axum::Json(json!({})).into_response()
        }
        "log" => {
            let chunk: LogChunk = serde_json::from_slice(&body).unwrap();
            let mut srv = shared.srv.lock().unwrap();
            let have = srv.logs.entry(chunk.command_id).or_default();
            let (start, len) = (chunk.offset as usize, have.len());
            if start > len {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    format!("gap: offset {start}, have {len}"),
                );
            }
            // Keep only what is new: a piece the server already has changes nothing.
            if start + chunk.text.len() > len {
                have.push_str(&chunk.text[len - start..]);
            }
            axum::Json(json!({"received": have.len()})).into_response()
        }
        "metrics" => {
            let batch: MetricsBatch = serde_json::from_slice(&body).unwrap();
            shared.srv.lock().unwrap().metrics.extend(batch.samples);
            axum::Json(json!({})).into_response()
        }
        "complete" => {
            let c: Completion = serde_json::from_slice(&body).unwrap();
            shared.srv.lock().unwrap().completions.push(c);
            axum::Json(json!({})).into_response()
        }
        other => refuse(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no call {other}"),
        ),
    }
}

pub async fn file(State(shared): State<Arc<Shared>>, UrlPath(name): UrlPath<String>) -> Response {
    match shared.files.lock().unwrap().get(&name) {
        Some(bytes) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A server on its own runtime: stopping it drops the runtime, so every connection dies as with
/// a crashed process; the shared state lives on, as a server's store would.
pub struct TestServer {
    pub port: u16,
    rt: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    pub fn start(shared: Arc<Shared>, port: u16) -> TestServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let listener = loop {
            match rt.block_on(tokio::net::TcpListener::bind(("127.0.0.1", port))) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot bind port {port}: {e}"),
            }
        };
        let port = listener.local_addr().unwrap().port();
        let app = axum::Router::new()
            .route("/agent/v1/{name}", axum::routing::post(call))
            .route("/files/{name}", axum::routing::get(file))
            .with_state(shared);
        rt.spawn(async move { axum::serve(listener, app).await });
        TestServer { port, rt: Some(rt) }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------- the agent under test

pub struct RunningAgent {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl RunningAgent {
    pub fn start(args: AgentArgs) -> RunningAgent {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(opsworks_agent::run_until(args, async {
                let _ = rx.await;
            }))
        });
        RunningAgent {
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Everything one test needs: temp dirs, the converge script, a git cookbook repository.
pub struct Env {
    pub tmp: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let env = Env {
            tmp: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(env.www()).unwrap();
        env.write_converge_script();
        env.make_cookbook_repo();
        env
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }
    pub fn state(&self) -> PathBuf {
        self.path("state")
    }
    pub fn www(&self) -> PathBuf {
        self.path("www")
    }
    pub fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A stand-in for `opsworks converge`: checks the agent's arguments, shows what it was
    /// given, and fails, hangs or takes its time as the run list asks.
    pub fn write_converge_script(&self) {
        let script = format!(
            r#"#!/bin/sh
[ "$1" = converge ] || {{ echo "first argument must be converge"; exit 90; }}
shift
while [ $# -gt 0 ]; do
  case "$1" in
    --cookbooks) cookbooks=$2; shift 2;;
    --run-list) runlist=$2; shift 2;;
    --json) json=$2; shift 2;;
    --data-bags) bags=$2; shift 2;;
    --format) format=$2; shift 2;;
    *) echo "unexpected argument $1"; exit 91;;
  esac
done
[ "$format" = text ] || exit 92
[ -f "$json" ] || {{ echo "no attributes file"; exit 93; }}
echo "$OPSWORKS_COMMAND_ID $runlist" >> '{calls}'
echo "converging $runlist"
found=
for d in $(echo "$cookbooks" | tr , ' '); do [ -d "$d/mycb/recipes" ] && found=$d; done
[ -n "$found" ] || {{ echo "cookbook mycb not found in $cookbooks"; exit 94; }}
for f in "$bags"/*/*.json; do [ -f "$f" ] && echo "data bag: ${{f#$bags/}}"; done
release=$(sed -n 's/^ *"release_path": "\(.*\)",\{{0,1\}}$/\1/p' "$json" | head -n 1)
case "$runlist" in *showapp*) echo "app says: $(cat "$release/index.html"); current: $(readlink '{www}/myapp/current')";; esac
case "$runlist" in *slow*) sleep 2;; esac
case "$runlist" in *hang*) sleep 600 & echo $! > '{hangpid}'; wait;; esac
case "$runlist" in *fail*) echo "recipe failed"; exit 3;; esac
echo "converged"
"#,
            calls = self.path("calls").display(),
            www = self.www().display(),
            hangpid = self.path("hang.pid").display()
        );
        let path = self.path("converge.sh");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    pub fn make_cookbook_repo(&self) {
        let repo = self.path("cookbooks-repo");
        std::fs::create_dir_all(repo.join("mycb/recipes")).unwrap();
        std::fs::write(repo.join("mycb/recipes/default.star"), "# a recipe\n").unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        commit_all(&repo, "cookbooks");
    }

    pub fn args(&self, server: &str) -> AgentArgs {
        let creds = self.path("creds.json");
        std::fs::write(
            &creds,
            json!({"access_key_id": AKID, "secret_access_key": SECRET}).to_string(),
        )
        .unwrap();
        AgentArgs {
            server: vec![server.to_string()],
            instance_id: "i-test".into(),
            credentials: creds,
            state_dir: self.state(),
            converge_exe: Some(self.path("converge.sh")),
            builtin_cookbooks: None,
            www_root: self.www(),
            install_dir: None,
        }
    }

    pub fn cookbooks(&self) -> SourceSpec {
        SourceSpec {
            kind: "git".into(),
            url: self.path("cookbooks-repo").display().to_string(),
            revision: Some("main".into()),
            ..Default::default()
        }
    }

    pub fn cli(&self, cmd: AgentCli) -> anyhow::Result<String> {
        let mut out = Vec::new();
        run_cli_to(&self.state(), cmd, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.test",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn commit_all(dir: &Path, message: &str) -> String {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// A command; `n` orders `created_at`.
pub fn command(id: &str, kind: &str, n: u32, run_list: &[&str]) -> AgentCommand {
    let mut bags = BTreeMap::new();
    bags.insert(
        "aws_opsworks_stack".to_string(),
        BTreeMap::from([("stack-1".to_string(), json!({"name": "s1"}))]),
    );
    AgentCommand {
        command_id: id.into(),
        deployment_id: Some("d-1".into()),
        kind: kind.parse().expect("a command name"),
        run_list: run_list.iter().map(|s| s.to_string()).collect(),
        attributes: json!({"opsworks": {
            "stack": {"name": "s1", "id": "stack-1"},
            "instance": {"id": "i-test", "hostname": "web1", "layers": ["php-app"], "status": "online"},
            "layers": {"php-app": {"name": "PHP"}},
        }}),
        data_bags: bags,
        custom_cookbooks: None,
        apps: vec![],
        timeout_seconds: None,
        created_at: format!("2026-11-25T10:00:{:02}.{:03}Z", n / 1000 % 60, n % 1000),
    }
}

/// Waits (bounded, so a broken agent fails the test rather than hanging it) for `cond`.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn wait_completion(shared: &Shared, id: &str) -> Completion {
    wait_for(&format!("the completion of {id}"), || {
        shared.completion(id).is_some()
    });
    shared.completion(id).unwrap()
}

/// Whether the process `hang.pid` names still lives (a zombie nobody reaps counts as gone).
pub fn hang_alive(env: &Env) -> bool {
    let pid = std::fs::read_to_string(env.path("hang.pid")).unwrap();
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub fn history(env: &Env) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(env.state().join("commands"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
