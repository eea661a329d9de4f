//! Reading a policy document: structure first, then IAM's checks in the order IAM (as moto
//! reproduces it) reports them, then compilation of every pattern and condition value.
//!
//! Order matters because a document with several faults gets the message of the first check it
//! fails: syntax, version, principal, legacy parsing (Effect case, condition values), Sid rules,
//! actions present, resource formats, action prefixes, resources present.

use serde_json::error::Category;

use crate::condition::{Condition, OperatorName};
use crate::error::{PolicyError, PolicyKind};
use crate::json::{self, DUPLICATE_FIELD, Json};
use crate::pattern::Pattern;
use crate::policy::{Actions, Effect, Policy, Resources, Statement, Version};
use crate::wildcard::Wildcard;

const STATEMENT_FIELDS: &[&str] = &[
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Principal",
    "NotPrincipal",
    "Condition",
];

/// AWS's partitions, the second part of every ARN.
const PARTITIONS: &[&str] = &[
    "aws",
    "aws-cn",
    "aws-us-gov",
    "aws-iso",
    "aws-iso-b",
    "aws-iso-e",
    "aws-iso-f",
    "aws-eusc",
];

/// The resource types an IAM ARN may name.
const IAM_RESOURCE_TYPES: &[&str] = &[
    "user/",
    "federated-user/",
    "role/",
    "group/",
    "instance-profile/",
    "mfa/",
    "server-certificate/",
    "policy/",
    "sms-mfa/",
    "saml-provider/",
    "oidc-provider/",
    "report/",
    "access-report/",
];

/// A list of strings with its path (`Action`, `Resource`, ...); `not` for the `Not` form.
struct List<'a> {
    not: bool,
    field: &'static str,
    items: Vec<&'a str>,
}

/// One operator block of a `Condition`: the operator and each key with its values as text.
struct RawCondition<'a> {
    operator: OperatorName,
    name: &'a str,
    keys: Vec<(&'a str, Vec<String>)>,
}

/// A statement whose structure is right, not yet checked further.
struct Raw<'a> {
    path: String,
    sid: Option<&'a str>,
    effect: &'a str,
    actions: Option<List<'a>>,
    resources: Option<List<'a>>,
    principal: Option<&'static str>,
    conditions: Vec<RawCondition<'a>>,
}

fn syntax(detail: impl Into<String>, path: impl Into<String>) -> PolicyError {
    PolicyError::Syntax {
        detail: detail.into(),
        path: path.into(),
    }
}

impl Policy {
    /// Parses and validates a policy document (JSON text) as IAM does for `kind`, refusing what
    /// IAM refuses with `MalformedPolicyDocument`. Size quotas are checked apart, with
    /// [`crate::check_size`], because inline quotas count all of an entity's policies together.
    pub fn parse(document: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        parse(document, kind)
    }
}

/// Parses and validates `document` for `kind`.
fn parse(document: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
    let root = json::parse(document).map_err(json_error)?;
    let Json::Object(fields) = &root else {
        return Err(syntax(
            format!("The document is {}, not a JSON object", root.kind()),
            "the document",
        ));
    };
    let mut version = None;
    let mut id = None;
    let mut statement = None;
    for (name, value) in fields {
        match (name.as_str(), value) {
            ("Version", Json::String(v)) => {
                version = Some(match v.as_str() {
                    "2012-10-17" => Version::V2012_10_17,
                    "2008-10-17" => Version::V2008_10_17,
                    _ => {
                        return Err(syntax(
                            format!("Version {v} is not one IAM knows (2012-10-17 or 2008-10-17)"),
                            "Version",
                        ));
                    }
                })
            }
            ("Id", Json::String(v)) => id = Some(v.clone()),
            ("Statement", v) => statement = Some(v),
            ("Version" | "Id", v) => {
                return Err(syntax(
                    format!("{name} must be a string, not {}", v.kind()),
                    name.as_str(),
                ));
            }
            _ => return Err(syntax(format!("Unknown field {name}"), "the document")),
        }
    }
    let statements: Vec<(String, &Json)> = match statement {
        None => return Err(syntax("The policy has no Statement", "the document")),
        Some(one @ Json::Object(_)) => vec![("Statement".to_owned(), one)],
        Some(Json::Array(items)) if items.is_empty() => {
            return Err(syntax("Statement is an empty list", "Statement"));
        }
        Some(Json::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("Statement[{i}]"), s))
            .collect(),
        Some(other) => {
            return Err(syntax(
                format!(
                    "Statement must be an object or an array of objects, not {}",
                    other.kind()
                ),
                "Statement",
            ));
        }
    };
    let raws = statements
        .into_iter()
        .map(|(path, s)| raw_statement(path, s))
        .collect::<Result<Vec<_>, _>>()?;

    let variables = version == Some(Version::V2012_10_17);
    if kind.requires_current_version() && !variables {
        return Err(PolicyError::VersionTooOld {
            found: match version {
                Some(v) => format!("version {}", v.as_str()),
                None => "without a Version".to_owned(),
            },
        });
    }
    if let Some(raw) = raws.iter().find(|r| r.principal.is_some()) {
        return Err(PolicyError::PrincipalNotAllowed {
            field: raw.principal.unwrap_or("Principal").to_owned(),
            path: raw.path.clone(),
        });
    }

    // Legacy parsing: the Effect's exact case and every condition value.
    let mut conditions = Vec::with_capacity(raws.len());
    for raw in &raws {
        if raw.effect != "Allow" && raw.effect != "Deny" {
            return Err(PolicyError::LegacyParsing {
                detail: format!("Effect {} must be written Allow or Deny", raw.effect),
                path: format!("{}.Effect", raw.path),
            });
        }
        let mut compiled = Vec::new();
        for block in &raw.conditions {
            for (key, values) in &block.keys {
                let condition = Condition::new(block.operator, key, values, variables).map_err(
                    |(i, bad)| PolicyError::LegacyParsing {
                        detail: format!("{:?} is not {} for {}", values[i], bad.0, block.name),
                        path: format!("{}.Condition.{}.{}", raw.path, block.name, key),
                    },
                )?;
                compiled.push(condition);
            }
        }
        conditions.push(compiled);
    }
    // Resources IAM's legacy parser cannot split fail here; other resource faults come later.
    for raw in &raws {
        for (r, path) in resource_items(raw) {
            if let Err(e @ PolicyError::LegacyParsing { .. }) = check_resource(r, &path) {
                return Err(e);
            }
        }
    }

    let mut sids: Vec<&str> = Vec::new();
    for raw in &raws {
        let Some(sid) = raw.sid.filter(|s| !s.is_empty()) else {
            continue;
        };
        if sids.contains(&sid) {
            return Err(PolicyError::DuplicateSid {
                sid: sid.to_owned(),
            });
        }
        sids.push(sid);
    }

    for raw in &raws {
        if raw.actions.as_ref().is_none_or(|l| l.items.is_empty()) {
            return Err(PolicyError::MissingActions {
                path: raw.path.clone(),
            });
        }
    }
    for raw in &raws {
        for (r, path) in resource_items(raw) {
            check_resource(r, &path)?;
        }
    }
    for raw in &raws {
        if let Some(list) = &raw.actions {
            for (i, a) in list.items.iter().enumerate() {
                check_action(a, &item_path(&raw.path, list, i))?;
            }
        }
    }
    for raw in &raws {
        if raw.resources.as_ref().is_none_or(|l| l.items.is_empty()) {
            return Err(PolicyError::MissingResources {
                path: raw.path.clone(),
            });
        }
    }

    let statements = raws
        .into_iter()
        .zip(conditions)
        .map(|(raw, conditions)| compile(raw, conditions, variables))
        .collect();
    Ok(Policy {
        version,
        id,
        statements,
    })
}

fn json_error(e: serde_json::Error) -> PolicyError {
    let message = e.to_string();
    if e.classify() == Category::Data
        && let Some(rest) = message.strip_prefix(DUPLICATE_FIELD)
    {
        // serde_json appends " at line L column C" to the field name.
        let (field, at) = rest.split_once(" at ").unwrap_or((rest, "the document"));
        return syntax(format!("Duplicate field {field}"), at);
    }
    PolicyError::InvalidJson { detail: message }
}

/// Each resource of a statement with its path.
fn resource_items<'r>(raw: &'r Raw) -> impl Iterator<Item = (&'r str, String)> {
    raw.resources.iter().flat_map(move |list| {
        list.items
            .iter()
            .enumerate()
            .map(move |(i, r)| (*r, item_path(&raw.path, list, i)))
    })
}

fn item_path(statement: &str, list: &List, i: usize) -> String {
    if list.items.len() == 1 {
        format!("{statement}.{}", list.field)
    } else {
        format!("{statement}.{}[{i}]", list.field)
    }
}

/// Checks the structure of one statement.
fn raw_statement(path: String, value: &Json) -> Result<Raw<'_>, PolicyError> {
    let Json::Object(fields) = value else {
        return Err(syntax(
            format!("A statement must be an object, not {}", value.kind()),
            path,
        ));
    };
    let mut raw = Raw {
        path,
        sid: None,
        effect: "",
        actions: None,
        resources: None,
        principal: None,
        conditions: Vec::new(),
    };
    let mut effect = None;
    for (name, value) in fields {
        let Some(&field) = STATEMENT_FIELDS.iter().find(|f| **f == name) else {
            return Err(syntax(format!("Unknown field {name}"), raw.path));
        };
        let at = || format!("{}.{field}", raw.path);
        match field {
            "Sid" => match value {
                Json::String(s) => raw.sid = Some(s),
                v => {
                    return Err(syntax(
                        format!("Sid must be a string, not {}", v.kind()),
                        at(),
                    ));
                }
            },
            "Effect" => match value {
                Json::String(s) => effect = Some(s.as_str()),
                v => {
                    return Err(syntax(
                        format!("Effect must be a string, not {}", v.kind()),
                        at(),
                    ));
                }
            },
            "Action" | "NotAction" => {
                if raw.actions.is_some() {
                    return Err(syntax(
                        "A statement may have Action or NotAction, not both",
                        raw.path,
                    ));
                }
                raw.actions = Some(string_list(field, value, at)?);
            }
            "Resource" | "NotResource" => {
                if raw.resources.is_some() {
                    return Err(syntax(
                        "A statement may have Resource or NotResource, not both",
                        raw.path,
                    ));
                }
                raw.resources = Some(string_list(field, value, at)?);
            }
            "Principal" | "NotPrincipal" => {
                if raw.principal.is_some() {
                    return Err(syntax(
                        "A statement may have Principal or NotPrincipal, not both",
                        raw.path,
                    ));
                }
                raw.principal = Some(field);
            }
            _ => raw.conditions = conditions(value, &raw.path)?,
        }
    }
    let Some(effect) = effect else {
        return Err(syntax("The statement has no Effect", raw.path));
    };
    if !effect.eq_ignore_ascii_case("allow") && !effect.eq_ignore_ascii_case("deny") {
        return Err(syntax(
            format!("Invalid Effect {effect}: it must be Allow or Deny"),
            format!("{}.Effect", raw.path),
        ));
    }
    raw.effect = effect;
    Ok(raw)
}

/// A string or an array of strings.
fn string_list<'a>(
    field: &'static str,
    value: &'a Json,
    at: impl Fn() -> String,
) -> Result<List<'a>, PolicyError> {
    let items = match value {
        Json::String(s) => vec![s.as_str()],
        // IAM accepts (and ignores) null items in these lists.
        Json::Array(items) => items
            .iter()
            .filter(|item| **item != Json::Null)
            .map(|item| match item {
                Json::String(s) => Ok(s.as_str()),
                other => Err(syntax(
                    format!(
                        "{field} must be a string or an array of strings; it holds {}",
                        other.kind()
                    ),
                    at(),
                )),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(syntax(
                format!(
                    "{field} must be a string or an array of strings, not {}",
                    other.kind()
                ),
                at(),
            ));
        }
    };
    Ok(List {
        not: field.starts_with("Not"),
        field,
        items,
    })
}

/// A `Condition` block: `{ "Operator": { "key": value or [values] } }`.
fn conditions<'a>(value: &'a Json, path: &str) -> Result<Vec<RawCondition<'a>>, PolicyError> {
    let at = format!("{path}.Condition");
    let Json::Object(blocks) = value else {
        return Err(syntax(
            format!("Condition must be an object, not {}", value.kind()),
            at,
        ));
    };
    let mut out = Vec::new();
    for (name, block) in blocks {
        let operator = OperatorName::parse(name);
        // IAM accepts an unknown operator over no keys at all; such a block tests nothing.
        if operator.is_none() && *block == Json::Object(Vec::new()) {
            continue;
        }
        let Some(operator) = operator else {
            return Err(PolicyError::UnsupportedOperator {
                operator: name.clone(),
                path: at,
            });
        };
        let Json::Object(keys) = block else {
            return Err(syntax(
                format!(
                    "The {name} block must be an object of condition keys, not {}",
                    block.kind()
                ),
                format!("{at}.{name}"),
            ));
        };
        let mut parsed = Vec::new();
        for (key, values) in keys {
            let here = || format!("{at}.{name}.{key}");
            if key.is_empty() {
                return Err(syntax("A condition key is empty", format!("{at}.{name}")));
            }
            let values = match values {
                Json::Array(items) => items
                    .iter()
                    .map(|v| {
                        scalar(v).ok_or_else(|| {
                            syntax(
                                format!(
                                    "A condition value must be a string, number or boolean, not {}",
                                    v.kind()
                                ),
                                here(),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                v => vec![scalar(v).ok_or_else(|| {
                    syntax(
                        format!(
                            "A condition value must be a string, number or boolean, not {}",
                            v.kind()
                        ),
                        here(),
                    )
                })?],
            };
            parsed.push((key.as_str(), values));
        }
        out.push(RawCondition {
            operator,
            name,
            keys: parsed,
        });
    }
    Ok(out)
}

fn scalar(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.clone()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// IAM's checks of an action: `*`, or `vendor:pattern` with one colon and a plain vendor.
fn check_action(action: &str, path: &str) -> Result<(), PolicyError> {
    let parts: Vec<&str> = action.split(':').collect();
    match parts.as_slice() {
        ["*"] => Ok(()),
        [_] => Err(PolicyError::ActionWithoutVendor {
            action: action.to_owned(),
            path: path.to_owned(),
        }),
        [vendor, _] => {
            let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
            if *vendor != "*" && !vendor.chars().all(plain) {
                return Err(PolicyError::InvalidVendor {
                    vendor: (*vendor).to_owned(),
                    path: path.to_owned(),
                });
            }
            Ok(())
        }
        _ => Err(PolicyError::ActionTooManyColons {
            action: action.to_owned(),
            path: path.to_owned(),
        }),
    }
}

/// IAM's checks of a resource: `*`, or an ARN with a known partition and a plain service.
fn check_resource(resource: &str, path: &str) -> Result<(), PolicyError> {
    if resource == "*" {
        return Ok(());
    }
    let at = || path.to_owned();
    let Some((_, after_arn)) = resource.split_once(':') else {
        return Err(PolicyError::ResourceNotArn {
            resource: resource.to_owned(),
            path: at(),
        });
    };
    let (partition, rest) = match after_arn.split_once(':') {
        Some((p, rest)) => (p, Some(rest)),
        None => (after_arn, None),
    };
    if partition != "*" && !PARTITIONS.contains(&partition) {
        let remaining: Vec<&str> = rest.unwrap_or("").split(':').collect();
        let part = |i: usize| {
            remaining
                .get(i)
                .filter(|p| !(i == 0 && p.is_empty() && remaining.len() == 1))
                .copied()
                .unwrap_or("*")
        };
        let tail = if remaining.len() > 3 {
            remaining[3..].join(":")
        } else {
            "*".to_owned()
        };
        return Err(PolicyError::InvalidPartition {
            partition: partition.to_owned(),
            normalized: format!("arn:{partition}:{}:{}:{}:{tail}", part(0), part(1), part(2)),
            path: at(),
        });
    }
    let legacy = || PolicyError::LegacyParsing {
        detail: format!("Resource {resource} is not an ARN of six parts"),
        path: at(),
    };
    let Some(rest) = rest else {
        return Err(PolicyError::ResourceVendorNotQualified {
            resource: resource.to_owned(),
            path: at(),
        });
    };
    let (service, after_service) = rest.split_once(':').unwrap_or((rest, ""));
    if service.is_empty() {
        return Err(legacy());
    }
    if service.contains(['*', '?']) {
        return Err(PolicyError::ResourceVendorNotQualified {
            resource: resource.to_owned(),
            path: at(),
        });
    }
    if resource.matches(':').count() < 5 && resource.contains("::") {
        return Err(legacy());
    }
    let mut tail = after_service.splitn(3, ':');
    let region = tail.next().unwrap_or("");
    let _account = tail.next();
    let resource_part = tail.next().unwrap_or("");
    if (service == "iam" || (service == "s3" && !resource_part.starts_with("accesspoint/")))
        && !region.is_empty()
    {
        return Err(PolicyError::ResourceWithRegion {
            service: service.to_owned(),
            resource: resource.to_owned(),
            path: at(),
        });
    }
    if service == "iam"
        && !resource_part.starts_with('*')
        && !IAM_RESOURCE_TYPES
            .iter()
            .any(|t| resource_part.starts_with(t))
    {
        return Err(PolicyError::IamResourcePath {
            resource: resource.to_owned(),
            path: at(),
        });
    }
    Ok(())
}

/// Compiles a checked statement: actions lowercased (they match case-insensitively), resources
/// as written (they match case-sensitively).
fn compile(raw: Raw, conditions: Vec<Condition>, variables: bool) -> Statement {
    let actions = raw.actions.map(|l| (l.not, l.items)).unwrap_or_default();
    let action_patterns = actions
        .1
        .iter()
        .map(|a| Wildcard::new(&a.to_lowercase()))
        .collect();
    let resources = raw.resources.map(|l| (l.not, l.items)).unwrap_or_default();
    let resource_patterns = resources
        .1
        .iter()
        .map(|r| Pattern::new(r, variables))
        .collect();
    Statement {
        sid: raw.sid.map(str::to_owned),
        effect: if raw.effect == "Allow" {
            Effect::Allow
        } else {
            Effect::Deny
        },
        actions: if actions.0 {
            Actions::AllBut(action_patterns)
        } else {
            Actions::Listed(action_patterns)
        },
        resources: if resources.0 {
            Resources::AllBut(resource_patterns)
        } else {
            Resources::Listed(resource_patterns)
        },
        conditions,
    }
}
