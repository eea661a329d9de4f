//! The audit view: the audit log — every mutating call of the API and the console, refused ones
//! included, and every console sign-in — filtered by principal, stack and time, for principals
//! allowed `opsworks:DescribeAuditLog` (the root always). It reads through the same code as
//! `GET /api/audit` (its authorization and its parsing of the filters), a page at a time in the
//! order recorded.

use axum::extract::Query;
use axum::response::Response;
use serde_json::{Value, json};

use opsworks_server::edge::audit::{self, AuditParams};

use crate::Signed;
use crate::iam::Shown;

/// How many entries a page shows.
pub const PAGE: u32 = 200;

/// How far back the view starts when no time or position is given.
const DEFAULT_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// A filter as given, `None` when the field was left empty.
fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// `GET /console/audit?Principal=ARN&StackId=ID&StartTime=T&EndTime=T&After=SEQ`.
pub async fn audit_page(signed: Signed, Query(q): Query<AuditParams>) -> Response {
    let mut params = AuditParams {
        principal: given(&q.principal),
        stack_id: given(&q.stack_id),
        start_time: given(&q.start_time),
        end_time: given(&q.end_time),
        after: given(&q.after),
        max_results: Some(PAGE.to_string()),
    };
    if params.start_time.is_none() && params.after.is_none() {
        let since = jiff::Timestamp::now()
            .checked_sub(DEFAULT_WINDOW)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        params.start_time = Some(since.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    let core = signed.console().app();
    if let Some(who) = params.principal.clone() {
        params.principal = Some(principal_arn(core, &who).await);
    }
    let (entries, last, error) = match audit::read(core, &signed.principal, &params).await {
        Ok(v) => (
            v["Entries"].as_array().cloned().unwrap_or_default(),
            v["LastSeq"].as_i64().unwrap_or(0),
            None,
        ),
        Err(e) => (Vec::new(), 0, Some(Shown::from(e))),
    };
    let full = entries.len() >= PAGE as usize;
    let rows: Vec<Value> = entries.iter().map(row).collect();
    let status = error.as_ref().map(Shown::status);
    let mut r = signed.render(
        "audit.html",
        json!({ "rows": rows, "q": {
                    "Principal": params.principal, "StackId": params.stack_id,
                    "StartTime": params.start_time, "EndTime": params.end_time },
                "next": if full { Some(next_link(&params, last)) } else { None },
                "error": error.map(|e| e.value()) }),
    );
    if let Some(status) = status {
        *r.status_mut() = status;
    }
    r
}

/// The ARN a principal filter means: an ARN as given, `root` the account's root, else the IAM
/// user of that name (as given when there is none: it then matches nothing).
async fn principal_arn(core: &opsworks_server::Core, who: &str) -> String {
    if who.starts_with("arn:") {
        return who.to_string();
    }
    if who.eq_ignore_ascii_case("root") {
        return format!("arn:aws:iam::{}:root", core.account_id());
    }
    match opsworks_server::core::identity::user_by_name(core, who).await {
        Ok(Some(u)) => u.arn,
        _ => who.to_string(),
    }
}

/// An entry as the table shows it: the endpoint's view, with the principal's short name and the
/// error's message.
fn row(e: &Value) -> Value {
    let principal = e["Principal"].as_str().unwrap_or("");
    let short = match principal.rsplit_once(":user/") {
        Some((_, path_name)) => path_name.rsplit('/').next().unwrap_or(path_name),
        None if principal.ends_with(":root") => "root",
        None => principal,
    };
    let mut v = e.clone();
    v["Who"] = short.into();
    v["Message"] = e.pointer("/Detail/Message").cloned().unwrap_or(Value::Null);
    v["Ok"] = (e["Outcome"] == "Success").into();
    v
}

/// The link to the entries after `last`, with the same filters.
fn next_link(p: &AuditParams, last: i64) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("Principal", &p.principal),
        ("StackId", &p.stack_id),
        ("StartTime", &p.start_time),
        ("EndTime", &p.end_time),
    ] {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    q.append_pair("After", &last.to_string());
    format!("/console/audit?{}", q.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_name_the_principal_shortly() {
        let r = row(
            &json!({ "Principal": "arn:aws:iam::123456789012:user/ops/alice",
                             "Outcome": "AccessDeniedException",
                             "Detail": { "Message": "User: ... is not authorized" } }),
        );
        assert_eq!(r["Who"], "alice");
        assert_eq!(r["Ok"], false);
        assert_eq!(r["Message"], "User: ... is not authorized");
        let r =
            row(&json!({ "Principal": "arn:aws:iam::123456789012:root", "Outcome": "Success" }));
        assert_eq!(r["Who"], "root");
        assert_eq!(r["Ok"], true);
    }

    #[test]
    fn the_next_page_keeps_the_filters() {
        let p = AuditParams {
            principal: Some("arn:aws:iam::1:user/a b".into()),
            stack_id: None,
            start_time: Some("2026-12-07T00:00:00Z".into()),
            ..Default::default()
        };
        assert_eq!(
            next_link(&p, 42),
            "/console/audit?Principal=arn%3Aaws%3Aiam%3A%3A1%3Auser%2Fa+b&StartTime=2026-12-07T00%3A00%3A00Z&After=42"
        );
    }
}
