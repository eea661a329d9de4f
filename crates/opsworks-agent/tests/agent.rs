//! End-to-end tests of the agent: a real agent (its own runtime, real state directory) against
//! a small in-test server speaking the server side of the protocol over loopback HTTP, with
//! SigV4 verified; converges run by a stand-in `converge` script that checks the arguments it
//! gets and acts on the run list (the real `opsworks converge` is run by the `opsworks` crate's
//! `agent_converge` test); custom cookbooks and apps come from real git repositories.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use opsworks_agent::cli::AgentCli;
use opsworks_protocol::{AgentCommand, AppSpec, CommandOutcome, SourceSpec};
use serde_json::{Value, json};
use support::*;

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

/// A waiting poll is the agent's sign of life, so it heartbeats only while no poll waits (a
/// command running): at rest an agent holds one connection to its server, not two.
#[test]
fn heartbeats_go_while_a_command_runs_and_not_while_the_poll_waits() {
    let env = Env::new();
    let shared = Arc::new(Shared::default());
    let server = TestServer::start(shared.clone(), 0);
    let _agent = RunningAgent::start(env.args(&server.url()));
    wait_for("the hello", || shared.srv.lock().unwrap().hellos == 1);
    // Idle for four heartbeat intervals (the test server answers a poll after 2 s, and the agent
    // polls again at once): at most one heartbeat slips between two polls.
    std::thread::sleep(Duration::from_secs(4));
    let idle = shared.srv.lock().unwrap().heartbeats;
    assert!(idle <= 1, "{idle} heartbeats while the poll waited");
    // A converge of three seconds: the heartbeats come.
    let mut hang = command("c-long", "execute_recipes", 1, &["mycb::hang"]);
    hang.custom_cookbooks = Some(env.cookbooks());
    hang.timeout_seconds = Some(3);
    shared.push(vec![hang]);
    wait_completion(&shared, "c-long");
    let busy = shared.srv.lock().unwrap().heartbeats - idle;
    assert!(
        busy >= 2,
        "{busy} heartbeats during a three-second converge"
    );
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

/// Two servers of one control plane (one shared state, as two servers on one database): the
/// agent is told of the first only and learns the second from the hello answer; when the first
/// dies in the middle of a command, the agent goes on with the second — the command runs once,
/// its log arrives whole (at the offsets it had reached), and the next command comes through the
/// second.
#[test]
fn when_its_server_dies_the_agent_moves_to_another_of_the_control_plane() {
    let env = Env::new();
    let shared = Arc::new(Shared::default());
    let mut first = TestServer::start(shared.clone(), 0);
    let second = TestServer::start(shared.clone(), 0);
    shared.srv.lock().unwrap().peers = vec![first.url(), second.url()];
    let _agent = RunningAgent::start(env.args(&first.url()));
    let mut cmd = command("c-slow", "deploy", 1, &["mycb::slow"]);
    cmd.custom_cookbooks = Some(env.cookbooks());
    shared.push(vec![cmd]);

    wait_for("the ack", || shared.acks().contains(&"c-slow".to_string()));
    first.stop();
    let done = wait_completion(&shared, "c-slow");
    assert_eq!(
        (done.outcome, done.exit_code),
        (CommandOutcome::Successful, 0)
    );
    let local = std::fs::read_to_string(
        env.state()
            .join("commands")
            .join(&history(&env)[0])
            .join("log"),
    )
    .unwrap();
    wait_for("the whole log", || shared.log("c-slow") == local);
    assert_eq!(env.calls().len(), 1, "the command ran twice");
    assert_eq!(shared.completions_of("c-slow"), 1);

    let before = shared
        .srv
        .lock()
        .unwrap()
        .answered_by
        .get(&second.port)
        .copied();
    let mut next = command("c-next", "execute_recipes", 2, &["mycb::default"]);
    next.custom_cookbooks = Some(env.cookbooks());
    shared.push(vec![next]);
    let done = wait_completion(&shared, "c-next");
    assert_eq!(done.outcome, CommandOutcome::Successful);
    let after = shared
        .srv
        .lock()
        .unwrap()
        .answered_by
        .get(&second.port)
        .copied();
    assert!(
        after.unwrap_or(0) > before.unwrap_or(0).max(3),
        "the second server answered the agent: {before:?} -> {after:?}"
    );
    assert_eq!(env.calls().len(), 2);
}

/// Metrics taken while the server is away arrive once it is back: every sample once, in order,
/// with no gap over the outage.
#[test]
fn metrics_taken_during_an_outage_arrive_afterwards_none_lost_or_doubled() {
    let env = Env::new();
    let shared = Arc::new(Shared::default());
    shared.srv.lock().unwrap().metrics_seconds = Some(1);
    let mut server = TestServer::start(shared.clone(), 0);
    let port = server.port;
    let _agent = RunningAgent::start(env.args(&server.url()));
    let received = || shared.srv.lock().unwrap().metrics.len();
    wait_for("two samples", || received() >= 2);
    // Stop right after a batch was answered, so no batch is cut off mid-answer (a batch the
    // server took but could not confirm is sent again, which the real server folds by second).
    let before = received();
    wait_for("the next batch", || received() > before);
    server.stop();
    let down_from = jiff::Timestamp::now().as_second();
    let kept_before = received();
    std::thread::sleep(Duration::from_secs(5));
    let down_until = jiff::Timestamp::now().as_second();
    assert_eq!(
        received(),
        kept_before,
        "nothing can arrive while the server is down"
    );

    let _server = TestServer::start(shared.clone(), port);
    wait_for("the samples of the outage", || {
        shared
            .srv
            .lock()
            .unwrap()
            .metrics
            .last()
            .is_some_and(|s| s.at > down_until + 1)
    });
    let got = shared.srv.lock().unwrap().metrics.clone();
    // None doubled: a sample sent twice would arrive bit for bit the same.
    for (i, a) in got.iter().enumerate() {
        assert!(
            !got[i + 1..].contains(a),
            "sample at {} arrived twice: {got:?}",
            a.at
        );
    }
    // In order, and no gap: one sample a second throughout (a second may be skipped or
    // repeated only by the timer's rounding, never the outage's length).
    let ats: Vec<i64> = got.iter().map(|s| s.at).collect();
    for pair in ats.windows(2) {
        assert!(
            (0..=2).contains(&(pair[1] - pair[0])),
            "gap or disorder between {} and {}: {ats:?}",
            pair[0],
            pair[1]
        );
    }
    let during = ats
        .iter()
        .filter(|&&at| at > down_from && at < down_until)
        .count();
    assert!(
        during as i64 >= down_until - down_from - 2,
        "samples of the outage missing ({during} between {down_from} and {down_until}): {ats:?}"
    );
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
    // The release is a repository of its own at exactly that commit, and the server hears it.
    assert_eq!(git(&first, &["rev-parse", "HEAD"]), v1);
    assert_eq!(
        git(&first, &["status", "--porcelain", "--untracked-files=no"]),
        ""
    );
    assert_eq!(
        shared.completion("d-1").unwrap().app_revisions,
        Some(BTreeMap::from([("app-1".to_string(), v1.clone())]))
    );
    assert!(
        shared
            .log("d-1")
            .contains(&format!("at `main` resolved to commit {v1}")),
        "{}",
        shared.log("d-1")
    );
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
    assert_eq!(git(&deploy_to.join("current"), &["rev-parse", "HEAD"]), v2);
    assert_eq!(
        shared.completion("d-2").unwrap().app_revisions,
        Some(BTreeMap::from([("app-1".to_string(), v2.clone())]))
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
