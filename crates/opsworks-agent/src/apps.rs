//! App releases as the Chef 11 `deploy` cookbook lays them out: `<root>/<shortname>/releases/
//! <YYYYmmddHHMMSS>`, a `current` link switched atomically, `shared/{config,log,pids,system}`,
//! five releases kept, the app's environment in `shared/config/environment{,.json}`; rollback
//! and undeploy. Blocking code.
//!
//! A deploy has two halves around the converge, as Chef's deploy resource had its callbacks
//! around the symlink: [`deploy`] fetches the new release without touching `current`; the
//! recipes then run the app's hooks and migrations against the release and switch `current`
//! (`deploy` cookbook, `release.star`); [`finish_deploy`] then keeps a release that went live,
//! switches to it when no recipe did, or removes one that never went live.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use opsworks_protocol::AppSpec;

use crate::error::{AgentError, Result};
use crate::sources;
use crate::state::{write_json, write_private};

/// How many releases a deploy keeps (`deploy_keep_releases`), the rollback depth being one less.
pub const KEEP_RELEASES: usize = 5;

/// The directories under `shared/` every deploy makes sure of.
const SHARED_DIRS: [&str; 5] = ["config", "log", "pids", "system", "cached-copy"];

/// What a deploy made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    /// `<root>/<shortname>`.
    pub deploy_to: PathBuf,
    /// The new release's directory.
    pub release: PathBuf,
    /// The release `current` pointed at before (none on a first deploy).
    pub previous: Option<PathBuf>,
    /// The git commit deployed, for git sources.
    pub revision: Option<String>,
}

/// How a deploy ended, once the converge that was to switch `current` is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// The recipes made the new release current.
    Live,
    /// The converge succeeded without switching (no deploy recipe in the run list): the agent
    /// switched `current` itself.
    SwitchedByAgent,
    /// The deployment failed before the release went live: it was removed, `current` is as it
    /// was (the path it points at, if any).
    Discarded(Option<PathBuf>),
    /// The deployment failed after the release went live (a late hook or the restart): it stays.
    FailedLive,
}

/// `<root>/<shortname>`, after checking that the short name is one path component.
pub fn app_dir(app: &AppSpec, root: &Path) -> Result<PathBuf> {
    let s = &app.shortname;
    let ok = !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        return Err(AgentError::invalid(
            "app shortname",
            format!(
                "`{}` must be letters, digits, `_`, `-` and `.`, not starting with `.`",
                s.escape_debug()
            ),
        ));
    }
    Ok(root.join(s))
}

/// The release names of the app at `deploy_to`, oldest first.
pub fn releases(deploy_to: &Path) -> Result<Vec<String>> {
    let dir = deploy_to.join("releases");
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| AgentError::io("cannot read", &dir, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    Ok(names)
}

/// The release `current` points at, by name.
pub fn current_release(deploy_to: &Path) -> Option<String> {
    std::fs::read_link(deploy_to.join("current"))
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// Fetches `app` under `root` as a new release named after `now` (a second later than the
/// newest release when that name is taken, so names always sort in deploy order), with the
/// shared links and the environment files, leaving `current` where it was.
pub fn deploy(
    app: &AppSpec,
    root: &Path,
    scratch: &Path,
    now: jiff::Timestamp,
) -> Result<Deployed> {
    let deploy_to = app_dir(app, root)?;
    let releases_dir = deploy_to.join("releases");
    for dir in std::iter::once(releases_dir.clone())
        .chain(SHARED_DIRS.iter().map(|d| deploy_to.join("shared").join(d)))
    {
        std::fs::create_dir_all(&dir)
            .map_err(|e| AgentError::io("cannot create directory", &dir, e))?;
    }
    let existing = releases(&deploy_to)?;
    let mut when = now;
    let name = loop {
        let name = when.strftime("%Y%m%d%H%M%S").to_string();
        if existing
            .last()
            .is_none_or(|last| name.as_str() > last.as_str())
        {
            break name;
        }
        when += jiff::SignedDuration::from_secs(1);
    };
    let release = releases_dir.join(&name);
    let fetched = match &app.source {
        Some(src) => sources::fetch_app(
            src,
            &release,
            &deploy_to.join("shared/cached-copy"),
            scratch,
        ),
        None => std::fs::create_dir_all(&release)
            .map(|_| sources::Fetched {
                dir: release.clone(),
                revision: None,
            })
            .map_err(|e| AgentError::io("cannot create directory", &release, e)),
    };
    let fetched = match fetched {
        Ok(f) => f,
        Err(e) => {
            // Leave no half-made release for `current` or a rollback to pick up.
            let _ = std::fs::remove_dir_all(&release);
            return Err(e);
        }
    };
    if let Some(rev) = &fetched.revision {
        let path = release.join("REVISION");
        std::fs::write(&path, format!("{rev}\n"))
            .map_err(|e| AgentError::io("cannot write", &path, e))?;
    }
    let prepared = link_shared(&deploy_to, &release)
        .and_then(|()| write_environment(&deploy_to.join("shared/config"), &app.environment));
    if let Err(e) = prepared {
        let _ = std::fs::remove_dir_all(&release);
        return Err(e);
    }
    Ok(Deployed {
        previous: current_release(&deploy_to).map(|n| releases_dir.join(n)),
        deploy_to,
        release,
        revision: fetched.revision,
    })
}

/// Ends a deploy [`deploy`] began, after the converge: `succeeded` says whether it did. Keeps a
/// release the recipes made current, makes it current when they did not and all went well,
/// removes it when it never went live; then prunes old releases.
pub fn finish_deploy(deployed: &Deployed, succeeded: bool) -> Result<Finished> {
    let deploy_to = &deployed.deploy_to;
    let live = std::fs::read_link(deploy_to.join("current")).ok();
    let finished = if live.as_deref() == Some(deployed.release.as_path()) {
        if succeeded {
            Finished::Live
        } else {
            Finished::FailedLive
        }
    } else if succeeded {
        switch_current(deploy_to, &deployed.release)?;
        Finished::SwitchedByAgent
    } else {
        if deployed.release.exists() {
            std::fs::remove_dir_all(&deployed.release)
                .map_err(|e| AgentError::io("cannot remove", &deployed.release, e))?;
        }
        Finished::Discarded(live)
    };
    prune(deploy_to)?;
    Ok(finished)
}

/// Points `current` at the release before the current one and removes the one rolled back
/// from. Returns the release now current.
pub fn rollback(app: &AppSpec, root: &Path) -> Result<PathBuf> {
    let deploy_to = app_dir(app, root)?;
    let names = releases(&deploy_to)?;
    let current = current_release(&deploy_to);
    let idx = current
        .as_ref()
        .and_then(|c| names.iter().position(|n| n == c))
        .or(names.len().checked_sub(1));
    let Some(idx) = idx.filter(|i| *i > 0) else {
        return Err(AgentError::invalid(
            "rollback",
            format!("{} has no earlier release to roll back to", app.shortname),
        ));
    };
    let previous = deploy_to.join("releases").join(&names[idx - 1]);
    switch_current(&deploy_to, &previous)?;
    let newer = deploy_to.join("releases").join(&names[idx]);
    std::fs::remove_dir_all(&newer).map_err(|e| AgentError::io("cannot remove", &newer, e))?;
    Ok(previous)
}

/// Removes the app's directory. Returns whether there was one.
pub fn undeploy(app: &AppSpec, root: &Path) -> Result<bool> {
    let deploy_to = app_dir(app, root)?;
    if !deploy_to.exists() {
        return Ok(false);
    }
    std::fs::remove_dir_all(&deploy_to)
        .map_err(|e| AgentError::io("cannot remove", &deploy_to, e))?;
    Ok(true)
}

/// Switches `current` to `release` atomically: a new link under a temporary name renamed over
/// the old one, so a reader sees the old release or the new one, never neither.
pub fn switch_current(deploy_to: &Path, release: &Path) -> Result<()> {
    let tmp = deploy_to.join(format!(".current.tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(release, &tmp)
        .map_err(|e| AgentError::io("cannot create", &tmp, e))?;
    let current = deploy_to.join("current");
    std::fs::rename(&tmp, &current).map_err(|e| AgentError::io("cannot replace", &current, e))
}

/// Removes the oldest releases beyond [`KEEP_RELEASES`], never the current one.
fn prune(deploy_to: &Path) -> Result<()> {
    let names = releases(deploy_to)?;
    let current = current_release(deploy_to);
    let excess = names.len().saturating_sub(KEEP_RELEASES);
    for name in names.iter().take(excess) {
        if Some(name) == current.as_ref() {
            continue;
        }
        let dir = deploy_to.join("releases").join(name);
        std::fs::remove_dir_all(&dir).map_err(|e| AgentError::io("cannot remove", &dir, e))?;
    }
    Ok(())
}

/// The `deploy` cookbook's default symlinks into `shared/`: `log`, `tmp/pids`, `public/system`,
/// each made only where the app's code has nothing of its own.
fn link_shared(deploy_to: &Path, release: &Path) -> Result<()> {
    for (shared, inside) in [
        ("log", "log"),
        ("pids", "tmp/pids"),
        ("system", "public/system"),
    ] {
        let link = release.join(inside);
        if link.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| AgentError::io("cannot create directory", parent, e))?;
        }
        let target = deploy_to.join("shared").join(shared);
        std::os::unix::fs::symlink(&target, &link)
            .map_err(|e| AgentError::io("cannot create", &link, e))?;
    }
    Ok(())
}

/// Writes `environment` (`KEY='value'` lines a shell can source) and `environment.json`, both
/// 0600: the values may be secure ones.
pub fn write_environment(config_dir: &Path, env: &BTreeMap<String, String>) -> Result<()> {
    let mut text = String::new();
    for (key, value) in env {
        let valid = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(AgentError::invalid(
                "environment variable name",
                format!("`{}` is not [A-Za-z_][A-Za-z0-9_]*", key.escape_debug()),
            ));
        }
        text.push_str(key);
        text.push('=');
        text.push_str(&shell_quote(value));
        text.push('\n');
    }
    write_private(&config_dir.join("environment"), text.as_bytes())?;
    write_json(&config_dir.join("environment.json"), env)
}

/// Quotes a value for a POSIX shell: single quotes, each `'` written as `'\''`.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_quotes_and_dollars() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's $HOME"), r"'it'\''s $HOME'");
    }

    #[test]
    fn shortnames_cannot_leave_the_root() {
        let mut app = AppSpec {
            app_id: "a".into(),
            shortname: "..".into(),
            name: "n".into(),
            kind: "other".into(),
            source: None,
            environment: BTreeMap::new(),
        };
        assert!(app_dir(&app, Path::new("/srv/www")).is_err());
        app.shortname = "a/b".into();
        assert!(app_dir(&app, Path::new("/srv/www")).is_err());
        app.shortname = "my_app-2".into();
        assert_eq!(
            app_dir(&app, Path::new("/srv/www")).unwrap(),
            Path::new("/srv/www/my_app-2")
        );
    }
}
