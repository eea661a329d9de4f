//! Node attributes: the six Chef precedence levels, writes into one level, and the merged view.
//!
//! Merge rules follow Chef: objects deep-merge across levels, while arrays and scalars from a
//! higher level replace the lower one wholesale (arrays are never concatenated across levels).

use serde_json::{Map, Value};

/// A precedence level, lowest first. The order of the variants is the merge order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Cookbook defaults (attribute files, `node.default`).
    Default,
    /// `node.force_default`: beats role/environment defaults in Chef.
    ForceDefault,
    /// Persistent node data; the run's JSON enters here unless it names levels.
    Normal,
    /// `node.override`.
    Override,
    /// `node.force_override`.
    ForceOverride,
    /// Host facts; cannot be written by recipes.
    Automatic,
}

impl Level {
    /// Every level, lowest precedence first.
    pub const ALL: [Level; 6] = [
        Level::Default,
        Level::ForceDefault,
        Level::Normal,
        Level::Override,
        Level::ForceOverride,
        Level::Automatic,
    ];

    /// The attribute name used in recipes (`node.default`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Level::Default => "default",
            Level::ForceDefault => "force_default",
            Level::Normal => "normal",
            Level::Override => "override",
            Level::ForceOverride => "force_override",
            Level::Automatic => "automatic",
        }
    }

    /// Parses a level name as written in recipes and JSON.
    pub fn from_name(name: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name() == name)
    }
}

/// All attribute levels of one node, plus a cached merged view.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    levels: [Map<String, Value>; 6],
    merged: Option<Value>,
}

impl Attributes {
    /// Empty attributes.
    pub fn new() -> Self {
        Self::default()
    }

    /// The raw tree of one level.
    pub fn level(&self, level: Level) -> &Map<String, Value> {
        &self.levels[level as usize]
    }

    /// Deep-merges `value` (an object) into `level`, as if each leaf were assigned.
    pub fn merge_into(&mut self, level: Level, value: &Map<String, Value>) {
        merge_maps(&mut self.levels[level as usize], value);
        self.merged = None;
    }

    /// Assigns `value` at `path` in `level`, creating intermediate objects (Chef's auto-vivification).
    /// A non-object found on the way is replaced by an object, as a Chef assignment would.
    pub fn set(&mut self, level: Level, path: &[String], value: Value) {
        self.merged = None;
        let Some((last, parents)) = path.split_last() else {
            if let Value::Object(m) = value {
                self.levels[level as usize] = m;
            }
            return;
        };
        let mut cur = &mut self.levels[level as usize];
        for key in parents {
            let slot = cur
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            match slot {
                Value::Object(m) => cur = m,
                _ => unreachable!("slot was just made an object"),
            }
        }
        cur.insert(last.clone(), value);
    }

    /// Assigns only if no level at all has a value at `path` (Chef's `default_unless` family).
    pub fn set_unless(&mut self, level: Level, path: &[String], value: Value) {
        if self.get_level(level, path).is_none() {
            self.set(level, path, value);
        }
    }

    /// The value at `path` in one level, if any.
    pub fn get_level(&self, level: Level, path: &[String]) -> Option<&Value> {
        let mut cur = self.levels[level as usize].get(path.first()?)?;
        for key in &path[1..] {
            cur = cur.as_object()?.get(key)?;
        }
        Some(cur)
    }

    /// The merged view of all levels (cached until the next write).
    pub fn merged(&mut self) -> &Value {
        if self.merged.is_none() {
            let mut out = Map::new();
            for level in &self.levels {
                merge_maps(&mut out, level);
            }
            self.merged = Some(Value::Object(out));
        }
        self.merged.get_or_insert_with(|| Value::Object(Map::new()))
    }

    /// The merged value at `path`, if set.
    pub fn get(&mut self, path: &[String]) -> Option<Value> {
        let mut cur = self.merged();
        for key in path {
            cur = cur.as_object()?.get(key)?;
        }
        Some(cur.clone())
    }

    /// Which level supplied the merged value at `path` (the highest level that has it).
    pub fn winning_level(&self, path: &[String]) -> Option<Level> {
        Level::ALL
            .into_iter()
            .rev()
            .find(|l| self.get_level(*l, path).is_some())
    }
}

/// Deep-merges `src` into `dst`: objects recurse, everything else (arrays included) replaces.
pub fn merge_maps(dst: &mut Map<String, Value>, src: &Map<String, Value>) {
    for (k, v) in src {
        match (dst.get_mut(k), v) {
            (Some(Value::Object(d)), Value::Object(s)) => merge_maps(d, s),
            _ => {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Attribute trees tagged with the level they enter at, in application order.
pub type LevelTrees = Vec<(Level, Map<String, Value>)>;

/// Splits run JSON into per-level objects. A document with a top-level `"_levels"` object names
/// levels explicitly (`{"_levels": {"override": {...}, "default": {...}}}`); every other top-level
/// key enters at `normal`, like `chef-client -j`.
pub fn split_run_json(json: &Value) -> Result<LevelTrees, String> {
    let Value::Object(top) = json else {
        if json.is_null() {
            return Ok(Vec::new());
        }
        return Err("node JSON must be an object".to_string());
    };
    let mut out = Vec::new();
    let mut normal = Map::new();
    for (k, v) in top {
        if k == "_levels" {
            let Value::Object(levels) = v else {
                return Err(
                    "`_levels` must be an object mapping level names to objects".to_string()
                );
            };
            for (name, tree) in levels {
                let level = Level::from_name(name)
                    .filter(|l| *l != Level::Automatic)
                    .ok_or_else(|| {
                        format!("unknown attribute level `{name}` in `_levels` (expected default, force_default, normal, override or force_override)")
                    })?;
                let Value::Object(tree) = tree else {
                    return Err(format!("`_levels.{name}` must be an object"));
                };
                out.push((level, tree.clone()));
            }
        } else {
            normal.insert(k.clone(), v.clone());
        }
    }
    if !normal.is_empty() {
        out.insert(0, (Level::Normal, normal));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(str::to_string).collect()
    }

    #[test]
    fn higher_level_wins_for_scalars_and_hashes_deep_merge() {
        let mut a = Attributes::new();
        a.set(Level::Default, &p("nginx.port"), json!(80));
        a.set(Level::Default, &p("nginx.user"), json!("www"));
        a.set(Level::Override, &p("nginx.port"), json!(8080));
        a.set(Level::Normal, &p("nginx.workers"), json!(4));
        assert_eq!(
            a.get(&p("nginx")),
            Some(json!({"port": 8080, "user": "www", "workers": 4}))
        );
        assert_eq!(a.winning_level(&p("nginx.port")), Some(Level::Override));
    }

    #[test]
    fn arrays_are_replaced_across_levels_not_concatenated() {
        let mut a = Attributes::new();
        a.set(Level::Default, &p("app.domains"), json!(["a", "b"]));
        a.set(Level::Override, &p("app.domains"), json!(["c"]));
        assert_eq!(a.get(&p("app.domains")), Some(json!(["c"])));
    }

    #[test]
    fn automatic_beats_everything_and_force_override_beats_override() {
        let mut a = Attributes::new();
        a.set(Level::Override, &p("x"), json!(1));
        a.set(Level::ForceOverride, &p("x"), json!(2));
        assert_eq!(a.get(&p("x")), Some(json!(2)));
        a.set(Level::Automatic, &p("x"), json!(3));
        assert_eq!(a.get(&p("x")), Some(json!(3)));
    }

    #[test]
    fn scalar_in_higher_level_replaces_a_lower_hash() {
        let mut a = Attributes::new();
        a.set(Level::Default, &p("db.config.a"), json!(1));
        a.set(Level::Normal, &p("db.config"), json!("inline"));
        assert_eq!(a.get(&p("db.config")), Some(json!("inline")));
    }

    #[test]
    fn set_unless_keeps_existing_values() {
        let mut a = Attributes::new();
        a.set(Level::Default, &p("x"), json!(1));
        a.set_unless(Level::Default, &p("x"), json!(2));
        a.set_unless(Level::Default, &p("y"), json!(3));
        assert_eq!(a.get(&p("x")), Some(json!(1)));
        assert_eq!(a.get(&p("y")), Some(json!(3)));
    }

    #[test]
    fn run_json_enters_normal_unless_levels_are_named() {
        let parts = split_run_json(&json!({"a": 1, "_levels": {"override": {"b": 2}}})).unwrap();
        assert_eq!(parts[0].0, Level::Normal);
        assert_eq!(parts[0].1.get("a"), Some(&json!(1)));
        assert_eq!(parts[1].0, Level::Override);
        assert!(split_run_json(&json!({"_levels": {"automatic": {}}})).is_err());
        assert!(split_run_json(&json!([1])).is_err());
    }
}
