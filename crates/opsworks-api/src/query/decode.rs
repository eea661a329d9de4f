//! Flat Query parameters → the operation's input as a JSON value shaped like its input shape.
//!
//! The inverse of botocore's `QuerySerializer` and `EC2Serializer`: the keys are split on dots
//! into a tree, then the input shape is walked from the top, each member looked up under the name
//! botocore gives it on the wire. The result uses member names (`{"Tags": [{"Key": ..}]}`), as a
//! botocore caller's parameters do, with scalars typed by their shape.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use super::{AwsError, Wire};
use crate::model::{Shape, ShapeRef};
use crate::service::Protocol;

/// The largest list index accepted (`Name.member.1000`).
pub const MAX_LIST_INDEX: usize = 1_000;

/// One level of the dotted key tree.
#[derive(Debug, Default)]
pub(crate) struct Node<'a> {
    value: Option<&'a str>,
    children: BTreeMap<&'a str, Node<'a>>,
}

impl<'a> Node<'a> {
    /// Builds the tree of every parameter but `Action` and `Version`.
    pub(crate) fn tree(params: &'a BTreeMap<String, String>) -> Self {
        let mut root = Node::default();
        for (key, value) in params {
            if key == "Action" || key == "Version" {
                continue;
            }
            let mut node = &mut root;
            for part in key.split('.') {
                node = node.children.entry(part).or_default();
            }
            node.value = Some(value);
        }
        root
    }

    /// Every full key under this node, for naming what was not understood.
    fn keys(&self, path: &str, out: &mut Vec<String>) {
        if self.value.is_some() {
            out.push(path.to_string());
        }
        for (name, child) in &self.children {
            child.keys(&join(path, name), out);
        }
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A member's key on the wire in a request (botocore's `_get_serialized_name`).
pub(crate) fn request_name(wire: &Wire<'_>, r: &ShapeRef, shape: &Shape, default: &str) -> String {
    let location = r
        .location_name
        .as_deref()
        .or(shape.location_name.as_deref());
    match wire.protocol {
        Protocol::Ec2 => match (&r.query_name, location) {
            (Some(q), _) => q.clone(),
            (None, Some(l)) => capitalized(l),
            (None, None) => default.to_string(),
        },
        _ => location.unwrap_or(default).to_string(),
    }
}

/// Whether a list or map is flattened (on the reference or the shape).
pub(crate) fn flattened(r: &ShapeRef, shape: &Shape) -> bool {
    r.flattened || shape.flattened
}

fn query_param(message: String) -> AwsError {
    AwsError::InvalidQueryParameter { message }
}

/// The decoder of one request; `unknown` collects the keys no member claimed.
pub(crate) struct Decoder<'w, 'm> {
    pub(crate) wire: &'w Wire<'m>,
    pub(crate) unknown: Vec<String>,
}

impl<'m> Decoder<'_, 'm> {
    fn shape(&self, name: &str) -> Result<&'m Shape, AwsError> {
        self.wire
            .model
            .shape(name)
            .ok_or_else(|| AwsError::internal(format!("service model lacks shape {name}")))
    }

    /// Decodes `node` as the shape `r` refers to; `None` when the node carries no value for it.
    pub(crate) fn decode(
        &mut self,
        r: &ShapeRef,
        node: &Node<'_>,
        path: &str,
    ) -> Result<Option<Value>, AwsError> {
        let shape = self.shape(&r.shape)?;
        match shape.kind.as_str() {
            "structure" => self.structure(shape, node, path).map(Some),
            "list" => self.list(r, shape, node, path).map(Some),
            "map" => self.map(r, shape, node, path).map(Some),
            _ => {
                for (name, child) in &node.children {
                    child.keys(&join(path, name), &mut self.unknown);
                }
                match node.value {
                    Some(text) => scalar(shape, text, path).map(Some),
                    None => Ok(None),
                }
            }
        }
    }

    fn structure(&mut self, shape: &Shape, node: &Node<'_>, path: &str) -> Result<Value, AwsError> {
        if let Some(v) = node.value.filter(|v| !v.is_empty()) {
            return Err(query_param(format!(
                "The parameter {path} is a structure: give its members as {path}.<Member>, not the value '{v}'."
            )));
        }
        let mut out = Map::new();
        let mut claimed = Vec::new();
        for (name, member) in &shape.members {
            let member_shape = self.shape(&member.shape)?;
            let mut key = request_name(self.wire, member, member_shape, name);
            // A flattened list named by its items: botocore replaces the last part of the key.
            if member_shape.kind == "list"
                && flattened(member, member_shape)
                && self.wire.protocol == Protocol::Query
                && let Some(item) = member_shape.member.as_ref()
                && let Ok(item_shape) = self.shape(&item.shape)
                && (item.location_name.is_some() || item_shape.location_name.is_some())
            {
                key = request_name(self.wire, item, item_shape, name);
            }
            let Some(child) = node.children.get(key.as_str()) else {
                continue;
            };
            claimed.push(key.clone());
            if let Some(v) = self.decode(member, child, &join(path, &key))? {
                out.insert(name.clone(), v);
            }
        }
        for (name, child) in &node.children {
            if !claimed.iter().any(|c| c == name) {
                child.keys(&join(path, name), &mut self.unknown);
            }
        }
        Ok(Value::Object(out))
    }

    /// The children of `node` that are list indexes, in order, checked to run 1..=n.
    fn indexed<'n, 'a>(
        &mut self,
        node: &'n Node<'a>,
        path: &str,
    ) -> Result<Vec<(String, &'n Node<'a>)>, AwsError> {
        let mut items = BTreeMap::new();
        for (part, child) in &node.children {
            let canonical = part.bytes().all(|b| b.is_ascii_digit()) && !part.starts_with('0');
            if !canonical {
                return Err(query_param(format!(
                    "The parameter {} is not a list item: items are numbered {path}.1, {path}.2, ...",
                    join(path, part)
                )));
            }
            let Some(index) = part.parse::<usize>().ok().filter(|i| *i <= MAX_LIST_INDEX) else {
                return Err(query_param(format!(
                    "The parameter {} has index {part}: a list holds at most {MAX_LIST_INDEX} items.",
                    join(path, part)
                )));
            };
            items.insert(index, (join(path, part), child));
        }
        let mut out = Vec::with_capacity(items.len());
        for (expected, (index, item)) in (1..).zip(items) {
            if index != expected {
                return Err(query_param(format!(
                    "The parameter {} is given but {path}.{expected} is not: list items are numbered from 1 without gaps.",
                    item.0
                )));
            }
            out.push(item);
        }
        Ok(out)
    }

    fn list(
        &mut self,
        r: &ShapeRef,
        shape: &Shape,
        node: &Node<'_>,
        path: &str,
    ) -> Result<Value, AwsError> {
        let Some(member) = &shape.member else {
            return Err(AwsError::internal(format!(
                "list shape {} has no member",
                r.shape
            )));
        };
        let flat = self.wire.protocol == Protocol::Ec2 || flattened(r, shape);
        let items_node;
        let items_path;
        if flat {
            if let Some(v) = node.value.filter(|_| node.children.is_empty()) {
                return Err(query_param(format!(
                    "The parameter {path} is a list: give its items as {path}.1, {path}.2, ..., not the value '{v}'."
                )));
            }
            items_node = node;
            items_path = path.to_string();
        } else {
            if node.children.is_empty() {
                // botocore sends an empty list as `Name=`.
                return match node.value {
                    Some("") | None => Ok(Value::Array(Vec::new())),
                    Some(v) => Err(query_param(format!(
                        "The parameter {path} is a list: give its items as {path}.member.1, ..., not the value '{v}'."
                    ))),
                };
            }
            let member_shape = self.shape(&member.shape)?;
            let item_name = request_name(self.wire, member, member_shape, "member");
            for (name, child) in &node.children {
                if *name != item_name {
                    child.keys(&join(path, name), &mut self.unknown);
                }
            }
            let Some(n) = node.children.get(item_name.as_str()) else {
                return Ok(Value::Array(Vec::new()));
            };
            items_path = join(path, &item_name);
            if n.value.is_some() {
                return Err(query_param(format!(
                    "The parameter {items_path} needs an index: {items_path}.1, {items_path}.2, ..."
                )));
            }
            items_node = n;
        }
        let mut out = Vec::new();
        for (item_path, item) in self.indexed(items_node, &items_path)? {
            match self.decode(member, item, &item_path)? {
                Some(v) => out.push(v),
                None => {
                    return Err(query_param(format!(
                        "The list item {item_path} has no value."
                    )));
                }
            }
        }
        Ok(Value::Array(out))
    }

    fn map(
        &mut self,
        r: &ShapeRef,
        shape: &Shape,
        node: &Node<'_>,
        path: &str,
    ) -> Result<Value, AwsError> {
        let (Some(key_ref), Some(value_ref)) = (&shape.key, &shape.value) else {
            return Err(AwsError::internal(format!(
                "map shape {} lacks key or value",
                r.shape
            )));
        };
        let key_name = request_name(self.wire, key_ref, self.shape(&key_ref.shape)?, "key");
        let value_name = request_name(self.wire, value_ref, self.shape(&value_ref.shape)?, "value");
        let (entries_node, entries_path) = if flattened(r, shape) {
            (node, path.to_string())
        } else {
            for (name, child) in &node.children {
                if *name != "entry" {
                    child.keys(&join(path, name), &mut self.unknown);
                }
            }
            match node.children.get("entry") {
                Some(n) => (n, join(path, "entry")),
                None => return Ok(Value::Object(Map::new())),
            }
        };
        let mut out = Map::new();
        for (entry_path, entry) in self.indexed(entries_node, &entries_path)? {
            let key = match entry.children.get(key_name.as_str()) {
                Some(k) => self.decode(key_ref, k, &join(&entry_path, &key_name))?,
                None => None,
            };
            let Some(Value::String(key)) = key else {
                return Err(query_param(format!(
                    "The map entry {entry_path} has no {entry_path}.{key_name}."
                )));
            };
            let value = match entry.children.get(value_name.as_str()) {
                Some(v) => self.decode(value_ref, v, &join(&entry_path, &value_name))?,
                None => None,
            };
            let Some(value) = value else {
                return Err(query_param(format!(
                    "The map entry {entry_path} has no {entry_path}.{value_name}."
                )));
            };
            for (name, child) in &entry.children {
                if *name != key_name && *name != value_name {
                    child.keys(&join(&entry_path, name), &mut self.unknown);
                }
            }
            if out.insert(key.clone(), value).is_some() {
                return Err(query_param(format!(
                    "The map {path} has the key '{key}' more than once."
                )));
            }
        }
        Ok(Value::Object(out))
    }
}

fn scalar(shape: &Shape, text: &str, path: &str) -> Result<Value, AwsError> {
    let invalid = |expected: &str| {
        let shown = if shape.sensitive {
            String::new()
        } else {
            format!(" ({text})")
        };
        AwsError::Invalid {
            code: "InvalidParameterValue",
            message: format!("Value{shown} for parameter {path} is invalid. Expected {expected}."),
        }
    };
    Ok(match shape.kind.as_str() {
        "string" | "character" | "blob" => Value::String(text.to_string()),
        "boolean" => match text.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(invalid("'true' or 'false'")),
        },
        "integer" => match text.parse::<i32>() {
            Ok(n) => Value::from(n),
            Err(_) => return Err(invalid("an integer from -2147483648 to 2147483647")),
        },
        "long" => match text.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => return Err(invalid("a 64-bit integer")),
        },
        "float" | "double" => match text.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Value::Number(n),
            None => return Err(invalid("a finite number")),
        },
        "timestamp" => match parse_timestamp(text) {
            Some(t) => Value::String(t.to_string()),
            None => {
                return Err(invalid(
                    "an ISO 8601 timestamp such as 2025-01-02T03:04:05Z",
                ));
            }
        },
        other => {
            return Err(AwsError::internal(format!(
                "unsupported shape type {other} at {path}"
            )));
        }
    })
}

/// ISO 8601 with an offset (what botocore sends), or seconds since the epoch.
pub(crate) fn parse_timestamp(text: &str) -> Option<jiff::Timestamp> {
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Some(t);
    }
    let seconds: f64 = text.parse().ok().filter(|s: &f64| s.is_finite())?;
    let whole = seconds.floor();
    let nanos = ((seconds - whole) * 1e9).round() as i32;
    jiff::Timestamp::new(whole as i64, nanos.min(999_999_999)).ok()
}
