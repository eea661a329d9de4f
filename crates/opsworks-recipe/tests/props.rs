//! Property tests of the recipe language and templates: arbitrary Starlark recipes and Jinja
//! templates compile and converge to a report or an error — no panic, no hang (the evaluation
//! limits bound recipes, fuel bounds templates), no unbounded memory. Recipes run in why-run
//! mode, so whatever they declare changes nothing on this machine.

#[path = "support/kit.rs"]
mod kit;

use std::sync::mpsc;
use std::time::Duration;

use kit::Kit;
use opsworks_recipe::{Limits, RunConfig, converge};
use proptest::prelude::*;

/// Generous: a bound against hanging, never a speed expectation.
const HANG: Duration = Duration::from_secs(60);

/// Runs `cfg` on its own thread; a converge that outlives [`HANG`] fails the test.
fn bounded(cfg: RunConfig) -> Result<(), TestCaseError> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let _ = tx.send(std::panic::catch_unwind(|| {
                converge(&cfg).map(|r| r.success)
            }));
        })
        .unwrap();
    match rx.recv_timeout(HANG) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(panic)) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(TestCaseError::fail(format!("converge panicked: {what}")))
        }
        Err(_) => Err(TestCaseError::fail(format!(
            "converge still running after {HANG:?}"
        ))),
    }
}

/// Pieces of Starlark that, strung together, make programs that are sometimes valid, sometimes
/// not: loops, recursion, big allocations, resources, node access, guards that only say
/// `true` or `exit 1`.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("x = 1\n".to_string()),
        Just("def f(n):\n    return f(n + 1)\n".to_string()),
        Just("def g(n):\n    return [g(i) for i in range(n)]\n".to_string()),
        Just("y = f(0)\n".to_string()),
        Just("y = g(30)\n".to_string()),
        Just("for i in range(100000000):\n    x = i\n".to_string()),
        Just("for i in range(1000):\n    for j in range(1000):\n        x = i * j\n".to_string()),
        Just("big = [0] * 100000000\n".to_string()),
        Just("s = \"x\" * 1000000000\n".to_string()),
        Just("l = []\nfor i in range(10000000):\n    l.append(str(i) * 100)\n".to_string()),
        Just("d = {str(i): i for i in range(100000)}\n".to_string()),
        Just("v = node[\"t\"][\"root\"]\n".to_string()),
        Just("v = node[\"nope\"][\"deeper\"]\n".to_string()),
        Just("file(node[\"t\"][\"root\"] + \"/f\", content = \"c\")\n".to_string()),
        Just("directory(node[\"t\"][\"root\"] + \"/d\", mode = \"0755\")\n".to_string()),
        Just("execute(\"true\", not_if = \"true\")\n".to_string()),
        Just("file(\"/dev/null\", only_if = \"exit 1\")\n".to_string()),
        Just("template(node[\"t\"][\"root\"] + \"/t\", source = \"t.j2\")\n".to_string()),
        Just("include_recipe(\"p::default\")\n".to_string()),
        Just("include_recipe(\"p::other\")\n".to_string()),
        Just("fail(\"boom\")\n".to_string()),
        Just("z = 1 // 0\n".to_string()),
        Just("q = [1, 2][5]\n".to_string()),
        Just("load(\"nowhere\", \"x\")\n".to_string()),
        Just("    \n".to_string()),
        Just("def h(:\n".to_string()),
        "[a-z_]{1,8} = [0-9]{1,12}\n",
        "[a-z_]{1,6}\\([a-z0-9\", =]{0,20}\\)\n",
        ".{0,40}\n",
    ]
}

fn recipe() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..6).prop_map(|f| f.concat())
}

fn quick_limits() -> Limits {
    Limits {
        max_ticks: 500_000,
        max_callstack: 100,
        max_heap_bytes: 64 << 20,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_recipes_converge_or_fail_cleanly(
        default in recipe(),
        other in recipe(),
        attributes in recipe(),
    ) {
        let k = Kit::new();
        k.cookbook("p", &[
            ("recipes/default.star", &default),
            ("recipes/other.star", &other),
            ("attributes/default.star", &attributes),
            ("templates/t.j2", "{{ node.t.root }}\n"),
        ]);
        let mut cfg = k.cfg(&["p"]);
        cfg.why_run = true;
        cfg.limits = quick_limits();
        bounded(cfg)?;
        // Why-run: nothing was made.
        prop_assert_eq!(std::fs::read_dir(k.root()).unwrap().count(), 0);
    }
}

/// Pieces of Jinja: loops, recursion through macros and includes, big repetitions, filters,
/// broken syntax.
fn template_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{{ name }}".to_string()),
        Just("{{ node.t.root }}".to_string()),
        Just("{{ missing.deeper }}".to_string()),
        Just("{% for i in range(100000) %}{{ i }}{% endfor %}".to_string()),
        Just(
            "{% for i in range(10000) %}{% for j in range(10000) %}{{ j }}{% endfor %}{% endfor %}"
                .to_string()
        ),
        Just("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}".to_string()),
        Just("{% include \"t.j2\" %}".to_string()),
        Just("{{ \"x\" * 100000000 }}".to_string()),
        Just(
            "{% set a = \"x\" * 10000000 %}{% for i in range(1000) %}{{ a }}{% endfor %}"
                .to_string()
        ),
        Just("{{ items | join(\", \") }}".to_string()),
        Just("{{ 1 / 0 }}".to_string()),
        Just("{% if %}".to_string()),
        Just("{% for %}{% endfor %}".to_string()),
        Just("{{".to_string()),
        Just("{% raw %}{{ x }}{% endraw %}".to_string()),
        "[a-z ]{0,20}",
        ".{0,30}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_templates_render_or_fail_cleanly(
        top in prop::collection::vec(template_fragment(), 0..5).prop_map(|f| f.concat()),
        included in prop::collection::vec(template_fragment(), 0..3).prop_map(|f| f.concat()),
    ) {
        let k = Kit::new();
        k.cookbook("p", &[
            (
                "recipes/default.star",
                "template(node[\"t\"][\"root\"] + \"/out\", source = \"top.j2\", \
                 variables = {\"name\": \"n\", \"items\": [1, 2]})\n",
            ),
            ("templates/top.j2", &top),
            ("templates/t.j2", &included),
        ]);
        let mut cfg = k.cfg(&["p"]);
        cfg.limits = quick_limits();
        bounded(cfg)?;
        // Only the one file the recipe names, if anything.
        for entry in std::fs::read_dir(k.root()).unwrap() {
            prop_assert_eq!(entry.unwrap().file_name(), "out");
        }
    }
}
