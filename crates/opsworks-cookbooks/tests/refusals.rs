//! The app and monitoring layers refuse, before anything is installed, the layer attributes they
//! cannot honour, naming the attribute: the recipes are compiled by the real engine against the
//! built-in cookbooks, with the node the server would send (compile errors stop a run before its
//! first resource converges).

use serde_json::{Value, json};

fn compile_error(run_list: &[&str], node: Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cookbooks = dir.path().join("cookbooks");
    opsworks_cookbooks::extract(&cookbooks).unwrap();
    let cfg = opsworks_recipe::RunConfig {
        cookbook_paths: vec![cookbooks],
        run_list: run_list.iter().map(|r| r.to_string()).collect(),
        json: node,
        why_run: true,
        automatic: Some(serde_json::Map::new()),
        ..Default::default()
    };
    match opsworks_recipe::converge(&cfg) {
        Ok(report) => panic!("{run_list:?} compiled and ran: {report:?}"),
        Err(e) => e.to_string(),
    }
}

fn node(settings: Value) -> Value {
    let mut n = json!({
        "opsworks": {
            "activity": "setup",
            "stack": {"id": "0d6b3d0e-5a57-4ae8-9f0f-4b0c6c4e3a11", "name": "s"},
            "instance": {"hostname": "app1", "private_ip": "10.217.0.9", "layers": []},
            "layers": {},
        },
        "deploy": {},
    });
    for (k, v) in settings.as_object().unwrap() {
        n[k] = v.clone();
    }
    n
}

#[test]
fn rails_app_refuses_passenger_and_foreign_versions() {
    let e = compile_error(
        &["opsworks_rails"],
        node(
            json!({"opsworks_rails": {"rails_stack": "apache_passenger", "manage_bundler": true}}),
        ),
    );
    assert!(
        e.contains("RailsStack apache_passenger is not available"),
        "{e}"
    );
    let e = compile_error(
        &["opsworks_rails"],
        node(json!({"opsworks_rails": {"rails_stack": "thin", "manage_bundler": true}})),
    );
    assert!(e.contains("RailsStack 'thin' is unknown"), "{e}");
    let e = compile_error(
        &["opsworks_rails"],
        node(json!({"opsworks_rails": {"passenger_version": "5.0.28", "manage_bundler": true}})),
    );
    assert!(e.contains("PassengerVersion"), "{e}");
    let e = compile_error(
        &["opsworks_rails"],
        node(json!({"opsworks_rails": {"bundler_version": "1.12.5", "manage_bundler": false}})),
    );
    assert!(e.contains("ManageBundler is false"), "{e}");
    // Outside a rails-app layer, the recipe says so rather than guessing.
    let e = compile_error(&["opsworks_rails"], node(json!({})));
    assert!(e.contains("rails-app layer only"), "{e}");
}

#[test]
fn java_app_refuses_other_jvms_servers_and_unsafe_options() {
    for (settings, want) in [
        (json!({"jvm": "Oracle"}), "Jvm Oracle is not available"),
        (json!({"jvm_version": "8"}), "JvmVersion 8 is not available"),
        (
            json!({"java_app_server": "jetty"}),
            "JavaAppServer jetty is not available",
        ),
        (
            json!({"java_app_server_version": "7"}),
            "JavaAppServerVersion 7 is not available",
        ),
        (
            json!({"jvm_options": "-Xmx1g; rm -rf /"}),
            "JvmOptions holds ';'",
        ),
    ] {
        let e = compile_error(
            &["opsworks_java::setup"],
            node(json!({"opsworks_java": settings})),
        );
        assert!(e.contains(want), "{want}: {e}");
    }
}

#[test]
fn monitoring_master_refuses_a_bad_url_or_login() {
    for (settings, want) in [
        (
            json!({"url": "/a b", "user": "opsworks", "password": "pw"}),
            "GangliaUrl '/a b'",
        ),
        (
            json!({"url": "/x/../y", "user": "opsworks", "password": "pw"}),
            "GangliaUrl",
        ),
        (
            json!({"url": "/ganglia", "user": "a:b", "password": "pw"}),
            "GangliaUser 'a:b'",
        ),
        (
            json!({"url": "/ganglia", "user": "opsworks", "password": null}),
            "no GangliaPassword",
        ),
    ] {
        let e = compile_error(
            &["prometheus::server"],
            node(json!({"prometheus": settings})),
        );
        assert!(e.contains(want), "{want}: {e}");
    }
}
