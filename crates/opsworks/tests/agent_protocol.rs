//! The server's side of the agent protocol, over real HTTP on loopback: every message an agent
//! may repeat (a retry after a lost answer) changes nothing the second time, and an instance's
//! credential opens the agent protocol only — not the public API, the event log or metrics.
//!
//! The server runs in this process (so the test can boot an instance without a machine: it does
//! what the machine provider does, a credential and Setup queued), and everything after that goes
//! through HTTP as an agent or a user sends it.

use std::time::Duration;

use opsworks_agent::client::{Client, Credentials};
use opsworks_api::sigv4::{self, RequestParts};
use opsworks_model::{InstanceEvent, metrics};
use opsworks_protocol::{
    Ack, AgentCommand, CommandOutcome, Completion, Heartbeat, Hello, HelloReply, LogChunk,
    MetricSample, MetricsBatch, PollReply, PollRequest, ReportedOs,
};
use opsworks_server::core::{instances, lifecycle, machines};
use opsworks_server::{Instances, Server, ServerConfig};
use serde_json::{Value, json};

const ROOT_ID: &str = "AKIDPROTOCOLTEST";
const ROOT_SECRET: &str = "protocol-test-secret";
const WAIT: Duration = Duration::from_secs(10);

/// A server in this process on a temporary data dir; stopped when dropped.
struct Running {
    server: Option<Server>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn start() -> Running {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = ServerConfig::new(dir.path().join("data"));
        config.listen = "127.0.0.1:0".parse().expect("addr");
        config.root_key = Some((ROOT_ID.into(), ROOT_SECRET.into()));
        config.instances = Instances::Recorded;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = Server::start(config, listener, async {
            let _ = stopped.await;
        })
        .await
        .expect("server starts");
        Running {
            server: Some(server),
            stop: Some(stop),
            _dir: dir,
        }
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    fn endpoint(&self) -> &str {
        self.server().endpoint()
    }

    /// A SigV4-signed request of `service` (POST with a body, or GET with a query).
    async fn signed(
        &self,
        key: (&str, &str),
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, String) {
        let host = self.endpoint().trim_start_matches("http://").to_string();
        let mut all: Vec<(&str, &str)> = vec![("host", host.as_str())];
        all.extend_from_slice(headers);
        let parts = RequestParts {
            method,
            path,
            query,
            headers: &all,
            body: body.as_bytes(),
        };
        let now = jiff::Timestamp::now().as_second();
        let (date, auth) = sigv4::sign(&parts, key.0, key.1, "us-east-1", now);
        let url = if query.is_empty() {
            format!("{}{path}", self.endpoint())
        } else {
            format!("{}{path}?{query}", self.endpoint())
        };
        let client = reqwest::Client::new();
        let mut req = match method {
            "GET" => client.get(url),
            _ => client.post(url).body(body.to_string()),
        };
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .header("x-amz-date", date)
            .header("authorization", auth)
            .timeout(WAIT)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("body"))
    }

    /// An OpsWorks API call signed with `key`.
    async fn api_as(&self, key: (&str, &str), operation: &str, body: Value) -> (u16, Value) {
        let target = format!("OpsWorks_20130218.{operation}");
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let (status, text) = self
            .signed(key, "POST", "/", "", &headers, &body.to_string())
            .await;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// An OpsWorks API call as root that must succeed.
    async fn api(&self, operation: &str, body: Value) -> Value {
        let (status, value) = self.api_as((ROOT_ID, ROOT_SECRET), operation, body).await;
        assert_eq!(status, 200, "{operation}: {value}");
        value
    }

    /// A stack, a custom layer and a started instance whose "machine" booted: the instance has a
    /// credential and Setup is queued, as the machine provider leaves it. Returns (instance ID,
    /// its credential).
    async fn booted_instance(&self) -> (String, Credentials) {
        let stack = self
            .api(
                "CreateStack",
                json!({"Name": "protocol", "Region": "us-east-1",
                       "ServiceRoleArn": "arn:aws:iam::1:role/r",
                       "DefaultInstanceProfileArn": "arn:aws:iam::1:instance-profile/p"}),
            )
            .await["StackId"]
            .as_str()
            .expect("stack id")
            .to_string();
        let layer = self
            .api(
                "CreateLayer",
                json!({"StackId": stack, "Type": "custom", "Name": "web", "Shortname": "web"}),
            )
            .await["LayerId"]
            .as_str()
            .expect("layer id")
            .to_string();
        let id = self
            .api(
                "CreateInstance",
                json!({"StackId": stack, "LayerIds": [layer], "InstanceType": "t2.micro"}),
            )
            .await["InstanceId"]
            .as_str()
            .expect("instance id")
            .to_string();
        self.api("StartInstance", json!({"InstanceId": id})).await;
        // What `machines::provision` does once a machine booted.
        let core = self.server().core();
        let mut w = core.write().await.expect("write");
        instances::change_status(&mut w, &id, InstanceEvent::Provisioning)
            .await
            .expect("provisioning");
        instances::change_status(&mut w, &id, InstanceEvent::Booted)
            .await
            .expect("booted");
        lifecycle::booted(&mut w, &id).await.expect("setup queued");
        let (akid, secret) = core
            .keys()
            .issue(&mut w, &machines::instance_principal(&id))
            .await
            .expect("credential");
        w.commit().await.expect("commit");
        (
            id,
            Credentials {
                access_key_id: akid,
                secret_access_key: secret,
            },
        )
    }

    async fn instance_status(&self, id: &str) -> String {
        let out = self
            .api("DescribeInstances", json!({"InstanceIds": [id]}))
            .await;
        out["Instances"][0]["Status"]
            .as_str()
            .expect("status")
            .to_string()
    }

    async fn commands(&self, id: &str) -> Vec<Value> {
        let out = self
            .api("DescribeCommands", json!({"InstanceId": id}))
            .await;
        out["Commands"].as_array().expect("commands").clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn agent(run: &Running, creds: &Credentials) -> Client {
    Client::new(run.endpoint(), creds.clone()).expect("client")
}

async fn send<T: serde::Serialize, R: serde::de::DeserializeOwned>(
    client: &Client,
    name: &'static str,
    msg: &T,
) -> R {
    client
        .call(name, msg, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn hello(client: &Client, id: &str) -> HelloReply {
    let msg = Hello {
        instance_id: id.to_string(),
        agent_version: "test".into(),
        hostname: "web1".into(),
        reported_os: ReportedOs {
            family: "debian".into(),
            name: "Debian".into(),
            version: "12".into(),
        },
        addresses: vec![],
        release: None,
        rolled_back: None,
    };
    send(client, "hello", &msg).await
}

async fn poll(client: &Client, id: &str) -> Vec<AgentCommand> {
    let msg = PollRequest {
        instance_id: id.to_string(),
        wait_seconds: 2,
    };
    let reply: PollReply = send(client, "poll", &msg).await;
    reply.commands
}

fn completion(id: &str, command_id: &str, outcome: CommandOutcome) -> Completion {
    Completion {
        instance_id: id.to_string(),
        command_id: command_id.to_string(),
        outcome,
        exit_code: if outcome == CommandOutcome::Successful {
            0
        } else {
            1
        },
        report: None,
        app_revisions: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_acks_logs_and_completions_change_nothing() {
    let run = Running::start().await;
    let (id, creds) = run.booted_instance().await;
    let client = agent(&run, &creds);
    hello(&client, &id).await;

    let setup = poll(&client, &id).await;
    assert_eq!(setup.len(), 1, "one Setup queued: {setup:?}");
    let setup_id = setup[0].command_id.clone();

    // Ack twice: the first moves the instance to running_setup and stamps the time; the second
    // keeps both.
    let ack = Ack {
        instance_id: id.clone(),
        command_id: setup_id.clone(),
    };
    let _: Value = send(&client, "ack", &ack).await;
    assert_eq!(run.instance_status(&id).await, "running_setup");
    let first = run.commands(&id).await[0]["AcknowledgedAt"].clone();
    assert!(first.is_string(), "acknowledged: {first}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _: Value = send(&client, "ack", &ack).await;
    assert_eq!(run.commands(&id).await[0]["AcknowledgedAt"], first);
    assert_eq!(run.instance_status(&id).await, "running_setup");

    // Log pieces, each sent twice (a retry after a lost answer), one overlapping: the log holds
    // every byte once, in order.
    for (offset, text) in [
        (0u64, "first line\n"),
        (11, "second line\n"),
        (11, "second line\n"),
    ] {
        let piece = LogChunk {
            instance_id: id.clone(),
            command_id: setup_id.clone(),
            offset,
            text: text.into(),
        };
        let _: Value = send(&client, "log", &piece).await;
        let _: Value = send(&client, "log", &piece).await;
    }

    // Complete twice: one Deploy follows Setup, not two.
    let done = completion(&id, &setup_id, CommandOutcome::Successful);
    let _: Value = send(&client, "complete", &done).await;
    let _: Value = send(&client, "complete", &done).await;
    let commands = run.commands(&id).await;
    let deploys: Vec<&Value> = commands.iter().filter(|c| c["Type"] == "deploy").collect();
    assert_eq!(deploys.len(), 1, "one Deploy after Setup: {commands:?}");
    let setup_row = commands
        .iter()
        .find(|c| c["CommandId"] == setup_id.as_str())
        .expect("setup listed");
    assert_eq!(setup_row["Status"], "successful");
    let completed_at = setup_row["CompletedAt"].clone();

    // A late, contradicting completion of a finished command changes nothing either.
    let late = completion(&id, &setup_id, CommandOutcome::Failed);
    let _: Value = send(&client, "complete", &late).await;
    let setup_row = run
        .commands(&id)
        .await
        .into_iter()
        .find(|c| c["CommandId"] == setup_id.as_str())
        .expect("setup listed");
    assert_eq!(setup_row["Status"], "successful");
    assert_eq!(setup_row["CompletedAt"], completed_at);

    // The log as a user reads it, through the command's log link.
    let url = setup_row["LogUrl"].as_str().expect("log url").to_string();
    let log = reqwest::get(&url)
        .await
        .expect("log")
        .text()
        .await
        .expect("log text");
    assert_eq!(log, "first line\nsecond line\n");

    // The Deploy, completed twice: the instance is online and one Configure runs on the stack.
    let deploy = poll(&client, &id).await;
    assert_eq!(deploy.len(), 1, "the Deploy: {deploy:?}");
    let done = completion(&id, &deploy[0].command_id, CommandOutcome::Successful);
    let _: Value = send(&client, "complete", &done).await;
    let _: Value = send(&client, "complete", &done).await;
    assert_eq!(run.instance_status(&id).await, "online");
    let commands = run.commands(&id).await;
    let configures = commands.iter().filter(|c| c["Type"] == "configure").count();
    assert_eq!(configures, 1, "{commands:?}");

    // A hello again (the agent restarted) and heartbeats, repeated: still online, nothing queued
    // but that Configure.
    hello(&client, &id).await;
    for _ in 0..2 {
        let beat = Heartbeat {
            instance_id: id.clone(),
            running: None,
        };
        let _: Value = send(&client, "heartbeat", &beat).await;
    }
    assert_eq!(run.instance_status(&id).await, "online");
    let queued = poll(&client, &id).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].kind.to_string(), "configure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_batch_sent_twice_is_kept_once() {
    let run = Running::start().await;
    let (id, creds) = run.booted_instance().await;
    let client = agent(&run, &creds);
    let now = jiff::Timestamp::now().as_second();
    let sample = |at: i64, user: f64| {
        let mut values = [0.0; metrics::COUNT];
        values[0] = user;
        MetricSample { at, values }
    };
    let batch = MetricsBatch {
        instance_id: id.clone(),
        samples: vec![sample(now - 20, 5.0), sample(now - 10, 7.0)],
    };
    let _: Value = send(&client, "metrics", &batch).await;
    let _: Value = send(&client, "metrics", &batch).await;
    let query = format!("InstanceId={id}&Period=1h");
    let (status, text) = run
        .signed(
            (ROOT_ID, ROOT_SECRET),
            "GET",
            "/api/metrics",
            &query,
            &[],
            "",
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let out: Value = serde_json::from_str(&text).expect("json");
    let stamps = out["Timestamps"].as_array().expect("timestamps");
    assert_eq!(stamps.len(), 2, "two samples, not four: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_credential_opens_the_agent_protocol_only() {
    let run = Running::start().await;
    let (id, creds) = run.booted_instance().await;
    let key = (
        creds.access_key_id.as_str(),
        creds.secret_access_key.as_str(),
    );

    // The public API: AccessDenied in the AWS shape, for a read and for a write.
    for (op, body) in [
        ("DescribeStacks", json!({})),
        ("DescribeInstances", json!({"InstanceIds": [id]})),
        ("StopInstance", json!({"InstanceId": id})),
    ] {
        let (status, out) = run.api_as(key, op, body).await;
        assert_eq!(status, 400, "{op}: {out}");
        assert_eq!(out["__type"], "AccessDeniedException", "{op}: {out}");
    }
    assert_ne!(run.instance_status(&id).await, "stopping");

    // The event log, its live stream and the metrics endpoints.
    for (path, query) in [
        ("/api/events", ""),
        ("/api/events/stream", ""),
        ("/api/metrics", "Period=1h"),
        ("/metrics", ""),
    ] {
        let (status, text) = run.signed(key, "GET", path, query, &[], "").await;
        assert_eq!(status, 403, "{path}: {text}");
    }

    // The agent protocol itself: root's key is no agent, and an instance speaks for itself only.
    let root = Client::new(
        run.endpoint(),
        Credentials {
            access_key_id: ROOT_ID.into(),
            secret_access_key: ROOT_SECRET.into(),
        },
    )
    .expect("client");
    let msg = PollRequest {
        instance_id: id.clone(),
        wait_seconds: 0,
    };
    let refused = root
        .call::<_, PollReply>("poll", &msg, WAIT)
        .await
        .expect_err("root polls");
    assert!(refused.to_string().contains("forbidden"), "{refused}");

    let (other, _) = run.booted_instance().await;
    let client = agent(&run, &creds);
    let msg = PollRequest {
        instance_id: other.clone(),
        wait_seconds: 0,
    };
    let refused = client
        .call::<_, PollReply>("poll", &msg, WAIT)
        .await
        .expect_err("polls for another");
    assert!(refused.to_string().contains(&other), "{refused}");
    // The other instance's Setup is still there for its own agent.
    assert_eq!(run.commands(&other).await[0]["AcknowledgedAt"], Value::Null);
}
