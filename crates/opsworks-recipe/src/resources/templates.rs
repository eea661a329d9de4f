//! `template`: Jinja2 templates (minijinja) from a cookbook's `templates/` folder, rendered at
//! converge with the resource's `variables` and the merged `node`, then written like a file.
//! Render errors name the template file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

use super::files::{Perms, converge_content};
use super::{Ctx, Outcome};
use crate::cookbook::Cookbook;
use crate::resource::Resource;

/// Separates the cookbook from the template path in template names (`nginx::site.conf.j2`).
const SEP: &str = "::";

/// Steps one render may take (minijinja's fuel, one per instruction): as the recipes' tick
/// limit, a bound that only a runaway template (nested loops over large ranges, recursive
/// macros) reaches.
pub const MAX_RENDER_STEPS: u64 = 5_000_000;

/// The largest output one render may write.
pub const MAX_OUTPUT_BYTES: usize = 64 << 20;

/// A template environment over the run's cookbooks. Each template is parsed once per run.
pub struct Templates {
    env: Environment<'static>,
    dirs: BTreeMap<String, PathBuf>,
}

impl Templates {
    /// Builds the environment; templates are loaded lazily from the cookbook folders.
    pub fn new(cookbooks: &BTreeMap<String, Cookbook>) -> Self {
        let cbs: BTreeMap<String, Cookbook> = cookbooks.clone();
        let dirs = cookbooks
            .iter()
            .map(|(k, v)| (k.clone(), v.dir.clone()))
            .collect();
        let mut env = Environment::new();
        // Config files keep their final newline, as ERB templates do in Chef.
        let mut syntax = minijinja::syntax::SyntaxConfig::builder();
        syntax.keep_trailing_newline(true);
        if let Ok(cfg) = syntax.build() {
            env.set_syntax(cfg);
        }
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_fuel(Some(MAX_RENDER_STEPS));
        env.set_loader(move |name: &str| {
            let Some(path) = resolve(&cbs, name) else {
                return Ok(None);
            };
            std::fs::read_to_string(&path).map(Some).map_err(|e| {
                minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("cannot read {}: {e}", path.display()),
                )
            })
        });
        // `{% include "x.j2" %}` inside a cookbook template refers to the same cookbook.
        env.set_path_join_callback(|name, parent| {
            if name.contains(SEP) {
                name.to_string().into()
            } else {
                let cb = parent.split_once(SEP).map(|(c, _)| c).unwrap_or("");
                format!("{cb}{SEP}{name}").into()
            }
        });
        Templates { env, dirs }
    }

    /// Renders `source` from `cookbook` with `context`.
    pub fn render(&self, cookbook: &str, source: &str, context: &Value) -> Result<String, String> {
        let name = format!("{cookbook}{SEP}{source}");
        let tmpl = self
            .env
            .get_template(&name)
            .map_err(|e| self.describe(&e, &name))?;
        let mut out = Bounded {
            buf: Vec::new(),
            over: false,
        };
        match tmpl.render_captured_to(to_jinja(context), &mut out) {
            Ok(_) => String::from_utf8(out.buf)
                .map_err(|_| format!("template `{source}` rendered text that is not UTF-8")),
            Err(_) if out.over => Err(format!(
                "template error in {}: the output is larger than {} MiB",
                self.path_of(&name),
                MAX_OUTPUT_BYTES >> 20
            )),
            Err(e) if e.kind() == minijinja::ErrorKind::OutOfFuel => Err(format!(
                "template error in {}: the render took more than {MAX_RENDER_STEPS} steps \
                 (a loop or recursion that does not end soon enough)",
                self.path_of(&name)
            )),
            Err(e) => Err(self.describe(&e, &name)),
        }
    }

    /// Where a template name lives on disk, for messages.
    fn path_of(&self, name: &str) -> String {
        let Some((cb, src)) = name.split_once(SEP) else {
            return name.to_string();
        };
        if cb == "local" {
            return src.to_string();
        }
        match self.dirs.get(cb) {
            Some(d) => {
                let direct = d.join("templates").join(src);
                let nested = d.join("templates").join("default").join(src);
                if !direct.exists() && nested.exists() {
                    nested
                } else {
                    direct
                }
                .display()
                .to_string()
            }
            None => name.to_string(),
        }
    }

    /// "template <path>:<line>: <what>" plus the offending line, following includes to the
    /// template that actually failed.
    fn describe(&self, e: &minijinja::Error, top: &str) -> String {
        if e.kind() == minijinja::ErrorKind::TemplateNotFound && e.name().is_none_or(|n| n == top) {
            return format!(
                "template `{}` not found ({} does not exist)",
                display_name(top),
                self.path_of(top)
            );
        }
        let name = e.name().unwrap_or(top);
        let path = self.path_of(name);
        let what = match e.detail() {
            Some(d) => format!("{}: {d}", e.kind()),
            None => e.kind().to_string(),
        };
        match e.line() {
            Some(line) => {
                let src = std::fs::read_to_string(&path).ok();
                let text = src
                    .as_deref()
                    .and_then(|s| s.lines().nth(line.saturating_sub(1)))
                    .unwrap_or("");
                format!("template error in {path}:{line}: {what}\n  {line} | {text}")
            }
            None => format!("template error in {path}: {what}"),
        }
    }
}

/// A render's output, refused past [`MAX_OUTPUT_BYTES`].
struct Bounded {
    buf: Vec<u8>,
    over: bool,
}

impl std::io::Write for Bounded {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > MAX_OUTPUT_BYTES {
            self.over = true;
            return Err(std::io::Error::other("template output too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Converts JSON to template values by hand: serde_json numbers may be built with
/// `arbitrary_precision` elsewhere in the dependency graph, which would make them render as maps.
pub fn to_jinja(v: &Value) -> minijinja::Value {
    match v {
        Value::Null => minijinja::Value::from(()),
        Value::Bool(b) => minijinja::Value::from(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                minijinja::Value::from(i)
            } else if let Some(u) = n.as_u64() {
                minijinja::Value::from(u)
            } else {
                minijinja::Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => minijinja::Value::from(s.as_str()),
        Value::Array(a) => minijinja::Value::from(a.iter().map(to_jinja).collect::<Vec<_>>()),
        Value::Object(m) => {
            minijinja::Value::from_pairs(m.iter().map(|(k, v)| (k.as_str(), to_jinja(v))))
        }
    }
}

fn display_name(name: &str) -> &str {
    name.split_once(SEP).map(|(_, s)| s).unwrap_or(name)
}

fn resolve(cbs: &BTreeMap<String, Cookbook>, name: &str) -> Option<PathBuf> {
    let (cb, src) = name.split_once(SEP)?;
    if cb == "local" {
        return Some(PathBuf::from(src)).filter(|p| p.is_file());
    }
    cbs.get(cb)?.find_asset("templates", src)
}

/// `template`.
pub fn template(res: &Resource, action: &str, ctx: &Ctx<'_>) -> Result<Outcome, String> {
    let path = Path::new(res.name_prop("path"));
    let content = if action == "delete" {
        None
    } else {
        let default_source = format!(
            "{}.j2",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        let source = res
            .str_prop("source")
            .map(str::to_string)
            .unwrap_or(default_source);
        let cookbook = if res.bool_prop("local", false) {
            "local"
        } else {
            res.str_prop("cookbook").unwrap_or(&res.cookbook)
        };
        let mut context = Map::new();
        context.insert("node".into(), ctx.node.clone());
        match res.props.get("variables") {
            None | Some(Value::Null) => {}
            Some(Value::Object(vars)) => context.extend(vars.clone()),
            Some(other) => return Err(format!("`variables` must be a dict, got {other}")),
        }
        Some(
            ctx.templates
                .render(cookbook, &source, &Value::Object(context))?
                .into_bytes(),
        )
    };
    let perms = Perms::from_resource(res)?;
    converge_content(
        path,
        content.as_deref(),
        &perms,
        action,
        res.sensitive,
        ctx.why_run,
    )
}
