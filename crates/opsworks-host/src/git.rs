//! Git checkouts synced to a branch, tag or commit by shelling out to the system `git`.

use std::path::Path;
use std::process::Command;

use crate::cmd;
use crate::error::{HostError, Result};
use crate::users;

/// What a [`sync`] did: the commit checked out before (if `dest` was a repository) and after.
/// `before == Some(after)` means nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSync {
    /// HEAD before the sync; `None` when the repository was cloned.
    pub before: Option<String>,
    /// HEAD after the sync: the resolved revision.
    pub after: String,
}

/// The commit checked out in `dest`, or `None` when `dest` is not the top of a git repository.
pub fn current_revision(dest: &Path) -> Result<Option<String>> {
    // Ask only when dest itself holds the repository: `git -C` in a plain subdirectory of some
    // other checkout would happily report that checkout's HEAD.
    if !dest.join(".git").exists() {
        return Ok(None);
    }
    let mut cmd = git(None, Some(dest))?;
    cmd.args(["rev-parse", "--verify", "-q", "HEAD^{commit}"]);
    let out = cmd::output(&mut cmd, None)?;
    if !out.status.success() {
        return Ok(None);
    }
    let sha = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok((!sha.is_empty()).then_some(sha))
}

/// Resolves a branch, tag, full ref or `HEAD` in the remote repository to a commit sha with
/// `git ls-remote`; a full 40-character sha is returned as it is.
pub fn resolve_revision(repo_url: &str, revision: &str) -> Result<String> {
    resolve_as(repo_url, revision, None)
}

/// [`resolve_revision`] with git running as `user` (whose credentials and ssh keys apply).
fn resolve_as(repo_url: &str, revision: &str, user: Option<&str>) -> Result<String> {
    check_url(repo_url)?;
    let revision = revision.trim();
    if is_full_sha(revision) {
        return Ok(revision.to_ascii_lowercase());
    }
    if revision.starts_with('-') || revision.contains(char::is_whitespace) {
        return Err(HostError::invalid(
            "git revision",
            format!(
                "`{}` is not a branch, tag or commit",
                revision.escape_debug()
            ),
        ));
    }
    let pattern = if revision.is_empty() {
        "HEAD"
    } else {
        revision
    };
    let mut cmd = git(user, None)?;
    // ls-remote matches patterns against whole path components, so the peeled line of an
    // annotated tag (`refs/tags/v1^{}`) needs a pattern of its own.
    cmd.args(["ls-remote", "--", repo_url, pattern])
        .arg(format!("{pattern}^{{}}"));
    let out = cmd::run(&mut cmd)?;
    let listing = String::from_utf8_lossy(&out.stdout);
    pick_ref(&listing, pattern).ok_or_else(|| HostError::RevisionNotFound {
        repository: cmd::redact(repo_url),
        revision: pattern.to_string(),
    })
}

/// Brings `dest` to `revision` of `repo_url`: clones when `dest` is not a repository, otherwise
/// fetches and checks out the resolved commit, detached (local changes to tracked files are
/// discarded, as Chef's sync does). When `dest` already is at that commit nothing is fetched.
/// With `user`, git runs as that user.
pub fn sync(repo_url: &str, revision: &str, dest: &Path, user: Option<&str>) -> Result<GitSync> {
    check_url(repo_url)?;
    let target = match resolve_as(repo_url, revision, user) {
        Ok(sha) => Some(sha),
        // An abbreviated sha is not a ref; it can only be resolved in a fetched repository.
        Err(HostError::RevisionNotFound { .. }) if is_short_sha(revision) => None,
        Err(e) => return Err(e),
    };
    let before = current_revision(dest)?;
    if let (Some(b), Some(t)) = (&before, &target)
        && b == t
    {
        return Ok(GitSync {
            before: before.clone(),
            after: t.clone(),
        });
    }

    if dest.join(".git").exists() {
        let mut get_url = git(user, Some(dest))?;
        get_url.args(["remote", "get-url", "origin"]);
        let current_url = cmd::output(&mut get_url, None)?;
        let current_url = String::from_utf8_lossy(&current_url.stdout)
            .trim()
            .to_string();
        if current_url != repo_url {
            let mut cmd = git(user, Some(dest))?;
            let verb = if current_url.is_empty() {
                "add"
            } else {
                "set-url"
            };
            cmd.args(["remote", verb, "origin", repo_url]);
            cmd::run(&mut cmd)?;
        }
        let mut cmd = git(user, Some(dest))?;
        cmd.args(["fetch", "-q", "--tags", "--force", "origin"]);
        cmd::run(&mut cmd)?;
    } else {
        if dest.exists()
            && std::fs::read_dir(dest)
                .map_err(|e| HostError::io("cannot read", dest, e))?
                .next()
                .is_some()
        {
            return Err(HostError::invalid(
                "git destination",
                format!(
                    "{} exists, is not empty and is not a git repository",
                    dest.display()
                ),
            ));
        }
        if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| HostError::io("cannot create directory", parent, e))?;
        }
        let mut cmd = git(user, None)?;
        cmd.args(["clone", "-q", "--", repo_url]).arg(dest);
        cmd::run(&mut cmd)?;
    }

    let sha = match target {
        Some(sha) => sha,
        None => local_commit(dest, user, revision)?.ok_or_else(|| not_found(repo_url, revision))?,
    };
    if local_commit(dest, user, &sha)?.is_none() {
        // A commit no branch or tag reaches yet: ask the server for it by id.
        let mut cmd = git(user, Some(dest))?;
        cmd.args(["fetch", "-q", "origin", &sha]);
        let out = cmd::output(&mut cmd, None)?;
        if !out.status.success() || local_commit(dest, user, &sha)?.is_none() {
            return Err(not_found(repo_url, revision));
        }
    }
    let mut cmd = git(user, Some(dest))?;
    cmd.args([
        "-c",
        "advice.detachedHead=false",
        "checkout",
        "-q",
        "-f",
        "--detach",
        &sha,
    ]);
    cmd::run(&mut cmd)?;
    let after = current_revision(dest)?.ok_or_else(|| not_found(repo_url, revision))?;
    if after != sha {
        return Err(HostError::CheckoutMismatch {
            path: dest.to_path_buf(),
            expected: sha,
            actual: after,
        });
    }
    Ok(GitSync { before, after })
}

/// Makes `dest` (which must not exist) a repository of its own checked out at exactly `commit`
/// (a full sha), cloned from the local repository `source` with its objects hard-linked, so a
/// release costs little more than its working tree. Its `origin` is set to `origin_url`, which
/// must carry no credentials: the clone's config is an ordinary file. Returns the commit HEAD
/// names afterwards, checked to be `commit`; on error nothing is left at `dest`.
pub fn clone_at(source: &Path, commit: &str, dest: &Path, origin_url: &str) -> Result<String> {
    check_url(origin_url)?;
    if !is_full_sha(commit) {
        return Err(HostError::invalid(
            "git commit",
            format!("`{}` is not a full commit id", commit.escape_debug()),
        ));
    }
    if dest.symlink_metadata().is_ok() {
        return Err(HostError::invalid(
            "git destination",
            format!("{} already exists", dest.display()),
        ));
    }
    let made = (|| {
        let mut cmd = git(None, None)?;
        let mut safe = std::ffi::OsString::from("safe.directory=");
        safe.push(source.as_os_str());
        cmd.arg("-c")
            .arg(safe)
            .args(["clone", "-q", "--local", "--no-checkout", "--"])
            .arg(source)
            .arg(dest);
        cmd::run(&mut cmd)?;
        let mut cmd = git(None, Some(dest))?;
        cmd.args(["remote", "set-url", "origin", origin_url]);
        cmd::run(&mut cmd)?;
        let mut cmd = git(None, Some(dest))?;
        cmd.args([
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "-q",
            "-f",
            "--detach",
            commit,
        ]);
        cmd::run(&mut cmd)?;
        let head = current_revision(dest)?.unwrap_or_default();
        if !head.eq_ignore_ascii_case(commit) {
            return Err(HostError::CheckoutMismatch {
                path: dest.to_path_buf(),
                expected: commit.to_string(),
                actual: head,
            });
        }
        Ok(head)
    })();
    if made.is_err() {
        let _ = std::fs::remove_dir_all(dest);
    }
    made
}

/// The full sha of `revision` in the local repository, if it names a commit there.
fn local_commit(dest: &Path, user: Option<&str>, revision: &str) -> Result<Option<String>> {
    let mut cmd = git(user, Some(dest))?;
    cmd.args(["rev-parse", "--verify", "-q", "--end-of-options"])
        .arg(format!("{revision}^{{commit}}"));
    let out = cmd::output(&mut cmd, None)?;
    if !out.status.success() {
        return Ok(None);
    }
    let sha = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok((!sha.is_empty()).then_some(sha))
}

/// A `git` command that never prompts, optionally in `dir` and as `user`.
fn git(user: Option<&str>, dir: Option<&Path>) -> Result<Command> {
    let mut cmd = Command::new("git");
    // Never wait for a password or a host-key answer: fail with git's message instead.
    cmd.env("GIT_TERMINAL_PROMPT", "0");
    if std::env::var_os("GIT_SSH_COMMAND").is_none() {
        cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    }
    cmd.env("LC_ALL", "C");
    if let Some(dir) = dir {
        // Repositories owned by another user (a deploy user) are ours to manage.
        let mut safe = std::ffi::OsString::from("safe.directory=");
        safe.push(dir.as_os_str());
        cmd.arg("-c").arg(safe).arg("-C").arg(dir);
    }
    if let Some(name) = user {
        use std::os::unix::process::CommandExt;
        let info = users::require_user(name)?;
        cmd.uid(info.uid)
            .gid(info.gid)
            .env("HOME", &info.home)
            .env("USER", &info.name)
            .env("LOGNAME", &info.name);
    }
    Ok(cmd)
}

/// Picks the commit for `revision` from `git ls-remote` output: a branch first, then a tag
/// (peeled, so an annotated tag gives its commit), then an exact ref name.
fn pick_ref(listing: &str, revision: &str) -> Option<String> {
    let refs: Vec<(&str, &str)> = listing
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(sha, name)| (sha.trim(), name.trim()))
        .collect();
    let candidates = [
        format!("refs/heads/{revision}"),
        format!("refs/tags/{revision}^{{}}"),
        format!("refs/tags/{revision}"),
        revision.to_string(),
    ];
    candidates.iter().find_map(|want| {
        refs.iter()
            .find(|(_, name)| name == want)
            .map(|(sha, _)| sha.to_string())
    })
}

/// The error for a revision that names nothing.
fn not_found(repo_url: &str, revision: &str) -> HostError {
    HostError::RevisionNotFound {
        repository: cmd::redact(repo_url),
        revision: revision.to_string(),
    }
}

/// 40 hex digits.
fn is_full_sha(s: &str) -> bool {
    s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// 4 to 39 hex digits: possibly an abbreviated commit id.
fn is_short_sha(s: &str) -> bool {
    (4..40).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// Rejects URLs git would read as an option.
fn check_url(url: &str) -> Result<()> {
    if url.is_empty() || url.starts_with('-') || url.contains(['\n', '\r']) {
        return Err(HostError::invalid(
            "git repository",
            format!(
                "`{}` is not a repository URL or path",
                cmd::redact(url).escape_debug()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_win_over_tags_and_tags_are_peeled() {
        let listing = "1111111111111111111111111111111111111111\trefs/tags/v1\n\
                       2222222222222222222222222222222222222222\trefs/tags/v1^{}\n\
                       3333333333333333333333333333333333333333\trefs/heads/main\n";
        assert_eq!(
            pick_ref(listing, "v1").unwrap(),
            "2222222222222222222222222222222222222222"
        );
        assert_eq!(
            pick_ref(listing, "main").unwrap(),
            "3333333333333333333333333333333333333333"
        );
        assert_eq!(
            pick_ref(listing, "refs/heads/main").unwrap(),
            "3333333333333333333333333333333333333333"
        );
        assert!(pick_ref(listing, "nope").is_none());
    }

    #[test]
    fn option_like_input_is_rejected() {
        assert!(matches!(
            resolve_revision("--upload-pack=evil", "main"),
            Err(HostError::InvalidInput { .. })
        ));
        assert!(matches!(
            resolve_revision("/tmp/x", "--foo"),
            Err(HostError::InvalidInput { .. })
        ));
    }
}
