//! Generates `shapes.rs`: one Rust struct per structure shape of the vendored service model, so
//! requests decode into typed inputs and responses serialize from typed outputs, with botocore's
//! model as the one source of truth for member names and types.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

fn main() {
    let path = "model/service-2.json";
    println!("cargo:rerun-if-changed={path}");
    println!("cargo:rerun-if-changed=build.rs");
    let text = std::fs::read_to_string(path).expect("the vendored service model is readable");
    let model: Value = serde_json::from_str(&text).expect("the vendored service model parses");
    let shapes = model["shapes"]
        .as_object()
        .expect("the model has shapes")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect::<BTreeMap<_, _>>();
    let outputs = reachable_from_outputs(&model, &shapes);
    let out = generate(&shapes, &outputs);
    let dest = std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("shapes.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}

/// The shapes some operation's output reaches: their members stay optional even where the model
/// marks them required, because what the server shows may lack them (an app without SSL shows
/// `SslConfiguration: {}`).
fn reachable_from_outputs(
    model: &Value,
    shapes: &BTreeMap<String, Value>,
) -> std::collections::BTreeSet<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut todo: Vec<String> = model["operations"]
        .as_object()
        .expect("the model has operations")
        .values()
        .filter_map(|op| op["output"]["shape"].as_str().map(String::from))
        .collect();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let shape = &shapes[&name];
        let mut refs: Vec<&Value> = Vec::new();
        if let Some(members) = shape["members"].as_object() {
            refs.extend(members.values());
        }
        for key in ["member", "key", "value"] {
            if shape[key].is_object() {
                refs.push(&shape[key]);
            }
        }
        for r in refs {
            if let Some(target) = r["shape"].as_str() {
                todo.push(target.to_string());
            }
        }
    }
    seen
}

fn generate(
    shapes: &BTreeMap<String, Value>,
    outputs: &std::collections::BTreeSet<String>,
) -> String {
    let mut out = String::new();
    for (name, shape) in shapes {
        if shape["type"] != "structure" || shape["exception"] == true {
            continue;
        }
        let required: Vec<&str> = if outputs.contains(name) {
            Vec::new()
        } else {
            shape["required"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default()
        };
        let strict = if STRICT.contains(&name.as_str()) {
            "#[serde(deny_unknown_fields)]\n"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "/// The `{name}` structure of the service model.\n\
             #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]\n\
             {strict}pub struct {name} {{"
        );
        let members = shape["members"].as_object().cloned().unwrap_or_default();
        for (member, reference) in &members {
            let target = reference["shape"].as_str().expect("member shape name");
            let ty = rust_type(shapes, target);
            let field = field_name(member);
            let _ = writeln!(out, "    /// `{member}`.");
            if required.contains(&member.as_str()) {
                let _ = writeln!(out, "    #[serde(rename = \"{member}\")]");
                let _ = writeln!(out, "    pub {field}: {ty},");
            } else {
                let _ = writeln!(
                    out,
                    "    #[serde(rename = \"{member}\", default, skip_serializing_if = \"Option::is_none\")]"
                );
                let _ = writeln!(out, "    pub {field}: Option<{ty}>,");
            }
        }
        out.push_str("}\n\n");
    }
    out
}

/// Shapes whose unknown members are refused rather than ignored: a schedule's members are the
/// days of the week, and a misspelt day must not pass as "every hour off".
const STRICT: &[&str] = &["WeeklyAutoScalingSchedule"];

/// The Rust type of a shape: structures by name, the rest structurally.
fn rust_type(shapes: &BTreeMap<String, Value>, name: &str) -> String {
    let shape = &shapes[name];
    match shape["type"].as_str().expect("shape type") {
        "structure" => name.to_string(),
        "string" | "timestamp" => "String".into(),
        "integer" | "long" => "i64".into(),
        "double" | "float" => "f64".into(),
        "boolean" => "bool".into(),
        "list" => {
            let member = shape["member"]["shape"].as_str().expect("list member");
            format!("Vec<{}>", rust_type(shapes, member))
        }
        "map" => {
            let value = shape["value"]["shape"].as_str().expect("map value");
            let inner = rust_type(shapes, value);
            // String-valued maps carry nulls on the wire (unset attributes are shown as null).
            if inner == "String" {
                "std::collections::BTreeMap<String, Option<String>>".into()
            } else {
                format!("std::collections::BTreeMap<String, {inner}>")
            }
        }
        other => panic!("shape {name} has a type this generator does not know: {other}"),
    }
}

/// `SshHostRsaKeyFingerprint` → `ssh_host_rsa_key_fingerprint`; `Type` → `r#type`.
fn field_name(member: &str) -> String {
    let chars: Vec<char> = member.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit());
            let acronym_end = i > 0
                && chars[i - 1].is_ascii_uppercase()
                && chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev_lower || acronym_end {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(*c);
        }
    }
    match out.as_str() {
        "type" | "ref" | "match" | "move" | "loop" | "self" => format!("r#{out}"),
        _ => out,
    }
}
