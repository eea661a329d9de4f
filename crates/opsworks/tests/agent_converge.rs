//! The agent with the real `opsworks converge` of this build (the agent crate's own tests use a
//! stand-in script): the agent library against the agent crate's in-test protocol server, its
//! converges run by the `opsworks` binary, as on an instance.

#[path = "../../opsworks-agent/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use opsworks_protocol::{AppSpec, CommandOutcome, SourceSpec};
use serde_json::json;
use support::*;

/// A recipe that succeeds and one that fails, through the real `opsworks converge`.
#[test]
fn the_agent_runs_recipes_through_the_real_converge() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_opsworks"));
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
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_opsworks"));
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
