//! Deploy hooks: `deploy/before_migrate.star`, `before_symlink.star`, `before_restart.star` and
//! `after_restart.star` in an app's release, recipes in our own language converged with the node
//! of the deploy that runs them. The `deploy` cookbook's recipes call `opsworks agent-cli
//! deploy-hook` at each step of a release (`release.star`), as Chef's deploy resource called its
//! callbacks; this module is that command.
//!
//! A hook runs as its own converge: the release's `deploy/` folder becomes the recipes of a
//! cookbook named [`HOOK_COOKBOOK`] (its `templates/`, `files/` and `libraries/` too), searched
//! before the command's cookbooks so a hook can `include_recipe` any of them; the node is the
//! command's attributes plus `node["deploy_hook"]` (`app`, `hook`, `release_path`, `deploy_to`,
//! `previous_release_path`); the working directory is the release; the output goes to the
//! command's log. A failing hook fails the deployment. One that fails before the symlink leaves
//! `current` alone; `before_restart` runs after the switch but before any restart, so when it
//! fails `current` goes back to the previous release here; `after_restart` runs once the new
//! release serves, which it keeps doing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};

use crate::apps;
use crate::error::{AgentError, Result};
use crate::runner::{CmdLog, HOOK_CONTEXT_FILE, HookContext};
use crate::state::{read_json, write_json};

/// The hooks, in the order a deploy runs them.
pub const HOOKS: [&str; 4] = [
    "before_migrate",
    "before_symlink",
    "before_restart",
    "after_restart",
];

/// The name the release's `deploy/` folder has as a cookbook.
pub const HOOK_COOKBOOK: &str = "opsworks_deploy_hook";

/// Runs hook `hook` of `app` for the command whose directory is `command_dir` (the agent passes
/// it to the converge as `OPSWORKS_COMMAND_DIR`). A release without the hook's file succeeds
/// at once. `out` gets one line saying what happened; the converge's output goes to the log.
pub fn run_deploy_hook(
    command_dir: &Path,
    app: &str,
    hook: &str,
    out: &mut dyn Write,
) -> Result<()> {
    if !HOOKS.contains(&hook) {
        return Err(AgentError::invalid(
            "deploy hook",
            format!(
                "`{}` is not one of {}",
                hook.escape_debug(),
                HOOKS.join(", ")
            ),
        ));
    }
    let attribs: Value = read_json(&command_dir.join("attribs.json"))?;
    let this = attribs
        .pointer(&format!("/deploy/{}", json_pointer_escape(app)))
        .filter(|a| a.get("release_path").is_some_and(Value::is_string))
        .ok_or_else(|| {
            AgentError::invalid(
                "deploy hook",
                format!(
                    "app `{}` is not deployed by this command (no release_path in its attributes)",
                    app.escape_debug()
                ),
            )
        })?;
    let path = |key: &str| this.get(key).and_then(Value::as_str).map(PathBuf::from);
    let release = path("release_path").unwrap_or_default();
    let deploy_to = path("deploy_to").unwrap_or_else(|| release.join("../.."));
    let previous = path("previous_release_path");
    let source = release.join("deploy").join(format!("{hook}.star"));
    if !source.is_file() {
        let _ = writeln!(out, "{app}: no deploy/{hook}.star in {}", release.display());
        return Ok(());
    }
    let context: HookContext = read_json(&command_dir.join(HOOK_CONTEXT_FILE))?;

    // The hook's cookbook: links into the release, remade for every run.
    let work = command_dir.join("hooks").join(format!("{app}_{hook}"));
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| AgentError::io("cannot remove", &work, e))?;
    }
    let cookbook = work.join("cookbooks").join(HOOK_COOKBOOK);
    std::fs::create_dir_all(&cookbook)
        .map_err(|e| AgentError::io("cannot create directory", &cookbook, e))?;
    let deploy_dir = release.join("deploy");
    for (link, target) in [
        ("recipes", deploy_dir.clone()),
        ("templates", deploy_dir.join("templates")),
        ("files", deploy_dir.join("files")),
        ("libraries", deploy_dir.join("libraries")),
    ] {
        if target.is_dir() {
            let at = cookbook.join(link);
            std::os::unix::fs::symlink(&target, &at)
                .map_err(|e| AgentError::io("cannot create", &at, e))?;
        }
    }
    let metadata = cookbook.join("metadata.json");
    std::fs::write(
        &metadata,
        format!("{{\"name\": \"{HOOK_COOKBOOK}\", \"version\": \"0.0.0\"}}\n"),
    )
    .map_err(|e| AgentError::io("cannot write", &metadata, e))?;
    let mut node = attribs.clone();
    node["deploy_hook"] = json!({
        "app": app,
        "hook": hook,
        "release_path": release,
        "deploy_to": deploy_to,
        "previous_release_path": previous,
    });
    let node_path = work.join("node.json");
    write_json(&node_path, &node)?;

    let log = CmdLog::open(&command_dir.join("log"))?;
    log.line(format!(
        "app {app}: deploy hook {hook}: converging {}",
        source.display()
    ));
    let paths: Vec<String> = std::iter::once(work.join("cookbooks"))
        .chain(context.cookbook_paths.iter().cloned())
        .map(|p| p.display().to_string())
        .collect();
    let handle = |what| {
        log.handle()
            .map_err(|e| AgentError::io(what, &command_dir.join("log"), e))
    };
    let status = std::process::Command::new(&context.converge_exe)
        .arg("converge")
        .arg("--cookbooks")
        .arg(paths.join(","))
        .arg("--run-list")
        .arg(format!("{HOOK_COOKBOOK}::{hook}"))
        .arg("--json")
        .arg(&node_path)
        .arg("--data-bags")
        .arg(command_dir.join("data_bags"))
        .arg("--format")
        .arg("text")
        .current_dir(&release)
        .env(opsworks_env::OPSWORKS_DEPLOY_HOOK, hook)
        .env(opsworks_env::OPSWORKS_RELEASE_PATH, &release)
        .stdin(Stdio::null())
        .stdout(handle("cannot open")?)
        .stderr(handle("cannot open")?)
        .status()
        .map_err(|e| AgentError::io("cannot run", &context.converge_exe, e))?;
    if status.success() {
        log.line(format!("app {app}: deploy hook {hook} succeeded"));
        let _ = writeln!(out, "{app}: deploy hook {hook} succeeded");
        return Ok(());
    }
    let status_text = match status.code() {
        Some(c) => format!("exit code {c}"),
        None => "killed by a signal".to_string(),
    };
    log.line(format!(
        "app {app}: deploy hook {hook} failed ({status_text})"
    ));
    if hook == "before_restart" {
        // Nothing restarted onto the new release yet: the previous one is still what runs.
        undo_switch(&deploy_to, &release, previous.as_deref(), &log)?;
    }
    Err(AgentError::HookFailed {
        app: app.to_string(),
        hook: hook.to_string(),
        status: status_text,
    })
}

/// Points `current` back at `previous` (or removes it on a first deploy) when it points at
/// `release`.
fn undo_switch(
    deploy_to: &Path,
    release: &Path,
    previous: Option<&Path>,
    log: &CmdLog,
) -> Result<()> {
    let current = deploy_to.join("current");
    if std::fs::read_link(&current).ok().as_deref() != Some(release) {
        return Ok(());
    }
    match previous.filter(|p| p.is_dir()) {
        Some(prev) => {
            apps::switch_current(deploy_to, prev)?;
            log.line(format!("current is {} again", prev.display()));
        }
        None => {
            std::fs::remove_file(&current)
                .map_err(|e| AgentError::io("cannot remove", &current, e))?;
            log.line("current removed: this was the app's first release");
        }
    }
    Ok(())
}

/// Escapes a JSON pointer token (`~` and `/`).
fn json_pointer_escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_hooks_and_apps_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        let err = run_deploy_hook(dir.path(), "shop", "after_deploy", &mut out).unwrap_err();
        assert!(err.to_string().contains("before_migrate"), "{err}");
        write_json(
            &dir.path().join("attribs.json"),
            &json!({"deploy": {"shop": {"deploy_to": "/srv/www/shop"}}}),
        )
        .unwrap();
        let err = run_deploy_hook(dir.path(), "shop", "before_symlink", &mut out).unwrap_err();
        assert!(
            err.to_string().contains("not deployed by this command"),
            "{err}"
        );
        let err = run_deploy_hook(dir.path(), "other", "before_symlink", &mut out).unwrap_err();
        assert!(err.to_string().contains("`other`"), "{err}");
    }

    #[test]
    fn a_release_without_the_hook_succeeds_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let release = dir.path().join("releases/1");
        std::fs::create_dir_all(&release).unwrap();
        write_json(
            &dir.path().join("attribs.json"),
            &json!({"deploy": {"shop": {"release_path": release, "deploy_to": dir.path()}}}),
        )
        .unwrap();
        let mut out = Vec::new();
        run_deploy_hook(dir.path(), "shop", "before_migrate", &mut out).unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("no deploy/before_migrate.star")
        );
    }
}
