//! House rules as a plain test (rust-analyzer's `tidy.rs` is the model): the crate order
//! ARCHITECTURE.md writes down holds in every `Cargo.toml`, every crate is on the map, every
//! source file says what it holds in a `//!` line, and no non-test source file grows past the
//! size a reader can hold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root")
}

/// The crates of ARCHITECTURE.md's code map, in its order: rows of the table that start with a
/// crate name in backticks.
fn documented_order(root: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let map = text
        .split("## Code map")
        .nth(1)
        .expect("ARCHITECTURE.md has a '## Code map' section");
    let map = map.split("\n## ").next().unwrap_or(map);
    map.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|name| name.starts_with("opsworks"))
        .map(String::from)
        .collect()
}

/// Each workspace crate's internal dependencies (normal and build, not dev: tests may reach up).
fn dependencies(root: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(root.join("crates")).expect("crates/") {
        let dir = entry.expect("entry").path();
        let manifest = dir.join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut deps = Vec::new();
        let mut section = String::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                section = line.to_string();
                continue;
            }
            let counted = section == "[dependencies]" || section == "[build-dependencies]";
            if counted
                && let Some(dep) = line.split(['=', ' ', '.']).next()
                && dep.starts_with("opsworks")
            {
                deps.push(dep.to_string());
            }
        }
        out.insert(name, deps);
    }
    out
}

#[test]
fn dependencies_point_up_the_architecture_map_only() {
    let root = workspace();
    let order = documented_order(&root);
    let deps = dependencies(&root);
    assert!(
        !order.is_empty(),
        "ARCHITECTURE.md's code map lists no crate"
    );
    let position = |c: &str| order.iter().position(|o| o == c);
    let mut problems = Vec::new();
    for krate in deps.keys() {
        if position(krate).is_none() {
            problems.push(format!("{krate} is not in ARCHITECTURE.md's code map"));
        }
    }
    for listed in &order {
        if !deps.contains_key(listed) {
            problems.push(format!(
                "ARCHITECTURE.md lists {listed}, which is not a crate"
            ));
        }
    }
    for (krate, ds) in &deps {
        let Some(me) = position(krate) else { continue };
        for d in ds {
            match position(d) {
                Some(p) if p < me => {}
                Some(_) => problems.push(format!(
                    "{krate} depends on {d}, which ARCHITECTURE.md lists after it: dependencies point to crates above"
                )),
                None => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_file_opens_with_what_it_holds() {
    let root = workspace();
    let mut files = Vec::new();
    sources(&root.join("crates"), &mut files);
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !f.components().any(|c| c.as_os_str() == "target"))
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` line at the top:\n{}",
        missing.join("\n")
    );
}

#[test]
fn no_source_file_outgrows_a_reader() {
    const LIMIT: usize = 850;
    let root = workspace();
    let mut files = Vec::new();
    sources(&root.join("crates"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter(|f| {
            // Test files are read one test at a time; the rule is for the code.
            let s = f.to_string_lossy();
            !s.contains("/tests/") && !s.ends_with("/tests.rs")
        })
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            // Code before the unit tests counts.
            let code = text.split("#[cfg(test)]").next().unwrap_or(&text);
            let n = code.lines().count();
            (n > LIMIT).then(|| {
                format!(
                    "{} ({n} lines)",
                    f.strip_prefix(&root).unwrap_or(f).display()
                )
            })
        })
        .collect();
    assert!(
        long.is_empty(),
        "non-test source files over {LIMIT} lines:\n{}",
        long.join("\n")
    );
}

/// The server's layers import only downward: `core` never names `ops` or `edge`, `ops` never
/// names `edge` (unit tests aside: they may drive a layer through the one above).
#[test]
fn the_servers_layers_import_only_downward() {
    let root = workspace();
    let src = root.join("crates/opsworks-server/src");
    let mut upward = Vec::new();
    for (layer, above) in [
        ("core", &["crate::ops", "crate::edge"][..]),
        ("ops", &["crate::edge"][..]),
    ] {
        let mut files = vec![src.join(format!("{layer}.rs"))];
        sources(&src.join(layer), &mut files);
        for f in files
            .iter()
            .filter(|f| !f.to_string_lossy().ends_with("tests.rs"))
        {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let code = text.split("#[cfg(test)]").next().unwrap_or(&text);
            for (n, line) in code.lines().enumerate() {
                if !line.trim_start().starts_with("//") && above.iter().any(|a| line.contains(a)) {
                    let shown = f.strip_prefix(&root).unwrap_or(f).display().to_string();
                    upward.push(format!("{shown}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "the server's layers import upward:\n{}",
        upward.join("\n")
    );
}
