//! Cookbooks on disk (`metadata.json`, `recipes/`, `attributes/`, `templates/`, `files/`,
//! `libraries/`), run-list parsing, dependency expansion, and data bags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::RecipeError;

/// One cookbook found in the cookbook path.
#[derive(Debug, Clone)]
pub struct Cookbook {
    /// `metadata.json` name (defaults to the directory name).
    pub name: String,
    /// `metadata.json` version.
    pub version: String,
    /// Names of cookbooks this one depends on.
    pub depends: Vec<String>,
    /// The cookbook directory.
    pub dir: PathBuf,
}

impl Cookbook {
    /// Loads a cookbook directory.
    pub fn load(dir: &Path) -> Result<Cookbook, RecipeError> {
        let dir_name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let meta_path = dir.join("metadata.json");
        let meta: Value = match std::fs::read_to_string(&meta_path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| RecipeError::Metadata {
                path: meta_path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Null,
            Err(e) => return Err(RecipeError::io(&meta_path, e)),
        };
        let bad = |message: &str| RecipeError::Metadata {
            path: meta_path.clone(),
            message: message.to_string(),
        };
        let name = match meta.get("name") {
            None | Some(Value::Null) => dir_name,
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(bad("`name` must be a string")),
        };
        let version = match meta.get("version") {
            None | Some(Value::Null) => "0.0.0".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(bad("`version` must be a string")),
        };
        // Chef writes `depends` as an object {name: constraint}; a list of names is also accepted.
        let depends = match meta.get("depends").or_else(|| meta.get("dependencies")) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(m)) => m.keys().cloned().collect(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad("`depends` entries must be strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(bad("`depends` must be an object or a list")),
        };
        Ok(Cookbook {
            name,
            version,
            depends,
            dir: dir.to_path_buf(),
        })
    }

    /// Path of `recipes/<recipe>.star`.
    pub fn recipe_path(&self, recipe: &str) -> PathBuf {
        self.dir.join("recipes").join(format!("{recipe}.star"))
    }

    /// Attribute files: `default.star` first, then the others in lexical order (Chef's order).
    pub fn attribute_files(&self) -> Vec<PathBuf> {
        let mut files = star_files(&self.dir.join("attributes"));
        files.sort_by_key(|p| (p.file_stem().is_none_or(|s| s != "default"), p.clone()));
        files
    }

    /// Finds a file under `templates/` or `files/` (also accepting Chef's `default/` subfolder).
    pub fn find_asset(&self, folder: &str, source: &str) -> Option<PathBuf> {
        if source.split('/').any(|c| c == "..") {
            return None;
        }
        [
            self.dir.join(folder).join(source),
            self.dir.join(folder).join("default").join(source),
        ]
        .into_iter()
        .find(|p| p.is_file())
    }
}

fn star_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "star"))
        .collect();
    out.sort();
    out
}

/// The cookbooks of a run, looked up by name in the cookbook path (first path wins).
#[derive(Debug, Clone)]
pub struct CookbookSet {
    paths: Vec<PathBuf>,
    loaded: BTreeMap<String, Cookbook>,
}

impl CookbookSet {
    /// A set over the given cookbook directories.
    pub fn new(paths: &[PathBuf]) -> Self {
        CookbookSet {
            paths: paths.to_vec(),
            loaded: BTreeMap::new(),
        }
    }

    fn searched(&self) -> String {
        self.paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Finds and loads a cookbook by name.
    pub fn get(&mut self, name: &str) -> Result<&Cookbook, RecipeError> {
        if !self.loaded.contains_key(name) {
            let found = self.paths.iter().map(|p| p.join(name)).find(|d| d.is_dir());
            let Some(dir) = found else {
                return Err(RecipeError::CookbookNotFound {
                    name: name.to_string(),
                    searched: self.searched(),
                });
            };
            let cb = Cookbook::load(&dir)?;
            self.loaded.insert(name.to_string(), cb);
        }
        self.loaded
            .get(name)
            .ok_or_else(|| RecipeError::CookbookNotFound {
                name: name.to_string(),
                searched: self.searched(),
            })
    }

    /// A cookbook already loaded by [`CookbookSet::get`].
    pub fn loaded(&self, name: &str) -> Option<&Cookbook> {
        self.loaded.get(name)
    }

    /// Expands cookbooks and their dependencies, dependencies first, each once.
    pub fn expand(&mut self, roots: &[String]) -> Result<Vec<String>, RecipeError> {
        let mut order = Vec::new();
        for r in roots {
            self.visit(r, None, &mut order, &mut Vec::new())?;
        }
        Ok(order)
    }

    fn visit(
        &mut self,
        name: &str,
        parent: Option<&str>,
        order: &mut Vec<String>,
        stack: &mut Vec<String>,
    ) -> Result<(), RecipeError> {
        if order.iter().any(|o| o == name) || stack.iter().any(|s| s == name) {
            return Ok(());
        }
        let deps = match self.get(name) {
            Ok(cb) => cb.depends.clone(),
            Err(RecipeError::CookbookNotFound { searched, .. }) if parent.is_some() => {
                return Err(RecipeError::MissingDependency {
                    cookbook: parent.unwrap_or_default().to_string(),
                    dependency: name.to_string(),
                    searched,
                });
            }
            Err(e) => return Err(e),
        };
        stack.push(name.to_string());
        for d in &deps {
            self.visit(d, Some(name), order, stack)?;
        }
        stack.pop();
        order.push(name.to_string());
        Ok(())
    }
}

/// A run-list entry `cookbook::recipe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeRef {
    /// Cookbook name.
    pub cookbook: String,
    /// Recipe name (`default` when omitted).
    pub recipe: String,
}

impl RecipeRef {
    /// Parses `cb`, `cb::recipe` or Chef's `recipe[cb::recipe]`.
    pub fn parse(entry: &str) -> Result<RecipeRef, RecipeError> {
        let e = entry.trim();
        let e = e
            .strip_prefix("recipe[")
            .and_then(|r| r.strip_suffix(']'))
            .unwrap_or(e);
        let (cb, recipe) = e.split_once("::").unwrap_or((e, "default"));
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !valid(cb) || !valid(recipe) {
            return Err(RecipeError::RunList {
                entry: entry.to_string(),
            });
        }
        Ok(RecipeRef {
            cookbook: cb.to_string(),
            recipe: recipe.to_string(),
        })
    }

    /// `cookbook::recipe`.
    pub fn full_name(&self) -> String {
        format!("{}::{}", self.cookbook, self.recipe)
    }
}

/// Parses a comma-separated run list.
pub fn parse_run_list(s: &str) -> Result<Vec<RecipeRef>, RecipeError> {
    s.split(',')
        .filter(|e| !e.trim().is_empty())
        .map(RecipeRef::parse)
        .collect()
}

/// Data bags: bag name → item id → item.
pub type DataBags = BTreeMap<String, BTreeMap<String, Value>>;

/// Loads `DIR/<bag>/<item>.json`. An item without `id` gets its file stem.
pub fn load_data_bags(dir: &Path) -> Result<DataBags, RecipeError> {
    let mut bags = DataBags::new();
    let rd = std::fs::read_dir(dir).map_err(|e| RecipeError::io(dir, e))?;
    let mut bag_dirs: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    bag_dirs.sort();
    for bag_dir in bag_dirs {
        let bag = bag_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut items = BTreeMap::new();
        let rd = std::fs::read_dir(&bag_dir).map_err(|e| RecipeError::io(&bag_dir, e))?;
        for entry in rd.filter_map(Result::ok) {
            let p = entry.path();
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let text = std::fs::read_to_string(&p).map_err(|e| RecipeError::io(&p, e))?;
            let mut item: Value = serde_json::from_str(&text).map_err(|e| RecipeError::Json {
                path: p.display().to_string(),
                message: e.to_string(),
            })?;
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let id = match &mut item {
                Value::Object(m) => {
                    let id = m
                        .get("id")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or(stem);
                    m.entry("id").or_insert_with(|| Value::String(id.clone()));
                    id
                }
                _ => {
                    return Err(RecipeError::Json {
                        path: p.display().to_string(),
                        message: "a data bag item must be a JSON object".into(),
                    });
                }
            };
            items.insert(id, item);
        }
        bags.insert(bag, items);
    }
    Ok(bags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_list_entries() {
        assert_eq!(
            RecipeRef::parse("nginx").unwrap().full_name(),
            "nginx::default"
        );
        assert_eq!(
            RecipeRef::parse("recipe[nginx::site]").unwrap().full_name(),
            "nginx::site"
        );
        assert!(RecipeRef::parse("ng inx").is_err());
        assert!(RecipeRef::parse("::x").is_err());
        assert_eq!(parse_run_list("a, b::c").unwrap().len(), 2);
    }

    #[test]
    fn dependencies_come_first_and_missing_ones_are_named() {
        let t = tempfile::tempdir().unwrap();
        for (name, meta) in [
            (
                "app",
                r#"{"name":"app","version":"1.0.0","depends":{"base":">= 0"}}"#,
            ),
            ("base", r#"{"name":"base","version":"1.0.0"}"#),
            ("broken", r#"{"name":"broken","depends":["nope"]}"#),
        ] {
            std::fs::create_dir_all(t.path().join(name)).unwrap();
            std::fs::write(t.path().join(name).join("metadata.json"), meta).unwrap();
        }
        let mut set = CookbookSet::new(&[t.path().to_path_buf()]);
        assert_eq!(set.expand(&["app".into()]).unwrap(), ["base", "app"]);
        let err = set.expand(&["broken".into()]).unwrap_err().to_string();
        assert!(err.contains("`broken` depends on `nope`"), "{err}");
        let err = set.expand(&["ghost".into()]).unwrap_err().to_string();
        assert!(err.contains("cookbook `ghost` not found"), "{err}");
    }
}
