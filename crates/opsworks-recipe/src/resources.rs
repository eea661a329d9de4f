//! Resource providers: for each resource type, load the current state, compare it with the
//! declared state and act only on a difference. Plain Rust, no Starlark; every provider honours
//! why-run by computing the same changes and skipping the final act.

pub mod commands;
pub mod files;
pub mod system;
pub mod templates;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::cookbook::Cookbook;
use crate::resource::{Kind, Resource};

/// What a provider needs from the run.
pub struct Ctx<'a> {
    /// Report what would change, change nothing.
    pub why_run: bool,
    /// Cookbooks of the run, by name (for templates and cookbook files).
    pub cookbooks: &'a BTreeMap<String, Cookbook>,
    /// Template renderer.
    pub templates: &'a templates::Templates,
    /// The merged node attributes at the end of compile (templates see them as `node`).
    pub node: &'a Value,
}

/// The result of one action that did not fail.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Something changed (or would change in why-run).
    pub updated: bool,
    /// Human-readable descriptions of the changes.
    pub changes: Vec<String>,
    /// Unified content diff, if content changed and the resource is not sensitive.
    pub diff: Option<String>,
    /// Set when the action was skipped for a reason other than a guard (e.g. `creates`).
    pub skipped: Option<String>,
}

impl Outcome {
    /// Nothing to do.
    pub fn up_to_date() -> Self {
        Outcome::default()
    }

    /// Changed, with one description.
    pub fn changed(change: impl Into<String>) -> Self {
        Outcome {
            updated: true,
            changes: vec![change.into()],
            ..Default::default()
        }
    }
}

/// Prefixes a change description with "would " in why-run.
pub(crate) fn verb(why_run: bool, s: &str) -> String {
    if why_run {
        format!("would {s}")
    } else {
        s.to_string()
    }
}

/// Runs one action of a resource. `Err` carries a message for the user (without the resource
/// identity, which the runner adds together with the recipe and line).
pub fn run_action(res: &Resource, action: &str, ctx: &Ctx<'_>) -> Result<Outcome, String> {
    if action == "nothing" {
        return Ok(Outcome::up_to_date());
    }
    match res.kind {
        Kind::File => files::file(res, action, ctx),
        Kind::Template => templates::template(res, action, ctx),
        Kind::CookbookFile => files::cookbook_file(res, action, ctx),
        Kind::Directory => files::directory(res, action, ctx),
        Kind::Link => files::link(res, action, ctx),
        Kind::Execute => commands::execute(res, ctx),
        Kind::Bash => commands::bash(res, ctx),
        Kind::Log => commands::log(res, ctx),
        Kind::RemoteFile => system::remote_file(res, action, ctx),
        Kind::Package => system::package(res, action, ctx),
        Kind::Service => system::service(res, action, ctx),
        Kind::User => system::user(res, action, ctx),
        Kind::Group => system::group(res, action, ctx),
        Kind::Cron => system::cron(res, action, ctx),
        Kind::Git => system::git(res, action, ctx),
    }
}
