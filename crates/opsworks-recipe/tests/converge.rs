//! Converge tests with real resources against temporary directories: idempotence, why-run,
//! notifications, guards, failures, attributes, search, include_recipe and load().

#[path = "support/kit.rs"]
mod kit;

use std::os::unix::fs::MetadataExt;

use kit::{Kit, snapshot};
use opsworks_recipe::{DataBagSource, Status, converge};
use serde_json::json;

const TEMPLATE: &str =
    "name = {{ name }}\nhost = {{ host }}\nport = {{ port }}\nnode_host = {{ node.hostname }}\n";

fn files_cookbook(k: &Kit) {
    k.cookbook(
        "t",
        &[
            ("templates/item.conf.j2", TEMPLATE),
            ("files/static.txt", "static content\n"),
            (
                "recipes/default.star",
                r#"
root = node["t"]["root"]
directory(root + "/conf", mode = "0750")
directory(root + "/deep/a/b", recursive = True)
for i in range(1, 6):
    template("%s/conf/item%d.conf" % (root, i),
        source = "item.conf.j2",
        mode = "0640",
        variables = {"name": "item%d" % i, "host": "localhost", "port": 8000 + i})
file(root + "/plain.txt", content = "hello\n", mode = "0600")
file(root + "/empty")
cookbook_file(root + "/static.txt", source = "static.txt")
link(root + "/link", to = root + "/plain.txt")
"#,
            ),
        ],
    );
}

#[test]
fn second_converge_updates_nothing_and_leaves_files_untouched() {
    let k = Kit::new();
    files_cookbook(&k);
    let first = k.run(&["t"]);
    assert!(first.success, "{}", first.to_text());
    assert_eq!(first.total, 11);
    assert_eq!(first.updated, 11, "{}", first.to_text());
    assert_eq!(
        k.read("conf/item3.conf"),
        "name = item3\nhost = localhost\nport = 8003\nnode_host = testhost\n"
    );
    assert_eq!(
        std::fs::metadata(k.root().join("conf/item3.conf"))
            .unwrap()
            .mode()
            & 0o7777,
        0o640
    );
    assert_eq!(
        std::fs::metadata(k.root().join("conf")).unwrap().mode() & 0o7777,
        0o750
    );
    assert_eq!(
        std::fs::metadata(k.root().join("plain.txt"))
            .unwrap()
            .mode()
            & 0o7777,
        0o600
    );
    assert_eq!(
        std::fs::read_link(k.root().join("link")).unwrap(),
        k.root().join("plain.txt")
    );
    assert_eq!(k.read("static.txt"), "static content\n");
    assert!(
        first.to_text().contains("11/11 resources updated in"),
        "{}",
        first.to_text()
    );

    let before = snapshot(&k.root());
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = k.run(&["t"]);
    assert!(second.success);
    assert_eq!(second.updated, 0, "{}", second.to_text());
    assert!(
        second
            .resources
            .iter()
            .all(|r| r.status == Status::UpToDate),
        "{}",
        second.to_text()
    );
    assert!(
        second.to_text().contains("* file[")
            && second.to_text().contains("action create (up to date)")
    );
    assert_eq!(
        snapshot(&k.root()),
        before,
        "second run must not touch content, mode or mtime"
    );
}

#[test]
fn drift_is_corrected_with_a_diff() {
    let k = Kit::new();
    files_cookbook(&k);
    k.run(&["t"]);
    std::fs::write(k.root().join("plain.txt"), "tampered\n").unwrap();
    std::fs::set_permissions(
        k.root().join("conf"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let r = k.run(&["t"]);
    assert_eq!(r.updated, 2, "{}", r.to_text());
    let entry = r
        .resources
        .iter()
        .find(|e| e.resource.ends_with("plain.txt]"))
        .unwrap();
    let diff = entry.diff.as_deref().unwrap();
    assert!(
        diff.contains("-tampered") && diff.contains("+hello"),
        "{diff}"
    );
    assert_eq!(k.read("plain.txt"), "hello\n");
    let dir = r
        .resources
        .iter()
        .find(|e| e.resource.ends_with("/conf]"))
        .unwrap();
    assert_eq!(dir.changes, ["change mode from '0777' to '0750'"]);
}

#[test]
fn why_run_reports_changes_and_changes_nothing() {
    let k = Kit::new();
    files_cookbook(&k);
    let mut cfg = k.cfg(&["t"]);
    cfg.why_run = true;
    let r = converge(&cfg).unwrap();
    assert!(r.why_run && r.success);
    assert_eq!(r.updated, 11);
    assert!(
        r.resources
            .iter()
            .all(|e| e.changes.iter().all(|c| c.starts_with("would "))),
        "{}",
        r.to_text()
    );
    assert_eq!(
        std::fs::read_dir(k.root()).unwrap().count(),
        0,
        "why-run created files"
    );
    assert!(r.to_text().contains("resources would be updated"));
}

#[test]
fn notification_timers_run_in_chef_order_and_delayed_ones_once() {
    let k = Kit::new();
    k.cookbook(
        "t",
        &[(
            "recipes/default.star",
            r#"
root = node["t"]["root"]
log_file = root + "/order.log"
def mark(name, **kw):
    execute(name, command = "echo %s >> %s" % (name, log_file), **kw)
mark("e_before", action = "nothing")
mark("e_immediate", action = "nothing")
mark("e_delayed", action = "nothing")
file(root + "/a", content = "a", notifies = [
    ("run", "execute[e_delayed]"),
    ("run", "execute[e_immediate]", "immediately"),
    ("run", "execute[e_before]", "before"),
])
mark("after_a")
file(root + "/b", content = "b", notifies = ("run", "execute[e_delayed]", "delayed"))
mark("e_sub", action = "nothing", subscribes = ("run", "file[%s/b]" % root, "immediately"))
mark("e_ghost_sub", action = "nothing", subscribes = ("run", "file[/does/not/exist]"))
"#,
        )],
    );
    let r = k.run(&["t"]);
    assert!(r.success, "{}", r.to_text());
    assert_eq!(
        k.read("order.log"),
        "e_before\ne_immediate\nafter_a\ne_sub\ne_delayed\n"
    );
    let delayed: Vec<_> = r
        .resources
        .iter()
        .filter(|e| e.resource == "execute[e_delayed]" && e.action == "run")
        .collect();
    assert_eq!(delayed.len(), 1);
    assert_eq!(
        delayed[0].notified_by.as_deref(),
        Some(format!("file[{}/a]", k.root().display()).as_str())
    );
    // Nothing updated, so nothing is notified on the second run.
    k.run(&["t"]);
    assert_eq!(
        k.read("order.log"),
        "e_before\ne_immediate\nafter_a\ne_sub\ne_delayed\nafter_a\n"
    );
}

#[test]
fn delayed_notifications_run_before_a_failure_is_reported() {
    let k = Kit::new();
    k.cookbook(
        "t",
        &[(
            "recipes/default.star",
            r#"root = node["t"]["root"]
execute("restart", command = "echo restarted > %s/restarted" % root, action = "nothing")
file(root + "/conf", content = "x", notifies = ("run", "execute[restart]"))
execute("broken", command = "echo oops >&2; exit 3")
file(root + "/never", content = "x")
"#,
        )],
    );
    let r = k.run(&["t"]);
    assert!(!r.success);
    assert_eq!(
        k.read("restarted"),
        "restarted\n",
        "delayed notification must run before failing"
    );
    assert!(
        !k.root().join("never").exists(),
        "resources after the failure must not run"
    );
    let err = r.error.as_deref().unwrap();
    assert!(err.contains("execute[broken]"), "{err}");
    assert!(err.contains("recipe t::default"), "{err}");
    assert!(err.contains("recipes/default.star:4"), "{err}");
    assert!(
        err.contains("exited with status 3") && err.contains("oops"),
        "{err}"
    );
    let statuses: Vec<_> = r
        .resources
        .iter()
        .map(|e| (e.resource.as_str(), e.status))
        .collect();
    assert_eq!(
        statuses.last(),
        Some(&("execute[restart]", Status::Updated))
    );
    assert!(statuses.contains(&("execute[broken]", Status::Failed)));
    assert!(r.to_text().contains("(FAILED)"));
}

#[test]
fn guards_accept_commands_and_functions_evaluated_at_converge() {
    let k = Kit::new();
    k.cookbook(
        "t",
        &[(
            "recipes/default.star",
            r#"root = node["t"]["root"]
file(root + "/skipped_not_if", content = "x", not_if = "true")
file(root + "/skipped_only_if", content = "x", only_if = "exit 1")
file(root + "/made_only_if", content = "x", only_if = "test -d " + root)
file(root + "/marker", content = "m")
# Evaluated at converge: the marker above exists by then.
file(root + "/after_marker", content = "x", only_if = "test -f %s/marker" % root)
def enabled():
    return node["t"]["enabled"]
file(root + "/fn_true", content = "x", only_if = enabled)
file(root + "/fn_false", content = "x", not_if = enabled)
file(root + "/lambda", content = "x", not_if = lambda: False)
file(root + "/list", content = "x", only_if = ["true", enabled])
"#,
        )],
    );
    let mut cfg = k.cfg(&["t"]);
    cfg.json["t"]["enabled"] = json!(true);
    let r = converge(&cfg).unwrap();
    assert!(r.success, "{}", r.to_text());
    for made in ["made_only_if", "after_marker", "fn_true", "lambda", "list"] {
        assert!(
            k.root().join(made).exists(),
            "{made} should exist:\n{}",
            r.to_text()
        );
    }
    for skipped in ["skipped_not_if", "skipped_only_if", "fn_false"] {
        assert!(
            !k.root().join(skipped).exists(),
            "{skipped} should be skipped"
        );
    }
    let e = r
        .resources
        .iter()
        .find(|e| e.resource.ends_with("skipped_not_if]"))
        .unwrap();
    assert_eq!(e.status, Status::Skipped);
    assert_eq!(e.skip_reason.as_deref(), Some("not_if `true`"));
    assert!(
        r.to_text().contains("(skipped due to only_if (function))")
            || r.to_text().contains("(skipped due to not_if (function))")
    );
}

#[test]
fn ignore_failure_retries_and_sensitive() {
    let k = Kit::new();
    k.cookbook(
        "t",
        &[(
            "recipes/default.star",
            r#"root = node["t"]["root"]
execute("fails", command = "exit 1", ignore_failure = True)
execute("flaky", command = "test -f {r}/tried || {{ touch {r}/tried; exit 1; }}".format(r = root), retries = 2, retry_delay = 0)
file(root + "/secret", content = "hunter2-secret\n", sensitive = True)
execute("secret-cmd", command = "echo hunter2-secret; exit 4", sensitive = True, ignore_failure = True)
"#,
        )],
    );
    let r = k.run(&["t"]);
    assert!(r.success, "{}", r.to_text());
    let fails = r
        .resources
        .iter()
        .find(|e| e.resource == "execute[fails]")
        .unwrap();
    assert_eq!(fails.status, Status::Failed);
    assert!(fails.ignored_failure);
    let flaky = r
        .resources
        .iter()
        .find(|e| e.resource.starts_with("execute[flaky"))
        .unwrap();
    assert_eq!(flaky.status, Status::Updated);
    let json = serde_json::to_string(&r).unwrap();
    let text = r.to_text();
    // The resource *name* of the sensitive execute is its identity; the secret is only in content/command.
    assert!(
        !json.contains("hunter2-secret\\n") && !text.contains("+hunter2-secret"),
        "{text}"
    );
    let secret = r
        .resources
        .iter()
        .find(|e| e.resource.ends_with("/secret]"))
        .unwrap();
    assert_eq!(
        secret.diff.as_deref(),
        Some("(diff suppressed: sensitive resource)")
    );
    let cmd = r
        .resources
        .iter()
        .find(|e| e.resource == "execute[secret-cmd]")
        .unwrap();
    assert!(
        !cmd.error.as_deref().unwrap().contains("hunter2"),
        "{:?}",
        cmd.error
    );
}

#[test]
fn attributes_merge_across_files_json_and_recipes() {
    let k = Kit::new();
    k.cookbook(
        "t",
        &[
            (
                "attributes/default.star",
                r#"default["app"]["port"] = 80
default["app"]["domains"] = ["a.test", "b.test"]
default["app"]["name"] = "from-default"
default["app"]["tuning"]["workers"] = 2
"#,
            ),
            (
                "attributes/zz_more.star",
                "default[\"app\"][\"tuning\"][\"threads\"] = 8\n",
            ),
            (
                "recipes/default.star",
                r#"node.override["app"]["port"] = 9000
node.default.set_unless(["app", "name"], "ignored")
node.default.set_unless(["app", "extra"], "set")
file(node["t"]["root"] + "/out.json", content = json.encode({
    "port": node["app"]["port"],
    "domains": node["app"]["domains"],
    "name": node["app"]["name"],
    "tuning": node["app"]["tuning"],
    "extra": node["app"]["extra"],
    "host": node["hostname"],
    "has_app": "app" in node,
    "missing": node.get("nope", "fallback"),
}))
"#,
            ),
        ],
    );
    let mut cfg = k.cfg(&["t"]);
    cfg.json["app"] = json!({"domains": ["json.test"], "name": "from-json"});
    cfg.json["_levels"] = json!({"force_override": {"app": {"tuning": {"workers": 16}}}});
    let r = converge(&cfg).unwrap();
    assert!(r.success, "{}", r.to_text());
    let out: serde_json::Value = serde_json::from_str(&k.read("out.json")).unwrap();
    assert_eq!(
        out,
        json!({
            "port": 9000,
            "domains": ["json.test"],
            "name": "from-json",
            "tuning": {"workers": 16, "threads": 8},
            "extra": "set",
            "host": "testhost",
            "has_app": true,
            "missing": "fallback",
        })
    );
}

#[test]
fn search_data_bags_include_recipe_and_libraries() {
    let k = Kit::new();
    k.cookbook(
        "lib",
        &[(
            "libraries/naming.star",
            "def conf_name(id):\n    return \"user-\" + id + \".conf\"\n",
        )],
    );
    k.cookbook(
        "t",
        &[
            ("metadata.json", r#"{"name": "t", "version": "1.0.0", "depends": {"lib": ">= 0"}}"#),
            ("libraries/local.star", "load(\"lib::naming.star\", \"conf_name\")\ndef path_for(root, id):\n    return root + \"/\" + conf_name(id)\n"),
            ("recipes/users.star", "file(node[\"t\"][\"root\"] + \"/included\", content = \"once\")\n"),
            (
                "recipes/default.star",
                r#"load("local.star", "path_for")
include_recipe("t::users")
include_recipe("t::users")
root = node["t"]["root"]
for u in search("users", "team:ops AND NOT shell:/bin/false"):
    file(path_for(root, u["id"]), content = u["shell"])
file(root + "/ids", content = ",".join(data_bag("users")) + ":" + data_bag_item("users", "bob")["team"])
"#,
            ),
        ],
    );
    let mut bags = opsworks_recipe::DataBags::new();
    let mut users = std::collections::BTreeMap::new();
    for (id, team, shell) in [
        ("alice", "ops", "/bin/bash"),
        ("bob", "dev", "/bin/sh"),
        ("carol", "ops", "/bin/false"),
    ] {
        users.insert(
            id.to_string(),
            json!({"id": id, "team": team, "shell": shell}),
        );
    }
    bags.insert("users".to_string(), users);
    let mut cfg = k.cfg(&["t"]);
    cfg.data_bags = DataBagSource::Memory(bags);
    let r = converge(&cfg).unwrap();
    assert!(r.success, "{}", r.to_text());
    assert_eq!(k.read("user-alice.conf"), "/bin/bash");
    assert!(!k.root().join("user-carol.conf").exists() && !k.root().join("user-bob.conf").exists());
    assert_eq!(k.read("ids"), "alice,bob,carol:dev");
    assert_eq!(
        r.resources
            .iter()
            .filter(|e| e.resource.ends_with("/included]"))
            .count(),
        1
    );
    assert_eq!(r.resources[0].recipe, "t::users");
}

#[test]
fn data_bags_load_from_a_directory() {
    let k = Kit::new();
    let bags = k.dir.path().join("bags/apps");
    std::fs::create_dir_all(&bags).unwrap();
    std::fs::write(bags.join("web.json"), r#"{"id": "web", "deploy": true}"#).unwrap();
    std::fs::write(bags.join("db.json"), r#"{"deploy": false}"#).unwrap();
    k.cookbook("t", &[("recipes/default.star", "file(node[\"t\"][\"root\"] + \"/apps\", content = \" \".join([a[\"id\"] for a in search(\"apps\", \"deploy:true OR id:d*\")]))\n")]);
    let mut cfg = k.cfg(&["t"]);
    cfg.data_bags = DataBagSource::Dir(k.dir.path().join("bags"));
    let r = converge(&cfg).unwrap();
    assert!(r.success, "{}", r.to_text());
    assert_eq!(k.read("apps"), "db web");
}

#[test]
fn ownership_and_link_and_delete_actions() {
    let k = Kit::new();
    k.cookbook(
        "t",
        &[(
            "recipes/default.star",
            r#"root = node["t"]["root"]
file(root + "/owned", content = "x", owner = 65534, group = 65534, mode = "0640")
directory(root + "/d", owner = 65534)
file(root + "/gone", action = "delete")
link(root + "/l", to = "/etc/hostname")
"#,
        )],
    );
    std::fs::write(k.root().join("gone"), "bye").unwrap();
    let r = k.run(&["t"]);
    assert!(r.success, "{}", r.to_text());
    let md = std::fs::metadata(k.root().join("owned")).unwrap();
    if nix_is_root() {
        assert_eq!((md.uid(), md.gid()), (65534, 65534));
        assert_eq!(std::fs::metadata(k.root().join("d")).unwrap().uid(), 65534);
    }
    assert!(!k.root().join("gone").exists());
    let again = k.run(&["t"]);
    assert_eq!(again.updated, 0, "{}", again.to_text());
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn example_cookbooks_converge_and_are_idempotent() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let out = tempfile::tempdir().unwrap();
    let cfg = opsworks_recipe::RunConfig {
        cookbook_paths: vec![examples.join("cookbooks")],
        run_list: vec!["webapp".into(), "bench::mixed".into()],
        json: json!({"base": {"root": out.path().join("ex").display().to_string()},
                     "bench": {"root": out.path().join("bench").display().to_string(), "count": 3}}),
        data_bags: DataBagSource::Dir(examples.join("data_bags")),
        ..Default::default()
    };
    let first = converge(&cfg).unwrap();
    assert!(first.success, "{}", first.to_text());
    assert!(
        std::fs::read_to_string(out.path().join("ex/etc/shop.conf"))
            .unwrap()
            .contains("server_name shop.example.test;")
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("ex/reloads.log")).unwrap(),
        "reloaded\n"
    );
    let second = converge(&cfg).unwrap();
    // Only the log resource reports an update on a converged node, as in Chef.
    let updated: Vec<_> = second
        .resources
        .iter()
        .filter(|e| e.status == Status::Updated)
        .map(|e| e.resource.as_str())
        .collect();
    assert_eq!(
        updated,
        ["log[webapp configured on port 8080]"],
        "{}",
        second.to_text()
    );
}
