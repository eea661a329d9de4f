//! The AWS Query protocol (IAM, STS, RDS, ELB) and EC2's dialect of it, driven by the services'
//! botocore models: a form-encoded request in, a JSON value shaped like the input shape out; a
//! JSON value shaped like the output shape in, the XML botocore parses out.
//!
//! A call goes [`parse_request`] → the handler (`&Value` in, `Result<Value, AwsError>` out) →
//! [`respond`] (or [`write_response`] / [`write_error`]). What each failure answers:
//!
//! | problem | code |
//! | --- | --- |
//! | bad `%` escape, not UTF-8, a repeated key, too many/long/deep keys | `MalformedQueryString` |
//! | no `Action` | `MissingAction` |
//! | unknown `Action`, or a `Version` not the service's | `InvalidAction` |
//! | an operation of the service we do not serve | `UnsupportedOperation` |
//! | keys that do not fit the shape (index gaps, index > 1000, a list given as a value) | `InvalidQueryParameter` |
//! | a value of the wrong type (`MaxItems=ten`) | `InvalidParameterValue` |
//! | an EC2 key no member claims (Query services ignore unknown keys, as AWS's do) | `UnknownParameter` |
//! | a constraint of the model (required, enum, length, range, pattern) | IAM/STS/ELB `ValidationError` (all listed); RDS/EC2 `MissingParameter` or `InvalidParameterValue` (the first) |

mod decode;
mod error;
mod form;
pub(crate) mod pattern;
mod validate;
mod xml;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

pub use decode::MAX_LIST_INDEX;
pub use error::AwsError;
pub use form::{MAX_KEY_BYTES, MAX_KEY_PARTS, MAX_PARAMETERS};

use crate::model::ServiceModel;
use crate::service::{Dialect, Protocol, Service};

/// The content type of Query and EC2 responses, errors included.
pub const CONTENT_TYPE: &str = "text/xml";

/// A parsed Query or EC2 request.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRequest {
    /// The operation (`CreateUser`), one the model serves.
    pub operation: String,
    /// The input, keyed by member names as a botocore caller's parameters are, scalars typed by
    /// their shape (timestamps as RFC 3339 strings in UTC), validated against the model.
    pub input: Value,
}

/// A rendered response: HTTP status and XML body (content type [`CONTENT_TYPE`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The HTTP status.
    pub status: u16,
    /// The XML body.
    pub body: String,
    /// The detail of an [`AwsError::Internal`] that was rendered, for the log (never sent).
    pub log_detail: Option<String>,
}

/// One service's wire format: model, protocol, error dialect, namespace, timestamp style.
pub(crate) struct Wire<'m> {
    pub(crate) model: &'m ServiceModel,
    pub(crate) protocol: Protocol,
    pub(crate) dialect: Dialect,
    pub(crate) namespace: String,
    /// Timestamps given as epoch seconds are written with milliseconds (RDS, ELB, EC2 as AWS
    /// writes them) or without (IAM, STS).
    pub(crate) millis: bool,
}

impl Wire<'static> {
    fn of(service: Service) -> Result<Self, AwsError> {
        if service.protocol() == Protocol::Json {
            return Err(AwsError::internal(format!(
                "{service:?} speaks AWS JSON 1.1, not Query"
            )));
        }
        Ok(Wire {
            model: service.model(),
            protocol: service.protocol(),
            dialect: service.dialect(),
            namespace: service.xml_namespace(),
            millis: !matches!(service, Service::Iam | Service::Sts),
        })
    }
}

impl Wire<'_> {
    fn parse(&self, query: &str, body: &[u8]) -> Result<QueryRequest, AwsError> {
        let mut params = BTreeMap::new();
        form::parse_into(query.as_bytes(), &mut params)?;
        form::parse_into(body, &mut params)?;
        let Some(action) = params.get("Action").filter(|a| !a.is_empty()) else {
            return Err(AwsError::MissingAction {
                message: "The request is missing an action or a required parameter.".into(),
            });
        };
        let version = &self.model.metadata.api_version;
        let invalid_action = |action: &str, version: &str| {
            let message = match self.protocol {
                Protocol::Ec2 => format!("The action {action} is not valid for this web service."),
                _ => format!("Could not find operation {action} for version {version}"),
            };
            AwsError::InvalidAction { message }
        };
        match params.get("Version") {
            None => {
                return Err(AwsError::Invalid {
                    code: "MissingParameter",
                    message: "The request must contain the parameter Version".into(),
                });
            }
            Some(v) if v != version => return Err(invalid_action(action, v)),
            Some(_) => {}
        }
        let Some(op) = self.model.operation(action) else {
            return Err(if self.model.knows_operation(action) {
                AwsError::UnsupportedOperation {
                    message: format!(
                        "The operation {action} of {} is not supported by this server.",
                        self.model.metadata.service_id
                    ),
                }
            } else {
                invalid_action(action, version)
            });
        };
        let root = decode::Node::tree(&params);
        let mut decoder = decode::Decoder {
            wire: self,
            unknown: Vec::new(),
        };
        let input = match &op.input {
            Some(r) => decoder
                .decode(r, &root, "")?
                .unwrap_or_else(|| Value::Object(Map::new())),
            None => {
                decoder.unknown.extend(
                    params
                        .keys()
                        .filter(|k| *k != "Action" && *k != "Version")
                        .cloned(),
                );
                Value::Object(Map::new())
            }
        };
        if self.protocol == Protocol::Ec2
            && let Some(first) = decoder.unknown.first()
        {
            return Err(AwsError::Invalid {
                code: "UnknownParameter",
                message: format!("The parameter {first} is not recognized"),
            });
        }
        if let Some(r) = &op.input {
            validate::validate(self, r, &input)?;
        }
        Ok(QueryRequest {
            operation: op.name.clone(),
            input,
        })
    }

    fn render_error(&self, err: &AwsError, request_id: &str) -> Rendered {
        match xml::error(self, err, request_id) {
            Ok(body) => Rendered {
                status: err.status_in(self.model),
                body,
                log_detail: internal_detail(err),
            },
            // Writing fixed element names into memory cannot fail; answer something sane anyway.
            Err(e) => Rendered {
                status: 500,
                body: String::new(),
                log_detail: Some(e.to_string()),
            },
        }
    }
}

/// Parses a Query or EC2 request: the query string's and the form body's parameters (a key in
/// both is refused), `Action` and `Version` checked against the model, the rest decoded by the
/// operation's input shape and validated.
pub fn parse_request(service: Service, query: &str, body: &[u8]) -> Result<QueryRequest, AwsError> {
    Wire::of(service)?.parse(query, body)
}

/// The XML of a successful call. `output` is shaped like the operation's output shape (`Null`
/// or `{}` for operations without one); a value that does not fit is the server's bug and comes
/// back as [`AwsError::Internal`] naming the member.
pub fn write_response(
    service: Service,
    operation: &str,
    output: &Value,
    request_id: &str,
) -> Result<String, AwsError> {
    xml::response(&Wire::of(service)?, operation, output, request_id)
}

/// The XML of an error, with the status its code carries.
pub fn write_error(service: Service, error: &AwsError, request_id: &str) -> Rendered {
    match Wire::of(service) {
        Ok(wire) => wire.render_error(error, request_id),
        Err(e) => Rendered {
            status: 500,
            body: String::new(),
            log_detail: Some(e.to_string()),
        },
    }
}

fn internal_detail(err: &AwsError) -> Option<String> {
    match err {
        AwsError::Internal { detail } => Some(detail.clone()),
        _ => None,
    }
}

/// IAM's form of a policy document in responses (`GetUserPolicy`, `GetGroupPolicy`,
/// `PolicyVersion.Document`): the JSON text URL-encoded per RFC 3986, every byte but the
/// unreserved ones escaped. botocore's `after-call.iam` handler decodes it back into an object.
pub fn percent_encode_document(document: &str) -> String {
    let mut out = String::with_capacity(document.len() * 2);
    for b in document.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Renders a handler's result: the response, or the error (an output the writer refuses becomes
/// `InternalFailure`; log [`AwsError::Internal`]'s detail, it is not sent).
pub fn respond(
    service: Service,
    operation: &str,
    result: &Result<Value, AwsError>,
    request_id: &str,
) -> Rendered {
    match result {
        Ok(output) => match write_response(service, operation, output, request_id) {
            Ok(body) => Rendered {
                status: 200,
                body,
                log_detail: None,
            },
            Err(e) => write_error(service, &e, request_id),
        },
        Err(e) => write_error(service, e, request_id),
    }
}
