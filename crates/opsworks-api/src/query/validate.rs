//! The constraints of the model checked on a decoded Query or EC2 input, worded per service.
//!
//! IAM, STS and ELB answer as AWS's Coral validator does: one `ValidationError` listing every
//! violation (`2 validation errors detected: Value null at 'userName' failed to satisfy
//! constraint: Member must not be null; ...`), members named in lowerCamel. RDS and EC2 answer the
//! first problem: `MissingParameter` (`The request must contain the parameter AvailabilityZone`) or
//! `InvalidParameterValue` (`Value (foo) for parameter volumeType is invalid. Expected: ...`).
//! A sensitive shape's value (passwords, secret keys) is never echoed.

use serde_json::Value;

use super::decode::{flattened, request_name};
use super::{AwsError, Wire};
use crate::model::ShapeRef;
use crate::service::{Dialect, Protocol};

/// One broken constraint, with what each dialect needs to word it.
struct Violation {
    /// Coral's path: `tags.1.member.key`.
    coral: String,
    /// The key on the wire: `Tags.member.1.Key`.
    wire: String,
    kind: Kind,
}

enum Kind {
    Missing,
    /// The value as shown (`None` when sensitive), and Coral's constraint text and EC2's reason.
    Broken {
        shown: Option<String>,
        coral: String,
        reason: String,
    },
}

fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn join(path: &str, part: &str) -> String {
    if path.is_empty() {
        part.to_string()
    } else {
        format!("{path}.{part}")
    }
}

/// Checks `input` against the shape `r` refers to.
pub(crate) fn validate(wire: &Wire<'_>, r: &ShapeRef, input: &Value) -> Result<(), AwsError> {
    let mut out = Vec::new();
    check(wire, r, input, "", "", &mut out)?;
    let Some(first) = out.first() else {
        return Ok(());
    };
    Err(match wire.dialect {
        Dialect::Coral => {
            let n = out.len();
            let listed: Vec<String> = out.iter().map(coral_text).collect();
            AwsError::Invalid {
                code: "ValidationError",
                message: format!(
                    "{n} validation error{} detected: {}",
                    if n == 1 { "" } else { "s" },
                    listed.join("; ")
                ),
            }
        }
        Dialect::Rds | Dialect::Ec2 => match &first.kind {
            Kind::Missing => AwsError::Invalid {
                code: "MissingParameter",
                message: format!("The request must contain the parameter {}", first.wire),
            },
            Kind::Broken { shown, reason, .. } => {
                let name = if wire.dialect == Dialect::Ec2 {
                    first
                        .wire
                        .split('.')
                        .map(lower_first)
                        .collect::<Vec<_>>()
                        .join(".")
                } else {
                    first.wire.clone()
                };
                let shown = shown
                    .as_ref()
                    .map(|v| format!(" ({v})"))
                    .unwrap_or_default();
                AwsError::Invalid {
                    code: "InvalidParameterValue",
                    message: format!("Value{shown} for parameter {name} is invalid. {reason}"),
                }
            }
        },
    })
}

fn coral_text(v: &Violation) -> String {
    match &v.kind {
        Kind::Missing => format!(
            "Value null at '{}' failed to satisfy constraint: Member must not be null",
            v.coral
        ),
        Kind::Broken { shown, coral, .. } => {
            let shown = shown
                .as_ref()
                .map(|s| format!(" '{s}'"))
                .unwrap_or_default();
            format!(
                "Value{shown} at '{}' failed to satisfy constraint: {coral}",
                v.coral
            )
        }
    }
}

fn check(
    wire: &Wire<'_>,
    r: &ShapeRef,
    value: &Value,
    coral: &str,
    wire_path: &str,
    out: &mut Vec<Violation>,
) -> Result<(), AwsError> {
    let Some(shape) = wire.model.shape(&r.shape) else {
        return Err(AwsError::internal(format!(
            "service model lacks shape {}",
            r.shape
        )));
    };
    let mut broken = |shown: Option<String>, coral_text: String, reason: String| {
        out.push(Violation {
            coral: coral.to_string(),
            wire: wire_path.to_string(),
            kind: Kind::Broken {
                shown,
                coral: coral_text,
                reason,
            },
        })
    };
    match (shape.kind.as_str(), value) {
        ("structure", Value::Object(map)) => {
            for (name, member) in &shape.members {
                let Some(member_shape) = wire.model.shape(&member.shape) else {
                    continue;
                };
                let key = request_name(wire, member, member_shape, name);
                let (c, w) = (join(coral, &lower_first(name)), join(wire_path, &key));
                match map.get(name) {
                    None | Some(Value::Null) if shape.required.contains(name) => {
                        out.push(Violation {
                            coral: c,
                            wire: w,
                            kind: Kind::Missing,
                        });
                    }
                    None | Some(Value::Null) => {}
                    Some(v) => check(wire, member, v, &c, &w, out)?,
                }
            }
        }
        ("list", Value::Array(items)) => {
            let len = items.len() as i64;
            if let Some(min) = shape.min.filter(|m| len < *m) {
                broken(
                    None,
                    format!("Member must have length greater than or equal to {min}"),
                    format!("It must have at least {min} items."),
                );
            }
            if let Some(max) = shape.max.filter(|m| len > *m) {
                broken(
                    None,
                    format!("Member must have length less than or equal to {max}"),
                    format!("It must have at most {max} items."),
                );
            }
            let Some(member) = &shape.member else {
                return Ok(());
            };
            let member_shape = wire.model.shape(&member.shape);
            let item_name = match member_shape {
                Some(s) if wire.protocol == Protocol::Query && !flattened(r, shape) => {
                    Some(request_name(wire, member, s, "member"))
                }
                _ => None,
            };
            for (i, item) in items.iter().enumerate() {
                let c = format!("{coral}.{}.member", i + 1);
                let w = match &item_name {
                    Some(n) => format!("{wire_path}.{n}.{}", i + 1),
                    None => format!("{wire_path}.{}", i + 1),
                };
                check(wire, member, item, &c, &w, out)?;
            }
        }
        ("map", Value::Object(map)) => {
            if let Some(value_ref) = &shape.value {
                for (k, v) in map {
                    let c = format!("{coral}.{k}");
                    let w = format!("{wire_path}.{k}");
                    if let Some(key_ref) = &shape.key {
                        check(wire, key_ref, &Value::String(k.clone()), &c, &w, out)?;
                    }
                    check(wire, value_ref, v, &c, &w, out)?;
                }
            }
        }
        ("string", Value::String(s)) => {
            let shown = (!shape.sensitive).then(|| s.clone());
            if let Some(allowed) = &shape.enum_values
                && !allowed.iter().any(|a| a == s)
            {
                let quoted: Vec<String> = allowed.iter().map(|a| format!("'{a}'")).collect();
                broken(
                    shown.clone(),
                    format!(
                        "Member must satisfy enum value set: [{}]",
                        allowed.join(", ")
                    ),
                    format!("Expected: {}.", quoted.join(", ")),
                );
            }
            // Java counts a string's length in UTF-16 units, and so does AWS.
            let len = s.encode_utf16().count() as i64;
            if let Some(min) = shape.min.filter(|m| len < *m) {
                broken(
                    shown.clone(),
                    format!("Member must have length greater than or equal to {min}"),
                    format!("It must be at least {min} characters long."),
                );
            }
            if let Some(max) = shape.max.filter(|m| len > *m) {
                broken(
                    shown.clone(),
                    format!("Member must have length less than or equal to {max}"),
                    format!("It must be at most {max} characters long."),
                );
            }
            if let (Some(pattern), Some(re)) = (&shape.pattern, wire.model.pattern(&r.shape))
                && !re.is_match(s)
            {
                broken(
                    shown,
                    format!("Member must satisfy regular expression pattern: {pattern}"),
                    format!("It must match the pattern {pattern}."),
                );
            }
        }
        ("integer" | "long", Value::Number(n)) => {
            let Some(n) = n.as_i64() else {
                return Ok(());
            };
            if let Some(min) = shape.min.filter(|m| n < *m) {
                broken(
                    Some(n.to_string()),
                    format!("Member must have value greater than or equal to {min}"),
                    format!("It must be at least {min}."),
                );
            }
            if let Some(max) = shape.max.filter(|m| n > *m) {
                broken(
                    Some(n.to_string()),
                    format!("Member must have value less than or equal to {max}"),
                    format!("It must be at most {max}."),
                );
            }
        }
        // The decoder typed every value by its shape; nothing else carries constraints.
        _ => {}
    }
    Ok(())
}
