//! Tests of the operations through `dispatch`, on a real core and store: what each family
//! checks, stores and shows.

use serde_json::{Value, json};

use opsworks_api::{ApiError, FILTERED};
use opsworks_model::catalog;
use opsworks_model::deployment::{CommandStatus, DeploymentStatus};
use opsworks_model::resource::{App, Command};
use opsworks_store::Filter;

use crate::core::{commands, service_errors};
use crate::testkit::{call, open, stack_with_instance};

#[tokio::test]
async fn secrets_are_filtered_and_echoed_secrets_kept_on_update() {
    let (_dir, core) = open().await;
    let (sid, _) = stack_with_instance(&core).await;
    let created = call(
        &core,
        "CreateApp",
        json!({"StackId": sid, "Name": "Shop Front", "Type": "other",
               "AppSource": {"Type": "git", "Url": "u", "Password": "pw", "SshKey": "key", "Username": "me"},
               "SslConfiguration": {"Certificate": "cert", "PrivateKey": "pk"},
               "Environment": [{"Key": "TOKEN", "Value": "t0ken", "Secure": true}, {"Key": "P", "Value": "shown"}]}),
    )
    .await
    .expect("create");
    let aid = created["AppId"].as_str().expect("id").to_string();
    let shown = call(&core, "DescribeApps", json!({"AppIds": [aid]}))
        .await
        .expect("describe")["Apps"][0]
        .clone();
    assert_eq!(shown["Shortname"], json!("shop_front"));
    assert_eq!(shown["AppSource"]["Password"], json!(FILTERED));
    assert_eq!(shown["AppSource"]["SshKey"], json!(FILTERED));
    assert_eq!(shown["AppSource"]["Username"], json!("me"));
    assert_eq!(shown["SslConfiguration"]["PrivateKey"], json!(FILTERED));
    assert_eq!(shown["SslConfiguration"]["Certificate"], json!("cert"));
    assert_eq!(shown["Environment"][0]["Value"], json!(FILTERED));
    assert_eq!(shown["Environment"][1]["Value"], json!("shown"));
    assert_eq!(shown["Environment"][1]["Secure"], json!(false));
    // What a client that describes, edits and updates sends back.
    call(
        &core,
        "UpdateApp",
        json!({"AppId": aid, "Name": "Renamed", "AppSource": shown["AppSource"],
               "SslConfiguration": shown["SslConfiguration"], "Environment": shown["Environment"]}),
    )
    .await
    .expect("update");
    let stored = core.get::<App>(&aid).await.expect("stored");
    let src = stored.app_source.clone().expect("source");
    assert_eq!(src.password.as_deref(), Some("pw"));
    assert_eq!(src.ssh_key.as_deref(), Some("key"));
    assert_eq!(stored.environment[0].value, "t0ken");
    assert_eq!(
        stored
            .ssl_configuration
            .as_ref()
            .map(|s| s.private_key.as_str()),
        Some("pk")
    );
    assert_eq!(stored.name, "Renamed");
    assert_eq!(stored.shortname, "shop_front");
    // A FILTERED value for a variable that has no stored value is refused.
    let bad = call(
        &core,
        "UpdateApp",
        json!({"AppId": aid, "Environment": [{"Key": "NEW", "Value": FILTERED}]}),
    )
    .await;
    assert!(matches!(bad, Err(ApiError::Validation(m)) if m.contains("NEW")));
    // SSL needs its configuration.
    let ssl = call(
        &core,
        "CreateApp",
        json!({"StackId": sid, "Name": "s", "Type": "other", "EnableSsl": true}),
    )
    .await;
    assert!(matches!(ssl, Err(ApiError::Validation(m)) if m.contains("SslConfiguration")));
    // A stack whose apps have environment variables keeps its Chef version.
    let moved = call(
        &core,
        "UpdateStack",
        json!({"StackId": sid, "ConfigurationManager": {"Name": "Chef", "Version": "12.2"}}),
    )
    .await;
    assert!(moved.is_err());
}

#[tokio::test]
async fn layers_show_every_attribute_and_filter_their_secrets() {
    let (_dir, core) = open().await;
    let (sid, _) = stack_with_instance(&core).await;
    let layer = call(
        &core,
        "CreateLayer",
        json!({"StackId": sid, "Type": "db-master", "Name": "DB", "Shortname": "db-master"}),
    )
    .await
    .expect("layer");
    let shown = call(
        &core,
        "DescribeLayers",
        json!({"LayerIds": [layer["LayerId"]]}),
    )
    .await
    .expect("describe")["Layers"][0]
        .clone();
    assert_eq!(shown["Attributes"]["MysqlRootPassword"], json!(FILTERED));
    assert_eq!(shown["Attributes"]["RubyVersion"], Value::Null);
    assert_eq!(
        shown["LifecycleEventConfiguration"]["Shutdown"]["ExecutionTimeout"],
        json!(120)
    );
    assert_eq!(shown["CustomRecipes"]["Setup"], json!([]));
    assert!(shown.get("_LoadBasedAutoScaling").is_none());
    // A second layer of a built-in type, or a clashing name, is refused.
    let again = call(
        &core,
        "CreateLayer",
        json!({"StackId": sid, "Type": "db-master", "Name": "DB2", "Shortname": "db-master"}),
    )
    .await;
    assert!(matches!(again, Err(ApiError::Validation(m)) if m.contains("only one layer")));
}

#[tokio::test]
async fn recorded_service_errors_are_described_and_linked_from_the_instance() {
    let (_dir, core) = open().await;
    let (sid, iid) = stack_with_instance(&core).await;
    let before = call(&core, "DescribeInstances", json!({"InstanceIds": [iid]}))
        .await
        .expect("describe");
    let status = before["Instances"][0]["Status"].clone();
    let on_instance = service_errors::record_now(
        &core,
        &sid,
        Some(&iid),
        "instance-start-failed",
        "no capacity",
    )
    .await
    .expect("record");
    let on_stack = service_errors::record_now(&core, &sid, None, "stack-error", "stack trouble")
        .await
        .expect("record");
    let by_instance = call(&core, "DescribeServiceErrors", json!({"InstanceId": iid}))
        .await
        .expect("describe");
    let errors = by_instance["ServiceErrors"].as_array().expect("list");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["ServiceErrorId"], json!(on_instance));
    assert_eq!(errors[0]["InstanceId"], json!(iid));
    assert_eq!(errors[0]["StackId"], json!(sid));
    assert_eq!(errors[0]["Type"], json!("instance-start-failed"));
    assert_eq!(errors[0]["Message"], json!("no capacity"));
    assert!(
        errors[0]["CreatedAt"]
            .as_str()
            .is_some_and(|t| t.ends_with("+00:00"))
    );
    let by_stack = call(&core, "DescribeServiceErrors", json!({"StackId": sid}))
        .await
        .expect("describe");
    assert_eq!(by_stack["ServiceErrors"].as_array().map(Vec::len), Some(2));
    let by_ids = call(
        &core,
        "DescribeServiceErrors",
        json!({"ServiceErrorIds": [on_stack]}),
    )
    .await
    .expect("describe");
    assert!(by_ids["ServiceErrors"][0].get("InstanceId").is_none());
    // The instance names its latest error; its status is untouched.
    let after = call(&core, "DescribeInstances", json!({"InstanceIds": [iid]}))
        .await
        .expect("describe");
    assert_eq!(
        after["Instances"][0]["LastServiceErrorId"],
        json!(on_instance)
    );
    assert_eq!(after["Instances"][0]["Status"], status);
    let missing = call(
        &core,
        "DescribeServiceErrors",
        json!({"ServiceErrorIds": [on_stack, "nope"]}),
    )
    .await;
    assert_eq!(missing, Err(ApiError::not_found("service error", "nope")));
    let both = call(
        &core,
        "DescribeServiceErrors",
        json!({"StackId": sid, "InstanceId": iid}),
    )
    .await;
    assert!(matches!(both, Err(ApiError::Validation(_))), "{both:?}");
}

#[tokio::test]
async fn agent_versions_follow_the_stack_or_the_configuration_manager() {
    let (_dir, core) = open().await;
    let (sid, _) = stack_with_instance(&core).await;
    let by_stack = call(&core, "DescribeAgentVersions", json!({"StackId": sid}))
        .await
        .expect("versions");
    assert_eq!(
        by_stack["AgentVersions"],
        json!([{"Version": catalog::AGENT_VERSION, "ConfigurationManager": {"Name": "Chef", "Version": "12"}}])
    );
    let all = call(
        &core,
        "DescribeAgentVersions",
        json!({"ConfigurationManager": {"Name": "Chef"}}),
    )
    .await
    .expect("all");
    assert_eq!(
        all["AgentVersions"].as_array().map(Vec::len),
        Some(catalog::CHEF_VERSIONS.len())
    );
    let none = call(&core, "DescribeAgentVersions", json!({})).await;
    assert!(matches!(none, Err(ApiError::Validation(_))), "{none:?}");
    let bad = call(
        &core,
        "DescribeAgentVersions",
        json!({"ConfigurationManager": {"Name": "Chef", "Version": "13"}}),
    )
    .await;
    assert!(matches!(bad, Err(ApiError::Validation(_))), "{bad:?}");
}

async fn arns(core: &crate::core::Core, sid: &str) -> (Value, Value) {
    let stack = call(core, "DescribeStacks", json!({"StackIds": [sid]}))
        .await
        .expect("stack");
    let layers = call(core, "DescribeLayers", json!({"StackId": sid}))
        .await
        .expect("layers");
    (
        stack["Stacks"][0]["Arn"].clone(),
        layers["Layers"][0]["Arn"].clone(),
    )
}

fn many(prefix: &str, n: usize) -> Value {
    Value::Object(
        (0..n)
            .map(|i| (format!("{prefix}{i}"), json!("v")))
            .collect(),
    )
}

#[tokio::test]
async fn layers_show_stack_tags_overridden_by_their_own_at_most_50() {
    let (_dir, core) = open().await;
    let (sid, _) = stack_with_instance(&core).await;
    let (stack_arn, layer_arn) = arns(&core, &sid).await;
    call(
        &core,
        "TagResource",
        json!({"ResourceArn": stack_arn, "Tags": {"env": "prod", "team": "ops"}}),
    )
    .await
    .expect("tag");
    call(
        &core,
        "TagResource",
        json!({"ResourceArn": layer_arn, "Tags": {"env": "staging"}}),
    )
    .await
    .expect("tag");
    let layer = call(&core, "ListTags", json!({"ResourceArn": layer_arn}))
        .await
        .expect("list");
    assert_eq!(layer["Tags"], json!({"env": "staging", "team": "ops"}));
    let stack = call(&core, "ListTags", json!({"ResourceArn": stack_arn}))
        .await
        .expect("list");
    assert_eq!(stack["Tags"], json!({"env": "prod", "team": "ops"}));
    call(
        &core,
        "UntagResource",
        json!({"ResourceArn": layer_arn, "TagKeys": ["env"]}),
    )
    .await
    .expect("untag");
    let layer = call(&core, "ListTags", json!({"ResourceArn": layer_arn}))
        .await
        .expect("list");
    assert_eq!(layer["Tags"], json!({"env": "prod", "team": "ops"}));
    // 50 in all, counting the stack's.
    call(
        &core,
        "TagResource",
        json!({"ResourceArn": stack_arn, "Tags": many("s", 37)}),
    )
    .await
    .expect("39 on the stack");
    call(
        &core,
        "TagResource",
        json!({"ResourceArn": layer_arn, "Tags": many("l", 11)}),
    )
    .await
    .expect("50 in all");
    let over = call(
        &core,
        "TagResource",
        json!({"ResourceArn": layer_arn, "Tags": {"one-more": "v"}}),
    )
    .await;
    assert!(matches!(over, Err(ApiError::Validation(m)) if m.contains("at most 50")));
}

#[tokio::test]
async fn a_deployment_without_targets_completes_at_once() {
    let (_dir, core) = open().await;
    // The stack's only instance is stopped, so "every online instance" is nobody.
    let (sid, _) = stack_with_instance(&core).await;
    let did = call(
        &core,
        "CreateDeployment",
        json!({"StackId": sid, "Command": {"Name": "configure"}}),
    )
    .await
    .expect("create")["DeploymentId"]
        .clone();
    let d = call(
        &core,
        "DescribeDeployments",
        json!({"DeploymentIds": [did]}),
    )
    .await
    .expect("describe");
    let d = &d["Deployments"][0];
    assert_eq!(d["Status"], json!("successful"));
    assert_eq!(d["Duration"], json!(0));
    assert_eq!(d["CompletedAt"], d["CreatedAt"]);
    assert_eq!(d["InstanceIds"], json!([]));
    assert!(
        d["IamUserArn"]
            .as_str()
            .is_some_and(|a| a.starts_with("arn:aws:iam::") && a.ends_with(":root"))
    );
    let cmds = call(&core, "DescribeCommands", json!({"DeploymentId": did}))
        .await
        .expect("commands");
    assert_eq!(cmds["Commands"], json!([]));
}

#[tokio::test]
async fn finished_commands_settle_their_deployment() {
    let (_dir, core) = open().await;
    let (sid, first) = stack_with_instance(&core).await;
    let layer = call(&core, "DescribeInstances", json!({"InstanceIds": [first]}))
        .await
        .expect("describe")["Instances"][0]["LayerIds"]
        .clone();
    let second = call(
        &core,
        "CreateInstance",
        json!({"StackId": sid, "LayerIds": layer, "InstanceType": "t2.micro"}),
    )
    .await
    .expect("instance")["InstanceId"]
        .as_str()
        .expect("id")
        .to_string();
    for iid in [&first, &second] {
        call(&core, "StartInstance", json!({"InstanceId": iid}))
            .await
            .expect("start");
    }
    // A repeated target gets one command.
    let did = call(
        &core,
        "CreateDeployment",
        json!({"StackId": sid, "InstanceIds": [first, first, second], "Command": {"Name": "setup"}}),
    )
    .await
    .expect("create")["DeploymentId"]
        .as_str()
        .expect("id")
        .to_string();
    let cmds = core
        .list::<Command>(Filter::Parent(&did))
        .await
        .expect("commands");
    assert_eq!(cmds.len(), 2);
    assert!(cmds.iter().all(|c| c.status == CommandStatus::Pending));
    let mut w = core.write().await.expect("write");
    let after_one = commands::finish(&mut w, &cmds[0].command_id, CommandStatus::Failed, Some(1))
        .await
        .expect("finish");
    assert_eq!(after_one, DeploymentStatus::Running);
    let again = commands::finish(
        &mut w,
        &cmds[0].command_id,
        CommandStatus::Successful,
        Some(0),
    )
    .await;
    assert!(again.is_err(), "a command ends once");
    assert_eq!(
        commands::skip_pending(&mut w, &second).await.expect("skip"),
        1
    );
    w.commit().await.expect("commit");
    let d = call(
        &core,
        "DescribeDeployments",
        json!({"DeploymentIds": [did]}),
    )
    .await
    .expect("describe");
    let d = &d["Deployments"][0];
    assert_eq!(d["Status"], json!("failed"));
    assert!(d["Duration"].as_i64().is_some_and(|s| s >= 0));
    let shown = call(&core, "DescribeCommands", json!({"InstanceId": first}))
        .await
        .expect("commands")["Commands"]
        .clone();
    assert_eq!(
        (shown[0]["Status"].clone(), shown[0]["ExitCode"].clone()),
        (json!("failed"), json!(1))
    );
}

#[tokio::test]
async fn app_commands_need_an_app_of_the_stack() {
    let (_dir, core) = open().await;
    let (sid, _) = stack_with_instance(&core).await;
    let (other, _) = stack_with_instance(&core).await;
    let foreign = call(
        &core,
        "CreateApp",
        json!({"StackId": other, "Name": "x", "Type": "other"}),
    )
    .await
    .expect("app");
    let no_app = call(
        &core,
        "CreateDeployment",
        json!({"StackId": sid, "Command": {"Name": "deploy"}}),
    )
    .await;
    assert_eq!(
        no_app,
        Err(ApiError::Validation(
            "The deploy command needs an AppId".into()
        ))
    );
    let wrong = call(
        &core,
        "CreateDeployment",
        json!({"StackId": sid, "AppId": foreign["AppId"], "Command": {"Name": "deploy"}}),
    )
    .await;
    assert!(matches!(wrong, Err(ApiError::Validation(m)) if m.contains("does not belong")));
}

#[tokio::test]
async fn a_failed_step_leaves_nothing_half_made() {
    let (_dir, core) = open().await;
    let (sid, _) = stack_with_instance(&core).await;
    let before = call(&core, "DescribeStacks", json!({}))
        .await
        .expect("stacks");
    // CloneStack with one app of another stack: the stack, its layers and the first app would
    // have been written before the refusal; none of it may remain.
    let (other, _) = stack_with_instance(&core).await;
    let mine = call(
        &core,
        "CreateApp",
        json!({"StackId": sid, "Name": "a", "Type": "other"}),
    )
    .await
    .expect("app");
    let theirs = call(
        &core,
        "CreateApp",
        json!({"StackId": other, "Name": "b", "Type": "other"}),
    )
    .await
    .expect("app");
    let refused = call(
        &core,
        "CloneStack",
        json!({"SourceStackId": sid, "ServiceRoleArn": "arn:aws:iam::1:role/r",
               "CloneAppIds": [mine["AppId"], theirs["AppId"]]}),
    )
    .await;
    assert!(
        matches!(refused, Err(ApiError::Validation(_))),
        "{refused:?}"
    );
    let after = call(&core, "DescribeStacks", json!({}))
        .await
        .expect("stacks");
    assert_eq!(
        after["Stacks"].as_array().map(Vec::len),
        before["Stacks"].as_array().map(|s| s.len() + 1),
        "only the second source stack was added"
    );
}

#[tokio::test]
async fn secrets_are_sealed_in_the_database_files() {
    let (dir, core) = open().await;
    let stack = call(
        &core,
        "CreateStack",
        json!({"Name": "s", "Region": "us-east-1", "ServiceRoleArn": "arn:aws:iam::1:role/r",
               "DefaultInstanceProfileArn": "arn:aws:iam::1:instance-profile/p",
               "CustomCookbooksSource": {"Type": "git", "Url": "u", "Password": "cookbook-pw-7c1f"}}),
    )
    .await
    .expect("stack");
    let sid = stack["StackId"].as_str().expect("id").to_string();
    call(
        &core,
        "CreateApp",
        json!({"StackId": sid, "Name": "a", "Type": "other",
               "AppSource": {"Type": "git", "Url": "u", "SshKey": "app-key-93ab"},
               "SslConfiguration": {"Certificate": "c", "PrivateKey": "tls-key-51de"},
               "Environment": [{"Key": "T", "Value": "secure-value-6e02", "Secure": true}]}),
    )
    .await
    .expect("app");
    call(
        &core,
        "CreateLayer",
        json!({"StackId": sid, "Type": "db-master", "Name": "DB", "Shortname": "db-master",
               "Attributes": {"MysqlRootPassword": "mysql-root-88f3"}}),
    )
    .await
    .expect("layer");
    // Everything the engine keeps on disk: the database, its WAL and shared memory.
    let mut bytes = Vec::new();
    for f in std::fs::read_dir(dir.path().join("data")).expect("data dir") {
        let path = f.expect("entry").path();
        if path.to_string_lossy().contains("opsworks.db") {
            bytes.extend(std::fs::read(&path).expect("read"));
        }
    }
    assert!(!bytes.is_empty());
    for secret in [
        "cookbook-pw-7c1f",
        "app-key-93ab",
        "tls-key-51de",
        "secure-value-6e02",
        "mysql-root-88f3",
    ] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} is in the database files in the clear"
        );
    }
    // And the server still reads them (the instances need them).
    let apps = core.list::<App>(Filter::Stack(&sid)).await.expect("apps");
    assert_eq!(apps[0].environment[0].value, "secure-value-6e02");
}
