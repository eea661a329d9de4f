//! Native functions of the recipe DSL: one per resource type (name first, properties as
//! keywords, returning the `type[name]` identity), plus `include_recipe`, `search`,
//! `data_bag` and `data_bag_item`.

use std::rc::Rc;

use starlark::collections::SmallMap;
use starlark::environment::GlobalsBuilder;
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::values::list::ListRef;
use starlark::values::tuple::TupleRef;
use starlark::values::{Heap, Value};

use super::node;
use super::{Compiler, Phase};
use crate::cookbook::RecipeRef;
use crate::resource::{Guard, GuardCheck, Kind, Notification, Resource, SourceLocation, Timer};
use crate::search::Query;

fn to_json(v: Value<'_>) -> anyhow::Result<serde_json::Value> {
    node::to_json(v).map_err(|e| anyhow::anyhow!("{e}"))
}

fn compiler<'a>(eval: &'a Evaluator<'_, '_, '_>) -> anyhow::Result<&'a Compiler> {
    eval.extra
        .and_then(|e| e.downcast_ref::<Compiler>())
        .ok_or_else(|| {
            anyhow::anyhow!("this function is only available while recipes are compiled")
        })
}

/// Elements of a list or tuple, or None for anything else.
fn elements<'v>(v: Value<'v>) -> Option<Vec<Value<'v>>> {
    if let Some(l) = ListRef::from_value(v) {
        return Some(l.iter().collect());
    }
    TupleRef::from_value(v).map(|t| t.iter().collect())
}

fn strings(v: Value<'_>, what: &str) -> anyhow::Result<Vec<String>> {
    if let Some(s) = v.unpack_str() {
        return Ok(vec![s.to_string()]);
    }
    let items = elements(v).ok_or_else(|| {
        anyhow::anyhow!(
            "`{what}` must be a string or a list of strings, got {}",
            v.get_type()
        )
    })?;
    items
        .into_iter()
        .map(|i| {
            i.unpack_str().map(str::to_string).ok_or_else(|| {
                anyhow::anyhow!("`{what}` must contain strings, got {}", i.get_type())
            })
        })
        .collect()
}

/// `("restart", "service[x]")`, `("restart", "service[x]", "immediately")`, or a list of those.
fn notifications(v: Value<'_>, what: &str) -> anyhow::Result<Vec<Notification>> {
    let items = elements(v).ok_or_else(|| {
        anyhow::anyhow!(
            "`{what}` must be a tuple (action, \"type[name]\", timer) or a list of them, got {}",
            v.get_type()
        )
    })?;
    let groups: Vec<Value<'_>> = if items.first().is_some_and(|f| f.unpack_str().is_some()) {
        vec![v]
    } else {
        items
    };
    groups
        .into_iter()
        .map(|g| {
            let parts = strings(g, what)?;
            let (action, other, timer) = match parts.as_slice() {
                [a, o] => (a, o, "delayed"),
                [a, o, t] => (a, o, t.as_str()),
                _ => anyhow::bail!(
                    "`{what}` entries need 2 or 3 strings: (action, \"type[name]\", timer)"
                ),
            };
            let timer = Timer::from_name(timer).ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown timer `{timer}` in `{what}` (use delayed, immediately or before)"
                )
            })?;
            Ok(Notification {
                action: action.clone(),
                other: other.clone(),
                timer,
            })
        })
        .collect()
}

/// Declares a resource from a DSL call; returns its identity.
fn declare<'v>(
    eval: &mut Evaluator<'v, '_, '_>,
    kind: Kind,
    name: &str,
    kwargs: SmallMap<String, Value<'v>>,
) -> anyhow::Result<String> {
    let c = compiler(eval)?;
    let (cookbook, recipe, phase) = {
        let frames = c.frames.borrow();
        let f = frames
            .last()
            .ok_or_else(|| anyhow::anyhow!("no recipe is being compiled"))?;
        (f.cookbook.clone(), f.recipe.clone(), f.phase)
    };
    if phase != Phase::Recipe {
        let what = if phase == Phase::Attributes {
            "attribute files"
        } else {
            "the top level of a library"
        };
        anyhow::bail!("resources cannot be declared in {what}; declare `{kind}` in a recipe");
    }
    if name.is_empty() {
        anyhow::bail!("{kind} needs a non-empty name");
    }
    let source = match eval.call_stack_top_location() {
        Some(span) => {
            let pos = span.resolve_span();
            SourceLocation {
                recipe: recipe.clone(),
                file: span.filename().to_string(),
                line: pos.begin.line + 1,
                column: pos.begin.column + 1,
            }
        }
        None => SourceLocation {
            recipe: recipe.clone(),
            ..Default::default()
        },
    };
    let mut res = Resource {
        kind,
        name: name.to_string(),
        actions: vec![kind.default_action().to_string()],
        props: Default::default(),
        guards: Vec::new(),
        notifies: Vec::new(),
        subscribes: Vec::new(),
        edges: Vec::new(),
        ignore_failure: false,
        retries: 0,
        retry_delay: 2.0,
        sensitive: false,
        cookbook,
        source,
    };
    let index = c.resources.borrow().len();
    let mut pending = Vec::new();
    for (key, v) in kwargs.into_iter() {
        match key.as_str() {
            "action" => {
                res.actions = strings(v, "action")?;
                for a in &res.actions {
                    if !kind.actions().contains(&a.as_str()) {
                        anyhow::bail!(
                            "{kind} has no action `{a}` (valid: {})",
                            kind.actions().join(", ")
                        );
                    }
                }
                if res.actions.is_empty() {
                    anyhow::bail!("`action` must name at least one action");
                }
            }
            "not_if" | "only_if" => {
                let negate = key == "not_if";
                let checks = match elements(v) {
                    Some(items) => items,
                    None => vec![v],
                };
                for check in checks {
                    if let Some(cmd) = check.unpack_str() {
                        res.guards.push(Guard {
                            negate,
                            check: GuardCheck::Command(cmd.to_string()),
                        });
                    } else if matches!(check.get_type(), "function" | "builtin_function_or_method")
                        || check.get_type().contains("function")
                    {
                        // Keep the function alive in the module so it survives freezing, and
                        // resolve it once the file has been evaluated.
                        let n = c.guard_counter.get();
                        c.guard_counter.set(n + 1);
                        let var = format!("opsworks_guard_{n}");
                        eval.module().set(&var, check);
                        pending.push((index, res.guards.len(), var));
                        let unresolved: Rc<dyn Fn() -> Result<bool, String>> =
                            Rc::new(|| Err("guard function was not resolved".to_string()));
                        res.guards.push(Guard {
                            negate,
                            check: GuardCheck::Function(unresolved),
                        });
                    } else {
                        anyhow::bail!(
                            "`{key}` must be a command string or a function, got {}",
                            check.get_type()
                        );
                    }
                }
            }
            "notifies" => res.notifies.extend(notifications(v, "notifies")?),
            "subscribes" => res.subscribes.extend(notifications(v, "subscribes")?),
            "ignore_failure" => res.ignore_failure = v.to_bool(),
            "sensitive" => res.sensitive = v.to_bool(),
            "retries" => {
                res.retries = v
                    .unpack_i32()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| anyhow::anyhow!("`retries` must be a non-negative integer"))?;
            }
            "retry_delay" => {
                let d = to_json(v)?.as_f64().filter(|d| *d >= 0.0);
                res.retry_delay = d.ok_or_else(|| {
                    anyhow::anyhow!("`retry_delay` must be a non-negative number of seconds")
                })?;
            }
            other => {
                if !kind.properties().contains(&other) {
                    anyhow::bail!(
                        "unknown property `{other}` for {kind} (valid: {})",
                        kind.properties().join(", ")
                    );
                }
                if v.is_none() {
                    continue;
                }
                res.props.insert(other.to_string(), to_json(v)?);
            }
        }
    }
    let identity = res.identity();
    c.resources.borrow_mut().push(res);
    if let Some(f) = c.frames.borrow_mut().last_mut() {
        f.pending_guards.extend(pending);
    }
    Ok(identity)
}

#[starlark_module]
pub(crate) fn recipe_dsl(builder: &mut GlobalsBuilder) {
    /// `file(path, content=..., mode=..., owner=..., group=...)`.
    fn file<'v>(
        #[starlark(require = pos)] name: &str,
        #[starlark(kwargs)] kwargs: SmallMap<String, Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<String> {
        declare(eval, Kind::File, name, kwargs)
    }
    /// `directory(path, mode=..., owner=..., recursive=...)`.
    fn directory<'v>(
        #[starlark(require = pos)] name: &str,
        #[starlark(kwargs)] kwargs: SmallMap<String, Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<String> {
        declare(eval, Kind::Directory, name, kwargs)
    }
    /// `template(path, source="x.j2", variables={...})`.
    fn template<'v>(
        #[starlark(require = pos)] name: &str,
        #[starlark(kwargs)] kwargs: SmallMap<String, Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<String> {
        declare(eval, Kind::Template, name, kwargs)
    }
    /// `cookbook_file(path, source=...)`.
    fn cookbook_file<'v>(
        #[starlark(require = pos)] name: &str,
        #[starlark(kwargs)] kwargs: SmallMap<String, Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<String> {
        declare(eval, Kind::CookbookFile, name, kwargs)
    }
    /// `link(path, to=...)`.
    fn link<'v>(
        #[starlark(require = pos)] name: &str,
        #[starlark(kwargs)] kwargs: SmallMap<String, Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<String> {
        declare(eval, Kind::Link, name, kwargs)
    }
    /// `execute(name, command=...)`.
    fn execute<'v>(
        #[starlark(require = pos)] name: &str,
        #[starlark(kwargs)] kwargs: SmallMap<String, Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<String> {
        declare(eval, Kind::Execute, name, kwargs)
    }
    /// `bash(name, code=...)`.
    fn bash<'v>(
        #[starlark(require = pos)] name: &str,
        #[starlark(kwargs)] kwargs: SmallMap<String, Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<String> {
        declare(eval, Kind::Bash, name, kwargs)
    }
    /// `log(message, level="info")`.
    fn log<'v>(
        #[starlark(require = pos)] name: &str,
        #[starlark(kwargs)] kwargs: SmallMap<String, Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<String> {
        declare(eval, Kind::Log, name, kwargs)
    }
    /// `remote_file(path, source=url, checksum=sha256)`.
    fn remote_file<'v>(
        #[starlark(require = pos)] name: &str,
        #[starlark(kwargs)] kwargs: SmallMap<String, Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<String> {
        declare(eval, Kind::RemoteFile, name, kwargs)
    }
    /// `package(name, version=...)`.
    fn package<'v>(
        #[starlark(require = pos)] name: &str,
        #[starlark(kwargs)] kwargs: SmallMap<String, Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<String> {
        declare(eval, Kind::Package, name, kwargs)
    }
    /// `service(name, action=[...])`.
    fn service<'v>(
        #[starlark(require = pos)] name: &str,
        #[starlark(kwargs)] kwargs: SmallMap<String, Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<String> {
        declare(eval, Kind::Service, name, kwargs)
    }
    /// `user(name, uid=..., home=..., shell=...)`.
    fn user<'v>(
        #[starlark(require = pos)] name: &str,
        #[starlark(kwargs)] kwargs: SmallMap<String, Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<String> {
        declare(eval, Kind::User, name, kwargs)
    }
    /// `group(name, gid=..., members=[...])`.
    fn group<'v>(
        #[starlark(require = pos)] name: &str,
        #[starlark(kwargs)] kwargs: SmallMap<String, Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<String> {
        declare(eval, Kind::Group, name, kwargs)
    }
    /// `cron(name, minute=..., command=...)`.
    fn cron<'v>(
        #[starlark(require = pos)] name: &str,
        #[starlark(kwargs)] kwargs: SmallMap<String, Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<String> {
        declare(eval, Kind::Cron, name, kwargs)
    }
    /// `git(destination, repository=..., revision=...)`.
    fn git<'v>(
        #[starlark(require = pos)] name: &str,
        #[starlark(kwargs)] kwargs: SmallMap<String, Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<String> {
        declare(eval, Kind::Git, name, kwargs)
    }

    /// Compiles another recipe here (once per run): `include_recipe("cb::recipe")`.
    fn include_recipe<'v>(
        #[starlark(require = pos)] name: &str,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<starlark::values::none::NoneType> {
        let c = compiler(eval)?;
        let r = RecipeRef::parse(name).map_err(|e| anyhow::anyhow!("{e}"))?;
        if !c.cookbooks.contains_key(&r.cookbook) {
            anyhow::bail!(
                "include_recipe(\"{name}\"): cookbook `{}` is not in the run list or the dependencies of its cookbooks (add it to `depends` in metadata.json)",
                r.cookbook
            );
        }
        c.include_recipe(&r)
            .map_err(|e| anyhow::anyhow!("include_recipe(\"{name}\") failed:\n{e}"))?;
        Ok(starlark::values::none::NoneType)
    }

    /// `search("bag", "key:value AND ...")`: matching data bag items, sorted by id.
    fn search<'v>(
        #[starlark(require = pos)] index: &str,
        #[starlark(require = pos)] query: Option<&str>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Vec<Value<'v>>> {
        let c = compiler(eval)?;
        let q = Query::parse(query.unwrap_or("*:*"))?;
        let heap = eval.heap();
        let Some(bag) = c.data_bags.get(index) else {
            anyhow::bail!("search: no data bag (index) named `{index}`");
        };
        Ok(bag
            .values()
            .filter(|item| q.matches(item))
            .map(|item| heap.alloc(item.clone()))
            .collect())
    }

    /// `data_bag("bag")`: the item ids of a bag.
    fn data_bag<'v>(
        #[starlark(require = pos)] bag: &str,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Vec<String>> {
        let c = compiler(eval)?;
        let items = c
            .data_bags
            .get(bag)
            .ok_or_else(|| anyhow::anyhow!("no data bag named `{bag}`"))?;
        Ok(items.keys().cloned().collect())
    }

    /// `data_bag_item("bag", "id")`: one item as a dict.
    fn data_bag_item<'v>(
        #[starlark(require = pos)] bag: &str,
        #[starlark(require = pos)] id: &str,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<Value<'v>> {
        let c = compiler(eval)?;
        let heap: Heap<'v> = eval.heap();
        let item = c
            .data_bags
            .get(bag)
            .ok_or_else(|| anyhow::anyhow!("no data bag named `{bag}`"))?
            .get(id)
            .ok_or_else(|| anyhow::anyhow!("data bag `{bag}` has no item `{id}`"))?;
        Ok(heap.alloc(item.clone()))
    }
}
