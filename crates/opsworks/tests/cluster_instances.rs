//! Two servers on one PostgreSQL with real local instances: an instance launched by the first
//! runs a deployment created through the second; the first is killed with SIGKILL, the second
//! keeps serving, the instance's agent moves to it and a new deployment completes; the first
//! comes back and re-adopts its machine, which a stop and a delete asked of the second reach.
//! Real namespaces: root needed, and run under `flock /var/tmp/opsworks-instances.lock`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use opsworks_sandbox::{LocalConfig, LocalProvider, Provider};
use opsworks_store::testing::TestDatabase;
use serde_json::{Value, json};

/// Destroys every machine of the data dirs when dropped, however the test ends.
struct Machines(Vec<PathBuf>);

impl Drop for Machines {
    fn drop(&mut self) {
        // On a thread of its own: this may run inside the test's runtime.
        let dirs = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            for dir in dirs {
                let Ok(provider) = LocalProvider::new(LocalConfig::new(dir.join("machines")))
                else {
                    continue;
                };
                for m in rt.block_on(provider.list()).unwrap_or_default() {
                    let _ = rt.block_on(provider.destroy(&m.id));
                }
            }
        })
        .join();
        remove_binary_copy();
    }
}

async fn status(node: &Node, instance: &str) -> String {
    let v = node
        .ok("DescribeInstances", json!({"InstanceIds": [instance]}))
        .await;
    v["Instances"][0]["Status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

async fn deployment_status(node: &Node, id: &str) -> String {
    let v = node
        .ok("DescribeDeployments", json!({"DeploymentIds": [id]}))
        .await;
    v["Deployments"][0]["Status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

async fn deploy(node: &Node, stack: &str, instance: &str) -> String {
    node.ok(
        "CreateDeployment",
        json!({"StackId": stack, "InstanceIds": [instance], "Command": {"Name": "configure"}}),
    )
    .await["DeploymentId"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn log_of(node: &Node, deployment: &str) -> String {
    let v = node
        .ok("DescribeCommands", json!({"DeploymentId": deployment}))
        .await;
    let url = v["Commands"][0]["LogUrl"]
        .as_str()
        .expect("a log link")
        .to_string();
    node.http
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn machine_count(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("machines/machines"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_moves_to_the_other_server_when_its_server_is_killed() {
    let db = TestDatabase::create().await;
    let tmp = tempfile::Builder::new()
        .prefix("cluster-instances-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let _cleanup = Machines(vec![dir_a.clone(), dir_b.clone()]);
    let flags = ["--local-instances", "--healing-timeout", "30"];
    let mut a = Node::start(&dir_a, db.url(), 0, &flags);
    share_master_key(&dir_a, &dir_b);
    let b = Node::start(&dir_b, db.url(), 0, &flags);
    // The first knows the second before it boots a machine (the agent is told of both).
    within(10, "the first server to see the second", || async {
        let v = a.ok("DescribeStacks", json!({})).await;
        v.is_object()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (stack, layer) = stack_and_layer(&a, "two-servers").await;

    // A registered machine's agent is told the servers' advertise URLs, never their bridges'
    // (its failover list: a bridge's address is the host's own, out of the machine's reach).
    let registered = a
        .ok(
            "RegisterInstance",
            json!({"StackId": stack, "Hostname": "on-premises-1", "PrivateIp": "10.9.8.7"}),
        )
        .await;
    let key = &registered[opsworks_protocol::REGISTERED_CREDENTIALS];
    let (akid, secret) = (
        key["AccessKeyId"].as_str().unwrap(),
        key["SecretAccessKey"].as_str().unwrap(),
    );
    let machine = registered["InstanceId"].as_str().unwrap();
    let (code, hello) = b
        .agent(akid, secret, "hello", json!({"instance_id": machine, "agent_version": "test", "hostname": "on-premises-1", "reported_os": {"family": "debian", "name": "debian", "version": "12"}, "addresses": []}), Duration::from_secs(10))
        .await;
    assert_eq!(code, 200, "{hello}");
    let told: Vec<&str> = hello["servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        told,
        [b.endpoint.as_str(), a.endpoint.as_str()],
        "the answering server first, then the other, by their advertise URLs"
    );
    b.ok("DeregisterInstance", json!({"InstanceId": machine}))
        .await;
    let instance = a
        .ok(
            "CreateInstance",
            json!({"StackId": stack, "LayerIds": [layer], "InstanceType": "t3.micro"}),
        )
        .await["InstanceId"]
        .as_str()
        .unwrap()
        .to_string();
    a.ok("StartInstance", json!({"InstanceId": instance})).await;
    within(120, "the instance online", || async {
        status(&b, &instance).await == "online"
    })
    .await;
    assert_eq!(
        machine_count(&dir_a),
        1,
        "the first server runs the machine"
    );
    assert_eq!(machine_count(&dir_b), 0);

    // A deployment created through the second reaches the instance launched by the first.
    let first = deploy(&b, &stack, &instance).await;
    within(60, "the first deployment", || async {
        deployment_status(&b, &first).await == "successful"
    })
    .await;

    // The first server dies; the second keeps serving, the agent moves to it.
    a.kill();
    b.ok("DescribeStacks", json!({})).await;
    let second = deploy(&b, &stack, &instance).await;
    within(60, "a deployment after the first server died", || async {
        deployment_status(&b, &second).await == "successful"
    })
    .await;
    let log = log_of(&b, &second).await;
    assert!(!log.is_empty(), "the second deployment's log");
    assert!(
        !log_of(&b, &first).await.is_empty(),
        "the first's log outlives its server"
    );
    // The background work is the second's now, and its watchdog hears the agent.
    within(20, "the second server to lead", || async {
        count(&b, "now leads") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(status(&b, &instance).await, "online");

    // The first comes back on its data dir and re-adopts its machine; a stop asked of the second
    // goes to it, and so does the delete.
    let a = Node::start(&dir_a, db.url(), a.port, &flags);
    assert!(
        a.output().contains("re-adopted the machines of this host"),
        "{}",
        a.output()
    );
    assert_eq!(machine_count(&dir_a), 1);
    b.ok("StopInstance", json!({"InstanceId": instance})).await;
    within(90, "the instance stopped", || async {
        status(&b, &instance).await == "stopped"
    })
    .await;
    assert!(
        a.output().contains("instance status changed") && a.output().contains(&instance),
        "the first server stopped the machine"
    );
    b.ok("DeleteInstance", json!({"InstanceId": instance}))
        .await;
    within(30, "the machine removed", || async {
        machine_count(&dir_a) == 0
    })
    .await;
    let v: Value = b.ok("DescribeStacks", json!({})).await;
    assert!(v["Stacks"].as_array().is_some());
}
