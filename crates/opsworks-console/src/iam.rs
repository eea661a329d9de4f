//! What the IAM pages (users, groups) share: reading IAM's lists as the
//! signed-in principal, IAM's errors as a page shows them (a refusal keeps AWS's words and is a
//! 403), the policy documents IAM answers percent-encoded, and the ARNs the pages ask the
//! authorizer about.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use opsworks_api::query::AwsError;

use crate::Signed;

/// How many entries an IAM listing answers at most (IAM's own ceiling for `MaxItems`).
pub const MAX_ITEMS: &str = "1000";

/// IAM's error as a page shows it: its message (AWS's words), with the code.
#[derive(Debug, Clone)]
pub struct Shown {
    /// IAM's code (`AccessDenied`, `EntityAlreadyExists`, `MalformedPolicyDocument`, ...).
    pub code: String,
    /// IAM's message.
    pub message: String,
}

impl From<AwsError> for Shown {
    fn from(e: AwsError) -> Self {
        Shown {
            code: e.code().to_string(),
            message: e.message().to_string(),
        }
    }
}

impl From<opsworks_api::ApiError> for Shown {
    fn from(e: opsworks_api::ApiError) -> Self {
        Shown {
            code: e.code().to_string(),
            message: e.message().to_string(),
        }
    }
}

impl Shown {
    /// A problem of the form itself, found before any call (two passwords that differ).
    pub fn form(message: impl Into<String>) -> Self {
        Shown {
            code: "ValidationError".into(),
            message: message.into(),
        }
    }

    /// Whether the authorizer refused.
    pub fn denied(&self) -> bool {
        self.code == "AccessDenied" || self.code == "AccessDeniedException"
    }

    /// The status a page showing this error answers with.
    pub fn status(&self) -> StatusCode {
        match self.code.as_str() {
            "AccessDenied" | "AccessDeniedException" => StatusCode::FORBIDDEN,
            "NoSuchEntity" | "ResourceNotFoundException" => StatusCode::NOT_FOUND,
            "InternalFailure" | "ServiceFailure" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// As a template value: `{code, message}`.
    pub fn value(&self) -> Value {
        json!({ "code": self.code, "message": self.message })
    }
}

/// The page of an IAM error on its own (a page that cannot be shown at all).
pub fn error_page(signed: &Signed, e: Shown) -> Response {
    let title = if e.denied() {
        "Not allowed"
    } else {
        "That did not work"
    };
    let mut r = signed.render(
        "error.html",
        json!({ "title": title, "message": e.message, "denied": e.denied() }),
    );
    *r.status_mut() = e.status();
    r
}

/// The list `member` of IAM operation `op` (up to [`MAX_ITEMS`]).
pub async fn items(
    signed: &Signed,
    op: &str,
    params: &[(&str, &str)],
    member: &str,
) -> Result<Vec<Value>, Shown> {
    let mut all = params.to_vec();
    all.push(("MaxItems", MAX_ITEMS));
    let v = signed.iam(op, &all).await?;
    Ok(v.get(member)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// [`items`], empty when refused or failed (a page shows what the principal may see).
pub async fn items_or_none(
    signed: &Signed,
    op: &str,
    params: &[(&str, &str)],
    member: &str,
) -> Vec<Value> {
    items(signed, op, params, member).await.unwrap_or_default()
}

/// The inline policies of a user or group (`ListUserPolicies` then `GetUserPolicy` for each,
/// or the group's), as `{PolicyName, Document}` with the document decoded and indented.
pub async fn inline_policies(signed: &Signed, kind: Entity, name: &str) -> Vec<Value> {
    let (list_op, get_op, key) = match kind {
        Entity::User => ("ListUserPolicies", "GetUserPolicy", "UserName"),
        Entity::Group => ("ListGroupPolicies", "GetGroupPolicy", "GroupName"),
    };
    let names = items_or_none(signed, list_op, &[(key, name)], "PolicyNames").await;
    let mut out = Vec::new();
    for n in names.iter().filter_map(Value::as_str) {
        let doc = signed
            .iam(get_op, &[(key, name), ("PolicyName", n)])
            .await
            .ok()
            .and_then(|v| v.get("PolicyDocument")?.as_str().map(document))
            .unwrap_or_default();
        out.push(json!({ "PolicyName": n, "Document": doc }));
    }
    out
}

/// Whom an IAM page is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    /// An IAM user.
    User,
    /// An IAM group.
    Group,
}

/// A policy document as IAM answers it (percent-encoded, RFC 3986), decoded and indented for
/// reading.
pub fn document(encoded: &str) -> String {
    let text = percent_decode(encoded);
    match serde_json::from_str::<Value>(&text) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or(text),
        Err(_) => text,
    }
}

/// Decodes `%XX` escapes (what is not an escape stays as it is).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(hi), Some(lo)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(hi * 16 + lo);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The ARN an IAM call on the entity `name` of `kind` acts on (what the authorizer is asked
/// about for the forms a page offers); `*` for a name not known yet.
pub fn arn(signed: &Signed, kind: Entity, name: &str) -> String {
    let account = signed.console().app().account_id();
    let what = match kind {
        Entity::User => "user",
        Entity::Group => "group",
    };
    format!("arn:aws:iam::{account}:{what}/{name}")
}

/// Which of the IAM `operations` this principal may run on `resource`, as `{Operation: bool}`.
pub fn can(signed: &Signed, operations: &[&str], resource: &str) -> Value {
    let m: serde_json::Map<String, Value> = operations
        .iter()
        .map(|op| {
            let ok = signed.allowed(&format!("iam:{op}"), resource);
            ((*op).to_string(), Value::Bool(ok))
        })
        .collect();
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_decoded_and_indented() {
        let encoded = opsworks_api::query::percent_encode_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"opsworks:Describe*","Resource":"*"}]}"#,
        );
        let doc = document(&encoded);
        assert!(doc.contains("\n"), "{doc}");
        let v: Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(v["Statement"][0]["Action"], "opsworks:Describe*");
        assert_eq!(percent_decode("a%2Bb%20c%"), "a+b c%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("caf%C3%A9"), "café");
        assert_eq!(percent_decode("%é%"), "%é%", "no panic inside a character");
    }

    #[test]
    fn refusals_are_403_and_the_rest_keep_their_kind() {
        let denied = Shown::from(AwsError::service(
            "AccessDenied",
            "User: x is not authorized",
        ));
        assert!(denied.denied());
        assert_eq!(denied.status(), StatusCode::FORBIDDEN);
        let missing = Shown::from(AwsError::service("NoSuchEntity", "no"));
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let bad = Shown::from(AwsError::service("MalformedPolicyDocument", "bad"));
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert!(!bad.denied());
    }
}
