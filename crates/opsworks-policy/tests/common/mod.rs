//! Helpers shared by the condition tests: requests at a fixed time and a policy around one
//! `Condition` block.

#![allow(dead_code)]

use opsworks_policy::{Decision, Policy, PolicyKind, RequestContext, evaluate};

pub const NOW: &str = "2026-12-07T12:00:00Z";

/// A request at [`NOW`] with nothing else set.
pub fn bare() -> RequestContext {
    RequestContext::new("opsworks:DescribeStacks", "*").with_current_time(NOW.parse().unwrap())
}

pub fn user(name: &str) -> RequestContext {
    bare().with_iam_user(
        &format!("arn:aws:iam::123456789012:user/ops/{name}"),
        name,
        "AIDAEXAMPLE",
        "123456789012",
    )
}

pub fn key(name: &str, values: &[&str]) -> RequestContext {
    bare().with_key(name, values.iter().copied())
}

pub fn ip(addr: &str) -> RequestContext {
    bare().with_source_ip(addr.parse().unwrap())
}

/// Whether an Allow statement with this `Condition` block allows the request.
pub fn holds(condition: &str, ctx: &RequestContext) -> bool {
    let doc = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"opsworks:*","Resource":"*","Condition":{condition}}}}}"#
    );
    let policy = Policy::parse(&doc, PolicyKind::Managed).unwrap_or_else(|e| panic!("{doc}: {e}"));
    evaluate(ctx, &[&policy]) == Decision::Allow
}

pub fn check(cases: Vec<(&str, RequestContext, bool)>) {
    for (condition, ctx, want) in cases {
        assert_eq!(holds(condition, &ctx), want, "{condition} with {ctx:?}");
    }
}
