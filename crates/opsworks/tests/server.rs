//! End-to-end tests of the control plane's HTTP edge: the real `opsworks server` binary on port 0,
//! real SigV4-signed HTTP on loopback, a real data dir.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use opsworks_api::sigv4::{self, RequestParts};
use serde_json::{Value, json};

const AKID: &str = "AKIDINTEGRATION";
const SECRET: &str = "integration-secret";

/// A running server; killed when dropped.
struct Server {
    child: Child,
    endpoint: String,
}

impl Server {
    fn start(dir: &Path) -> Self {
        Self::start_with(
            dir,
            &[
                ("OPSWORKS_ROOT_ACCESS_KEY_ID", AKID),
                ("OPSWORKS_ROOT_SECRET_ACCESS_KEY", SECRET),
            ],
        )
    }

    fn start_with(dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_opsworks"));
        cmd.args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir);
        cmd.env_remove("OPSWORKS_ROOT_ACCESS_KEY_ID")
            .env_remove("OPSWORKS_ROOT_SECRET_ACCESS_KEY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn opsworks");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let endpoint = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .expect("read stdout");
            if let Some(e) = line.strip_prefix("listening on ") {
                break e.trim().to_string();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, endpoint }
    }

    fn stop(mut self) {
        // SIGTERM: the graceful path a service manager takes.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a request; `mangle` may alter the signed headers and body before sending.
async fn send(
    server: &Server,
    operation: &str,
    body: &str,
    secret: &str,
    now: i64,
    mangle: impl FnOnce(&mut Vec<(String, String)>, &mut String),
) -> (u16, Value) {
    let target = format!("OpsWorks_20130218.{operation}");
    send_target(server, &target, body, secret, now, mangle).await
}

/// [`send`] with the whole `X-Amz-Target`, signed as given.
async fn send_target(
    server: &Server,
    target: &str,
    body: &str,
    secret: &str,
    now: i64,
    mangle: impl FnOnce(&mut Vec<(String, String)>, &mut String),
) -> (u16, Value) {
    let host = server.endpoint.trim_start_matches("http://").to_string();
    let base = [
        ("host", host.as_str()),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target),
    ];
    let parts = RequestParts {
        method: "POST",
        path: "/",
        query: "",
        headers: &base,
        body: body.as_bytes(),
    };
    let (date, auth) = sigv4::sign(&parts, AKID, secret, "us-east-1", now);
    let mut headers: Vec<(String, String)> = base
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    headers.push(("x-amz-date".into(), date));
    headers.push(("authorization".into(), auth));
    let mut body = body.to_string();
    mangle(&mut headers, &mut body);
    let client = reqwest::Client::new();
    let mut req = client.post(format!("{}/", server.endpoint)).body(body);
    for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("non-JSON response: {text}"));
    (status, json)
}

async fn call(server: &Server, operation: &str, body: Value) -> (u16, Value) {
    send(
        server,
        operation,
        &body.to_string(),
        SECRET,
        jiff::Timestamp::now().as_second(),
        |_, _| {},
    )
    .await
}

fn code(v: &Value) -> &str {
    v["__type"].as_str().unwrap_or("")
}

fn stack_request(name: &str) -> Value {
    json!({
        "Name": name,
        "Region": "us-east-1",
        "ServiceRoleArn": "arn:aws:iam::123456789012:role/aws-opsworks-service-role",
        "DefaultInstanceProfileArn": "arn:aws:iam::123456789012:instance-profile/aws-opsworks-ec2-role",
        "CustomCookbooksSource": {"Type": "git", "Url": "https://example.invalid/c.git", "Password": "pa55"},
    })
}

#[tokio::test]
async fn a_restart_keeps_every_stack_and_the_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (status, created) = call(&server, "CreateStack", stack_request("persisted")).await;
    assert_eq!(status, 200, "{created}");
    let id = created["StackId"].as_str().unwrap().to_string();
    let (_, before) = call(&server, "DescribeStacks", json!({"StackIds": [id]})).await;
    server.stop();

    // Same data dir, no root key in the environment: the stored key still signs.
    let server = Server::start_with(dir.path(), &[]);
    let (status, after) = call(&server, "DescribeStacks", json!({"StackIds": [id]})).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(before, after);
    assert_eq!(
        after["Stacks"][0]["CustomCookbooksSource"]["Password"],
        "*****FILTERED*****"
    );
}

#[tokio::test]
async fn signature_failures_get_their_aws_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let now = jiff::Timestamp::now().as_second();

    let (status, v) = send(
        &server,
        "DescribeStacks",
        "{}",
        "not-the-secret",
        now,
        |_, _| {},
    )
    .await;
    assert_eq!(
        (status, code(&v)),
        (400, "InvalidSignatureException"),
        "{v}"
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("The String-to-Sign should have been")
    );

    let (_, v) = send(
        &server,
        "DescribeStacks",
        "{}",
        SECRET,
        now - 20 * 60,
        |_, _| {},
    )
    .await;
    assert_eq!(code(&v), "InvalidSignatureException");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("Signature expired"),
        "{v}"
    );

    let (_, v) = send(&server, "DescribeStacks", "{}", SECRET, now, |_, body| {
        body.push(' ')
    })
    .await;
    assert_eq!(
        code(&v),
        "InvalidSignatureException",
        "a tampered body must not verify"
    );

    let (_, v) = send(&server, "DescribeStacks", "{}", SECRET, now, |h, _| {
        h.retain(|(k, _)| k != "authorization")
    })
    .await;
    assert_eq!(code(&v), "MissingAuthenticationTokenException");

    let (_, v) = send(&server, "DescribeStacks", "{}", SECRET, now, |h, _| {
        h.retain(|(k, _)| k != "x-amz-date")
    })
    .await;
    assert_eq!(code(&v), "IncompleteSignatureException");

    let (_, v) = send(&server, "DescribeStacks", "{}", SECRET, now, |h, _| {
        for (k, v) in h.iter_mut() {
            if k == "authorization" {
                *v = v.replace(AKID, "AKIDUNKNOWN");
            }
        }
    })
    .await;
    assert_eq!(code(&v), "UnrecognizedClientException");

    // A signed header that is then changed in flight.
    let (_, v) = send(&server, "DescribeStacks", "{}", SECRET, now, |h, _| {
        for (k, v) in h.iter_mut() {
            if k == "x-amz-target" {
                *v = "OpsWorks_20130218.DeleteStack".into();
            }
        }
    })
    .await;
    assert_eq!(code(&v), "InvalidSignatureException");
}

#[tokio::test]
async fn malformed_bodies_and_unknown_operations_are_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let now = jiff::Timestamp::now().as_second();

    let (status, v) = send(
        &server,
        "CreateStack",
        "{\"Name\": ",
        SECRET,
        now,
        |_, _| {},
    )
    .await;
    assert_eq!((status, code(&v)), (400, "SerializationException"), "{v}");
    let (_, v) = send(&server, "CreateStack", "[1, 2]", SECRET, now, |_, _| {}).await;
    assert_eq!(code(&v), "SerializationException");

    let mut wrong = stack_request("typed");
    wrong["UseCustomCookbooks"] = json!("yes");
    let (_, v) = call(&server, "CreateStack", wrong).await;
    assert_eq!(code(&v), "SerializationException", "{v}");

    let (_, v) = call(&server, "CreateStack", json!({"Name": "x"})).await;
    assert_eq!(code(&v), "ValidationException");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("Value null at 'region'"),
        "{v}"
    );

    let mut bad_enum = stack_request("enum");
    bad_enum["DefaultRootDeviceType"] = json!("floppy");
    let (_, v) = call(&server, "CreateStack", bad_enum).await;
    assert_eq!(code(&v), "ValidationException", "{v}");

    let mut bad_json = stack_request("json");
    bad_json["CustomJson"] = json!("[1]");
    let (_, v) = call(&server, "CreateStack", bad_json).await;
    assert_eq!(code(&v), "ValidationException", "{v}");

    let (_, v) = call(&server, "MakeCoffee", json!({})).await;
    assert_eq!(code(&v), "UnknownOperationException");

    let (_, v) = call(
        &server,
        "RegisterEcsCluster",
        json!({"StackId": "x", "EcsClusterArn": "arn:aws:ecs:us-east-1:1:cluster/c"}),
    )
    .await;
    assert_eq!(code(&v), "UnsupportedOperationException");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("RegisterEcsCluster")
    );

    // The server is still up and answering after all that.
    let (status, _) = call(&server, "DescribeStacks", json!({})).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn concurrent_creates_all_land_and_delete_refuses_a_stack_that_is_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut tasks = Vec::new();
    let server = std::sync::Arc::new(server);
    for i in 0..20 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            call(&server, "CreateStack", stack_request(&format!("c{i}"))).await
        }));
    }
    for t in tasks {
        let (status, v) = t.await.unwrap();
        assert_eq!(status, 200, "{v}");
    }
    let (_, v) = call(&server, "DescribeStacks", json!({})).await;
    assert_eq!(v["Stacks"].as_array().unwrap().len(), 20);

    let id = v["Stacks"][0]["StackId"].as_str().unwrap().to_string();
    let (status, layer) = call(
        &server,
        "CreateLayer",
        json!({"StackId": id, "Type": "custom", "Name": "Workers", "Shortname": "workers"}),
    )
    .await;
    assert_eq!(status, 200, "{layer}");
    let (_, v) = call(&server, "DeleteStack", json!({"StackId": id})).await;
    assert_eq!(code(&v), "ValidationException", "{v}");
    let (status, _) = call(&server, "DeleteLayer", json!({"LayerId": layer["LayerId"]})).await;
    assert_eq!(status, 200);
    let (status, _) = call(&server, "DeleteStack", json!({"StackId": id})).await;
    assert_eq!(status, 200);
    let (_, v) = call(&server, "DescribeStacks", json!({"StackIds": [id]})).await;
    assert_eq!(code(&v), "ResourceNotFoundException");
    assert_eq!(v["message"], format!("Unable to find stack with ID {id}"));
}

#[test]
fn first_start_generates_a_private_root_key_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data: PathBuf = dir.path().join("data");
    let server = Server::start_with(&data, &[]);
    let creds = std::fs::read_to_string(data.join("root-credentials")).unwrap();
    assert!(creds.contains("aws_access_key_id = AKIA"), "{creds}");
    for f in ["root-credentials", "master.key"] {
        let mode = std::fs::metadata(data.join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    drop(server);
}

#[tokio::test]
async fn half_sent_requests_are_closed_and_oversized_bodies_get_an_aws_error() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let addr = server.endpoint.trim_start_matches("http://").to_string();
    // A client that sends half a request head and waits: the server hangs up on it.
    let started = std::time::Instant::now();
    let mut slow = std::net::TcpStream::connect(&addr).expect("connect");
    slow.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Tar")
        .expect("write");
    slow.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .expect("timeout");
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(40),
        "a half-sent request was kept open {:?}",
        started.elapsed()
    );
    // A body over the limit: an AWS JSON error with its own status, not a bare text page.
    let big = "x".repeat(3 << 20);
    let (status, v) = send(
        &server,
        "DescribeStacks",
        &big,
        SECRET,
        jiff::Timestamp::now().as_second(),
        |_, _| {},
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(code(&v), "RequestEntityTooLarge", "{v}");
    // And a target of another service's prefix is an unknown operation, not a call.
    let (status, v) = send_target(
        &server,
        "DescribeStacks",
        "{}",
        SECRET,
        jiff::Timestamp::now().as_second(),
        |_, _| {},
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(code(&v), "UnknownOperationException", "{v}");
    server.stop();
}

/// A tmpfs of `size` at a fresh directory, unmounted when dropped (root only).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(
            ok.success(),
            "mounting a tmpfs needs root: run the suite as root (scripts/test.sh)"
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_clearly_loses_nothing_acknowledged_and_recovers() {
    let disk = SmallDisk::mount("24m");
    let data = disk.path().join("data");
    let server = Server::start(&data);
    // Leave the database a little room, then fill it.
    let filler = disk.path().join("filler");
    let free = |p: &Path| {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(p)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let room = free(disk.path()).saturating_sub(512 << 10);
    std::fs::write(&filler, vec![0u8; room as usize]).expect("filler");
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for i in 0..400 {
        let (status, v) = call(&server, "CreateStack", stack_request(&format!("s{i}"))).await;
        match status {
            200 => acknowledged.push(v["StackId"].as_str().unwrap().to_string()),
            503 => {
                assert_eq!(code(&v), "ServiceUnavailable", "{v}");
                assert!(
                    v["message"].as_str().unwrap().contains("disk is full"),
                    "{v}"
                );
                refused += 1;
            }
            other => panic!("a full disk answered {other}: {v}"),
        }
        if refused >= 5 {
            break;
        }
    }
    assert!(refused >= 5, "the disk never filled");
    // Reads still answer while the disk is full.
    let (status, _) = call(&server, "DescribeStacks", json!({})).await;
    assert_eq!(status, 200);
    // Space comes back: writes work again at once, without a restart.
    std::fs::remove_file(&filler).expect("free space");
    for i in 0..20 {
        let (status, v) = call(&server, "CreateStack", stack_request(&format!("after{i}"))).await;
        assert_eq!(status, 200, "after freeing space: {v}");
        acknowledged.push(v["StackId"].as_str().unwrap().to_string());
    }
    server.stop();
    // Everything acknowledged is there after a restart.
    let server = Server::start(&data);
    let (status, v) = call(&server, "DescribeStacks", json!({})).await;
    assert_eq!(status, 200);
    let stored: Vec<&str> = v["Stacks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["StackId"].as_str())
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(&id.as_str()))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    server.stop();
}
