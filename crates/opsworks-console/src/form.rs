//! Submitted forms: the fields of a plain HTML form, the CSRF check every signed-in form passes
//! before anything changes, and the mapping of an API error to the field it is about.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Map, Value, json};

use opsworks_api::ApiError;

use crate::{Console, Signed, auth};

/// A submitted form: its fields in order (repeated names allowed).
pub struct Form(Vec<(String, String)>);

impl Form {
    /// The fields of an `application/x-www-form-urlencoded` body.
    pub fn parse(body: &[u8]) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of a field, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    }

    /// Every non-empty value of a repeated field, trimmed.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    /// Every value of a repeated field as sent, empty ones included (rows of a table keep their
    /// positions).
    pub fn raw(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether a checkbox is ticked.
    pub fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && v != "off")
    }

    /// The fields as sent (the first of repeated ones), without the CSRF token: what a form shows
    /// again after an error.
    pub fn values(&self) -> Map<String, Value> {
        let mut m = Map::new();
        for (k, v) in &self.0 {
            if k != "_csrf" && !m.contains_key(k) {
                m.insert(k.clone(), Value::String(v.clone()));
            }
        }
        m
    }
}

/// A form posted by a signed-in browser, with the session; refused (403, nothing changed) without
/// the session's CSRF token, and sent to sign-in without a session.
pub struct SignedForm(pub Signed, pub Form);

impl FromRequest<Console> for SignedForm {
    type Rejection = Response;

    async fn from_request(req: Request, console: &Console) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let signed = Signed::from_request_parts(&mut parts, console).await?;
        let body = Bytes::from_request(Request::from_parts(parts, body), console)
            .await
            .map_err(IntoResponse::into_response)?;
        let form = Form::parse(&body);
        if !auth::same(&form.get("_csrf"), &signed.csrf) {
            return Err((
                StatusCode::FORBIDDEN,
                Html(
                    "<!doctype html><title>Refused</title><p>This form's security token is missing \
                     or stale, so nothing was changed. Go back, reload the page and try again.</p>",
                ),
            )
                .into_response());
        }
        Ok(SignedForm(signed, form))
    }
}

/// Which form field an API error is about: the field whose API name the message mentions.
pub fn field_of(error: &ApiError, fields: &[&str]) -> Option<String> {
    // Without spaces, so "short name" in a message finds the field `Shortname`.
    let message: String = error
        .to_string()
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    fields
        .iter()
        .filter(|f| message.contains(&f.to_lowercase()))
        .max_by_key(|f| f.len())
        .map(|f| f.to_string())
}

/// An API error as a form template shows it: next to its field when it names one.
pub fn error_ctx(error: &ApiError, fields: &[&str]) -> Value {
    json!({ "field": field_of(error, fields), "message": error.to_string() })
}

/// The items of a list typed in one field (commas, spaces or lines between them).
pub fn split_list(text: &str) -> Vec<Value> {
    text.split([',', '\n', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Value::String(s.to_string()))
        .collect()
}

/// A list of strings as one field shows it.
pub fn join(v: Option<&Value>) -> String {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// A string member of a resource, empty when absent.
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_point_at_the_field_they_name() {
        let fields = &["Name", "Shortname", "CustomJson"];
        let e = ApiError::Validation("Name must be 1 to 64 characters".into());
        assert_eq!(field_of(&e, fields).as_deref(), Some("Name"));
        let e = ApiError::Validation("CustomJson is not valid JSON".into());
        assert_eq!(field_of(&e, fields).as_deref(), Some("CustomJson"));
        let e = ApiError::Validation(
            "There is already a layer with the short name 'workers' in this stack".into(),
        );
        assert_eq!(field_of(&e, fields).as_deref(), Some("Shortname"));
        let e = ApiError::Validation("something else entirely".into());
        assert_eq!(field_of(&e, fields), None);
        assert_eq!(error_ctx(&e, fields)["field"], Value::Null);
    }

    #[test]
    fn forms_keep_repeated_fields() {
        let f = Form::parse(b"LayerIds=a&LayerIds=b&Name=+x+&_csrf=t&env_value=&env_value=v");
        assert_eq!(f.all("LayerIds"), vec!["a", "b"]);
        assert_eq!(f.get("Name"), "x");
        assert_eq!(f.raw("env_value"), vec!["", "v"]);
        assert!(!f.values().contains_key("_csrf"));
        assert_eq!(split_list("a, b\nc  d"), vec!["a", "b", "c", "d"]);
    }
}
