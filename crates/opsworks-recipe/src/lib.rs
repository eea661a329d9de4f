//! Chef-style recipe engine: cookbooks with Starlark recipes and minijinja templates, compiled
//! into a resource collection and converged natively, with a per-resource report.
//!
//! Code map:
//! - [`converge`] / [`RunConfig`] / [`Report`]: the library entry point (the agent calls it).
//! - `dsl` (+ `dsl/globals`, `dsl/node`): everything Starlark; the compile phase.
//! - [`resource`]: the resource collection's plain data; [`resources`]: providers (load current
//!   state, compare, act), plain Rust and testable without Starlark.
//! - `runner`: the converge phase (guards, retries, notifications).
//! - [`attributes`], [`facts`], [`search`], [`cookbook`]: node data, host facts, data bag search,
//!   cookbooks on disk. [`cli`]: `opsworks converge`.

pub mod attributes;
pub mod cli;
pub mod cookbook;
mod dsl;
mod error;
pub mod facts;
pub mod report;
pub mod resource;
pub mod resources;
mod runner;
pub mod search;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub use attributes::{Attributes, Level};
pub use cookbook::DataBags;
pub use dsl::Limits;
pub use error::RecipeError;
pub use report::{Report, ResourceReport, Status};

/// Where the run's data bags come from.
#[derive(Debug, Clone, Default)]
pub enum DataBagSource {
    /// No data bags: `search()` finds no index.
    #[default]
    None,
    /// `DIR/<bag>/<item>.json`.
    Dir(PathBuf),
    /// Already in memory (the agent passes the stack's OpsWorks data bags this way).
    Memory(DataBags),
}

/// Everything one converge needs.
///
/// `json` is node attribute JSON (stack, layer and deployment data). It enters at the `normal`
/// level like `chef-client -j`, except a top-level `"_levels"` object, which names levels
/// explicitly: `{"_levels": {"override": {...}, "default": {...}}}`.
#[derive(Debug, Clone, Default)]
pub struct RunConfig {
    /// Directories that contain cookbooks (`DIR/<cookbook>/metadata.json`); first match wins.
    pub cookbook_paths: Vec<PathBuf>,
    /// Run-list entries: `cookbook` or `cookbook::recipe`.
    pub run_list: Vec<String>,
    /// Node attribute JSON (see above); `Null` for none.
    pub json: serde_json::Value,
    /// Data bags for `search()`, `data_bag()` and `data_bag_item()`.
    pub data_bags: DataBagSource,
    /// Report what would change without changing anything.
    pub why_run: bool,
    /// Evaluation limits for recipes.
    pub limits: Limits,
    /// Replaces the collected host facts (automatic attributes), e.g. for reproducible tests.
    pub automatic: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Compiles the run list and converges it. Compile problems (bad recipes, missing cookbooks,
/// unknown notification targets) are errors; resource failures are in the returned report
/// (`success == false`), after delayed notifications have run.
pub fn converge(cfg: &RunConfig) -> Result<Report, RecipeError> {
    let start = Instant::now();
    let refs: Vec<cookbook::RecipeRef> = cfg
        .run_list
        .iter()
        .map(|e| cookbook::RecipeRef::parse(e))
        .collect::<Result<_, _>>()?;
    let mut set = cookbook::CookbookSet::new(&cfg.cookbook_paths);
    let roots: Vec<String> = refs.iter().map(|r| r.cookbook.clone()).collect();
    let order = set.expand(&roots)?;
    let cookbooks: BTreeMap<String, cookbook::Cookbook> = order
        .iter()
        .filter_map(|n| set.loaded(n).map(|c| (n.clone(), c.clone())))
        .collect();

    let mut attrs = Attributes::new();
    attrs.merge_into(
        Level::Automatic,
        &cfg.automatic.clone().unwrap_or_else(facts::collect),
    );
    let parts = attributes::split_run_json(&cfg.json).map_err(|message| RecipeError::Json {
        path: "node JSON".to_string(),
        message,
    })?;
    for (level, tree) in parts {
        attrs.merge_into(level, &tree);
    }
    let data_bags = match &cfg.data_bags {
        DataBagSource::None => DataBags::new(),
        DataBagSource::Dir(d) => cookbook::load_data_bags(d)?,
        DataBagSource::Memory(m) => m.clone(),
    };

    let shared = Arc::new(Mutex::new(attrs));
    let compiler = dsl::Compiler::new(shared.clone(), cookbooks.clone(), data_bags, cfg.limits);
    for cb in &order {
        compiler.eval_attributes(cb)?;
    }
    for r in &refs {
        compiler.include_recipe(r)?;
    }
    let resources = compiler.finish()?;
    let node = shared
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .merged()
        .clone();

    let templates = resources::templates::Templates::new(&cookbooks);
    let ctx = resources::Ctx {
        why_run: cfg.why_run,
        cookbooks: &cookbooks,
        templates: &templates,
        node: &node,
    };
    let done = runner::converge(&resources, &ctx);
    Ok(Report {
        why_run: cfg.why_run,
        success: done.error.is_none(),
        error: done.error,
        updated: done.updated.len(),
        total: resources.len(),
        resources: done.entries,
        elapsed_ms: start.elapsed().as_secs_f64() * 1000.0,
    })
}
