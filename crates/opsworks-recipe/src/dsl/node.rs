//! The `node` object seen by recipes: `node["a"]["b"]` reads the merged attributes (a snapshot
//! copied into Starlark values), `node.default["a"]["b"] = 1` (and `normal`, `override`,
//! `force_default`, `force_override`) writes one precedence level with auto-vivification.
//! Attribute files also get the level objects as the globals `default`, `override`, ...

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use allocative::Allocative;
use starlark::environment::{Methods, MethodsBuilder, MethodsStatic};
use starlark::starlark_module;
use starlark::starlark_simple_value;
use starlark::values::none::NoneOr;
use starlark::values::{Heap, ProvidesStaticType, StarlarkValue, Value, ValueLike, starlark_value};

use crate::attributes::{Attributes, Level};

/// Attributes shared between the compiler and every node object of the run.
pub type SharedAttributes = Arc<Mutex<Attributes>>;

fn lock(a: &SharedAttributes) -> MutexGuard<'_, Attributes> {
    // A panic while holding the lock cannot leave the tree half-written in a way that matters
    // to a read, so a poisoned lock is still usable.
    a.lock().unwrap_or_else(|p| p.into_inner())
}

fn key_of(index: Value<'_>) -> starlark::Result<String> {
    match index.unpack_str() {
        Some(s) => Ok(s.to_string()),
        None => Err(starlark::Error::new_other(anyhow::anyhow!(
            "node attribute keys must be strings, got {} `{index}`",
            index.get_type()
        ))),
    }
}

fn show_path(level: Option<Level>, path: &[String]) -> String {
    let mut s = match level {
        None => "node".to_string(),
        Some(l) => format!("node.{}", l.name()),
    };
    for p in path {
        s.push_str(&format!("[{p:?}]"));
    }
    s
}

/// `node` (the merged, read-only view) or one writable level at a path.
#[derive(Debug, ProvidesStaticType, Allocative)]
pub struct NodeAttrs {
    #[allocative(skip)]
    attrs: SharedAttributes,
    #[allocative(skip)]
    level: Option<Level>,
    path: Vec<String>,
}

starlark_simple_value!(NodeAttrs);

impl NodeAttrs {
    /// The merged root `node`.
    pub fn root(attrs: SharedAttributes) -> Self {
        NodeAttrs {
            attrs,
            level: None,
            path: Vec::new(),
        }
    }

    /// The root of one writable level (`default`, `override`...).
    pub fn level(attrs: SharedAttributes, level: Level) -> Self {
        NodeAttrs {
            attrs,
            level: Some(level),
            path: Vec::new(),
        }
    }

    fn current(&self) -> Option<serde_json::Value> {
        let mut a = lock(&self.attrs);
        match self.level {
            None => a.get(&self.path),
            Some(l) => {
                if self.path.is_empty() {
                    Some(serde_json::Value::Object(a.level(l).clone()))
                } else {
                    a.get_level(l, &self.path).cloned()
                }
            }
        }
    }
}

impl fmt::Display for NodeAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&show_path(self.level, &self.path))
    }
}

impl serde::Serialize for NodeAttrs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.current()
            .unwrap_or(serde_json::Value::Null)
            .serialize(s)
    }
}

#[starlark_value(type = "node_attributes")]
impl<'v> StarlarkValue<'v> for NodeAttrs {
    fn at(&self, index: Value<'v>, heap: Heap<'v>) -> starlark::Result<Value<'v>> {
        let key = key_of(index)?;
        let mut path = self.path.clone();
        path.push(key);
        match self.level {
            None => match lock(&self.attrs).get(&path) {
                Some(v) => Ok(heap.alloc(v)),
                None => Err(starlark::Error::new_other(anyhow::anyhow!(
                    "node attribute {} is not set",
                    show_path(None, &path)
                ))),
            },
            Some(l) => {
                let existing = lock(&self.attrs).get_level(l, &path).cloned();
                match existing {
                    // Objects and missing keys stay views so nested assignment auto-vivifies.
                    None | Some(serde_json::Value::Object(_)) => Ok(heap.alloc(NodeAttrs {
                        attrs: self.attrs.clone(),
                        level: Some(l),
                        path,
                    })),
                    Some(v) => Ok(heap.alloc(v)),
                }
            }
        }
    }

    fn set_at(&self, index: Value<'v>, new_value: Value<'v>) -> starlark::Result<()> {
        let key = key_of(index)?;
        let level = match self.level {
            None => {
                return Err(starlark::Error::new_other(anyhow::anyhow!(
                    "node attributes are read-only here; write to node.default[...], node.normal[...] or node.override[...]"
                )));
            }
            Some(Level::Automatic) => {
                return Err(starlark::Error::new_other(anyhow::anyhow!(
                    "automatic attributes cannot be written"
                )));
            }
            Some(l) => l,
        };
        let json = to_json(new_value)?;
        let mut path = self.path.clone();
        path.push(key);
        lock(&self.attrs).set(level, &path, json);
        Ok(())
    }

    fn get_attr(&self, attribute: &str, heap: Heap<'v>) -> Option<Value<'v>> {
        if self.level.is_some() || !self.path.is_empty() {
            return None;
        }
        let level = Level::from_name(attribute)?;
        Some(heap.alloc(NodeAttrs {
            attrs: self.attrs.clone(),
            level: Some(level),
            path: Vec::new(),
        }))
    }

    fn has_attr(&self, attribute: &str, _heap: Heap<'v>) -> bool {
        self.level.is_none() && self.path.is_empty() && Level::from_name(attribute).is_some()
    }

    fn dir_attr(&self) -> Vec<String> {
        if self.level.is_none() && self.path.is_empty() {
            Level::ALL.iter().map(|l| l.name().to_string()).collect()
        } else {
            Vec::new()
        }
    }

    fn is_in(&self, other: Value<'v>) -> starlark::Result<bool> {
        let key = key_of(other)?;
        Ok(self
            .current()
            .and_then(|v| v.as_object().map(|m| m.contains_key(&key)))
            .unwrap_or(false))
    }

    fn iterate_collect(&self, heap: Heap<'v>) -> starlark::Result<Vec<Value<'v>>> {
        Ok(keys(self).into_iter().map(|k| heap.alloc(k)).collect())
    }

    fn length(&self) -> starlark::Result<i32> {
        Ok(keys(self).len() as i32)
    }

    fn get_methods() -> Option<&'static Methods> {
        static RES: MethodsStatic = MethodsStatic::new("node_attributes", node_methods);
        Some(RES.methods())
    }
}

fn keys(n: &NodeAttrs) -> Vec<String> {
    n.current()
        .and_then(|v| v.as_object().map(|m| m.keys().cloned().collect()))
        .unwrap_or_default()
}

/// Converts a Starlark value to JSON, with a message that says what could not be converted.
pub fn to_json(v: Value<'_>) -> starlark::Result<serde_json::Value> {
    v.to_json_value().map_err(|e| {
        starlark::Error::new_other(anyhow::anyhow!(
            "a {} cannot be stored as an attribute or property: {e}",
            v.get_type()
        ))
    })
}

#[starlark_module]
fn node_methods(builder: &mut MethodsBuilder) {
    /// `node.get("key", default)`: the value, or `default` when unset.
    fn get<'v>(
        this: Value<'v>,
        #[starlark(require = pos)] key: &str,
        #[starlark(require = pos)] default: Option<Value<'v>>,
        heap: Heap<'v>,
    ) -> starlark::Result<Value<'v>> {
        let n = this
            .downcast_ref::<NodeAttrs>()
            .ok_or_else(|| anyhow::anyhow!("not a node object"))?;
        let v = n
            .current()
            .and_then(|v| v.as_object().and_then(|m| m.get(key).cloned()));
        Ok(match v {
            Some(v) => heap.alloc(v),
            None => default.unwrap_or(Value::new_none()),
        })
    }

    /// The keys at this level.
    fn keys<'v>(this: Value<'v>) -> starlark::Result<Vec<String>> {
        let n = this
            .downcast_ref::<NodeAttrs>()
            .ok_or_else(|| anyhow::anyhow!("not a node object"))?;
        Ok(keys(n))
    }

    /// The whole subtree as a plain dict.
    fn to_dict<'v>(this: Value<'v>, heap: Heap<'v>) -> starlark::Result<Value<'v>> {
        let n = this
            .downcast_ref::<NodeAttrs>()
            .ok_or_else(|| anyhow::anyhow!("not a node object"))?;
        Ok(heap.alloc(
            n.current()
                .unwrap_or(serde_json::Value::Object(Default::default())),
        ))
    }

    /// `node.default.set_unless(["a", "b"], 1)`: assign only if this level has no value there.
    fn set_unless<'v>(
        this: Value<'v>,
        #[starlark(require = pos)] path: Value<'v>,
        #[starlark(require = pos)] value: Value<'v>,
    ) -> starlark::Result<NoneOr<bool>> {
        let n = this
            .downcast_ref::<NodeAttrs>()
            .ok_or_else(|| anyhow::anyhow!("not a node object"))?;
        let path: Vec<String> = match to_json(path)? {
            serde_json::Value::String(s) => vec![s],
            serde_json::Value::Array(a) => a
                .into_iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| anyhow::anyhow!("set_unless: path must be strings"))
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(anyhow::anyhow!(
                    "set_unless: path must be a string or a list of strings"
                )
                .into());
            }
        };
        let Some(level) = n.level.filter(|l| *l != Level::Automatic) else {
            return Err(anyhow::anyhow!(
                "set_unless needs a writable level, e.g. node.default.set_unless(...)"
            )
            .into());
        };
        let mut full = n.path.clone();
        full.extend(path);
        let json = to_json(value)?;
        lock(&n.attrs).set_unless(level, &full, json);
        Ok(NoneOr::None)
    }
}
