//! The run report: one entry per resource action executed, the summary line, and its text form.

use std::fmt::Write as _;

/// What happened to one resource action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Current state already matched.
    UpToDate,
    /// Something changed (or, in why-run, would change).
    Updated,
    /// A guard or `action :nothing` prevented the run.
    Skipped,
    /// The action failed (after its retries).
    Failed,
}

/// One executed resource action.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResourceReport {
    /// `type[name]`.
    pub resource: String,
    /// The action run.
    pub action: String,
    /// Outcome.
    pub status: Status,
    /// Why it was skipped (`not_if ...`, `only_if ...`, `action nothing`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    /// Wall time of this action, in milliseconds.
    pub duration_ms: f64,
    /// Human-readable changes (`create new file /x`, `would run ...`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    /// Unified diff of file content (absent when sensitive or unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The error, naming the resource, its recipe and declaring line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failure was ignored (`ignore_failure`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignored_failure: bool,
    /// `type[name]` whose notification triggered this action, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notified_by: Option<String>,
    /// `cookbook::recipe` that declared the resource.
    pub recipe: String,
    /// `file:line` of the declaration.
    pub declared_at: String,
}

/// The whole run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Nothing was changed on purpose.
    pub why_run: bool,
    /// Every executed action in order (notified actions included).
    pub resources: Vec<ResourceReport>,
    /// Distinct resources that were updated.
    pub updated: usize,
    /// Resources in the collection.
    pub total: usize,
    /// Compile + converge wall time, in milliseconds.
    pub elapsed_ms: f64,
    /// No resource failed (ignored failures do not count).
    pub success: bool,
    /// The failure that stopped the run, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Report {
    /// `N/M resources updated in X ms` (Chef's "Infra Phase complete" line).
    pub fn summary(&self) -> String {
        let verb = if self.why_run {
            "would be updated"
        } else {
            "updated"
        };
        format!(
            "{}/{} resources {verb} in {:.0} ms",
            self.updated, self.total, self.elapsed_ms
        )
    }

    /// The Chef-like text rendering.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let mut recipe = "";
        for r in &self.resources {
            if r.recipe != recipe {
                recipe = &r.recipe;
                let _ = writeln!(out, "Recipe: {recipe}");
            }
            let suffix = match r.status {
                Status::UpToDate => " (up to date)".to_string(),
                Status::Skipped => format!(
                    " (skipped due to {})",
                    r.skip_reason.as_deref().unwrap_or("guard")
                ),
                Status::Updated => String::new(),
                Status::Failed if r.ignored_failure => " (failed, ignored)".to_string(),
                Status::Failed => " (FAILED)".to_string(),
            };
            let by = r
                .notified_by
                .as_ref()
                .map(|n| format!(" (notified by {n})"))
                .unwrap_or_default();
            let _ = writeln!(out, "  * {} action {}{suffix}{by}", r.resource, r.action);
            for c in &r.changes {
                let _ = writeln!(out, "    - {c}");
            }
            if let Some(d) = &r.diff {
                for line in d.lines() {
                    let _ = writeln!(out, "      {line}");
                }
            }
            if let Some(e) = &r.error {
                for line in e.lines() {
                    let _ = writeln!(out, "    ! {line}");
                }
            }
        }
        if self.why_run {
            let _ = writeln!(out, "why-run: nothing was changed");
        }
        let _ = writeln!(out, "{}", self.summary());
        if let Some(e) = &self.error {
            let _ = writeln!(out, "Run failed: {e}");
        }
        out
    }
}
