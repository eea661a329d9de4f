//! The converge phase: walks the resource collection in order, evaluates guards, runs actions
//! with retries, fires `before`/`immediately` notifications, queues `delayed` ones
//! (de-duplicated) and runs them at the end — also when a resource fails, before the run
//! reports the failure.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use crate::report::{ResourceReport, Status};
use crate::resource::{GuardCheck, Resource, Timer};
use crate::resources::{Ctx, run_action};

/// The result of converging a collection.
#[derive(Debug)]
pub struct Converged {
    /// Executed actions, in order.
    pub entries: Vec<ResourceReport>,
    /// Indexes of resources that were updated.
    pub updated: BTreeSet<usize>,
    /// The first failure that was not ignored.
    pub error: Option<String>,
}

struct Runner<'a> {
    resources: &'a [Resource],
    ctx: &'a Ctx<'a>,
    entries: Vec<ResourceReport>,
    updated: BTreeSet<usize>,
    delayed: VecDeque<(usize, String, usize)>,
    error: Option<String>,
}

/// Evaluates the guards of a resource: `Ok(None)` to run, `Ok(Some(reason))` to skip.
pub fn check_guards(res: &Resource) -> Result<Option<String>, String> {
    for g in &res.guards {
        let value = match &g.check {
            GuardCheck::Command(c) => crate::resources::commands::guard_command(c)?,
            GuardCheck::Function(f) => f()?,
        };
        if value == g.negate {
            return Ok(Some(g.describe()));
        }
    }
    Ok(None)
}

/// Converges the collection.
pub fn converge(resources: &[Resource], ctx: &Ctx<'_>) -> Converged {
    let mut r = Runner {
        resources,
        ctx,
        entries: Vec::new(),
        updated: BTreeSet::new(),
        delayed: VecDeque::new(),
        error: None,
    };
    for i in 0..resources.len() {
        r.run_with_before(i);
        if r.error.is_some() {
            break;
        }
    }
    r.run_delayed();
    Converged {
        entries: r.entries,
        updated: r.updated,
        error: r.error,
    }
}

impl Runner<'_> {
    fn run_with_before(&mut self, i: usize) {
        let res = &self.resources[i];
        let before: Vec<(usize, String)> = res
            .edges
            .iter()
            .filter(|e| e.timer == Timer::Before)
            .map(|e| (e.target, e.action.clone()))
            .collect();
        if !before.is_empty() && self.would_update(res) {
            for (t, a) in before {
                self.run_resource(t, std::slice::from_ref(&a), Some(i));
                if self.error.is_some() {
                    return;
                }
            }
        }
        let actions = res.actions.clone();
        self.run_resource(i, &actions, None);
    }

    /// The why-run question asked for `before` notifications: would this resource change anything?
    fn would_update(&self, res: &Resource) -> bool {
        if !matches!(check_guards(res), Ok(None)) {
            return false;
        }
        let dry = Ctx {
            why_run: true,
            cookbooks: self.ctx.cookbooks,
            templates: self.ctx.templates,
            node: self.ctx.node,
        };
        res.actions
            .iter()
            .any(|a| run_action(res, a, &dry).is_ok_and(|o| o.updated))
    }

    fn run_delayed(&mut self) {
        let mut done: BTreeSet<(usize, String)> = BTreeSet::new();
        while let Some((t, action, by)) = self.delayed.pop_front() {
            if !done.insert((t, action.clone())) {
                continue;
            }
            let had_error = self.error.is_some();
            let saved = self.error.take();
            self.run_resource(t, std::slice::from_ref(&action), Some(by));
            // Keep the first failure; later delayed notifications still run.
            if had_error {
                self.error = saved;
            }
        }
    }

    /// Runs `actions` of resource `i`; records entries; fires notifications when updated.
    fn run_resource(&mut self, i: usize, actions: &[String], notified_by: Option<usize>) {
        let res = &self.resources[i];
        let mut updated = false;
        for action in actions {
            let start = Instant::now();
            let mut entry = ResourceReport {
                resource: res.identity(),
                action: action.clone(),
                status: Status::UpToDate,
                skip_reason: None,
                duration_ms: 0.0,
                changes: Vec::new(),
                diff: None,
                error: None,
                ignored_failure: false,
                notified_by: notified_by.map(|n| self.resources[n].identity()),
                recipe: res.source.recipe.clone(),
                declared_at: format!("{}:{}", res.source.file, res.source.line),
            };
            let result = if action == "nothing" {
                Ok(None)
            } else {
                match check_guards(res) {
                    Ok(Some(reason)) => {
                        entry.status = Status::Skipped;
                        entry.skip_reason = Some(reason);
                        Ok(None)
                    }
                    Ok(None) => self.attempt(res, action).map(Some),
                    Err(e) => Err(format!("guard failed: {e}")),
                }
            };
            match result {
                Ok(None) if action == "nothing" => {
                    entry.status = Status::Skipped;
                    entry.skip_reason = Some("action nothing".to_string());
                }
                Ok(None) => {}
                Ok(Some(o)) => {
                    if let Some(reason) = o.skipped {
                        entry.status = Status::Skipped;
                        entry.skip_reason = Some(reason);
                    } else if o.updated {
                        entry.status = Status::Updated;
                        updated = true;
                    }
                    entry.changes = o.changes;
                    entry.diff = o.diff;
                }
                Err(e) => {
                    entry.status = Status::Failed;
                    let msg = format!(
                        "{} (recipe {}, declared at {}:{}) had an error in action {action}: {e}",
                        res.identity(),
                        res.source.recipe,
                        res.source.file,
                        res.source.line
                    );
                    entry.error = Some(msg.clone());
                    entry.ignored_failure = res.ignore_failure;
                    if !res.ignore_failure {
                        entry.duration_ms = ms(start.elapsed());
                        self.entries.push(entry);
                        if self.error.is_none() {
                            self.error = Some(msg);
                        }
                        return;
                    }
                }
            }
            entry.duration_ms = ms(start.elapsed());
            self.entries.push(entry);
        }
        if updated {
            self.updated.insert(i);
            for e in &res.edges {
                match e.timer {
                    Timer::Immediately => {
                        self.run_resource(e.target, std::slice::from_ref(&e.action), Some(i));
                        if self.error.is_some() {
                            return;
                        }
                    }
                    Timer::Delayed => {
                        if !self
                            .delayed
                            .iter()
                            .any(|(t, a, _)| *t == e.target && *a == e.action)
                        {
                            self.delayed.push_back((e.target, e.action.clone(), i));
                        }
                    }
                    Timer::Before => {}
                }
            }
        }
    }

    fn attempt(&self, res: &Resource, action: &str) -> Result<crate::resources::Outcome, String> {
        let mut tries = 0;
        loop {
            match run_action(res, action, self.ctx) {
                Ok(o) => return Ok(o),
                Err(e) if tries >= res.retries => {
                    return Err(if tries > 0 {
                        format!("{e} (after {} attempts)", tries + 1)
                    } else {
                        e
                    });
                }
                Err(_) => {
                    tries += 1;
                    std::thread::sleep(Duration::from_secs_f64(res.retry_delay));
                }
            }
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::rc::Rc;

    use serde_json::{Value, json};

    use super::*;
    use crate::resource::{Edge, Guard, Kind, SourceLocation};
    use crate::resources::templates::Templates;

    fn res(kind: Kind, name: &str, props: Value, actions: &[&str]) -> Resource {
        Resource {
            kind,
            name: name.to_string(),
            actions: if actions.is_empty() {
                vec![kind.default_action().to_string()]
            } else {
                actions.iter().map(|a| a.to_string()).collect()
            },
            props: props.as_object().cloned().unwrap_or_default(),
            guards: Vec::new(),
            notifies: Vec::new(),
            subscribes: Vec::new(),
            edges: Vec::new(),
            ignore_failure: false,
            retries: 0,
            retry_delay: 0.0,
            sensitive: false,
            cookbook: "t".into(),
            source: SourceLocation {
                recipe: "t::default".into(),
                file: "default.star".into(),
                line: 1,
                column: 1,
            },
        }
    }

    /// An execute resource that appends its name to `log` (action :nothing unless `run`).
    fn marker(log: &std::path::Path, name: &str, run: bool) -> Resource {
        let cmd = format!("echo {name} >> {}", log.display());
        res(
            Kind::Execute,
            name,
            json!({"command": cmd}),
            if run { &[] } else { &["nothing"] },
        )
    }

    fn edge(target: usize, timer: Timer) -> Edge {
        Edge {
            target,
            action: "run".into(),
            timer,
        }
    }

    fn run(resources: &[Resource]) -> Converged {
        let cookbooks = BTreeMap::new();
        let templates = Templates::new(&cookbooks);
        let node = json!({});
        converge(
            resources,
            &Ctx {
                why_run: false,
                cookbooks: &cookbooks,
                templates: &templates,
                node: &node,
            },
        )
    }

    #[test]
    fn immediate_runs_at_once_delayed_runs_last_and_once() {
        let t = tempfile::tempdir().unwrap();
        let log = t.path().join("log");
        let mut a = res(Kind::Log, "a", json!({}), &[]);
        a.edges = vec![edge(3, Timer::Delayed), edge(2, Timer::Immediately)];
        let mut b = res(Kind::Log, "b", json!({}), &[]);
        b.edges = vec![edge(3, Timer::Delayed)];
        let resources = vec![
            a,
            b,
            marker(&log, "now", false),
            marker(&log, "later", false),
            marker(&log, "plain", true),
        ];
        let done = run(&resources);
        assert!(done.error.is_none());
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "now\nplain\nlater\n"
        );
        let order: Vec<&str> = done.entries.iter().map(|e| e.resource.as_str()).collect();
        assert_eq!(
            order,
            [
                "log[a]",
                "execute[now]",
                "log[b]",
                "execute[now]",
                "execute[later]",
                "execute[plain]",
                "execute[later]"
            ]
        );
        assert_eq!(
            done.entries.last().unwrap().notified_by.as_deref(),
            Some("log[a]")
        );
    }

    #[test]
    fn before_fires_only_when_the_resource_would_change() {
        let t = tempfile::tempdir().unwrap();
        let log = t.path().join("log");
        let target = t.path().join("f");
        let mut f = res(
            Kind::File,
            target.to_str().unwrap(),
            json!({"content": "x"}),
            &[],
        );
        f.edges = vec![edge(1, Timer::Before)];
        let resources = vec![f, marker(&log, "before", false)];
        run(&resources);
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "before\n");
        let second = run(&resources);
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "before\n",
            "up-to-date resource must not fire :before"
        );
        assert!(second.updated.is_empty());
    }

    #[test]
    fn a_failure_stops_the_run_after_delayed_notifications() {
        let t = tempfile::tempdir().unwrap();
        let log = t.path().join("log");
        let mut a = res(Kind::Log, "a", json!({}), &[]);
        a.edges = vec![edge(1, Timer::Delayed)];
        let fail = res(Kind::Execute, "boom", json!({"command": "exit 7"}), &[]);
        let resources = vec![
            a,
            marker(&log, "restart", false),
            fail,
            marker(&log, "never", true),
        ];
        let done = run(&resources);
        let err = done.error.unwrap();
        assert!(
            err.starts_with("execute[boom] (recipe t::default, declared at default.star:1)"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "restart\n");
    }

    #[test]
    fn guards_skip_with_a_reason_and_guard_errors_fail() {
        let t = tempfile::tempdir().unwrap();
        let log = t.path().join("log");
        let mut skipped = marker(&log, "skipped", true);
        skipped.guards = vec![Guard {
            negate: true,
            check: GuardCheck::Function(Rc::new(|| Ok(true))),
        }];
        let mut ran = marker(&log, "ran", true);
        ran.guards = vec![
            Guard {
                negate: false,
                check: GuardCheck::Command("true".into()),
            },
            Guard {
                negate: true,
                check: GuardCheck::Function(Rc::new(|| Ok(false))),
            },
        ];
        let mut broken = marker(&log, "broken", true);
        broken.guards = vec![Guard {
            negate: false,
            check: GuardCheck::Function(Rc::new(|| Err("boom".into()))),
        }];
        let done = run(&[skipped, ran, broken]);
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "ran\n");
        assert_eq!(done.entries[0].status, Status::Skipped);
        assert_eq!(
            done.entries[0].skip_reason.as_deref(),
            Some("not_if (function)")
        );
        assert_eq!(done.entries[2].status, Status::Failed);
        assert!(done.error.unwrap().contains("guard failed: boom"));
    }
}
