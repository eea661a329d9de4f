//! End-to-end tests of `opsworks converge`: the real binary on a temporary cookbook — text and
//! JSON output, idempotence, why-run, exit status on failures and compile errors.

use std::path::Path;
use std::process::{Command, Output};

fn opsworks(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_opsworks"))
        .args(args)
        .output()
        .expect("run opsworks")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
}

fn cookbook(root: &Path) {
    let cb = root.join("cookbooks/app");
    write(
        &cb.join("metadata.json"),
        r#"{"name": "app", "version": "1.0.0"}"#,
    );
    write(
        &cb.join("attributes/default.star"),
        "default[\"app\"][\"port\"] = 8080\n",
    );
    write(
        &cb.join("templates/app.conf.j2"),
        "port = {{ port }}\nhost = {{ node.app.host }}\n",
    );
    write(
        &cb.join("recipes/default.star"),
        r#"out = node["app"]["out"]
directory(out, mode = "0755")
template(out + "/app.conf", source = "app.conf.j2", variables = {"port": node["app"]["port"]})
file(out + "/motd", content = "hello\n")
"#,
    );
    write(
        &cb.join("recipes/broken.star"),
        "file(node[\"app\"][\"out\"] + \"/missing-dir/x\", content = \"x\")\n",
    );
    write(&cb.join("recipes/typo.star"), "\ndirectroy(\"/tmp/x\")\n");
}

#[test]
fn converge_reports_updates_then_nothing_and_json_matches() {
    let t = tempfile::tempdir().expect("tempdir");
    cookbook(t.path());
    let out = t.path().join("out");
    let json = t.path().join("node.json");
    write(
        &json,
        &format!(
            r#"{{"app": {{"out": "{}", "host": "web1"}}}}"#,
            out.display()
        ),
    );
    let cookbooks = t.path().join("cookbooks").display().to_string();
    let json_arg = json.display().to_string();
    let base = [
        "converge",
        "--cookbooks",
        cookbooks.as_str(),
        "--run-list",
        "app",
        "--json",
        json_arg.as_str(),
    ];

    let mut why = base.to_vec();
    why.push("--why-run");
    let o = opsworks(&why);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!out.exists(), "why-run must not create anything");
    assert!(
        text(&o).contains("would create new directory"),
        "{}",
        text(&o)
    );

    let o = opsworks(&base);
    assert!(o.status.success(), "{}", text(&o));
    let s = text(&o);
    assert!(
        s.contains(&format!(
            "* template[{}/app.conf] action create",
            out.display()
        )),
        "{s}"
    );
    assert!(s.contains("3/3 resources updated in"), "{s}");
    assert_eq!(
        std::fs::read_to_string(out.join("app.conf")).expect("rendered"),
        "port = 8080\nhost = web1\n"
    );

    let mut as_json = base.to_vec();
    as_json.extend(["--format", "json"]);
    let o = opsworks(&as_json);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    assert_eq!(report["updated"], 0);
    assert_eq!(report["total"], 3);
    assert_eq!(report["success"], true);
    assert!(
        report["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .all(|r| r["status"] == "up_to_date")
    );

    let o = opsworks(&base);
    assert!(
        text(&o).contains("action create (up to date)")
            && text(&o).contains("0/3 resources updated"),
        "{}",
        text(&o)
    );
}

#[test]
fn failures_exit_non_zero_and_name_the_file_and_line() {
    let t = tempfile::tempdir().expect("tempdir");
    cookbook(t.path());
    let json = t.path().join("node.json");
    write(
        &json,
        &format!(
            r#"{{"app": {{"out": "{}"}}}}"#,
            t.path().join("out").display()
        ),
    );
    let cookbooks = t.path().join("cookbooks").display().to_string();
    let json_arg = json.display().to_string();

    let o = opsworks(&[
        "converge",
        "--cookbooks",
        &cookbooks,
        "--run-list",
        "app::broken",
        "--json",
        &json_arg,
    ]);
    assert!(!o.status.success());
    let s = text(&o);
    assert!(
        s.contains("(recipe app::broken, declared at ") && s.contains("recipes/broken.star:1"),
        "{s}"
    );

    let o = opsworks(&[
        "converge",
        "--cookbooks",
        &cookbooks,
        "--run-list",
        "app::typo",
    ]);
    assert!(!o.status.success());
    let s = text(&o);
    assert!(
        s.contains("recipes/typo.star:2:1") && s.contains("did you mean `directory`?"),
        "{s}"
    );

    let o = opsworks(&["converge", "--cookbooks", &cookbooks, "--run-list", "nope"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("cookbook `nope` not found"),
        "{}",
        text(&o)
    );
}

/// The service resource where systemd is not PID 1: the binary starts its own supervisor (itself,
/// `opsworks supervisor`), starts the service once, leaves a service nobody told to act alone,
/// and stops it again; each second run changes nothing.
#[test]
fn services_run_under_the_binarys_own_supervisor() {
    assert!(
        !Path::new("/run/systemd/system").is_dir(),
        "systemd is PID 1 here, so the service resource would drive systemd: this test of the \
         supervisor backend runs where systemd is not PID 1 (CI, containers, local instances)"
    );
    let t = tempfile::tempdir().expect("tempdir");
    let state = t.path().join("supervisor");
    let name = format!("owtest{}", std::process::id());
    let cb = t.path().join("cookbooks/svc");
    write(
        &cb.join("recipes/default.star"),
        &format!(
            "service(\"{name}\", command = \"sleep 300\", action = [\"enable\", \"start\"])\n\
             service(\"{name}-idle\", command = \"sleep 300\")\n"
        ),
    );
    write(
        &cb.join("recipes/stop.star"),
        &format!("service(\"{name}\", action = [\"stop\", \"disable\"])\n"),
    );
    let cookbooks = t.path().join("cookbooks").display().to_string();
    let converge = |run_list: &str| -> serde_json::Value {
        let o = Command::new(env!("CARGO_BIN_EXE_opsworks"))
            .args([
                "converge",
                "--cookbooks",
                &cookbooks,
                "--run-list",
                run_list,
            ])
            .args(["--format", "json"])
            .env("OPSWORKS_SUPERVISOR_DIR", &state)
            .env_remove("OPSWORKS_SUPERVISOR_EXE")
            .output()
            .expect("run opsworks");
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice(&o.stdout).expect("JSON report")
    };
    // Whatever happens below, the supervisor this test started goes, with its services.
    struct Shutdown(std::path::PathBuf);
    impl Drop for Shutdown {
        fn drop(&mut self) {
            if let Ok(mut c) = opsworks_host::supervisor::client::Client::connect(&self.0) {
                let _ = c.call(&opsworks_host::supervisor::protocol::Request::Shutdown);
            }
        }
    }
    let _shutdown = Shutdown(state.clone());

    let first = converge("svc");
    assert_eq!(first["updated"], 1, "{first}");
    let idle = first["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| {
            r["resource"]
                .as_str()
                .is_some_and(|n| n.ends_with("-idle]"))
        })
        .expect("the idle service");
    assert_eq!(
        idle["status"], "skipped",
        "service does nothing unless told"
    );
    // The supervisor runs the service, enabled, with a live process; the idle one is unknown.
    let listed = opsworks_host::supervisor::client::Client::connect(&state)
        .expect("the supervisor's socket")
        .call(&opsworks_host::supervisor::protocol::Request::List)
        .expect("list");
    let opsworks_host::supervisor::protocol::Response::List { services } = listed else {
        panic!("{listed:?}");
    };
    let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, [name.as_str()]);
    let pid = services[0].pid.expect("a running service has a pid");
    assert!(services[0].enabled);
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert_eq!(converge("svc")["updated"], 0);
    assert_eq!(converge("svc::stop")["updated"], 1);
    assert_eq!(converge("svc::stop")["updated"], 0);
}
