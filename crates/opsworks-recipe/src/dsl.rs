//! The Starlark side of the engine (compile phase): evaluates attribute files and recipes with
//! the recipe DSL, resolves `load()` of cookbook libraries, enforces evaluation limits, and turns
//! what recipes declare into the plain-Rust resource collection. Nothing here converges.

pub mod globals;
pub mod node;
mod ops;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use starlark::environment::{FrozenModule, Globals, GlobalsBuilder, LibraryExtension, Module};
use starlark::eval::{Evaluator, FileLoader};
use starlark::syntax::{AstModule, Dialect};
use starlark::values::ProvidesStaticType;

use crate::RecipeError;
use crate::attributes::Level;
use crate::cookbook::{Cookbook, DataBags, RecipeRef};
use crate::resource::{Edge, GuardCheck, Resource, parse_identity};
use node::{NodeAttrs, SharedAttributes};

/// Bounds on recipe evaluation so a runaway recipe stops with an error instead of hanging
/// or exhausting memory. They apply to each file evaluated and each guard function call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Starlark evaluation steps.
    pub max_ticks: u64,
    /// Nested calls.
    pub max_callstack: usize,
    /// Starlark heap bytes.
    pub max_heap_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_ticks: 5_000_000,
            max_callstack: 200,
            max_heap_bytes: 256 << 20,
        }
    }
}

/// What is being evaluated: only recipes may declare resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Attributes,
    Library,
    Recipe,
}

/// One file being evaluated.
pub(crate) struct Frame {
    pub cookbook: String,
    /// `cookbook::recipe` (or the file name for attribute files and libraries).
    pub recipe: String,
    pub phase: Phase,
    /// Guard functions declared in this file: (resource index, guard index, module variable).
    pub pending_guards: Vec<(usize, usize, String)>,
}

/// The compile-phase state, reachable from native functions through `Evaluator::extra`.
#[derive(ProvidesStaticType)]
pub(crate) struct Compiler {
    pub cookbooks: BTreeMap<String, Cookbook>,
    pub data_bags: DataBags,
    pub limits: Limits,
    globals: Globals,
    pub resources: RefCell<Vec<Resource>>,
    pub included: RefCell<Vec<String>>,
    libs: RefCell<HashMap<PathBuf, FrozenModule>>,
    loading: RefCell<Vec<PathBuf>>,
    pub frames: RefCell<Vec<Frame>>,
    pub guard_counter: Cell<usize>,
}

/// Formats a Starlark error for people: no doubled `error:` prefix, the file named even when
/// Starlark gives no span (limit errors), and long tracebacks (deep recursion) shortened.
fn starlark_error(e: starlark::Error, path: &Path) -> RecipeError {
    let text = e.to_string();
    let text = text
        .strip_prefix("error: ")
        .unwrap_or(&text)
        .trim_end()
        .to_string();
    let mut lines: Vec<&str> = text.lines().collect();
    const KEEP_HEAD: usize = 8;
    const KEEP_TAIL: usize = 16;
    let omitted = lines.len().saturating_sub(KEEP_HEAD + KEEP_TAIL);
    let marker = format!("  ... {omitted} traceback lines omitted ...");
    if omitted > 0 {
        lines.splice(KEEP_HEAD..KEEP_HEAD + omitted, [marker.as_str()]);
    }
    let mut message = lines.join("\n");
    if !message.contains(" --> ") {
        message = format!("{message}\n --> while evaluating {}", path.display());
    }
    RecipeError::Starlark { message }
}

/// Resolves `load()` paths: `"helpers.star"` is the current cookbook's `libraries/helpers.star`,
/// `"other::helpers.star"` another cookbook's.
struct LibLoader<'a> {
    compiler: &'a Compiler,
    cookbook: String,
}

impl FileLoader for LibLoader<'_> {
    fn load(&self, path: &str) -> starlark::Result<FrozenModule> {
        let (cb, file) = path.split_once("::").unwrap_or((&self.cookbook, path));
        let err = |m: String| starlark::Error::new_other(anyhow::anyhow!(m));
        if file.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(err(format!("invalid library path `{path}`")));
        }
        let cookbook = self.compiler.cookbooks.get(cb).ok_or_else(|| {
            err(format!(
                "load(\"{path}\"): cookbook `{cb}` is not part of this run (add it to depends)"
            ))
        })?;
        let full = cookbook.dir.join("libraries").join(file);
        if let Some(m) = self.compiler.libs.borrow().get(&full) {
            return Ok(m.clone());
        }
        if self.compiler.loading.borrow().contains(&full) {
            return Err(err(format!("load(\"{path}\"): cycle of load() statements")));
        }
        if !full.is_file() {
            return Err(err(format!(
                "load(\"{path}\"): {} does not exist",
                full.display()
            )));
        }
        self.compiler.loading.borrow_mut().push(full.clone());
        let r = self.compiler.eval_file(&full, cb, file, Phase::Library);
        self.compiler.loading.borrow_mut().retain(|p| p != &full);
        let m = r.map_err(|e| err(e.to_string()))?;
        self.compiler.libs.borrow_mut().insert(full, m.clone());
        Ok(m)
    }
}

impl Compiler {
    /// Sets up globals (the DSL plus `node` and the level objects) for one run.
    pub fn new(
        attrs: SharedAttributes,
        cookbooks: BTreeMap<String, Cookbook>,
        data_bags: DataBags,
        limits: Limits,
    ) -> Self {
        // `json`, `struct`, `partial`, `map`/`filter` and `print` on top of standard Starlark.
        let mut builder = GlobalsBuilder::extended_by(&[
            LibraryExtension::Json,
            LibraryExtension::StructType,
            LibraryExtension::Partial,
            LibraryExtension::Map,
            LibraryExtension::Filter,
            LibraryExtension::Print,
        ])
        .with(globals::recipe_dsl)
        .with(ops::checked_ops);
        builder.set("node", NodeAttrs::root(attrs.clone()));
        for level in Level::ALL {
            if level != Level::Automatic {
                builder.set(level.name(), NodeAttrs::level(attrs.clone(), level));
            }
        }
        Compiler {
            cookbooks,
            data_bags,
            limits,
            globals: builder.build(),
            resources: RefCell::new(Vec::new()),
            included: RefCell::new(Vec::new()),
            libs: RefCell::new(HashMap::new()),
            loading: RefCell::new(Vec::new()),
            frames: RefCell::new(Vec::new()),
            guard_counter: Cell::new(0),
        }
    }

    fn dialect() -> Dialect {
        Dialect {
            enable_top_level_stmt: true,
            enable_f_strings: true,
            ..Dialect::Standard
        }
    }

    /// Evaluates one Starlark file with limits and returns its frozen module.
    pub(crate) fn eval_file(
        &self,
        path: &Path,
        cookbook: &str,
        recipe: &str,
        phase: Phase,
    ) -> Result<FrozenModule, RecipeError> {
        let src = std::fs::read_to_string(path).map_err(|e| RecipeError::io(path, e))?;
        let mut ast = AstModule::parse(&path.display().to_string(), src, &Self::dialect())
            .map_err(|e| starlark_error(e, path))?;
        ast.replace_binary_operators(&HashMap::from([("*".to_string(), ops::MUL.to_string())]));
        let loader = LibLoader {
            compiler: self,
            cookbook: cookbook.to_string(),
        };
        self.frames.borrow_mut().push(Frame {
            cookbook: cookbook.to_string(),
            recipe: recipe.to_string(),
            phase,
            pending_guards: Vec::new(),
        });
        let limits = self.limits;
        let result = Module::with_temp_heap(|module| -> starlark::Result<FrozenModule> {
            {
                let mut eval = Evaluator::new(&module);
                eval.set_max_callstack_size(limits.max_callstack)?;
                eval.set_max_tick_count(limits.max_ticks)?;
                eval.set_max_heap_size(limits.max_heap_bytes)?;
                eval.set_loader(&loader);
                eval.extra = Some(self);
                eval.eval_module(ast, &self.globals)?;
            }
            module.freeze().map_err(|e| {
                starlark::Error::new_other(anyhow::anyhow!("cannot freeze module: {e:?}"))
            })
        });
        let frame = self.frames.borrow_mut().pop();
        let frozen = result.map_err(|e| starlark_error(e, path))?;
        if let Some(frame) = frame {
            let mut resources = self.resources.borrow_mut();
            for (ri, gi, var) in frame.pending_guards {
                if let Some(g) = resources.get_mut(ri).and_then(|r| r.guards.get_mut(gi)) {
                    g.check = GuardCheck::Function(guard_fn(frozen.clone(), var, limits));
                }
            }
        }
        Ok(frozen)
    }

    /// Runs every attribute file of `cookbook` (default.star first).
    pub fn eval_attributes(&self, cookbook: &str) -> Result<(), RecipeError> {
        let Some(cb) = self.cookbooks.get(cookbook) else {
            return Ok(());
        };
        for file in cb.attribute_files() {
            let label = format!(
                "{cookbook}::attributes/{}",
                file.file_name()
                    .map(|f| f.to_string_lossy())
                    .unwrap_or_default()
            );
            self.eval_file(&file, cookbook, &label, Phase::Attributes)?;
        }
        Ok(())
    }

    /// Compiles a recipe (once per run, like Chef's include_recipe).
    pub fn include_recipe(&self, r: &RecipeRef) -> Result<(), RecipeError> {
        let full = r.full_name();
        if self.included.borrow().contains(&full) {
            return Ok(());
        }
        let cb = self
            .cookbooks
            .get(&r.cookbook)
            .ok_or_else(|| RecipeError::CookbookNotFound {
                name: r.cookbook.clone(),
                searched: "the run list and its dependencies".to_string(),
            })?;
        let path = cb.recipe_path(&r.recipe);
        if !path.is_file() {
            return Err(RecipeError::RecipeNotFound {
                cookbook: r.cookbook.clone(),
                recipe: r.recipe.clone(),
                path,
            });
        }
        self.included.borrow_mut().push(full.clone());
        self.eval_file(&path, &r.cookbook, &full, Phase::Recipe)?;
        Ok(())
    }

    /// Ends the compile phase: resolves notifications into edges and returns the collection.
    pub fn finish(self) -> Result<Vec<Resource>, RecipeError> {
        let mut resources = self.resources.into_inner();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, r) in resources.iter().enumerate() {
            index.entry(r.identity()).or_insert(i);
        }
        let decl_err = |r: &Resource, message: String| RecipeError::Declaration {
            location: format!("{} ({})", r.source, r.source.recipe),
            message: format!("{}: {message}", r.identity()),
        };
        let mut edges: Vec<(usize, Edge)> = Vec::new();
        for (i, r) in resources.iter().enumerate() {
            for n in &r.notifies {
                let Some(&t) = index.get(&n.other) else {
                    let hint = if parse_identity(&n.other).is_none() {
                        " (expected `type[name]`)"
                    } else {
                        ""
                    };
                    return Err(decl_err(
                        r,
                        format!(
                            "notifies a resource `{}` that is not in the resource collection{hint}",
                            n.other
                        ),
                    ));
                };
                check_action(&resources[t], &n.action)
                    .map_err(|m| decl_err(r, format!("notifies: {m}")))?;
                edges.push((
                    i,
                    Edge {
                        target: t,
                        action: n.action.clone(),
                        timer: n.timer,
                    },
                ));
            }
            for s in &r.subscribes {
                // Chef: subscribing to a resource that does not exist is not an error.
                if let Some(&src) = index.get(&s.other) {
                    check_action(r, &s.action)
                        .map_err(|m| decl_err(r, format!("subscribes: {m}")))?;
                    edges.push((
                        src,
                        Edge {
                            target: i,
                            action: s.action.clone(),
                            timer: s.timer,
                        },
                    ));
                }
            }
        }
        for (src, e) in edges {
            if let Some(r) = resources.get_mut(src) {
                r.edges.push(e);
            }
        }
        Ok(resources)
    }
}

fn check_action(target: &Resource, action: &str) -> Result<(), String> {
    if target.kind.actions().contains(&action) {
        Ok(())
    } else {
        Err(format!(
            "{} has no action `{action}` (valid: {})",
            target.identity(),
            target.kind.actions().join(", ")
        ))
    }
}

/// Wraps a guard function (a variable of a frozen recipe module) as a check evaluated at
/// converge time, by calling it from a fresh module that imports the recipe's symbols.
fn guard_fn(
    module: FrozenModule,
    var: String,
    limits: Limits,
) -> Rc<dyn Fn() -> Result<bool, String>> {
    let globals = Globals::standard();
    Rc::new(move || {
        let ast = AstModule::parse("<guard>", format!("{var}()"), &Dialect::Standard)
            .map_err(|e| e.to_string())?;
        Module::with_temp_heap(|m| {
            m.import_public_symbols(&module);
            let mut eval = Evaluator::new(&m);
            eval.set_max_callstack_size(limits.max_callstack)
                .map_err(|e| e.to_string())?;
            eval.set_max_tick_count(limits.max_ticks)
                .map_err(|e| e.to_string())?;
            eval.eval_module(ast, &globals)
                .map(|v| v.to_bool())
                .map_err(|e| format!("guard function failed: {e}"))
        })
    })
}
