//! App releases from real git repositories: every deploy resolves the revision the app names
//! (branch, tag or commit) afresh and the release is exactly that commit, or the deploy fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use opsworks_agent::apps::{self, Deployed};
use opsworks_protocol::{AppSpec, SourceSpec};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.test"])
        .args(["-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"])
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn commit(repo: &Path, server_js: &str) -> String {
    std::fs::write(repo.join("server.js"), server_js).unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", server_js]);
    git(repo, &["rev-parse", "HEAD"])
}

struct Site {
    tmp: tempfile::TempDir,
    /// Seconds added to the release clock, so every deploy gets a name of its own.
    tick: i64,
}

impl Site {
    fn new() -> Site {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("repo")).unwrap();
        git(&tmp.path().join("repo"), &["init", "-q", "-b", "main"]);
        Site { tmp, tick: 0 }
    }
    fn repo(&self) -> PathBuf {
        self.tmp.path().join("repo")
    }
    fn www(&self) -> PathBuf {
        self.tmp.path().join("www")
    }
    fn app(&self, revision: &str) -> AppSpec {
        AppSpec {
            app_id: "app-1".into(),
            shortname: "site".into(),
            name: "Site".into(),
            kind: "nodejs".into(),
            source: Some(SourceSpec {
                kind: "git".into(),
                url: self.repo().display().to_string(),
                revision: Some(revision.into()),
                ..Default::default()
            }),
            environment: BTreeMap::new(),
        }
    }
    /// A deploy as the agent runs it: the release fetched, then (the converge between them having
    /// succeeded without a deploy recipe switching `current`) finished, which makes it current.
    fn deploy(&mut self, revision: &str) -> opsworks_agent::error::Result<Deployed> {
        self.tick += 1;
        let now = jiff::Timestamp::from_second(1_800_000_000 + self.tick).unwrap();
        let deployed = apps::deploy(
            &self.app(revision),
            &self.www(),
            &self.tmp.path().join("scratch"),
            now,
        )?;
        assert_eq!(
            apps::finish_deploy(&deployed, true)?,
            apps::Finished::SwitchedByAgent
        );
        Ok(deployed)
    }
    fn current(&self) -> PathBuf {
        std::fs::read_link(self.www().join("site/current")).unwrap()
    }
}

/// The release's own view: its `.git` HEAD, its REVISION file, its `server.js`.
fn release_state(release: &Path) -> (String, String, String) {
    (
        git(release, &["rev-parse", "HEAD"]),
        std::fs::read_to_string(release.join("REVISION"))
            .unwrap()
            .trim()
            .to_string(),
        std::fs::read_to_string(release.join("server.js")).unwrap(),
    )
}

#[test]
fn commit_deploy_commit_deploy_ships_the_new_commit() {
    let mut site = Site::new();
    let c1 = commit(&site.repo(), "v1");
    let first = site.deploy("main").unwrap();
    assert_eq!(first.revision.as_deref(), Some(c1.as_str()));
    assert_eq!(
        release_state(&first.release),
        (c1.clone(), c1.clone(), "v1".into())
    );

    let c2 = commit(&site.repo(), "v2");
    let second = site.deploy("main").unwrap();
    assert_eq!(second.revision.as_deref(), Some(c2.as_str()));
    assert_eq!(site.current(), second.release);
    assert_eq!(
        release_state(&second.release),
        (c2.clone(), c2, "v2".into())
    );
    // The older release is untouched, and each release names the repository, not the cache.
    assert_eq!(release_state(&first.release).0, c1);
    assert_eq!(
        git(&second.release, &["remote", "get-url", "origin"]),
        site.repo().display().to_string()
    );
}

#[test]
fn branches_tags_and_commits_are_resolved_at_every_deploy() {
    let mut site = Site::new();
    let c1 = commit(&site.repo(), "v1");
    git(&site.repo(), &["tag", "-a", "v1", "-m", "one"]);
    let c2 = commit(&site.repo(), "v2");

    assert_eq!(release_state(&site.deploy("v1").unwrap().release).0, c1);
    assert_eq!(release_state(&site.deploy(&c2).unwrap().release).0, c2);
    assert_eq!(release_state(&site.deploy(&c1[..9]).unwrap().release).0, c1);
    assert_eq!(release_state(&site.deploy("main").unwrap().release).0, c2);

    // A branch moved backwards is followed too: the branch's commit now, not the newest seen.
    git(&site.repo(), &["reset", "-q", "--hard", &c1]);
    let back = site.deploy("main").unwrap();
    assert_eq!(release_state(&back.release), (c1.clone(), c1, "v1".into()));
    // A tag moved to another commit is followed as well.
    git(&site.repo(), &["tag", "-f", "-a", "v1", "-m", "moved", &c2]);
    assert_eq!(release_state(&site.deploy("v1").unwrap().release).0, c2);
}

#[test]
fn what_lies_in_the_cache_never_reaches_a_release() {
    let mut site = Site::new();
    let c1 = commit(&site.repo(), "v1");
    site.deploy("main").unwrap();
    let cache = site.www().join("site/shared/cached-copy");
    // Somebody edits the cached checkout and leaves a file in it.
    std::fs::write(cache.join("server.js"), "edited in the cache").unwrap();
    std::fs::write(cache.join("stray.txt"), "left over").unwrap();
    let again = site.deploy("main").unwrap();
    assert_eq!(release_state(&again.release), (c1.clone(), c1, "v1".into()));
    assert!(!again.release.join("stray.txt").exists());
}

#[test]
fn a_revision_that_does_not_exist_fails_the_deploy_and_changes_nothing() {
    let mut site = Site::new();
    let c1 = commit(&site.repo(), "v1");
    let good = site.deploy("main").unwrap();

    let err = site.deploy("no-such-branch").unwrap_err().to_string();
    assert!(
        err.contains("git revision `no-such-branch` not found in"),
        "{err}"
    );
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let err = site.deploy(missing).unwrap_err().to_string();
    assert!(err.contains(&format!("`{missing}` not found")), "{err}");
    let err = site.deploy("deadbeef1").unwrap_err().to_string();
    assert!(err.contains("`deadbeef1` not found"), "{err}");

    // current still is the good release, and no half-made release was left behind.
    assert_eq!(site.current(), good.release);
    assert_eq!(
        apps::releases(&site.www().join("site")).unwrap(),
        vec![
            good.release
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        ]
    );
    assert_eq!(release_state(&good.release).0, c1);
}
