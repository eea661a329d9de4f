//! The agent with the real `opsworks converge` of this build (the agent crate's own tests use a
//! stand-in script): the agent library against the agent crate's in-test protocol server, its
//! converges run by the `opsworks` binary, as on an instance.

#[path = "../../opsworks-agent/tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::sync::Arc;

use opsworks_protocol::CommandOutcome;
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
