//! One test per error kind: each message must point at the right file and line (and show the
//! offending source line where one exists).

#[path = "support/kit.rs"]
mod kit;

use kit::Kit;
use opsworks_recipe::{Limits, RecipeError, converge};

fn compile_error(k: &Kit, run_list: &[&str]) -> String {
    match converge(&k.cfg(run_list)) {
        Err(e) => e.to_string(),
        Ok(r) => panic!("expected an error, got a report:\n{}", r.to_text()),
    }
}

fn failed_run(k: &Kit, run_list: &[&str]) -> String {
    let r = converge(&k.cfg(run_list)).expect("compiles");
    assert!(!r.success, "expected a failed resource:\n{}", r.to_text());
    r.error.unwrap_or_default()
}

#[test]
fn syntax_error_names_file_line_column_and_source() {
    let k = Kit::new();
    let cb = k.cookbook(
        "t",
        &[(
            "recipes/default.star",
            "x = 1\nfile(\"/tmp/x\",\n    content = \"a\" +,\n)\n",
        )],
    );
    let e = compile_error(&k, &["t"]);
    let path = cb.join("recipes/default.star").display().to_string();
    assert!(e.contains(&format!("{path}:3:20")), "{e}");
    assert!(e.contains("content = \"a\" +,"), "{e}");
    assert!(e.contains("Parse error"), "{e}");
}

#[test]
fn runtime_error_names_file_line_and_source() {
    let k = Kit::new();
    let cb = k.cookbook(
        "t",
        &[(
            "recipes/default.star",
            "a = 1\n\nfile(\"/tmp/x\", content = node[\"nginx\"][\"port\"])\n",
        )],
    );
    let e = compile_error(&k, &["t"]);
    assert!(
        e.contains(&format!("{}:3:", cb.join("recipes/default.star").display())),
        "{e}"
    );
    assert!(
        e.contains("node attribute node[\"nginx\"] is not set"),
        "{e}"
    );
    assert!(e.contains("content = node[\"nginx\"][\"port\"]"), "{e}");
}

#[test]
fn typo_in_function_name_is_found_before_anything_runs() {
    let k = Kit::new();
    let cb = k.cookbook(
        "t",
        &[(
            "recipes/default.star",
            "file(\"/tmp/x\")\nservce(\"nginx\")\n",
        )],
    );
    let e = compile_error(&k, &["t"]);
    assert!(
        e.contains("`servce` not found, did you mean `service`?"),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "{}:2:1",
            cb.join("recipes/default.star").display()
        )),
        "{e}"
    );
}

#[test]
fn error_in_a_library_points_into_the_library() {
    let k = Kit::new();
    let cb = k.cookbook(
        "t",
        &[
            (
                "libraries/helpers.star",
                "def port(n):\n    return n[\"missing\"]\n",
            ),
            (
                "recipes/default.star",
                "load(\"helpers.star\", \"port\")\n\nx = port({})\n",
            ),
        ],
    );
    let e = compile_error(&k, &["t"]);
    assert!(
        e.contains(&format!(
            "{}:2",
            cb.join("libraries/helpers.star").display()
        )),
        "{e}"
    );
    assert!(
        e.contains(&format!("{}:3", cb.join("recipes/default.star").display())),
        "{e}"
    );
}

#[test]
fn template_error_names_template_and_line() {
    let k = Kit::new();
    let cb = k.cookbook(
        "t",
        &[
            ("templates/app.conf.j2", "# header\nport = {{ port }}\nname = {{ nmae }}\n"),
            ("recipes/default.star", "template(node[\"t\"][\"root\"] + \"/app.conf\",\n    source = \"app.conf.j2\",\n    variables = {\"port\": 1, \"name\": \"x\"})\n"),
        ],
    );
    let e = failed_run(&k, &["t"]);
    let tpl = cb.join("templates/app.conf.j2").display().to_string();
    assert!(e.contains(&format!("{tpl}:3")), "{e}");
    assert!(e.contains("name = {{ nmae }}"), "{e}");
    assert!(e.contains("undefined"), "{e}");
    // The resource, its recipe and its declaring line are named too.
    assert!(
        e.contains("template[")
            && e.contains("recipe t::default")
            && e.contains("recipes/default.star:1"),
        "{e}"
    );
}

#[test]
fn template_syntax_error_and_missing_template() {
    let k = Kit::new();
    let cb = k.cookbook(
        "t",
        &[
            ("templates/bad.j2", "ok\n{% for x in %}\n"),
            (
                "recipes/default.star",
                "template(node[\"t\"][\"root\"] + \"/a\", source = \"bad.j2\")\n",
            ),
            (
                "recipes/missing.star",
                "template(node[\"t\"][\"root\"] + \"/b\", source = \"nope.j2\")\n",
            ),
        ],
    );
    let e = failed_run(&k, &["t"]);
    assert!(
        e.contains(&format!("{}:2", cb.join("templates/bad.j2").display())),
        "{e}"
    );
    let e = failed_run(&k, &["t::missing"]);
    assert!(e.contains("template `nope.j2` not found"), "{e}");
    assert!(e.contains("recipes/missing.star:1"), "{e}");
}

#[test]
fn failed_resource_names_itself_recipe_and_line() {
    let k = Kit::new();
    k.cookbook(
        "t",
        &[(
            "recipes/web.star",
            "x = 1\n\n\nfile(\"/nonexistent-dir-xyz/f\", content = \"x\")\n",
        )],
    );
    let e = failed_run(&k, &["t::web"]);
    assert!(
        e.starts_with("file[/nonexistent-dir-xyz/f] (recipe t::web, declared at "),
        "{e}"
    );
    assert!(e.contains("recipes/web.star:4"), "{e}");
    assert!(
        e.contains("parent directory /nonexistent-dir-xyz does not exist"),
        "{e}"
    );
}

#[test]
fn unknown_notification_target_is_a_compile_error_at_the_declaration() {
    let k = Kit::new();
    let cb = k.cookbook(
        "t",
        &[(
            "recipes/default.star",
            "\nfile(\"/tmp/x\", notifies = (\"restart\", \"service[ngnix]\"))\n",
        )],
    );
    let e = compile_error(&k, &["t"]);
    assert!(
        e.contains(&format!(
            "{}:2:1",
            cb.join("recipes/default.star").display()
        )),
        "{e}"
    );
    assert!(
        e.contains("service[ngnix]") && e.contains("not in the resource collection"),
        "{e}"
    );
}

#[test]
fn bad_property_action_and_timer_point_at_the_call() {
    let k = Kit::new();
    let cb = k.cookbook(
        "t",
        &[
            ("recipes/prop.star", "file(\"/tmp/x\", contnet = \"a\")\n"),
            (
                "recipes/action.star",
                "\n\nservice(\"x\", action = \"strat\")\n",
            ),
            (
                "recipes/timer.star",
                "file(\"/tmp/x\", notifies = (\"run\", \"execute[y]\", \"later\"))\n",
            ),
        ],
    );
    let e = compile_error(&k, &["t::prop"]);
    assert!(
        e.contains("unknown property `contnet` for file")
            && e.contains(&format!("{}:1:1", cb.join("recipes/prop.star").display())),
        "{e}"
    );
    let e = compile_error(&k, &["t::action"]);
    assert!(
        e.contains("service has no action `strat`") && e.contains("action.star:3:1"),
        "{e}"
    );
    let e = compile_error(&k, &["t::timer"]);
    assert!(
        e.contains("unknown timer `later`") && e.contains("timer.star:1:1"),
        "{e}"
    );
}

#[test]
fn missing_dependency_cookbook_and_recipe_are_named() {
    let k = Kit::new();
    k.cookbook(
        "app",
        &[
            (
                "metadata.json",
                r#"{"name": "app", "depends": {"base": ">= 1.0"}}"#,
            ),
            ("recipes/default.star", ""),
        ],
    );
    k.cookbook(
        "solo",
        &[("recipes/default.star", "include_recipe(\"other::x\")\n")],
    );
    let e = compile_error(&k, &["app"]);
    assert!(
        e.contains("cookbook `app` depends on `base`, which is not in the cookbook path"),
        "{e}"
    );
    let e = compile_error(&k, &["ghost::default"]);
    assert!(e.contains("cookbook `ghost` not found"), "{e}");
    let e = compile_error(&k, &["solo::nope"]);
    assert!(
        e.contains("recipe `solo::nope` not found") && e.contains("recipes/nope.star"),
        "{e}"
    );
    let e = compile_error(&k, &["solo"]);
    assert!(
        e.contains("cookbook `other` is not in the run list") && e.contains("default.star:1:1"),
        "{e}"
    );
}

#[test]
fn invalid_metadata_and_run_list_entries() {
    let k = Kit::new();
    k.cookbook("t", &[("metadata.json", "{not json")]);
    let e = compile_error(&k, &["t"]);
    assert!(
        e.contains("invalid cookbook metadata") && e.contains("metadata.json"),
        "{e}"
    );
    let e = compile_error(&k, &["bad name"]);
    assert!(e.contains("invalid run-list entry `bad name`"), "{e}");
}

#[test]
fn runaway_recipes_stop_at_the_limits() {
    let k = Kit::new();
    let cb = k.cookbook(
        "t",
        &[
            (
                "recipes/loop.star",
                "n = 0\nfor i in range(1000000000):\n    n += i\n",
            ),
            (
                "recipes/recurse.star",
                "def f(n):\n    return f(n + 1)\n\nf(0)\n",
            ),
            (
                "recipes/heap.star",
                "x = []\nfor i in range(1000):\n    x.append(\"y\" * 100000)\n",
            ),
        ],
    );
    let mut cfg = k.cfg(&["t::loop"]);
    cfg.limits = Limits {
        max_ticks: 100_000,
        max_callstack: 50,
        max_heap_bytes: 8 << 20,
    };
    let e = converge(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("100000 ticks")
            && e.contains(&cb.join("recipes/loop.star").display().to_string()),
        "{e}"
    );
    cfg.run_list = vec!["t::recurse".into()];
    let e = converge(&cfg).unwrap_err().to_string();
    assert!(
        e.contains("call stack overflow") && e.contains("recurse.star:2"),
        "{e}"
    );
    assert!(e.lines().count() < 40, "traceback must be shortened:\n{e}");
    cfg.run_list = vec!["t::heap".into()];
    let e = converge(&cfg).unwrap_err().to_string();
    assert!(
        e.to_lowercase().contains("heap") && e.contains("heap.star"),
        "{e}"
    );
}

#[test]
fn resources_in_attribute_files_are_rejected() {
    let k = Kit::new();
    let cb = k.cookbook(
        "t",
        &[
            (
                "attributes/default.star",
                "default[\"a\"] = 1\nfile(\"/tmp/x\")\n",
            ),
            ("recipes/default.star", ""),
        ],
    );
    let e = compile_error(&k, &["t"]);
    assert!(
        e.contains("resources cannot be declared in attribute files"),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "{}:2:1",
            cb.join("attributes/default.star").display()
        )),
        "{e}"
    );
}

#[test]
fn writing_the_merged_node_or_bad_search_is_an_error() {
    let k = Kit::new();
    k.cookbook(
        "t",
        &[
            ("recipes/write.star", "node[\"x\"] = 1\n"),
            ("recipes/search.star", "search(\"users\", \"team:(ops\")\n"),
        ],
    );
    let e = compile_error(&k, &["t::write"]);
    assert!(
        e.contains("read-only") && e.contains("write.star:1:1"),
        "{e}"
    );
    let mut cfg = k.cfg(&["t::search"]);
    cfg.data_bags =
        opsworks_recipe::DataBagSource::Memory([("users".to_string(), Default::default())].into());
    let e = converge(&cfg).unwrap_err();
    assert!(matches!(e, RecipeError::Starlark { .. }));
    assert!(
        e.to_string().contains("invalid search query") && e.to_string().contains("search.star:1:1"),
        "{e}"
    );
}

#[test]
fn a_huge_repetition_is_an_error_before_it_is_built_and_small_ones_work() {
    let k = Kit::new();
    k.cookbook(
        "t",
        &[
            (
                "recipes/default.star",
                "line = \"-\" * 10\nthree = [1] * 3\nab = 2 * \"ab\"\nn = 6 * 7\n\
                 def guard():\n    return len(\"x\" * 4) == 4\n\
                 file(node[\"t\"][\"root\"] + \"/f\", content = line + ab + str(three) + str(n), \
                 only_if = guard)\n",
            ),
            ("recipes/huge.star", "\n\ns = \"x\" * 1000000000\n"),
            ("recipes/huge_list.star", "l = 100000000 * [0]\n"),
        ],
    );
    let r = k.run(&["t"]);
    assert!(r.success, "{}", r.to_text());
    assert_eq!(k.read("f"), "----------abab[1, 1, 1]42");
    let e = compile_error(&k, &["t::huge"]);
    assert!(
        e.contains("`*` would make 1000000000 bytes") && e.contains("huge.star:3"),
        "{e}"
    );
    let e = compile_error(&k, &["t::huge_list"]);
    assert!(e.contains("`*` would make 100000000 items"), "{e}");
}

#[test]
fn a_runaway_template_stops_with_an_error_naming_it() {
    let k = Kit::new();
    k.cookbook(
        "t",
        &[
            (
                "recipes/loops.star",
                "template(node[\"t\"][\"root\"] + \"/a\", source = \"loops.j2\")\n",
            ),
            (
                "recipes/big.star",
                "template(node[\"t\"][\"root\"] + \"/b\", source = \"big.j2\")\n",
            ),
            (
                "templates/loops.j2",
                "{% for i in range(10000) %}{% for j in range(10000) %}{{ j }}{% endfor %}{% endfor %}",
            ),
            (
                "templates/big.j2",
                "{% set a = \"x\" * 10000000 %}{% for i in range(100) %}{{ a }}{% endfor %}",
            ),
        ],
    );
    let e = failed_run(&k, &["t::loops"]);
    assert!(
        e.contains("loops.j2") && e.contains("took more than 5000000 steps"),
        "{e}"
    );
    let e = failed_run(&k, &["t::big"]);
    assert!(
        e.contains("big.j2") && e.contains("larger than 64 MiB"),
        "{e}"
    );
    assert!(!k.root().join("a").exists() && !k.root().join("b").exists());
}
