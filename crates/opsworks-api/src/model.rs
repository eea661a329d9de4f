//! Service models (botocore's `service-2.json`) and the JSON request validation they drive.
//!
//! One [`ServiceModel`] type holds any of the services we speak: OpsWorks (AWS JSON 1.1, the full
//! model) and the trimmed IAM, STS, RDS, ELB and EC2 models the `service` module embeds. For OpsWorks,
//! validating against the model rather than hand-written structs keeps one source of truth for
//! all 74 operations: member types (a wrong JSON type is a `SerializationException`, as AWS
//! answers), required members, enum values and numeric ranges (a `ValidationException` worded as
//! AWS's Coral validator words it: `1 validation error detected: Value null at 'name' failed to
//! satisfy constraint: Member must not be null`). Rules the model does not carry (lengths, "only
//! one identifier") are the handlers' business. The Query and EC2 services are parsed and
//! validated by the `query` module.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::ApiError;

/// The name the OpsWorks code has always used for a service model.
pub type Model = ServiceModel;

/// A parsed service model: botocore's `service-2.json`, possibly trimmed to the operations we
/// serve (then `allOperations` still names every operation of the full service).
#[derive(Debug, Deserialize)]
pub struct ServiceModel {
    /// Protocol, API version, XML namespace, signing name, ...
    #[serde(default)]
    pub metadata: Metadata,
    /// Operations by name (`CreateStack`, ...): the ones this model describes in full.
    pub operations: BTreeMap<String, Operation>,
    /// Shapes by name.
    pub shapes: BTreeMap<String, Shape>,
    /// Every operation name of the full service, when the model was trimmed (our vendoring
    /// script's addition); empty for an untrimmed model.
    #[serde(default, rename = "allOperations")]
    pub all_operations: Vec<String>,
    /// Each `pattern` of the model compiled, by shape name (filled after parsing).
    #[serde(skip)]
    patterns: HashMap<String, Regex>,
}

/// The model's `metadata` block.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// `json`, `query` or `ec2` for the services we speak.
    #[serde(default)]
    pub protocol: String,
    /// The API version (`2010-05-08`): the `Version` parameter of Query requests.
    #[serde(default)]
    pub api_version: String,
    /// The XML namespace of Query and EC2 responses.
    pub xml_namespace: Option<String>,
    /// The endpoint prefix, also the signing name unless `signingName` says otherwise.
    #[serde(default)]
    pub endpoint_prefix: String,
    /// The SigV4 signing name, when it differs from the endpoint prefix.
    pub signing_name: Option<String>,
    /// The `X-Amz-Target` prefix of JSON services.
    pub target_prefix: Option<String>,
    /// The service ID (`IAM`, `Elastic Load Balancing`, ...).
    #[serde(default)]
    pub service_id: String,
}

/// One operation of the model.
#[derive(Debug, Deserialize)]
pub struct Operation {
    /// The operation's name.
    pub name: String,
    /// The input shape, absent for operations that take nothing.
    pub input: Option<ShapeRef>,
    /// The output shape, absent for operations that return an empty body.
    pub output: Option<ShapeRef>,
    /// The error shapes the operation is modelled to return.
    #[serde(default)]
    pub errors: Vec<ShapeRef>,
}

/// A reference to a shape by name, with the serialization traits a member reference carries.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShapeRef {
    /// The referenced shape's name.
    pub shape: String,
    /// The member's name on the wire (XML element, Query key, list item name).
    pub location_name: Option<String>,
    /// EC2: the member's Query key, overriding `locationName`.
    pub query_name: Option<String>,
    /// A flattened list or map: its items sit directly in the parent.
    #[serde(default)]
    pub flattened: bool,
    /// Query outputs: the element the output members are wrapped in (`GetUserResult`).
    pub result_wrapper: Option<String>,
    /// Clients fill the member with a random token when the caller gives none.
    #[serde(default)]
    pub idempotency_token: bool,
}

/// How an error shape is sent: its code and HTTP status.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorTrait {
    /// The error code on the wire, when it differs from the shape's name.
    pub code: Option<String>,
    /// The HTTP status.
    pub http_status_code: Option<u16>,
    /// A client fault (`<Type>Sender</Type>`) rather than the server's.
    #[serde(default)]
    pub sender_fault: bool,
}

/// A shape: a type with its constraints.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shape {
    /// `structure`, `list`, `map`, `string`, `integer`, `double`, `boolean`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Members of a structure.
    #[serde(default)]
    pub members: BTreeMap<String, ShapeRef>,
    /// Required members of a structure.
    #[serde(default)]
    pub required: Vec<String>,
    /// Element of a list.
    pub member: Option<ShapeRef>,
    /// Key of a map.
    pub key: Option<ShapeRef>,
    /// Value of a map.
    pub value: Option<ShapeRef>,
    /// Allowed values of an enum string.
    #[serde(rename = "enum")]
    pub enum_values: Option<Vec<String>>,
    /// Lower bound of a number, or the shortest length of a string or list.
    pub min: Option<i64>,
    /// Upper bound of a number, or the longest length of a string or list.
    pub max: Option<i64>,
    /// The regular expression a string must match (Java syntax, as botocore carries it).
    pub pattern: Option<String>,
    /// The value is a secret: never echoed in messages.
    #[serde(default)]
    pub sensitive: bool,
    /// A flattened list or map (also settable on the member reference).
    #[serde(default)]
    pub flattened: bool,
    /// The shape's own wire name (a member reference's `locationName` overrides it).
    pub location_name: Option<String>,
    /// An error shape.
    #[serde(default)]
    pub exception: bool,
    /// An error shape's code and HTTP status.
    pub error: Option<ErrorTrait>,
}

static MODEL: LazyLock<Model> = LazyLock::new(|| {
    // The file is vendored and checked by this crate's tests; failing here is a build defect.
    ServiceModel::from_json(include_str!("../model/service-2.json"))
        .expect("vendored service model parses")
});

/// The service model, parsed once.
pub fn model() -> &'static Model {
    &MODEL
}

/// The waiters file, as botocore ships it (for tools that want to show them).
pub const WAITERS_JSON: &str = include_str!("../model/waiters-2.json");

impl ServiceModel {
    /// Parses a `service-2.json` and compiles the patterns it carries.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        let mut model: ServiceModel = serde_json::from_str(json)?;
        model.patterns = model
            .shapes
            .iter()
            .filter_map(|(name, shape)| {
                let pattern = shape.pattern.as_deref()?;
                Some((name.clone(), crate::query::pattern::compile(pattern)?))
            })
            .collect();
        Ok(model)
    }

    /// The compiled `pattern` of a string shape; `None` when it has none, or when the Java
    /// pattern has no Rust equivalent (this crate's tests check the served models have none such).
    pub fn pattern(&self, shape: &str) -> Option<&Regex> {
        self.patterns.get(shape)
    }

    /// Whether the full service has this operation, served or not.
    pub fn knows_operation(&self, name: &str) -> bool {
        self.operations.contains_key(name) || self.all_operations.iter().any(|o| o == name)
    }

    /// The HTTP status and sender-fault flag the model gives an error code: the error shape
    /// whose `error.code` (or, lacking one, whose name) is `code`.
    pub fn error_trait(&self, code: &str) -> Option<(u16, bool)> {
        self.shapes.iter().find_map(|(name, shape)| {
            let error = shape.error.as_ref();
            let shape_code = error.and_then(|e| e.code.as_deref()).unwrap_or(name);
            (shape.exception && shape_code == code).then(|| {
                (
                    error.and_then(|e| e.http_status_code).unwrap_or(400),
                    error.is_none_or(|e| e.sender_fault || e.http_status_code.unwrap_or(400) < 500),
                )
            })
        })
    }

    /// Looks an operation up by name.
    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.operations.get(name)
    }

    /// Looks a shape up by name.
    pub fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.get(name)
    }

    /// The enum values of a shape, empty when it is not an enum.
    pub fn enum_values(&self, shape: &str) -> &[String] {
        self.shape(shape)
            .and_then(|s| s.enum_values.as_deref())
            .unwrap_or(&[])
    }

    /// Checks a request body against the operation's input shape.
    ///
    /// Type errors come first (the body cannot be read as the model says); otherwise every
    /// constraint violation is collected into one `ValidationException`, as AWS does.
    pub fn validate_input(&self, operation: &str, body: &Value) -> Result<(), ApiError> {
        let op = self
            .operation(operation)
            .ok_or_else(|| ApiError::UnknownOperation(format!("Unknown operation {operation}")))?;
        let Some(input) = &op.input else {
            return match body {
                Value::Object(_) | Value::Null => Ok(()),
                _ => Err(ApiError::Serialization(
                    "Expected a JSON object as the request body".into(),
                )),
            };
        };
        let mut violations = Vec::new();
        self.check(&input.shape, body, "", &mut violations)?;
        if violations.is_empty() {
            Ok(())
        } else {
            let n = violations.len();
            Err(ApiError::Validation(format!(
                "{n} validation error{} detected: {}",
                if n == 1 { "" } else { "s" },
                violations.join("; ")
            )))
        }
    }

    fn check(
        &self,
        shape_name: &str,
        value: &Value,
        path: &str,
        out: &mut Vec<String>,
    ) -> Result<(), ApiError> {
        let Some(shape) = self.shape(shape_name) else {
            return Err(ApiError::Internal(format!(
                "service model lacks shape {shape_name}"
            )));
        };
        let mismatch = |expected: &str| {
            let at = if path.is_empty() {
                "the request body".to_string()
            } else {
                format!("'{path}'")
            };
            ApiError::Serialization(format!(
                "Unexpected value type at {at}: expected {expected}, found {}",
                json_type(value)
            ))
        };
        match shape.kind.as_str() {
            "structure" => {
                let Value::Object(map) = value else {
                    return Err(mismatch("an object"));
                };
                for req in &shape.required {
                    if map.get(req).is_none_or(Value::is_null) {
                        out.push(format!(
                            "Value null at '{}' failed to satisfy constraint: Member must not be null",
                            join(path, req)
                        ));
                    }
                }
                // Unknown members are ignored, as AWS's JSON services do: newer clients may send them.
                for (name, member) in &shape.members {
                    if let Some(v) = map.get(name).filter(|v| !v.is_null()) {
                        self.check(&member.shape, v, &join(path, name), out)?;
                    }
                }
            }
            "list" => {
                let Value::Array(items) = value else {
                    return Err(mismatch("a list"));
                };
                if let Some(member) = &shape.member {
                    for (i, item) in items.iter().enumerate() {
                        let p = format!("{path}.{}.member", i + 1);
                        if item.is_null() {
                            out.push(format!("Value null at '{p}' failed to satisfy constraint: Member must not be null"));
                            continue;
                        }
                        self.check(&member.shape, item, &p, out)?;
                    }
                }
            }
            "map" => {
                let Value::Object(map) = value else {
                    return Err(mismatch("a map"));
                };
                for (k, v) in map {
                    if let Some(key) = &shape.key {
                        self.check(
                            &key.shape,
                            &Value::String(k.clone()),
                            &format!("{path}.{k}"),
                            out,
                        )?;
                    }
                    if let Some(val) = &shape.value
                        && !v.is_null()
                    {
                        self.check(&val.shape, v, &format!("{path}.{k}"), out)?;
                    }
                }
            }
            "string" => {
                let Value::String(s) = value else {
                    return Err(mismatch("a string"));
                };
                if let Some(allowed) = &shape.enum_values
                    && !allowed.iter().any(|a| a == s)
                {
                    out.push(format!(
                        "Value '{s}' at '{path}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                        allowed.join(", ")
                    ));
                }
            }
            "integer" | "long" => {
                let Some(n) = value.as_i64() else {
                    return Err(mismatch("an integer"));
                };
                if let Some(min) = shape.min
                    && n < min
                {
                    out.push(format!(
                        "Value '{n}' at '{path}' failed to satisfy constraint: Member must have value greater than or equal to {min}"
                    ));
                }
                if let Some(max) = shape.max
                    && n > max
                {
                    out.push(format!(
                        "Value '{n}' at '{path}' failed to satisfy constraint: Member must have value less than or equal to {max}"
                    ));
                }
            }
            "double" | "float" => {
                if !value.is_number() {
                    return Err(mismatch("a number"));
                }
            }
            "boolean" => {
                if !value.is_boolean() {
                    return Err(mismatch("a boolean"));
                }
            }
            "timestamp" => {
                if !(value.is_number() || value.is_string()) {
                    return Err(mismatch("a timestamp"));
                }
            }
            other => {
                return Err(ApiError::Internal(format!(
                    "unsupported shape type {other}"
                )));
            }
        }
        Ok(())
    }
}

/// AWS names members in validation messages with a lower-case first letter, dotted.
fn join(path: &str, member: &str) -> String {
    let mut chars = member.chars();
    let lowered: String = match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    };
    if path.is_empty() {
        lowered
    } else {
        format!("{path}.{lowered}")
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn model_has_all_74_operations() {
        assert_eq!(model().operations.len(), 74);
    }

    #[test]
    fn missing_required_members_are_listed_as_aws_words_them() {
        let err = model()
            .validate_input("CreateStack", &json!({"Name": "x"}))
            .unwrap_err();
        assert_eq!(err.code(), "ValidationException");
        assert!(
            err.message().starts_with("3 validation errors detected: "),
            "{}",
            err.message()
        );
        assert!(err.message().contains(
            "Value null at 'region' failed to satisfy constraint: Member must not be null"
        ));
    }

    #[test]
    fn wrong_types_are_serialization_errors() {
        let err = model()
            .validate_input(
                "CreateStack",
                &json!({"Name": "x", "UseCustomCookbooks": "yes"}),
            )
            .unwrap_err();
        assert_eq!(err.code(), "SerializationException");
        assert!(
            err.message().contains("'useCustomCookbooks'"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn enums_and_ranges_are_checked_in_nested_shapes() {
        let err = model()
            .validate_input(
                "CreateDeployment",
                &json!({"StackId": "s", "Command": {"Name": "dance"}}),
            )
            .unwrap_err();
        assert!(
            err.message().contains("Value 'dance' at 'command.name'"),
            "{}",
            err.message()
        );
        let err = model()
            .validate_input(
                "GrantAccess",
                &json!({"InstanceId": "i", "ValidForInMinutes": 5}),
            )
            .unwrap_err();
        assert!(
            err.message().contains("greater than or equal to 60"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn a_valid_request_passes_and_unknown_members_are_ignored() {
        model()
            .validate_input("DescribeStacks", &json!({"StackIds": ["a"], "Extra": 1}))
            .unwrap();
        model()
            .validate_input("DescribeOperatingSystems", &json!({}))
            .unwrap();
    }
}
