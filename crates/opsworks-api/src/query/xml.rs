//! Responses and errors as the XML botocore's `QueryParser` and `EC2QueryParser` read.
//!
//! The output is a JSON value shaped like the output shape, keyed by member names; each member is
//! written under its `locationName` (else its name), lists as `<member>` (or the list member's
//! `locationName`: RDS's `<DBInstance>`, EC2's `<item>`), maps as `<entry><key>..<value>..`.
//! Text goes through quick-xml's escaping; a carriage return becomes `&#13;` so parsers keep it,
//! and the few characters XML 1.0 cannot carry at all (other C0 controls, U+FFFE, U+FFFF) become
//! U+FFFD.

use std::borrow::Cow;

use quick_xml::Writer;
use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use serde_json::Value;

use super::{AwsError, Wire};
use crate::model::{Shape, ShapeRef};
use crate::service::Protocol;

struct Xml<'w, 'm> {
    wire: &'w Wire<'m>,
    out: Writer<Vec<u8>>,
}

fn internal(detail: String) -> AwsError {
    AwsError::internal(detail)
}

/// Text as XML 1.0 can carry it, escaped.
fn escaped(text: &str) -> Cow<'_, str> {
    let representable = |c: char| {
        matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
    };
    let text: Cow<'_, str> = if text.chars().all(representable) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(
            text.chars()
                .map(|c| if representable(c) { c } else { '\u{FFFD}' })
                .collect(),
        )
    };
    let escaped = match text {
        Cow::Borrowed(t) => quick_xml::escape::escape(t),
        Cow::Owned(t) => Cow::Owned(quick_xml::escape::escape(t.as_str()).into_owned()),
    };
    if escaped.contains('\r') {
        Cow::Owned(escaped.replace('\r', "&#13;"))
    } else {
        escaped
    }
}

impl<'m> Xml<'_, 'm> {
    fn event(&mut self, event: Event<'_>) -> Result<(), AwsError> {
        self.out
            .write_event(event)
            .map_err(|e| internal(format!("writing XML: {e}")))
    }

    fn start(&mut self, name: &str, namespace: Option<&str>) -> Result<(), AwsError> {
        let mut tag = BytesStart::new(name);
        if let Some(ns) = namespace {
            tag.push_attribute(("xmlns", ns));
        }
        self.event(Event::Start(tag))
    }

    fn end(&mut self, name: &str) -> Result<(), AwsError> {
        self.event(Event::End(BytesEnd::new(name)))
    }

    fn text_element(&mut self, name: &str, text: &str) -> Result<(), AwsError> {
        self.start(name, None)?;
        let text = escaped(text);
        self.event(Event::Text(BytesText::from_escaped(text)))?;
        self.end(name)
    }

    fn shape(&self, name: &str) -> Result<&'m Shape, AwsError> {
        self.wire
            .model
            .shape(name)
            .ok_or_else(|| internal(format!("service model lacks shape {name}")))
    }

    /// The members of a structure value, each under its element name, in the value's order.
    fn members(&mut self, shape_name: &str, value: &Value, path: &str) -> Result<(), AwsError> {
        let shape = self.shape(shape_name)?;
        let Value::Object(map) = value else {
            return Err(internal(format!(
                "output {path} should be an object (shape {shape_name})"
            )));
        };
        for (name, v) in map {
            if v.is_null() {
                continue;
            }
            let Some(member) = shape.members.get(name) else {
                return Err(internal(format!(
                    "output {path} has {name}, which shape {shape_name} does not have"
                )));
            };
            let member_shape = self.shape(&member.shape)?;
            let element = member
                .location_name
                .as_deref()
                .or(member_shape.location_name.as_deref())
                .unwrap_or(name);
            self.value(member, element, v, &format!("{path}.{name}"))?;
        }
        Ok(())
    }

    /// One member: `<element>` holding `value` as the shape `r` says.
    fn value(
        &mut self,
        r: &ShapeRef,
        element: &str,
        value: &Value,
        path: &str,
    ) -> Result<(), AwsError> {
        let shape = self.shape(&r.shape)?;
        let flat = r.flattened || shape.flattened;
        let mismatch = |expected: &str| {
            internal(format!(
                "output {path} should be {expected} (shape {}), not {value}",
                r.shape
            ))
        };
        match shape.kind.as_str() {
            "structure" => {
                self.start(element, None)?;
                self.members(&r.shape, value, path)?;
                self.end(element)
            }
            "list" => {
                let Value::Array(items) = value else {
                    return Err(mismatch("a list"));
                };
                let Some(member) = &shape.member else {
                    return Err(internal(format!("list shape {} has no member", r.shape)));
                };
                let member_shape = self.shape(&member.shape)?;
                let item_name = member
                    .location_name
                    .as_deref()
                    .or(member_shape.location_name.as_deref());
                if flat {
                    let item_name = item_name.unwrap_or(element).to_string();
                    for (i, item) in items.iter().enumerate() {
                        self.value(member, &item_name, item, &format!("{path}[{i}]"))?;
                    }
                    return Ok(());
                }
                let item_name = item_name.unwrap_or("member").to_string();
                if items.is_empty() {
                    return self.event(Event::Empty(BytesStart::new(element)));
                }
                self.start(element, None)?;
                for (i, item) in items.iter().enumerate() {
                    self.value(member, &item_name, item, &format!("{path}[{i}]"))?;
                }
                self.end(element)
            }
            "map" => {
                let Value::Object(map) = value else {
                    return Err(mismatch("an object"));
                };
                let (Some(key_ref), Some(value_ref)) = (&shape.key, &shape.value) else {
                    return Err(internal(format!(
                        "map shape {} lacks key or value",
                        r.shape
                    )));
                };
                let key_name = key_ref
                    .location_name
                    .clone()
                    .unwrap_or_else(|| "key".into());
                let value_name = value_ref
                    .location_name
                    .clone()
                    .unwrap_or_else(|| "value".into());
                if !flat {
                    self.start(element, None)?;
                }
                let entry = if flat { element } else { "entry" };
                for (k, v) in map {
                    self.start(entry, None)?;
                    self.text_element(&key_name, k)?;
                    self.value(value_ref, &value_name, v, &format!("{path}.{k}"))?;
                    self.end(entry)?;
                }
                if !flat {
                    self.end(element)?;
                }
                Ok(())
            }
            "string" | "character" | "blob" => match value {
                Value::String(s) => self.text_element(element, s),
                _ => Err(mismatch("a string")),
            },
            "boolean" => match value {
                Value::Bool(b) => self.text_element(element, if *b { "true" } else { "false" }),
                _ => Err(mismatch("a boolean")),
            },
            "integer" | "long" => match value {
                Value::Number(n) if n.is_i64() || n.is_u64() => {
                    self.text_element(element, &n.to_string())
                }
                _ => Err(mismatch("an integer")),
            },
            "float" | "double" => match value {
                Value::Number(n) => self.text_element(element, &n.to_string()),
                _ => Err(mismatch("a number")),
            },
            "timestamp" => {
                let text = match value {
                    Value::String(s) if super::decode::parse_timestamp(s).is_some() => s.clone(),
                    Value::Number(n) => {
                        let t = n
                            .as_f64()
                            .and_then(|s| super::decode::parse_timestamp(&s.to_string()))
                            .ok_or_else(|| mismatch("a timestamp"))?;
                        let format = if self.wire.millis {
                            "%Y-%m-%dT%H:%M:%S%.3fZ"
                        } else {
                            "%Y-%m-%dT%H:%M:%SZ"
                        };
                        t.strftime(format).to_string()
                    }
                    _ => return Err(mismatch("an ISO 8601 string or seconds since the epoch")),
                };
                self.text_element(element, &text)
            }
            other => Err(internal(format!(
                "unsupported shape type {other} at {path}"
            ))),
        }
    }

    fn finish(self) -> Result<String, AwsError> {
        String::from_utf8(self.out.into_inner())
            .map_err(|e| internal(format!("XML is not UTF-8: {e}")))
    }
}

/// The response body of a successful call.
pub(crate) fn response(
    wire: &Wire<'_>,
    operation: &str,
    output: &Value,
    request_id: &str,
) -> Result<String, AwsError> {
    let op = wire
        .model
        .operation(operation)
        .ok_or_else(|| internal(format!("the model does not serve {operation}")))?;
    let mut xml = Xml {
        wire,
        out: Writer::new(Vec::new()),
    };
    let root = format!("{operation}Response");
    xml.start(&root, Some(&wire.namespace))?;
    if wire.protocol == Protocol::Ec2 {
        xml.text_element("requestId", request_id)?;
    }
    match &op.output {
        Some(out_ref) => {
            // botocore's parsers look for the wrapper in either protocol; EC2's model has none.
            let wrapper = out_ref.result_wrapper.as_deref();
            if let Some(w) = wrapper {
                xml.start(w, None)?;
            }
            xml.members(&out_ref.shape, output, operation)?;
            if let Some(w) = wrapper {
                xml.end(w)?;
            }
        }
        None => {
            if !(output.is_null() || output.as_object().is_some_and(|m| m.is_empty())) {
                return Err(internal(format!(
                    "{operation} has no output, but the handler returned {output}"
                )));
            }
            if wire.protocol == Protocol::Ec2 {
                xml.text_element("return", "true")?;
            }
        }
    }
    if wire.protocol == Protocol::Query {
        xml.start("ResponseMetadata", None)?;
        xml.text_element("RequestId", request_id)?;
        xml.end("ResponseMetadata")?;
    }
    xml.end(&root)?;
    xml.finish()
}

/// The error body: Query's `<ErrorResponse>` or EC2's `<Response><Errors>`.
pub(crate) fn error(wire: &Wire<'_>, err: &AwsError, request_id: &str) -> Result<String, AwsError> {
    let mut xml = Xml {
        wire,
        out: Writer::new(Vec::new()),
    };
    if wire.protocol == Protocol::Ec2 {
        xml.start("Response", None)?;
        xml.start("Errors", None)?;
        xml.start("Error", None)?;
        xml.text_element("Code", err.code())?;
        xml.text_element("Message", err.message())?;
        xml.end("Error")?;
        xml.end("Errors")?;
        xml.text_element("RequestID", request_id)?;
        xml.end("Response")?;
    } else {
        xml.start("ErrorResponse", Some(&wire.namespace))?;
        xml.start("Error", None)?;
        xml.text_element("Type", err.fault_type_in(wire.model))?;
        xml.text_element("Code", err.code())?;
        xml.text_element("Message", err.message())?;
        xml.end("Error")?;
        xml.text_element("RequestId", request_id)?;
        xml.end("ErrorResponse")?;
    }
    xml.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_carriage_returns_and_replaces_what_xml_cannot_carry() {
        assert_eq!(escaped("a<b>&'\""), "a&lt;b&gt;&amp;&apos;&quot;");
        assert_eq!(escaped("x\r\ny\tz"), "x&#13;\ny\tz");
        assert_eq!(escaped("bell\u{7}\u{FFFF}"), "bell\u{FFFD}\u{FFFD}");
        assert!(matches!(escaped("plain"), Cow::Borrowed(_)));
    }
}
