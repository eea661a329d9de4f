//! A streaming-replication standby, promoted: no deployment a server acknowledged is lost.
//!
//! The test makes a PostgreSQL primary and a standby of its own with Debian's tools
//! (`pg_createcluster`, `pg_basebackup`, `pg_ctlcluster ... promote`) on free ports, the standby
//! synchronous (`synchronous_standby_names`, `synchronous_commit = on`: a commit returns once the
//! standby has flushed it). Two servers create deployments on the primary; the primary dies
//! (`stop -m immediate`, as a crash) in the middle; the standby is promoted and the servers are
//! started again pointing at it: every deployment they acknowledged is there. Needs root (it
//! creates clusters), and removes them however it ends.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::json;

const VERSION: &str = "15";
const APP_PASSWORD: &str = "standby-test-app";
const REPL_PASSWORD: &str = "standby-test-repl";
const STANDBY_NAME: &str = "opsworks_standby";

fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .current_dir("/")
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A cluster of this test's own, dropped (stopped and removed) with this value.
struct Cluster {
    name: String,
    port: u16,
}

impl Cluster {
    fn create(role: &str) -> Cluster {
        let name = format!("opsw_{role}_{}", std::process::id());
        let port = free_port();
        // A cluster of that name left by a killed run of the same pid is of no use to anyone.
        let _ = Command::new("pg_dropcluster")
            .args(["--stop", VERSION, &name])
            .current_dir("/")
            .output();
        run(
            "pg_createcluster",
            Command::new("pg_createcluster").args([VERSION, &name, "-p", &port.to_string()]),
        );
        Cluster { name, port }
    }

    fn conf_d(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("/etc/postgresql/{VERSION}/{}/conf.d", self.name))
    }

    fn data_dir(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("/var/lib/postgresql/{VERSION}/{}", self.name))
    }

    fn ctl(&self, args: &[&str]) {
        let mut all = vec![VERSION, self.name.as_str()];
        all.extend(args);
        run(
            &format!("pg_ctlcluster {args:?}"),
            Command::new("pg_ctlcluster").args(all),
        );
    }

    fn psql(&self, sql: &str) -> String {
        run(
            "psql",
            Command::new("runuser").args([
                "-u",
                "postgres",
                "--",
                "timeout",
                "60",
                "psql",
                "-p",
                &self.port.to_string(),
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ]),
        )
    }

    fn wait_ready(&self) {
        for _ in 0..120 {
            let ok = Command::new("runuser")
                .args([
                    "-u",
                    "postgres",
                    "--",
                    "pg_isready",
                    "-q",
                    "-p",
                    &self.port.to_string(),
                ])
                .current_dir("/")
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("cluster {} did not become ready", self.name);
    }

    fn url(&self) -> String {
        format!(
            "postgres://opsworks_app:{APP_PASSWORD}@127.0.0.1:{}/opsworks",
            self.port
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("pg_dropcluster")
            .args(["--stop", VERSION, &self.name])
            .current_dir("/")
            .output();
        // A cluster whose data dir is gone leaves its configuration behind.
        let _ = std::fs::remove_dir_all(format!("/etc/postgresql/{VERSION}/{}", self.name));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_promoted_synchronous_standby_loses_no_acknowledged_deployment() {
    assert!(
        nix_is_root(),
        "this test creates PostgreSQL clusters (pg_createcluster): run it as root"
    );
    let began = std::time::Instant::now();
    let phase = |what: &str| eprintln!("{:>6.1} s  {what}", began.elapsed().as_secs_f64());
    let primary = Cluster::create("primary");
    phase("primary created");
    // Synchronous only once the standby streams: until then every commit would wait for it.
    std::fs::write(
        primary.conf_d().join("opsworks-test.conf"),
        "listen_addresses = '127.0.0.1'\nsynchronous_commit = on\n",
    )
    .unwrap();
    primary.ctl(&["start"]);
    primary.wait_ready();
    primary.psql(&format!(
        "CREATE ROLE opsworks_app LOGIN PASSWORD '{APP_PASSWORD}'; CREATE ROLE opsworks_repl LOGIN REPLICATION PASSWORD '{REPL_PASSWORD}';"
    ));
    primary.psql("CREATE DATABASE opsworks OWNER opsworks_app");
    phase("primary ready");

    // The standby: a base backup of the primary, streaming from it under the name the primary
    // waits for.
    let standby = Cluster::create("standby");
    let data = standby.data_dir();
    for entry in std::fs::read_dir(&data).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    run(
        "pg_basebackup",
        Command::new("runuser")
            .args(["-u", "postgres", "--", "env"])
            .arg(format!("PGPASSWORD={REPL_PASSWORD}"))
            .args([
                "timeout",
                "120",
                "pg_basebackup",
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
            ])
            .args([
                "-U",
                "opsworks_repl",
                "-X",
                "stream",
                "-c",
                "fast",
                "-R",
                "-D",
            ])
            .arg(&data)
            .arg("-d")
            .arg(format!("application_name={STANDBY_NAME}")),
    );
    std::fs::write(
        standby.conf_d().join("opsworks-test.conf"),
        "listen_addresses = '127.0.0.1'\n",
    )
    .unwrap();
    standby.ctl(&["start"]);
    standby.wait_ready();
    primary.psql(&format!(
        "ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'"
    ));
    primary.psql("SELECT pg_reload_conf()");
    let mut synced = false;
    for _ in 0..120 {
        let state = primary.psql(&format!(
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = '{STANDBY_NAME}'"
        ));
        if state == "sync" {
            synced = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(synced, "the standby never became synchronous");
    phase("standby synchronous");

    // Two servers on the primary.
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut a = Node::start(&dir_a, &primary.url(), 0, &[]);
    share_master_key(&dir_a, &dir_b);
    let mut b = Node::start(&dir_b, &primary.url(), 0, &[]);
    let (stack, _) = stack_and_layer(&a, "replicated").await;
    phase("servers up");

    // A burst of deployments through both; the primary dies in the middle of it.
    let mut burst = Vec::new();
    for worker in 0..6 {
        let node = if worker % 2 == 0 { &a } else { &b };
        let (endpoint, http, stack) = (node.endpoint.clone(), node.http.clone(), stack.clone());
        burst.push(tokio::spawn(async move {
            let node = Node::at(&endpoint, &http);
            let mut acked = Vec::new();
            loop {
                let body = json!({"StackId": stack, "Command": {"Name": "update_custom_cookbooks"}, "Comment": format!("w{worker}")});
                // A call the dead database holds up is not acknowledged: give up on it.
                match tokio::time::timeout(Duration::from_secs(5), node.call("CreateDeployment", body)).await {
                    Ok((200, v)) => acked.push(v["DeploymentId"].as_str().unwrap().to_string()),
                    _ => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = std::time::Instant::now();
    primary.ctl(&["stop", "-m", "immediate"]);
    let mut acknowledged = Vec::new();
    for task in burst {
        acknowledged.extend(task.await.unwrap());
    }
    assert!(
        acknowledged.len() > 6,
        "the burst got going: {}",
        acknowledged.len()
    );
    eprintln!("burst over {:?} after the primary's crash", t.elapsed());

    // Promote the standby; the servers start again pointing at it.
    standby.ctl(&["promote"]);
    for _ in 0..120 {
        if standby.psql("SELECT pg_is_in_recovery()") == "f" {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()"), "f", "promoted");
    phase("standby promoted");
    a.kill();
    b.kill();
    let a = Node::start(&dir_a, &standby.url(), a.port, &[]);
    let b = Node::start(&dir_b, &standby.url(), b.port, &[]);
    phase("servers up again");
    for node in [&a, &b] {
        let v = node
            .ok("DescribeDeployments", json!({"StackId": stack}))
            .await;
        let stored: HashSet<&str> = v["Deployments"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["DeploymentId"].as_str())
            .collect();
        let lost: Vec<&String> = acknowledged
            .iter()
            .filter(|id| !stored.contains(id.as_str()))
            .collect();
        assert!(
            lost.is_empty(),
            "acknowledged on the primary, missing on the promoted standby: {lost:?}"
        );
    }
    // And it takes writes.
    b.ok(
        "CreateDeployment",
        json!({"StackId": stack, "Command": {"Name": "update_custom_cookbooks"}}),
    )
    .await;
    eprintln!(
        "{} deployments acknowledged before the primary died; all on the promoted standby",
        acknowledged.len()
    );
}

fn nix_is_root() -> bool {
    // SAFETY-free: /proc/self/status names the effective uid.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
