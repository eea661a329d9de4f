//! Git sync against real repositories made with `git init`.

use std::path::Path;
use std::process::Command;

use opsworks_host::HostError;
use opsworks_host::git::{current_revision, resolve_revision, sync};

/// Runs git in `dir` and returns its trimmed stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
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
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn commit(dir: &Path, content: &str) -> String {
    std::fs::write(dir.join("app.txt"), content).unwrap();
    git(dir, &["add", "app.txt"]);
    git(dir, &["commit", "-q", "-m", content]);
    git(dir, &["rev-parse", "HEAD"])
}

#[test]
fn sync_follows_branches_tags_and_shas() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    std::fs::create_dir(&origin).unwrap();
    git(&origin, &["init", "-q", "-b", "main"]);
    let c1 = commit(&origin, "one");
    git(&origin, &["tag", "-a", "v1", "-m", "release 1"]);
    let c2 = commit(&origin, "two");
    git(&origin, &["checkout", "-q", "-b", "feature"]);
    let c3 = commit(&origin, "three");
    git(&origin, &["checkout", "-q", "main"]);
    let url = origin.to_string_lossy().to_string();

    assert_eq!(resolve_revision(&url, "main").unwrap(), c2);
    assert_eq!(
        resolve_revision(&url, "v1").unwrap(),
        c1,
        "annotated tags are peeled"
    );
    assert_eq!(resolve_revision(&url, "HEAD").unwrap(), c2);
    assert_eq!(resolve_revision(&url, &c3).unwrap(), c3);
    assert!(matches!(
        resolve_revision(&url, "no-such-branch"),
        Err(HostError::RevisionNotFound { .. })
    ));

    let dest = tmp.path().join("deploy/current");
    assert_eq!(current_revision(&dest).unwrap(), None);
    let first = sync(&url, "main", &dest, None).unwrap();
    assert_eq!(first.before, None);
    assert_eq!(first.after, c2);
    assert_eq!(
        std::fs::read_to_string(dest.join("app.txt")).unwrap(),
        "two"
    );

    // Again: nothing to do, and it says so.
    let again = sync(&url, "main", &dest, None).unwrap();
    assert_eq!(again.before.as_deref(), Some(c2.as_str()));
    assert_eq!(again.after, c2);

    // A tag, a full sha from another branch, an abbreviated sha; local edits are discarded.
    std::fs::write(dest.join("app.txt"), "local edit").unwrap();
    let to_tag = sync(&url, "v1", &dest, None).unwrap();
    assert_eq!(
        (to_tag.before.as_deref(), to_tag.after.as_str()),
        (Some(c2.as_str()), c1.as_str())
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("app.txt")).unwrap(),
        "one"
    );
    assert_eq!(sync(&url, &c3, &dest, None).unwrap().after, c3);
    assert_eq!(
        std::fs::read_to_string(dest.join("app.txt")).unwrap(),
        "three"
    );
    assert_eq!(sync(&url, &c1[..10], &dest, None).unwrap().after, c1);

    // New commits upstream are fetched.
    let c4 = commit(&origin, "four");
    let moved = sync(&url, "main", &dest, None).unwrap();
    assert_eq!((moved.before, moved.after), (Some(c1.clone()), c4.clone()));
    assert_eq!(current_revision(&dest).unwrap(), Some(c4));

    // Errors a user can act on.
    match sync(&url, "nope", &dest, None) {
        Err(HostError::RevisionNotFound { revision, .. }) => assert_eq!(revision, "nope"),
        other => panic!("{other:?}"),
    }
    let occupied = tmp.path().join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("x"), "x").unwrap();
    assert!(matches!(
        sync(&url, "main", &occupied, None),
        Err(HostError::InvalidInput { .. })
    ));
    match sync(
        &tmp.path().join("missing-repo").to_string_lossy(),
        "main",
        &tmp.path().join("d2"),
        None,
    ) {
        Err(HostError::CommandFailed { command, .. }) => {
            assert!(command.contains("ls-remote"), "{command}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_plain_subdirectory_of_a_checkout_is_not_a_repository() {
    let tmp = tempfile::tempdir().unwrap();
    git(tmp.path(), &["init", "-q"]);
    commit(tmp.path(), "x");
    let sub = tmp.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    assert_eq!(current_revision(&sub).unwrap(), None);
    assert!(current_revision(tmp.path()).unwrap().is_some());
}

#[test]
fn credentials_in_urls_never_reach_errors() {
    let err = resolve_revision("http://user:hunter2@127.0.0.1:9/repo.git", "main").unwrap_err();
    let text = err.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("***@127.0.0.1"), "{text}");
}

#[test]
fn sync_as_a_user_leaves_files_owned_by_that_user() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let nobody = opsworks_host::users::get_user("nobody")
        .unwrap()
        .expect("user nobody");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let origin = tmp.path().join("origin");
    std::fs::create_dir(&origin).unwrap();
    git(&origin, &["init", "-q", "-b", "main"]);
    let c1 = commit(&origin, "one");
    let srv = tmp.path().join("srv");
    std::fs::create_dir(&srv).unwrap();
    // The deploy user owns its checkout directory (and, here, the local origin: git refuses to
    // read a repository owned by someone else).
    for path in [&srv, &origin] {
        let status = Command::new("chown")
            .arg("-R")
            .arg("nobody:")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let dest = srv.join("app");
    let s = sync(&origin.to_string_lossy(), "main", &dest, Some("nobody")).unwrap();
    assert_eq!(s.after, c1);
    let meta = std::fs::metadata(dest.join("app.txt")).unwrap();
    assert_eq!(meta.uid(), nobody.uid);
    // Root can still read the user's checkout; a second sync does nothing.
    assert_eq!(current_revision(&dest).unwrap(), Some(c1.clone()));
    let again = sync(&origin.to_string_lossy(), "main", &dest, Some("nobody")).unwrap();
    assert_eq!((again.before, again.after), (Some(c1.clone()), c1));
}

#[test]
fn clone_at_makes_a_repository_at_exactly_that_commit_or_nothing() {
    use opsworks_host::git::clone_at;
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    std::fs::create_dir(&origin).unwrap();
    git(&origin, &["init", "-q", "-b", "main"]);
    let c1 = commit(&origin, "one");
    let c2 = commit(&origin, "two");

    let dest = tmp.path().join("release");
    assert_eq!(
        clone_at(&origin, &c1, &dest, "https://example.test/r.git").unwrap(),
        c1
    );
    assert_eq!(git(&dest, &["rev-parse", "HEAD"]), c1);
    assert_eq!(
        std::fs::read_to_string(dest.join("app.txt")).unwrap(),
        "one"
    );
    assert_eq!(
        git(&dest, &["remote", "get-url", "origin"]),
        "https://example.test/r.git"
    );
    // It is there already; not a full sha; a commit the source lacks: errors, nothing made.
    assert!(matches!(
        clone_at(&origin, &c2, &dest, "/r"),
        Err(HostError::InvalidInput { .. })
    ));
    let other = tmp.path().join("other");
    assert!(matches!(
        clone_at(&origin, "main", &other, "/r"),
        Err(HostError::InvalidInput { .. })
    ));
    assert!(clone_at(&origin, &"0".repeat(40), &other, "/r").is_err());
    assert!(!other.exists());
}
