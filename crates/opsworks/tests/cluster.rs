//! Several servers on one PostgreSQL, end to end: real `opsworks server` processes sharing a
//! database of the test's own (`OPSWORKS_TEST_DATABASE_URL`'s server), real signed HTTP. What one
//! writes the other reads; rules across requests hold across servers; a command created through
//! one wakes an agent waiting on the other; events, keys and logs are the same everywhere; the
//! background work moves when its leader is killed; no acknowledged write is lost to a SIGKILL.
//! The agent's move with real local instances is in `cluster_instances.rs`.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use opsworks_model::InstanceStatus;
use opsworks_model::resource::Instance;
use opsworks_store::testing::TestDatabase;
use serde_json::{Value, json};

/// Opens the database as a server would (not serving), to do what only a booting machine does:
/// issue an instance's key and bring the instance online.
async fn as_if_booted(dir: &std::path::Path, url: &str, instance_id: &str) -> (String, String) {
    let mut config = opsworks_server::ServerConfig::new(dir.to_path_buf());
    config.database = Some(opsworks_store::Engine::from_url(url).unwrap());
    let (core, _) = opsworks_server::Core::open(&config).await.unwrap();
    let mut w = core.write().await.unwrap();
    let issued = core
        .keys()
        .issue(&mut w, &format!("instance:{instance_id}"))
        .await
        .unwrap();
    let mut inst: Instance = w.get(instance_id).await.unwrap();
    inst.status = InstanceStatus::Online;
    w.put(&inst).await.unwrap();
    w.commit().await.unwrap();
    issued
}

/// Reads server-sent events from a response until `want` returns true for one (or `secs` pass).
async fn sse_until(
    resp: &mut reqwest::Response,
    secs: u64,
    mut want: impl FnMut(&Value) -> bool,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut buf = String::new();
    loop {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk()).await.ok()?;
        buf.push_str(&String::from_utf8_lossy(&chunk.ok()??));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            for line in event.lines() {
                if let Some(data) = line.strip_prefix("data:")
                    && let Ok(v) = serde_json::from_str::<Value>(data.trim())
                    && want(&v)
                {
                    return Some(v);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_servers_on_one_database_are_one_control_plane() {
    let db = TestDatabase::create().await;
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut a = Node::start(&dir_a, db.url(), 0, &["--healing-timeout", "30"]);
    within(20, "the first server to lead", || async {
        count(&a, "now leads") == 1
    })
    .await;
    share_master_key(&dir_a, &dir_b);
    let b = Node::start(&dir_b, db.url(), 0, &["--healing-timeout", "30"]);
    assert!(
        b.output().contains("database=postgres://opsworks@"),
        "the log names the engine"
    );
    assert!(!b.output().contains(":opsworks@"), "never the password");

    // A write on one is read on the other, both ways.
    let (stack, layer) = stack_and_layer(&a, "shared").await;
    let v = b.ok("DescribeStacks", json!({"StackIds": [stack]})).await;
    assert_eq!(v["Stacks"][0]["Name"], "shared");
    b.ok("UpdateStack", json!({"StackId": stack, "Name": "renamed"}))
        .await;
    let v = a.ok("DescribeStacks", json!({"StackIds": [stack]})).await;
    assert_eq!(v["Stacks"][0]["Name"], "renamed");

    // 20 conflicting creates (one shortname) spread across both: exactly one is admitted.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let node = if i % 2 == 0 { &a } else { &b };
        let body = json!({"StackId": stack, "Type": "custom", "Name": format!("Clash {i}"), "Shortname": "clash"});
        tasks.push(node.call("CreateLayer", body));
    }
    let outcomes = futures_util::future::join_all(tasks).await;
    let admitted = outcomes.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(admitted, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .filter(|(s, _)| *s != 200)
            .all(|(s, v)| *s == 400 && v["__type"] == "ValidationException"),
        "{outcomes:?}"
    );
    let layers = b.ok("DescribeLayers", json!({"StackId": stack})).await;
    assert_eq!(layers["Layers"].as_array().unwrap().len(), 2);

    // An event recorded through one server reaches a stream open on the other.
    let instance = a
        .ok(
            "CreateInstance",
            json!({"StackId": stack, "LayerIds": [layer], "InstanceType": "t3.micro"}),
        )
        .await["InstanceId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut stream = b
        .signed_get(&format!("/api/events/stream?StackId={stack}"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    a.ok("StartInstance", json!({"InstanceId": instance})).await;
    let seen = sse_until(&mut stream, 10, |e| {
        e["Type"] == "instance_status" && e["InstanceId"] == instance.as_str()
    })
    .await;
    assert_eq!(
        seen.expect("the event on the other server's stream")["Detail"]["To"],
        "requested"
    );

    // A command created through one server wakes the agent long-polling the other.
    let dir_c = tmp.path().join("c");
    share_master_key(&dir_a, &dir_c);
    let (akid, secret) = as_if_booted(&dir_c, db.url(), &instance).await;
    let (status, hello) = b
        .agent(&akid, &secret, "hello", json!({"instance_id": instance, "agent_version": "test", "hostname": "h", "reported_os": {"family": "debian", "name": "debian", "version": "12"}, "addresses": []}), Duration::from_secs(10))
        .await;
    assert_eq!(status, 200, "{hello}");
    let servers: HashSet<&str> = hello["servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        servers,
        HashSet::from([a.endpoint.as_str(), b.endpoint.as_str()]),
        "the hello answer names every server"
    );
    assert_eq!(hello["servers"][0], b.endpoint, "the one answering first");
    // Anything pending (none) first, so the next poll waits.
    let poll = json!({"instance_id": instance, "wait_seconds": 0});
    let (_, first) = a
        .agent(&akid, &secret, "poll", poll, Duration::from_secs(10))
        .await;
    assert_eq!(
        first["commands"].as_array().map(Vec::len),
        Some(0),
        "{first}"
    );
    let waiting = {
        let (a_http, a_endpoint) = (a.http.clone(), a.endpoint.clone());
        let (akid, secret, instance) = (akid.clone(), secret.clone(), instance.clone());
        tokio::spawn(async move {
            let probe = Node::at(&a_endpoint, &a_http);
            let started = Instant::now();
            let poll = json!({"instance_id": instance, "wait_seconds": 20});
            let got = probe
                .agent(&akid, &secret, "poll", poll, Duration::from_secs(40))
                .await;
            (got, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let deployment = b
        .ok(
            "CreateDeployment",
            json!({"StackId": stack, "InstanceIds": [instance], "Command": {"Name": "execute_recipes", "Args": {"recipes": ["x::y"]}}}),
        )
        .await["DeploymentId"]
        .as_str()
        .unwrap()
        .to_string();
    let ((status, reply), waited) = waiting.await.unwrap();
    assert_eq!(status, 200, "{reply}");
    let cmds = reply["commands"].as_array().unwrap();
    assert_eq!(cmds.len(), 1, "{reply}");
    assert!(
        waited < Duration::from_secs(15),
        "woken, not timed out: {waited:?}"
    );
    let command = cmds[0]["command_id"].as_str().unwrap().to_string();
    eprintln!(
        "a poll on the first server was woken {waited:?} after it began (the deployment came through the second 0.5 s in)"
    );

    // Ack on one, the log in pieces on both, the completion on the other.
    let t = Duration::from_secs(10);
    let ack = json!({"instance_id": instance, "command_id": command});
    assert_eq!(b.agent(&akid, &secret, "ack", ack, t).await.0, 200);
    let piece = |offset: u64, text: &str| json!({"instance_id": instance, "command_id": command, "offset": offset, "text": text});
    assert_eq!(
        a.agent(&akid, &secret, "log", piece(0, "one\n"), t).await.0,
        200
    );
    assert_eq!(
        b.agent(&akid, &secret, "log", piece(4, "two\n"), t).await.0,
        200
    );
    assert_eq!(
        a.agent(&akid, &secret, "log", piece(0, "one\n"), t).await.0,
        200,
        "a retry"
    );
    let (status, gap) = b.agent(&akid, &secret, "log", piece(20, "gap"), t).await;
    assert_eq!(status, 400, "{gap}");
    let done = json!({"instance_id": instance, "command_id": command, "outcome": "successful", "exit_code": 0});
    assert_eq!(b.agent(&akid, &secret, "complete", done, t).await.0, 200);
    let v = a
        .ok(
            "DescribeDeployments",
            json!({"DeploymentIds": [deployment]}),
        )
        .await;
    assert_eq!(v["Deployments"][0]["Status"], "successful");
    // The log link one server hands out opens on the other.
    let v = a
        .ok("DescribeCommands", json!({"CommandIds": [command]}))
        .await;
    let link = v["Commands"][0]["LogUrl"]
        .as_str()
        .expect("a LogUrl")
        .to_string();
    assert!(link.starts_with(&a.endpoint), "{link}");
    let on_b = link.replacen(&a.endpoint, &b.endpoint, 1);
    let text = b
        .http
        .get(&on_b)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "one\ntwo\n");

    // A key revoked through one server stops working on the other at once (StopInstance
    // revokes the instance's key; the other server had it in memory).
    let beat = || json!({"instance_id": instance, "running": null});
    assert_eq!(b.agent(&akid, &secret, "heartbeat", beat(), t).await.0, 200);
    a.ok(
        "StopInstance",
        json!({"InstanceId": instance, "Force": true}),
    )
    .await;
    within(
        10,
        "the revoked key refused on the other server",
        || async {
            let (status, _) = b.agent(&akid, &secret, "heartbeat", beat(), t).await;
            status == 400 || status == 401 || status == 403
        },
    )
    .await;

    // A burst of creates on the leader, which is killed in the middle: every create it
    // acknowledged is there; then the other server leads within 15 s and keeps serving.
    let mut burst = Vec::new();
    for worker in 0..8 {
        let (http, endpoint, stack) = (a.http.clone(), a.endpoint.clone(), stack.clone());
        burst.push(tokio::spawn(async move {
            let node = Node::at(&endpoint, &http);
            let mut acked = Vec::new();
            for i in 0.. {
                let body =
                    json!({"StackId": stack, "Name": format!("app-{worker}-{i}"), "Type": "other"});
                match node.call("CreateApp", body).await {
                    (200, v) => acked.push(v["AppId"].as_str().unwrap().to_string()),
                    _ => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    a.kill();
    let killed = Instant::now();
    let mut acknowledged = Vec::new();
    for task in burst {
        acknowledged.extend(task.await.unwrap());
    }
    assert!(
        acknowledged.len() > 8,
        "the burst got going: {}",
        acknowledged.len()
    );
    let apps = b.ok("DescribeApps", json!({"StackId": stack})).await;
    let stored: HashSet<&str> = apps["Apps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["AppId"].as_str())
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(id.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
    let took = within(20, "the second server to take the lead", || async {
        count(&b, "now leads") == 1
    })
    .await;
    let moved = killed.elapsed();
    eprintln!(
        "{} creates acknowledged before the SIGKILL, none lost; leadership moved {moved:?} after it ({took:?} of waiting)",
        acknowledged.len()
    );
    assert!(
        moved < Duration::from_secs(15),
        "leadership moved in {moved:?}"
    );
    b.ok("DescribeStacks", json!({})).await;

    // The killed server comes back on its data dir and joins again; the leader stays.
    let a = Node::start(&dir_a, db.url(), a.port, &[]);
    let v = a.ok("DescribeApps", json!({"StackId": stack})).await;
    assert_eq!(v["Apps"].as_array().unwrap().len(), stored.len());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(count(&a, "now leads"), 1, "only its first life led");
    assert_eq!(count(&b, "no longer leads"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_the_database_master_key_refuses_to_start() {
    let db = TestDatabase::create().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut first = Node::start(&tmp.path().join("a"), db.url(), 0, &[]);
    first.stop();
    // No master.key at all: none is made, and the message says what to do.
    let err = Node::try_start(&tmp.path().join("b"), db.url(), 0, &[])
        .err()
        .unwrap();
    assert!(err.contains("has no master.key"), "{err}");
    assert!(
        err.contains("every server on one database needs the same master.key"),
        "{err}"
    );
    assert!(!tmp.path().join("b/master.key").exists());
    // Another master key: refused before it seals anything (the root key stays the first's).
    let other = tmp.path().join("c");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(tmp.path().join("a/master.key"), other.join("master.key")).unwrap();
    let mut key = std::fs::read_to_string(other.join("master.key")).unwrap();
    key.replace_range(0..2, if key.starts_with("00") { "11" } else { "00" });
    std::fs::write(other.join("master.key"), key).unwrap();
    let err = Node::try_start(&other, db.url(), 0, &[]).err().unwrap();
    assert!(
        err.contains("cannot open the secret of access key"),
        "{err}"
    );
    let first = Node::start(&tmp.path().join("a"), db.url(), 0, &[]);
    first.ok("DescribeStacks", json!({})).await;
    // A copy of a data dir (its server ID too) beside the original is refused.
    let twin = tmp.path().join("twin");
    share_master_key(&tmp.path().join("a"), &twin);
    std::fs::copy(tmp.path().join("a/server-id"), twin.join("server-id")).unwrap();
    let err = Node::try_start(&twin, db.url(), 0, &[]).err().unwrap();
    assert!(
        err.contains("another server with this data dir's ID"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_migrate_moves_a_data_dir_into_postgres_with_nothing_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("solo");
    // A server on its embedded database.
    let mut solo = {
        let mut child = std::process::Command::new(OPSWORKS)
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .env("OPSWORKS_ROOT_ACCESS_KEY_ID", AKID)
            .env("OPSWORKS_ROOT_SECRET_ACCESS_KEY", SECRET)
            .env_remove("OPSWORKS_DATABASE_URL")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let endpoint = loop {
            let line = lines.next().unwrap().unwrap();
            if let Some(e) = line.strip_prefix("listening on ") {
                break e.to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let mut node = Node::at(&endpoint, &reqwest::Client::new());
        node.child = Some(child);
        node
    };
    let (stack, _) = stack_and_layer(&solo, "moving").await;
    let before = solo.ok("DescribeLayers", json!({"StackId": stack})).await;
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let log_id = "0badc0de-0000-4000-8000-000000000001";
    std::fs::write(dir.join(format!("logs/{log_id}.log")), "converged\n").unwrap();

    let db = TestDatabase::create().await;
    let migrate = || {
        std::process::Command::new(OPSWORKS)
            .args(["db", "migrate", "--from"])
            .arg(&dir)
            .args(["--to", db.url()])
            .output()
            .unwrap()
    };
    // Refused while its server runs.
    let out = migrate();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stop it before migrating"),
        "{out:?}"
    );
    solo.stop();
    let out = migrate();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{out:?}");
    assert!(said.contains("copied 1 command logs"), "{said}");
    assert!(said.contains("master.key"), "{said}");
    assert!(!said.contains(":opsworks@"), "no password shown: {said}");
    // Again into the now non-empty database: refused, clearly.
    let out = migrate();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is not empty") && err.contains("nothing was copied"),
        "{err}"
    );

    // A server on the database with the data dir's master key sees it all.
    let moved = tmp.path().join("moved");
    share_master_key(&dir, &moved);
    let node = Node::start(&moved, db.url(), 0, &[]);
    let after = node.ok("DescribeLayers", json!({"StackId": stack})).await;
    assert_eq!(before, after);
    let cluster = opsworks_store::open(&db.engine()).await.unwrap();
    let log = cluster
        .backend()
        .cluster()
        .unwrap()
        .read_log(log_id, 1 << 20)
        .await
        .unwrap();
    assert_eq!(log.as_deref(), Some("converged\n"));
}
