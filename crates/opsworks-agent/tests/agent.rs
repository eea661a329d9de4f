//! End-to-end tests of the agent: a real agent (its own runtime, real state directory) against
//! a small in-test server speaking the server side of the protocol over loopback HTTP, with
//! SigV4 verified; converges run by a stand-in `converge` script (the real `opsworks converge`
//! is not wired into a binary yet) that checks the arguments it gets and acts on the run list;
//! custom cookbooks and apps come from real git repositories.

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
    Ack, AgentCommand, AppSpec, CommandOutcome, Completion, Heartbeat, Hello, HelloReply, LogChunk,
    PollReply, PollRequest, ProtocolError, SourceSpec,
};
use serde_json::{Value, json};

const AKID: &str = "AKIDAGENTTEST";
const SECRET: &str = "agent-test-secret";

// ---------------------------------------------------------------- the test server

#[derive(Default)]
struct Srv {
    pending: Vec<AgentCommand>,
    hellos: u32,
    heartbeats: u32,
    acks: Vec<String>,
    logs: HashMap<String, String>,
    completions: Vec<Completion>,
}

#[derive(Default)]
struct Shared {
    srv: Mutex<Srv>,
    notify: tokio::sync::Notify,
    /// Files served at `/files/<name>` (archives for the agent to download).
    files: Mutex<HashMap<String, Vec<u8>>>,
}

impl Shared {
    /// Queues commands for the next poll, all in one batch.
    fn push(&self, cmds: Vec<AgentCommand>) {
        self.srv.lock().unwrap().pending.extend(cmds);
        self.notify.notify_one();
    }

    fn completion(&self, id: &str) -> Option<Completion> {
        self.srv
            .lock()
            .unwrap()
            .completions
            .iter()
            .rev()
            .find(|c| c.command_id == id)
            .cloned()
    }

    fn completions_of(&self, id: &str) -> usize {
        self.srv
            .lock()
            .unwrap()
            .completions
            .iter()
            .filter(|c| c.command_id == id)
            .count()
    }

    fn log(&self, id: &str) -> String {
        self.srv
            .lock()
            .unwrap()
            .logs
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    fn acks(&self) -> Vec<String> {
        self.srv.lock().unwrap().acks.clone()
    }
}

fn refuse(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        axum::Json(ProtocolError {
            code: code.into(),
            message,
        }),
    )
        .into_response()
}

async fn call(
    State(shared): State<Arc<Shared>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
            shared.srv.lock().unwrap().hellos += 1;
            axum::Json(HelloReply {
                stack_id: "stack-1".into(),
                heartbeat_seconds: 1,
                poll_seconds: 1,
                metrics_seconds: None,
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
                        return axum::Json(PollReply { commands }).into_response();
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

async fn file(State(shared): State<Arc<Shared>>, UrlPath(name): UrlPath<String>) -> Response {
    match shared.files.lock().unwrap().get(&name) {
        Some(bytes) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A server on its own runtime: stopping it drops the runtime, so every connection dies as with
/// a crashed process; the shared state lives on, as a server's store would.
struct TestServer {
    port: u16,
    rt: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    fn start(shared: Arc<Shared>, port: u16) -> TestServer {
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

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
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

struct RunningAgent {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl RunningAgent {
    fn start(args: AgentArgs) -> RunningAgent {
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
struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let env = Env {
            tmp: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(env.www()).unwrap();
        env.write_converge_script();
        env.make_cookbook_repo();
        env
    }

    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }
    fn state(&self) -> PathBuf {
        self.path("state")
    }
    fn www(&self) -> PathBuf {
        self.path("www")
    }
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A stand-in for `opsworks converge`: checks the agent's arguments, shows what it was
    /// given, and fails, hangs or takes its time as the run list asks.
    fn write_converge_script(&self) {
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

    fn make_cookbook_repo(&self) {
        let repo = self.path("cookbooks-repo");
        std::fs::create_dir_all(repo.join("mycb/recipes")).unwrap();
        std::fs::write(repo.join("mycb/recipes/default.star"), "# a recipe\n").unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        commit_all(&repo, "cookbooks");
    }

    fn args(&self, server: &str) -> AgentArgs {
        let creds = self.path("creds.json");
        std::fs::write(
            &creds,
            json!({"access_key_id": AKID, "secret_access_key": SECRET}).to_string(),
        )
        .unwrap();
        AgentArgs {
            server: server.to_string(),
            instance_id: "i-test".into(),
            credentials: creds,
            state_dir: self.state(),
            converge_exe: Some(self.path("converge.sh")),
            builtin_cookbooks: None,
            www_root: self.www(),
        }
    }

    fn cookbooks(&self) -> SourceSpec {
        SourceSpec {
            kind: "git".into(),
            url: self.path("cookbooks-repo").display().to_string(),
            revision: Some("main".into()),
            ..Default::default()
        }
    }

    fn cli(&self, cmd: AgentCli) -> anyhow::Result<String> {
        let mut out = Vec::new();
        run_cli_to(&self.state(), cmd, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
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

fn commit_all(dir: &Path, message: &str) -> String {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// A command; `n` orders `created_at`.
fn command(id: &str, kind: &str, n: u32, run_list: &[&str]) -> AgentCommand {
    let mut bags = BTreeMap::new();
    bags.insert(
        "aws_opsworks_stack".to_string(),
        BTreeMap::from([("stack-1".to_string(), json!({"name": "s1"}))]),
    );
    AgentCommand {
        command_id: id.into(),
        deployment_id: Some("d-1".into()),
        kind: kind.into(),
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
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_completion(shared: &Shared, id: &str) -> Completion {
    wait_for(&format!("the completion of {id}"), || {
        shared.completion(id).is_some()
    });
    shared.completion(id).unwrap()
}

/// Whether the process `hang.pid` names still lives (a zombie nobody reaps counts as gone).
fn hang_alive(env: &Env) -> bool {
    let pid = std::fs::read_to_string(env.path("hang.pid")).unwrap();
    match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn history(env: &Env) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(env.state().join("commands"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------- tests

#[test]
fn commands_are_acked_logged_and_completed_with_their_outcome() {
    let env = Env::new();
    let shared = Arc::new(Shared::default());
    let server = TestServer::start(shared.clone(), 0);
    let _agent = RunningAgent::start(env.args(&server.url()));

    let mut setup = command("c-setup", "setup", 1, &["mycb::default"]);
    setup.custom_cookbooks = Some(env.cookbooks());
    shared.push(vec![setup]);
    let done = wait_completion(&shared, "c-setup");
    assert_eq!(
        (done.outcome, done.exit_code),
        (CommandOutcome::Successful, 0),
        "{}",
        shared.log("c-setup")
    );
    assert_eq!(shared.acks(), vec!["c-setup".to_string()]);
    let log = shared.log("c-setup");
    assert!(log.contains("converging mycb::default"), "{log}");
    assert!(
        log.contains("data bag: aws_opsworks_stack/stack-1.json"),
        "{log}"
    );
    assert!(log.contains("custom cookbooks: at "), "{log}");
    assert!(log.contains("converged"), "{log}");

    // A recipe failure, with the cookbooks now taken from the cache.
    let mut fail = command("c-fail", "execute_recipes", 2, &["mycb::fail"]);
    fail.custom_cookbooks = Some(env.cookbooks());
    shared.push(vec![fail]);
    let done = wait_completion(&shared, "c-fail");
    assert_eq!((done.outcome, done.exit_code), (CommandOutcome::Failed, 3));
    assert!(shared.log("c-fail").contains("recipe failed"));
    assert!(shared.log("c-fail").contains("using the cache"));

    // A converge past its timeout is stopped, process group and all.
    let mut hang = command("c-hang", "execute_recipes", 3, &["mycb::hang"]);
    hang.custom_cookbooks = Some(env.cookbooks());
    hang.timeout_seconds = Some(1);
    shared.push(vec![hang]);
    let done = wait_completion(&shared, "c-hang");
    assert_eq!(
        (done.outcome, done.exit_code),
        (CommandOutcome::Failed, 124)
    );
    assert!(
        shared.log("c-hang").contains("timeout"),
        "{}",
        shared.log("c-hang")
    );
    wait_for(
        "the timed-out converge's own child to be killed too",
        || !hang_alive(&env),
    );

    // The server's copy of every log is the instance's, byte for byte.
    let names = history(&env);
    assert_eq!(names.len(), 3, "{names:?}");
    for (name, id) in names.iter().zip(["c-setup", "c-fail", "c-hang"]) {
        let dir = env.state().join("commands").join(name);
        assert!(name.ends_with(&format!("_{id}")), "{name}");
        wait_for("the whole log", || {
            std::fs::read_to_string(dir.join("log")).unwrap() == shared.log(id)
        });
        for f in [
            "command.json",
            "attribs.json",
            "result.json",
            "data_bags/aws_opsworks_stack/stack-1.json",
        ] {
            assert!(dir.join(f).is_file(), "{name}/{f}");
        }
        let mode = std::fs::metadata(dir.join("command.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    wait_for("heartbeats", || shared.srv.lock().unwrap().heartbeats > 0);
    assert_eq!(shared.srv.lock().unwrap().hellos, 1);

    // The inspection CLI reads the same history back.
    let list = env.cli(AgentCli::ListCommands).unwrap();
    assert!(
        list.lines()
            .any(|l| l.contains("c-setup") && l.contains("successful")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.contains("c-fail") && l.contains("failed") && l.trim_end().ends_with('3')),
        "{list}"
    );
    assert!(
        env.cli(AgentCli::ShowLog {
            command: "c-fail".into()
        })
        .unwrap()
        .contains("recipe failed")
    );
    assert!(
        env.cli(AgentCli::ShowLog {
            command: "latest".into()
        })
        .unwrap()
        .contains("timeout")
    );
    assert!(
        env.cli(AgentCli::ShowLog {
            command: "setup".into()
        })
        .unwrap()
        .contains("converging mycb::default")
    );
    let attrs: Value = serde_json::from_str(
        &env.cli(AgentCli::GetJson {
            command: "c-setup".into(),
            internal: false,
        })
        .unwrap(),
    )
    .unwrap();
    assert_eq!(attrs["opsworks"]["stack"]["name"], "s1");
    let internal = env
        .cli(AgentCli::GetJson {
            command: "c-setup".into(),
            internal: true,
        })
        .unwrap();
    assert!(internal.contains("\"type\": \"setup\""), "{internal}");
    let report = env.cli(AgentCli::AgentReport).unwrap();
    assert!(
        report.contains(&format!("pid: {} (running)", std::process::id())),
        "{report}"
    );
    let instance = env.cli(AgentCli::InstanceReport).unwrap();
    assert!(
        instance.contains("instance id: i-test") && instance.contains("stack: s1 (stack-1)"),
        "{instance}"
    );
    assert!(instance.contains("layers: php-app"), "{instance}");
    let stack = env.cli(AgentCli::StackState).unwrap();
    assert!(
        stack.contains("last command: execute_recipes c-hang (failed, exit 124"),
        "{stack}"
    );
    assert!(stack.contains("layers: php-app"), "{stack}");
    assert!(
        env.cli(AgentCli::ShowLog {
            command: "nope".into()
        })
        .unwrap_err()
        .to_string()
        .contains("no stored command")
    );
    assert_eq!(env.calls().len(), 3);

    // run-command converges a stored command again locally, telling the server nothing.
    let before = shared.srv.lock().unwrap().completions.len();
    let out = env
        .cli(AgentCli::RunCommand {
            command: "c-setup".into(),
            converge_exe: None,
            builtin_cookbooks: None,
            www_root: None,
        })
        .unwrap();
    assert!(out.contains("converged"), "{out}");
    assert_eq!(env.calls().len(), 4);
    assert_eq!(shared.srv.lock().unwrap().completions.len(), before);
    assert_eq!(history(&env).len(), 3);
}

#[test]
fn a_redelivered_command_is_reported_again_not_run_again() {
    let env = Env::new();
    let shared = Arc::new(Shared::default());
    let server = TestServer::start(shared.clone(), 0);
    let _agent = RunningAgent::start(env.args(&server.url()));
    let mut cmd = command("c-once", "execute_recipes", 1, &["mycb::default"]);
    cmd.custom_cookbooks = Some(env.cookbooks());
    shared.push(vec![cmd.clone()]);
    let first = wait_completion(&shared, "c-once");
    assert_eq!(first.outcome, CommandOutcome::Successful);

    // The server lost track (a restart before it stored the completion) and hands it out again.
    shared.push(vec![cmd]);
    wait_for("the second completion", || {
        shared.completions_of("c-once") == 2
    });
    let second = shared.completion("c-once").unwrap();
    assert_eq!(second, first);
    assert_eq!(env.calls().len(), 1, "the command ran twice");
    assert_eq!(shared.acks(), vec!["c-once".to_string()]);
    assert_eq!(history(&env).len(), 1);
}

#[test]
fn a_server_outage_loses_nothing_and_runs_nothing_twice() {
    let env = Env::new();
    let shared = Arc::new(Shared::default());
    let mut server = TestServer::start(shared.clone(), 0);
    let port = server.port;
    let _agent = RunningAgent::start(env.args(&server.url()));
    let mut cmd = command("c-slow", "deploy", 1, &["mycb::slow"]);
    cmd.custom_cookbooks = Some(env.cookbooks());
    shared.push(vec![cmd.clone()]);

    // The server dies while the command runs; the completion cannot be sent and waits.
    wait_for("the ack", || shared.acks().contains(&"c-slow".to_string()));
    server.stop();
    let outbox = env.state().join("outbox/c-slow.json");
    wait_for("the completion in the outbox", || outbox.exists());
    assert!(shared.completion("c-slow").is_none());

    // Back on the same port, with the command still pending as far as it knows.
    shared.push(vec![cmd]);
    let server = TestServer::start(shared.clone(), port);
    assert_eq!(server.port, port);
    let done = wait_completion(&shared, "c-slow");
    assert_eq!(
        (done.outcome, done.exit_code),
        (CommandOutcome::Successful, 0)
    );
    wait_for("the outbox to empty", || !outbox.exists());
    let local = std::fs::read_to_string(
        env.state()
            .join("commands")
            .join(&history(&env)[0])
            .join("log"),
    )
    .unwrap();
    wait_for("the whole log", || shared.log("c-slow") == local);
    assert!(local.contains("converged"));
    assert_eq!(env.calls().len(), 1, "the command ran twice");
}

#[test]
fn a_configure_storm_runs_only_the_newest_configure() {
    let env = Env::new();
    let shared = Arc::new(Shared::default());
    let server = TestServer::start(shared.clone(), 0);
    let _agent = RunningAgent::start(env.args(&server.url()));
    let cmds: Vec<AgentCommand> = [
        ("cfg-1", "configure"),
        ("ex-1", "execute_recipes"),
        ("cfg-2", "configure"),
        ("cfg-3", "configure"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (id, kind))| {
        let mut c = command(id, kind, i as u32 + 1, &["mycb::default"]);
        c.custom_cookbooks = Some(env.cookbooks());
        c
    })
    .collect();
    shared.push(cmds);
    for id in ["cfg-1", "cfg-2"] {
        let c = wait_completion(&shared, id);
        assert_eq!(c.outcome, CommandOutcome::Skipped, "{id}");
        assert!(
            shared
                .log(id)
                .contains("superseded by the newer configure cfg-3"),
            "{}",
            shared.log(id)
        );
    }
    for id in ["ex-1", "cfg-3"] {
        assert_eq!(
            wait_completion(&shared, id).outcome,
            CommandOutcome::Successful,
            "{id}"
        );
    }
    let ran: Vec<String> = env
        .calls()
        .iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(ran, vec!["ex-1", "cfg-3"]);
    assert_eq!(shared.acks(), vec!["ex-1".to_string(), "cfg-3".to_string()]);
}

#[test]
fn the_history_keeps_the_last_30_commands() {
    let env = Env::new();
    let shared = Arc::new(Shared::default());
    let server = TestServer::start(shared.clone(), 0);
    let _agent = RunningAgent::start(env.args(&server.url()));
    let cmds: Vec<AgentCommand> = (1..=32)
        .map(|i| command(&format!("c-{i:02}"), "execute_recipes", i, &[]))
        .collect();
    shared.push(cmds);
    for i in 1..=32 {
        let c = wait_completion(&shared, &format!("c-{i:02}"));
        assert_eq!(c.outcome, CommandOutcome::Successful);
    }
    let names = history(&env);
    assert_eq!(names.len(), 30);
    assert!(
        names[0].ends_with("_c-03") && names[29].ends_with("_c-32"),
        "{names:?}"
    );
    // An empty run list converges nothing.
    assert!(env.calls().is_empty());
    assert!(shared.log("c-32").contains("empty run list"));
}

#[test]
fn apps_deploy_roll_back_and_undeploy_from_git() {
    let env = Env::new();
    let repo = env.path("app-repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("index.html"), "v1\n").unwrap();
    let v1 = commit_all(&repo, "v1");

    let shared = Arc::new(Shared::default());
    let server = TestServer::start(shared.clone(), 0);
    let _agent = RunningAgent::start(env.args(&server.url()));
    let app = AppSpec {
        app_id: "app-1".into(),
        shortname: "myapp".into(),
        name: "My App".into(),
        kind: "other".into(),
        source: Some(SourceSpec {
            kind: "git".into(),
            url: repo.display().to_string(),
            revision: Some("main".into()),
            ..Default::default()
        }),
        environment: BTreeMap::from([
            ("GREETING".to_string(), "it's $HOME".to_string()),
            ("PORT".to_string(), "8000".to_string()),
        ]),
    };
    let deploy = |id: &str, n: u32| {
        let mut c = command(id, "deploy", n, &["mycb::showapp"]);
        c.custom_cookbooks = Some(env.cookbooks());
        c.apps = vec![app.clone()];
        shared.push(vec![c]);
        let done = wait_completion(&shared, id);
        assert_eq!(
            done.outcome,
            CommandOutcome::Successful,
            "{}",
            shared.log(id)
        );
        done
    };
    let deploy_to = env.www().join("myapp");
    let current = || std::fs::read_link(deploy_to.join("current")).unwrap();

    deploy("d-1", 1);
    // The release is in place before the recipes run, `current` not switched yet (the deploy
    // recipes do that); with no recipe switching it, the agent does after a successful run.
    assert!(
        shared.log("d-1").contains("app says: v1; current: \n"),
        "{}",
        shared.log("d-1")
    );
    assert!(
        shared
            .log("d-1")
            .contains("no deploy recipe switched current"),
        "{}",
        shared.log("d-1")
    );
    let first = current();
    assert!(first.starts_with(deploy_to.join("releases")));
    assert_eq!(
        std::fs::read_to_string(first.join("REVISION"))
            .unwrap()
            .trim(),
        v1
    );
    assert!(!first.join(".git").exists());
    for d in ["config", "log", "pids", "system"] {
        assert!(deploy_to.join("shared").join(d).is_dir(), "shared/{d}");
    }
    let env_file = deploy_to.join("shared/config/environment");
    assert_eq!(
        std::fs::read_to_string(&env_file).unwrap(),
        "GREETING='it'\\''s $HOME'\nPORT='8000'\n"
    );
    assert_eq!(
        std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let sourced = Command::new("sh")
        .arg("-c")
        .arg(format!(
            ". {} && printf %s \"$GREETING\"",
            env_file.display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(sourced.stdout).unwrap(), "it's $HOME");
    let env_json: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy_to.join("shared/config/environment.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(env_json["PORT"], "8000");
    let attribs: Value = serde_json::from_str(
        &env.cli(AgentCli::GetJson {
            command: "d-1".into(),
            internal: false,
        })
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        attribs["deploy"]["myapp"]["current_path"],
        json!(deploy_to.join("current"))
    );

    // A second revision.
    std::fs::write(repo.join("index.html"), "v2\n").unwrap();
    let v2 = commit_all(&repo, "v2");
    deploy("d-2", 2);
    assert!(
        shared
            .log("d-2")
            .contains(&format!("app says: v2; current: {}\n", first.display())),
        "{}",
        shared.log("d-2")
    );
    let second = current();
    assert_ne!(second, first);
    assert_eq!(
        std::fs::read_to_string(second.join("REVISION"))
            .unwrap()
            .trim(),
        v2
    );
    assert_eq!(
        std::fs::read_to_string(deploy_to.join("current/index.html")).unwrap(),
        "v2\n"
    );

    // A deploy whose run fails never goes live: its release is removed, `current` stays.
    std::fs::write(repo.join("index.html"), "broken\n").unwrap();
    commit_all(&repo, "broken");
    let mut bad = command("d-bad", "deploy", 3, &["mycb::showapp", "mycb::fail"]);
    bad.custom_cookbooks = Some(env.cookbooks());
    bad.apps = vec![app.clone()];
    shared.push(vec![bad]);
    let failed = wait_completion(&shared, "d-bad");
    assert_eq!(failed.outcome, CommandOutcome::Failed);
    assert!(
        shared.log("d-bad").contains("app says: broken"),
        "{}",
        shared.log("d-bad")
    );
    assert!(
        shared.log("d-bad").contains("failed before"),
        "{}",
        shared.log("d-bad")
    );
    assert_eq!(current(), second);
    assert_eq!(
        opsworks_agent::apps::releases(&deploy_to).unwrap().len(),
        2,
        "the failed release is gone"
    );

    // Five releases are kept, the oldest go.
    for i in 4..=8 {
        deploy(&format!("d-{i}"), i);
    }
    let releases = opsworks_agent::apps::releases(&deploy_to).unwrap();
    assert_eq!(releases.len(), 5, "{releases:?}");
    assert!(!first.exists() && !second.exists());
    let newest = current();
    assert_eq!(newest.file_name().unwrap().to_string_lossy(), releases[4]);

    // Rollback: current goes back one release and the newer one is removed.
    let mut rb = command("r-1", "rollback", 9, &[]);
    rb.apps = vec![app.clone()];
    shared.push(vec![rb]);
    assert_eq!(
        wait_completion(&shared, "r-1").outcome,
        CommandOutcome::Successful
    );
    assert_eq!(
        current().file_name().unwrap().to_string_lossy(),
        releases[3]
    );
    assert!(!newest.exists());
    assert_eq!(opsworks_agent::apps::releases(&deploy_to).unwrap().len(), 4);

    // Undeploy removes the app; a rollback then has nothing to go back to.
    let mut un = command("u-1", "undeploy", 10, &[]);
    un.apps = vec![app.clone()];
    shared.push(vec![un]);
    assert_eq!(
        wait_completion(&shared, "u-1").outcome,
        CommandOutcome::Successful
    );
    assert!(!deploy_to.exists());
    let mut rb = command("r-2", "rollback", 11, &[]);
    rb.apps = vec![app];
    shared.push(vec![rb]);
    let failed = wait_completion(&shared, "r-2");
    assert_eq!(
        (failed.outcome, failed.exit_code),
        (CommandOutcome::Failed, 1)
    );
    assert!(
        shared.log("r-2").contains("no earlier release"),
        "{}",
        shared.log("r-2")
    );
    // Secrets from the environment never reach the log.
    assert!(!shared.log("d-1").contains("it's $HOME"));
}

#[test]
fn a_second_agent_on_the_same_state_dir_refuses_to_start() {
    let env = Env::new();
    let shared = Arc::new(Shared::default());
    let server = TestServer::start(shared.clone(), 0);
    let _agent = RunningAgent::start(env.args(&server.url()));
    wait_for("the first agent's hello", || {
        shared.srv.lock().unwrap().hellos > 0
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(opsworks_agent::run_until(
            env.args(&server.url()),
            std::future::pending(),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("another agent"), "{err}");
}

#[test]
fn unreadable_credentials_are_a_clear_error() {
    let env = Env::new();
    let mut args = env.args("http://127.0.0.1:9");
    std::fs::write(&args.credentials, "{not json").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(opsworks_agent::run_until(
            args.clone(),
            std::future::pending(),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("credentials file"), "{err}");
    args.credentials = env.path("missing.json");
    let err = rt
        .block_on(opsworks_agent::run_until(args, std::future::pending()))
        .unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
}

#[test]
fn a_command_cut_off_by_an_agent_restart_is_reported_failed_not_run_again() {
    let env = Env::new();
    let shared = Arc::new(Shared::default());
    let server = TestServer::start(shared.clone(), 0);
    let mut cmd = command("c-cut", "execute_recipes", 1, &["mycb::hang"]);
    cmd.custom_cookbooks = Some(env.cookbooks());
    {
        let _agent = RunningAgent::start(env.args(&server.url()));
        shared.push(vec![cmd.clone()]);
        wait_for("the converge to start", || env.path("hang.pid").exists());
        // The agent stops here, mid-run.
    }
    assert!(shared.completion("c-cut").is_none());
    wait_for("the cut-off converge's child to be killed", || {
        !hang_alive(&env)
    });
    // The next agent reports it at once, without waiting for the server to hand it out again.
    let _agent = RunningAgent::start(env.args(&server.url()));
    let done = wait_completion(&shared, "c-cut");
    assert_eq!(done.outcome, CommandOutcome::Failed);
    assert!(
        shared
            .log("c-cut")
            .contains("the agent stopped while this command ran"),
        "{}",
        shared.log("c-cut")
    );
    // Handed out again anyway, it is reported again, not run.
    shared.push(vec![cmd]);
    wait_for("the second completion", || {
        shared.completions_of("c-cut") == 2
    });
    assert_eq!(shared.completion("c-cut").unwrap(), done);
    assert_eq!(env.calls().len(), 1, "the command ran twice");
    assert_eq!(shared.acks(), vec!["c-cut".to_string()]);
}

#[test]
fn custom_cookbooks_come_from_tar_gz_and_zip_archives_over_http() {
    let env = Env::new();
    let shared = Arc::new(Shared::default());
    let mut tgz = Vec::new();
    {
        let gz = flate2::write::GzEncoder::new(&mut tgz, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        let data = b"# from the tarball\n";
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        tar.append_data(
            &mut header,
            "cookbooks-1.0/mycb/recipes/default.star",
            &data[..],
        )
        .unwrap();
        tar.into_inner().unwrap().finish().unwrap();
    }
    let mut zipped = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut zipped);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("mycb/recipes/default.star", opts).unwrap();
        std::io::Write::write_all(&mut zip, b"# from the zip\n").unwrap();
        zip.finish().unwrap();
    }
    shared
        .files
        .lock()
        .unwrap()
        .insert("cookbooks.tgz".into(), tgz);
    shared
        .files
        .lock()
        .unwrap()
        .insert("cookbooks.zip".into(), zipped.into_inner());
    let server = TestServer::start(shared.clone(), 0);
    let _agent = RunningAgent::start(env.args(&server.url()));
    let recipe = env.state().join("site-cookbooks/mycb/recipes/default.star");
    for (i, (name, text)) in [
        ("cookbooks.tgz", "# from the tarball\n"),
        ("cookbooks.zip", "# from the zip\n"),
    ]
    .iter()
    .enumerate()
    {
        let id = format!("u-{i}");
        let mut c = command(&id, "update_custom_cookbooks", i as u32 + 1, &[]);
        c.custom_cookbooks = Some(SourceSpec {
            kind: "archive".into(),
            url: format!("{}/files/{name}", server.url()),
            ..Default::default()
        });
        shared.push(vec![c]);
        let done = wait_completion(&shared, &id);
        assert_eq!(
            done.outcome,
            CommandOutcome::Successful,
            "{}",
            shared.log(&id)
        );
        assert_eq!(std::fs::read_to_string(&recipe).unwrap(), *text);
    }
    // A missing archive fails the command with the reason in its log.
    let mut c = command("u-missing", "update_custom_cookbooks", 9, &[]);
    c.custom_cookbooks = Some(SourceSpec {
        kind: "archive".into(),
        url: format!("{}/files/nothing.tgz", server.url()),
        ..Default::default()
    });
    shared.push(vec![c]);
    let done = wait_completion(&shared, "u-missing");
    assert_eq!(done.outcome, CommandOutcome::Failed);
    assert!(
        shared.log("u-missing").contains("404"),
        "{}",
        shared.log("u-missing")
    );
    // update_custom_cookbooks converges nothing.
    assert!(env.calls().is_empty());
}

/// The same flow through the real `opsworks converge`. Ignored by default because no binary
/// has the `converge` subcommand wired yet; run it with
/// `OPSWORKS_TEST_CONVERGE_EXE=/path/to/opsworks cargo test -p opsworks-agent -- --ignored`.
#[test]
#[ignore = "needs OPSWORKS_TEST_CONVERGE_EXE, an executable with the `converge` subcommand"]
fn with_the_real_converge() {
    let exe = std::env::var_os("OPSWORKS_TEST_CONVERGE_EXE")
        .map(PathBuf::from)
        .expect("set OPSWORKS_TEST_CONVERGE_EXE to an executable with the `converge` subcommand");
    let env = Env::new();
    let builtin = env.path("builtin");
    let cb = builtin.join("real");
    std::fs::create_dir_all(cb.join("recipes")).unwrap();
    std::fs::write(
        cb.join("metadata.json"),
        r#"{"name": "real", "version": "1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        cb.join("recipes/default.star"),
        "file(node[\"t\"][\"out\"], content = node[\"opsworks\"][\"stack\"][\"name\"] + \"\\n\")\n",
    )
    .unwrap();
    std::fs::write(cb.join("recipes/bad.star"), "\n\nfail(\"boom\")\n").unwrap();
    let shared = Arc::new(Shared::default());
    let server = TestServer::start(shared.clone(), 0);
    let mut args = env.args(&server.url());
    args.converge_exe = Some(exe);
    args.builtin_cookbooks = Some(builtin);
    let _agent = RunningAgent::start(args);
    let out = env.path("out.txt");
    let mut good = command("real-1", "execute_recipes", 1, &["real::default"]);
    good.attributes["t"] = json!({"out": out});
    let mut bad = command("real-2", "execute_recipes", 2, &["real::bad"]);
    bad.attributes["t"] = json!({"out": out});
    shared.push(vec![good]);
    let done = wait_completion(&shared, "real-1");
    assert_eq!(
        done.outcome,
        CommandOutcome::Successful,
        "{}",
        shared.log("real-1")
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "s1\n");
    shared.push(vec![bad]);
    let done = wait_completion(&shared, "real-2");
    assert_eq!(
        done.outcome,
        CommandOutcome::Failed,
        "{}",
        shared.log("real-2")
    );
    assert!(
        shared.log("real-2").contains("bad.star"),
        "{}",
        shared.log("real-2")
    );
}

/// Deploy hooks with the real converge and the real built-in `deploy` cookbook: `deploy/<hook>.star`
/// in the app's repository runs with the release path and the node; a failing before_symlink
/// hook fails the deployment and leaves `current` on the previous release; a failing
/// before_restart hook, which runs after the switch, puts `current` back.
#[test]
fn deploy_hooks_run_around_the_switch_and_a_failing_one_keeps_the_old_release() {
    let exe = std::env::var_os("OPSWORKS_TEST_CONVERGE_EXE")
        .map(PathBuf::from)
        .expect("set OPSWORKS_TEST_CONVERGE_EXE to an executable with the `converge` subcommand");
    let env = Env::new();
    let repo = env.path("hooked-app");
    std::fs::create_dir_all(repo.join("deploy")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("index.html"), "v1\n").unwrap();
    std::fs::write(
        repo.join("deploy/before_migrate.star"),
        "h = node[\"deploy_hook\"]\n\
         file(h[\"release_path\"] + \"/hooked.txt\",\n\
         \x20   content = \"%s of %s in %s\\n\" % (h[\"hook\"], h[\"app\"], node[\"opsworks\"][\"stack\"][\"name\"]))\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("deploy/after_restart.star"),
        "file(node[\"deploy_hook\"][\"deploy_to\"] + \"/shared/after_restart.txt\",\n\
         \x20   content = node[\"deploy_hook\"][\"release_path\"] + \"\\n\")\n",
    )
    .unwrap();
    commit_all(&repo, "v1 with hooks");

    let shared = Arc::new(Shared::default());
    let server = TestServer::start(shared.clone(), 0);
    let mut args = env.args(&server.url());
    args.converge_exe = Some(exe);
    let _agent = RunningAgent::start(args);
    let app = AppSpec {
        app_id: "app-1".into(),
        shortname: "myapp".into(),
        name: "My App".into(),
        kind: "other".into(),
        source: Some(SourceSpec {
            kind: "git".into(),
            url: repo.display().to_string(),
            revision: Some("main".into()),
            ..Default::default()
        }),
        environment: BTreeMap::new(),
    };
    let deploy = |id: &str, n: u32| {
        let mut c = command(id, "deploy", n, &["deploy::default"]);
        c.attributes["deploy"] = json!({"myapp": {"application_type": "other", "deploying": true}});
        c.apps = vec![app.clone()];
        shared.push(vec![c]);
        wait_completion(&shared, id)
    };
    let deploy_to = env.www().join("myapp");
    let current = || std::fs::read_link(deploy_to.join("current")).unwrap();

    let done = deploy("h-1", 1);
    assert_eq!(
        done.outcome,
        CommandOutcome::Successful,
        "{}",
        shared.log("h-1")
    );
    let first = current();
    assert_eq!(
        std::fs::read_to_string(first.join("hooked.txt")).unwrap(),
        "before_migrate of myapp in s1\n"
    );
    assert_eq!(
        std::fs::read_to_string(deploy_to.join("shared/after_restart.txt")).unwrap(),
        format!("{}\n", first.display())
    );
    let log = shared.log("h-1");
    assert!(
        log.contains("deploy hook before_migrate succeeded"),
        "{log}"
    );

    // A failing before_symlink hook: the deployment fails, v1 stays current, v2 is gone.
    std::fs::write(repo.join("index.html"), "v2\n").unwrap();
    std::fs::write(
        repo.join("deploy/before_symlink.star"),
        "fail(\"not this release\")\n",
    )
    .unwrap();
    commit_all(&repo, "v2 refused by its hook");
    let done = deploy("h-2", 2);
    let log = shared.log("h-2");
    assert_eq!(done.outcome, CommandOutcome::Failed, "{log}");
    assert!(log.contains("not this release"), "{log}");
    assert!(
        log.contains("deploy hook before_symlink of app myapp failed"),
        "{log}"
    );
    assert_eq!(current(), first);
    assert_eq!(
        std::fs::read_to_string(deploy_to.join("current/index.html")).unwrap(),
        "v1\n"
    );
    assert_eq!(
        opsworks_agent::apps::releases(&deploy_to).unwrap().len(),
        1,
        "the refused release is removed"
    );

    // A failing before_restart hook runs after the switch: `current` goes back to v1.
    std::fs::remove_file(repo.join("deploy/before_symlink.star")).unwrap();
    std::fs::write(
        repo.join("deploy/before_restart.star"),
        "fail(\"no restart\")\n",
    )
    .unwrap();
    commit_all(&repo, "v3 refused before its restart");
    let done = deploy("h-3", 3);
    let log = shared.log("h-3");
    assert_eq!(done.outcome, CommandOutcome::Failed, "{log}");
    assert!(log.contains("is") && log.contains("again"), "{log}");
    assert_eq!(current(), first);
    assert_eq!(opsworks_agent::apps::releases(&deploy_to).unwrap().len(), 1);
}
