//! The README's quickstart and what it relies on, without a server: the README holds
//! `examples/quickstart.sh` line for line, and `scripts/serve-examples.sh` turns the examples into
//! git repositories (a new commit only when they changed) and refuses `/tmp`, which instances do
//! not see. `tests/lifecycle/test_quickstart.py` runs the script against real instances.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root")
}

#[test]
fn the_readme_holds_the_quickstart_script_line_for_line() {
    let root = workspace();
    let script = std::fs::read_to_string(root.join("examples/quickstart.sh")).expect("script");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let block = format!("```sh\n{script}```\n");
    assert!(
        readme.contains(&block),
        "README.md must hold examples/quickstart.sh as a ```sh block, unchanged; the script is:\n{script}"
    );
}

#[test]
fn every_code_fence_of_the_readme_is_closed() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README.md");
    let fences: Vec<(usize, &str)> = readme
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("```"))
        .collect();
    assert!(
        fences.len() % 2 == 0,
        "an unclosed code fence in README.md: {fences:?}"
    );
    // Openers may name a language; closers are bare.
    for pair in fences.chunks(2) {
        assert_eq!(
            pair[1].1,
            "```",
            "README.md line {} opens a fence where one should close",
            pair[1].0 + 1
        );
    }
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn serve_examples(dir: &Path) -> std::process::Output {
    Command::new(workspace().join("scripts/serve-examples.sh"))
        .arg(dir)
        .output()
        .expect("serve-examples.sh runs")
}

#[test]
fn serve_examples_makes_repositories_of_the_examples_and_commits_only_changes() {
    // Not under /tmp, which the script refuses: the test target dir is the place.
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let dir = tmp.path().join("repos");
    let first = serve_examples(&dir);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&first.stdout).trim(),
        dir.to_str().expect("utf-8 path")
    );
    let root = workspace();
    for (name, must_hold) in [
        ("hello-app", "server.js"),
        ("cookbooks", "hello/recipes/setup.star"),
    ] {
        let repo = dir.join(format!("{name}.git"));
        let mut listed: Vec<String> = git(&repo, &["ls-tree", "-r", "--name-only", "main"])
            .lines()
            .map(String::from)
            .collect();
        listed.sort();
        assert!(listed.iter().any(|f| f == must_hold), "{name}: {listed:?}");
        for file in &listed {
            let committed = git(&repo, &["show", &format!("main:{file}")]);
            let on_disk = std::fs::read_to_string(root.join("examples").join(name).join(file))
                .expect("example file");
            assert_eq!(committed, on_disk, "{name}/{file}");
        }
    }
    let head = git(&dir.join("hello-app.git"), &["rev-parse", "main"]);
    let again = serve_examples(&dir);
    assert!(again.status.success());
    assert_eq!(
        git(&dir.join("hello-app.git"), &["rev-parse", "main"]),
        head,
        "nothing changed: no new commit"
    );
}

#[test]
fn serve_examples_refuses_tmp_which_instances_do_not_see() {
    let out = serve_examples(Path::new("/tmp/opsworks-examples-refused"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("under /tmp"), "{err}");
    assert!(!Path::new("/tmp/opsworks-examples-refused").exists());
}
