//! Registered instances through the operations and the agent's side of the core, on a real core
//! and store: the statuses of the reference, the refusals, the key, the deadlines, the releases.

use serde_json::{Value, json};

use opsworks_api::ApiError;
use opsworks_model::CommandName;
use opsworks_model::catalog::AGENT_VERSION;
use opsworks_model::deployment::CommandStatus;
use opsworks_model::resource::{Command, Instance, Transition};
use opsworks_protocol::{CommandOutcome, Completion};
use opsworks_store::Filter;

use crate::core::{Core, agent_releases, lifecycle, registration, watchdog};
use crate::testkit::{call, open, open_with, stack_and_layer};

use super::os_name;
use opsworks_model::resource::ReportedOs;

#[test]
fn reported_systems_map_to_the_catalog() {
    let os = |name: &str, version: &str| ReportedOs {
        family: None,
        name: Some(name.into()),
        version: Some(version.into()),
    };
    assert_eq!(os_name(&os("debian", "12")), "Debian 12");
    assert_eq!(os_name(&os("ubuntu", "18.04")), "Ubuntu 18.04 LTS");
    assert_eq!(os_name(&os("rhel", "7")), "Red Hat Enterprise Linux 7");
    assert_eq!(os_name(&os("arch", "")), "Custom");
}

fn identity() -> Value {
    json!({"Document": json!({
        "hostname": "ignored-when-hostname-given",
        "architecture": "x86_64",
        "os": {"family": "debian", "name": "debian", "version": "12"},
        "infrastructure_class": "on-premises"
    }).to_string(), "Signature": ""})
}

async fn register(core: &Core, stack: &str, hostname: &str) -> (String, Value) {
    let answer = call(
        core,
        "RegisterInstance",
        json!({"StackId": stack, "Hostname": hostname, "PrivateIp": "10.1.2.3",
               "PublicIp": "203.0.113.7", "InstanceIdentity": identity()}),
    )
    .await
    .expect("register");
    let id = answer["InstanceId"].as_str().expect("id").to_string();
    (id, answer)
}

/// Whether the access key works now (the key ring under the store's current stamp).
async fn key_works(core: &Core, akid: &str) -> bool {
    let stamp = core
        .store()
        .stamps(&[opsworks_model::Kind::AccessKey])
        .await
        .expect("stamps")[0];
    core.keys()
        .resolve(core.store(), akid, stamp)
        .await
        .is_some()
}

async fn status(core: &Core, id: &str) -> String {
    core.get::<Instance>(id)
        .await
        .expect("instance")
        .status
        .to_string()
}

async fn pending(core: &Core, id: &str, kind: CommandName) -> Command {
    core.list::<Command>(Filter::Instance(id))
        .await
        .expect("commands")
        .iter()
        .find(|c| c.r#type == kind && c.status == CommandStatus::Pending)
        .map(|c| (**c).clone())
        .unwrap_or_else(|| panic!("no pending {kind}"))
}

async fn run(core: &Core, id: &str, kind: CommandName, outcome: CommandOutcome) {
    let cmd = pending(core, id, kind).await;
    lifecycle::acknowledge(core, id, &cmd.command_id)
        .await
        .expect("ack");
    let done = Completion {
        instance_id: id.to_string(),
        command_id: cmd.command_id,
        outcome,
        exit_code: if outcome == CommandOutcome::Successful {
            0
        } else {
            1
        },
        report: None,
        app_revisions: None,
    };
    lifecycle::complete(core, &done).await.expect("complete");
}

fn validation(r: Result<Value, ApiError>, needle: &str) {
    match r {
        Err(ApiError::Validation(m)) => assert!(m.contains(needle), "{m}"),
        other => panic!("expected a ValidationException about {needle:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_registered_machine_goes_through_the_states_of_the_reference() {
    let (_dir, core) = open().await;
    let (sid, lid) = stack_and_layer(&core).await;
    let (id, answer) = register(&core, &sid, "Edge-1").await;
    // The instance's own key, once, beside the ID; never the caller's.
    let creds = &answer["AgentCredentials"];
    let akid = creds["AccessKeyId"].as_str().expect("key id");
    assert!(akid.starts_with("AKIA") && akid != "AKIDTEST");
    assert!(key_works(&core, akid).await);

    let shown = call(&core, "DescribeInstances", json!({"InstanceIds": [id]}))
        .await
        .expect("describe")["Instances"][0]
        .clone();
    assert_eq!(shown["Status"], "registering");
    assert_eq!(shown["Hostname"], "edge-1");
    assert_eq!(shown["InfrastructureClass"], "on-premises");
    assert_eq!(
        shown["RegisteredBy"],
        format!("arn:aws:iam::{}:root", core.account_id())
    );
    assert_eq!(
        shown["ReportedOs"],
        json!({"Family": "debian", "Name": "debian", "Version": "12"})
    );
    assert_eq!(shown["Os"], "Debian 12");
    assert_eq!(
        (shown["PrivateIp"].as_str(), shown["PublicIp"].as_str()),
        (Some("10.1.2.3"), Some("203.0.113.7"))
    );
    assert!(shown.get("_Registered").is_none() && shown.get("AgentCredentials").is_none());

    // The agent's first hello: registered.
    registration::agent_registered(&core, &id)
        .await
        .expect("hello");
    assert_eq!(status(&core, &id).await, "registered");

    // Assigned: Setup, then Deploy, then online; the rest of the stack would Configure.
    call(
        &core,
        "AssignInstance",
        json!({"InstanceId": id, "LayerIds": [lid]}),
    )
    .await
    .expect("assign");
    assert_eq!(status(&core, &id).await, "assigning");
    let setup = pending(&core, &id, CommandName::Setup).await;
    lifecycle::acknowledge(&core, &id, &setup.command_id)
        .await
        .expect("ack");
    assert_eq!(status(&core, &id).await, "running_setup");
    let done = Completion {
        instance_id: id.clone(),
        command_id: setup.command_id,
        outcome: CommandOutcome::Successful,
        exit_code: 0,
        report: None,
        app_revisions: None,
    };
    lifecycle::complete(&core, &done).await.expect("setup done");
    run(&core, &id, CommandName::Deploy, CommandOutcome::Successful).await;
    assert_eq!(status(&core, &id).await, "online");

    // Unassigned: Shutdown runs (the machine keeps running), then registered, in no layer.
    call(&core, "UnassignInstance", json!({"InstanceId": id}))
        .await
        .expect("unassign");
    assert_eq!(status(&core, &id).await, "unassigning");
    run(
        &core,
        &id,
        CommandName::Shutdown,
        CommandOutcome::Successful,
    )
    .await;
    let inst = core.get::<Instance>(&id).await.expect("instance");
    assert_eq!(inst.status.to_string(), "registered");
    assert!(inst.layer_ids.is_empty());

    // Deregistered: the agent is told, says goodbye, and the record and its key go.
    call(&core, "DeregisterInstance", json!({"InstanceId": id}))
        .await
        .expect("deregister");
    assert_eq!(status(&core, &id).await, "deregistering");
    registration::goodbye(&core, &id).await.expect("goodbye");
    assert!(core.find::<Instance>(&id).await.expect("find").is_none());
    assert!(!key_works(&core, akid).await);
    assert!(
        core.list::<Transition>(Filter::Parent(&id))
            .await
            .expect("transitions")
            .is_empty()
    );
}

#[tokio::test]
async fn the_server_never_powers_a_registered_machine_and_only_its_agent_version_changes() {
    let (_dir, core) = open().await;
    let (sid, _) = stack_and_layer(&core).await;
    let (id, _) = register(&core, &sid, "edge-2").await;
    registration::agent_registered(&core, &id)
        .await
        .expect("hello");
    for op in ["StartInstance", "StopInstance", "RebootInstance"] {
        validation(call(&core, op, json!({"InstanceId": id})).await, "does not");
    }
    validation(
        call(&core, "DeleteInstance", json!({"InstanceId": id})).await,
        "DeregisterInstance",
    );
    validation(
        call(
            &core,
            "UpdateInstance",
            json!({"InstanceId": id, "Hostname": "x"}),
        )
        .await,
        "only its AgentVersion",
    );
    call(
        &core,
        "UpdateInstance",
        json!({"InstanceId": id, "AgentVersion": AGENT_VERSION}),
    )
    .await
    .expect("agent version");
    validation(
        call(
            &core,
            "UpdateInstance",
            json!({"InstanceId": id, "AgentVersion": "9.9.9"}),
        )
        .await,
        "Invalid AgentVersion",
    );
    // StartStack and StopStack leave it alone.
    call(&core, "StopStack", json!({"StackId": sid}))
        .await
        .expect("stop stack");
    call(&core, "StartStack", json!({"StackId": sid}))
        .await
        .expect("start stack");
    assert_eq!(status(&core, &id).await, "registered");
}

#[tokio::test]
async fn bad_registrations_and_assignments_are_refused() {
    let (_dir, core) = open().await;
    let (sid, lid) = stack_and_layer(&core).await;
    let missing = call(
        &core,
        "RegisterInstance",
        json!({"StackId": "00000000-0000-0000-0000-000000000000", "Hostname": "a"}),
    )
    .await;
    assert!(
        matches!(missing, Err(ApiError::ResourceNotFound(_))),
        "{missing:?}"
    );
    let (id, _) = register(&core, &sid, "dup").await;
    validation(
        call(
            &core,
            "RegisterInstance",
            json!({"StackId": sid, "Hostname": "DUP"}),
        )
        .await,
        "already in use",
    );
    validation(
        call(&core, "RegisterInstance", json!({"StackId": sid})).await,
        "Hostname is required",
    );
    validation(
        call(
            &core,
            "RegisterInstance",
            json!({"StackId": sid, "Hostname": "h", "PrivateIp": "10.0.0.300"}),
        )
        .await,
        "PrivateIp",
    );
    // Not yet registered (the agent never said hello): assigning waits for it.
    validation(
        call(
            &core,
            "AssignInstance",
            json!({"InstanceId": id, "LayerIds": [lid]}),
        )
        .await,
        "registering",
    );
    // An instance CreateInstance made is not for these operations.
    let created = call(
        &core,
        "CreateInstance",
        json!({"StackId": sid, "LayerIds": [lid], "InstanceType": "t2.micro"}),
    )
    .await
    .expect("create")["InstanceId"]
        .as_str()
        .expect("id")
        .to_string();
    for (op, body) in [
        (
            "AssignInstance",
            json!({"InstanceId": created, "LayerIds": [lid]}),
        ),
        ("UnassignInstance", json!({"InstanceId": created})),
        ("DeregisterInstance", json!({"InstanceId": created})),
    ] {
        validation(call(&core, op, body).await, "not registered");
    }
    // A registered EC2 instance joins custom layers only.
    let ec2 = call(
        &core,
        "RegisterInstance",
        json!({"StackId": sid, "Hostname": "ec2-one", "InstanceIdentity": {"Document": "{\"infrastructure_class\":\"ec2\"}"}}),
    )
    .await
    .expect("ec2")["InstanceId"]
        .as_str()
        .expect("id")
        .to_string();
    registration::agent_registered(&core, &ec2)
        .await
        .expect("hello");
    let web = call(
        &core,
        "CreateLayer",
        json!({"StackId": sid, "Type": "memcached", "Name": "Cache", "Shortname": "memcached"}),
    )
    .await
    .expect("layer")["LayerId"]
        .as_str()
        .expect("id")
        .to_string();
    validation(
        call(
            &core,
            "AssignInstance",
            json!({"InstanceId": ec2, "LayerIds": [web]}),
        )
        .await,
        "custom layers only",
    );
    // Unassigning a machine in no layer is refused.
    validation(
        call(&core, "UnassignInstance", json!({"InstanceId": ec2})).await,
        "cannot be unassigned",
    );
    // A machine whose agent never reported in goes at once.
    call(&core, "DeregisterInstance", json!({"InstanceId": id}))
        .await
        .expect("deregister");
    assert!(core.find::<Instance>(&id).await.expect("find").is_none());
}

/// Makes the instance's last status change look `seconds` old.
async fn age_last_transition(core: &Core, id: &str, seconds: i64) {
    let mut w = core.write().await.expect("write");
    let mut all: Vec<Transition> = w.list(Filter::Parent(id)).await.expect("list");
    let mut last = all.pop().expect("a transition");
    let then = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(seconds);
    last.at = opsworks_model::timestamp(then);
    w.put(&last).await.expect("put");
    w.commit().await.expect("commit");
}

#[tokio::test]
async fn silent_registered_machines_are_lost_never_healed_and_deadlines_end_what_they_started() {
    let (_dir, core) = open_with(|c| c.healing_timeout = std::time::Duration::from_millis(1)).await;
    let (sid, lid) = stack_and_layer(&core).await;
    let (id, _) = register(&core, &sid, "quiet").await;
    registration::agent_registered(&core, &id)
        .await
        .expect("hello");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    watchdog::check(&core).await.expect("watchdog");
    assert_eq!(status(&core, &id).await, "connection_lost");
    // Back, it returns to where it was: registered, in no layer.
    lifecycle::agent_alive(&core, &id).await.expect("alive");
    assert_eq!(status(&core, &id).await, "registered");

    // An unassignment whose Shutdown never ends finishes past the layers' shutdown timeout.
    call(
        &core,
        "AssignInstance",
        json!({"InstanceId": id, "LayerIds": [lid]}),
    )
    .await
    .expect("assign");
    run(&core, &id, CommandName::Setup, CommandOutcome::Failed).await;
    assert_eq!(status(&core, &id).await, "setup_failed");
    call(&core, "UnassignInstance", json!({"InstanceId": id}))
        .await
        .expect("unassign");
    core.presence().saw(&id);
    watchdog::check(&core).await.expect("watchdog");
    assert_eq!(status(&core, &id).await, "unassigning");
    age_last_transition(&core, &id, 3600).await;
    core.presence().saw(&id);
    watchdog::check(&core).await.expect("watchdog");
    assert_eq!(status(&core, &id).await, "registered");
    let shutdown = core
        .list::<Command>(Filter::Instance(&id))
        .await
        .expect("commands")
        .into_iter()
        .find(|c| c.r#type == CommandName::Shutdown)
        .expect("shutdown");
    assert_eq!(shutdown.status, CommandStatus::Skipped);

    // A deregistration whose agent never says goodbye ends after a minute.
    call(&core, "DeregisterInstance", json!({"InstanceId": id}))
        .await
        .expect("deregister");
    core.presence().saw(&id);
    watchdog::check(&core).await.expect("watchdog");
    assert_eq!(status(&core, &id).await, "deregistering");
    age_last_transition(&core, &id, registration::GOODBYE_WAIT.as_secs() as i64 + 1).await;
    watchdog::check(&core).await.expect("watchdog");
    assert!(core.find::<Instance>(&id).await.expect("find").is_none());
}

#[tokio::test]
async fn added_releases_are_listed_chosen_and_handed_out() {
    let (dir, core) = open().await;
    let (sid, _) = stack_and_layer(&core).await;
    // The same executable with other bytes at its end: another SHA-256, still an ELF file.
    let file = dir.path().join("agent-copy");
    let mut bytes = std::fs::read(std::env::current_exe().expect("exe")).expect("read");
    bytes.extend_from_slice(b"another build");
    std::fs::write(&file, &bytes).expect("write");
    let added = agent_releases::add(core.store(), core.data_dir(), &file, Some("99.0.0-test"))
        .await
        .expect("add");
    assert_eq!(added.architecture, std::env::consts::ARCH);
    // Again, the same: nothing changes; another file under the same version is refused.
    agent_releases::add(core.store(), core.data_dir(), &file, Some("99.0.0-test"))
        .await
        .expect("same again");
    let other = dir.path().join("other");
    std::fs::write(&other, [&bytes[..], b"!"].concat()).expect("write");
    let clash =
        agent_releases::add(core.store(), core.data_dir(), &other, Some("99.0.0-test")).await;
    assert!(clash.unwrap_err().to_string().contains("already offered"));
    let script = dir.path().join("script");
    std::fs::write(&script, "#!/bin/sh\n").expect("write");
    assert!(
        agent_releases::add(core.store(), core.data_dir(), &script, Some("1"))
            .await
            .unwrap_err()
            .to_string()
            .contains("not a Linux executable")
    );

    let listed = call(&core, "DescribeAgentVersions", json!({"StackId": sid}))
        .await
        .expect("versions")["AgentVersions"]
        .clone();
    let versions: Vec<&str> = listed
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|v| v["Version"].as_str())
        .collect();
    assert_eq!(versions, vec![AGENT_VERSION, "99.0.0-test"]);

    // LATEST (the stack's default) is the newest; a pinned instance gets its own.
    let (id, _) = register(&core, &sid, "upd").await;
    let inst = core.get::<Instance>(&id).await.expect("inst");
    let stack = core
        .get::<opsworks_model::resource::Stack>(&sid)
        .await
        .expect("stack");
    let wanted = agent_releases::desired(&core, &inst, &stack)
        .await
        .expect("desired")
        .expect("a release");
    assert_eq!(
        (wanted.version.as_str(), wanted.sha256.as_str()),
        ("99.0.0-test", added.sha256.as_str())
    );
    assert_eq!(wanted.path, format!("/agent/releases/{}", added.sha256));
    assert_eq!(wanted.confirm_seconds, 60);
    call(
        &core,
        "UpdateStack",
        json!({"StackId": sid, "AgentVersion": AGENT_VERSION}),
    )
    .await
    .expect("pin the stack");
    validation(
        call(
            &core,
            "UpdateStack",
            json!({"StackId": sid, "AgentVersion": "INHERIT"}),
        )
        .await,
        "Invalid AgentVersion",
    );
    let stack = core
        .get::<opsworks_model::resource::Stack>(&sid)
        .await
        .expect("stack");
    let wanted = agent_releases::desired(&core, &inst, &stack)
        .await
        .expect("desired")
        .expect("a release");
    assert_eq!(wanted.version, AGENT_VERSION);
    assert!(
        agent_releases::file_of(&core, &added.sha256)
            .await
            .expect("file")
            .is_some_and(|f| agent_releases::hash_file(&f).expect("hash").0 == added.sha256)
    );
    assert!(
        core.find::<opsworks_model::resource::AgentRelease>("99.0.0-test")
            .await
            .expect("find")
            .is_some()
    );
}
