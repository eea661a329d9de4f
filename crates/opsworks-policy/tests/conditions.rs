//! Every condition operator with the key present, absent and with `IfExists`, the set qualifiers,
//! and the AND/OR rules (IAM reference_policies_elements_condition_operators,
//! reference_policies_condition-logic-multiple-context-keys-or-values, _multi-value-conditions).

use opsworks_policy::{Decision, Policy, PolicyKind, RequestContext, evaluate};

const NOW: &str = "2026-12-07T12:00:00Z";

/// A request at [`NOW`] with nothing else set.
fn bare() -> RequestContext {
    RequestContext::new("opsworks:DescribeStacks", "*").with_current_time(NOW.parse().unwrap())
}

fn user(name: &str) -> RequestContext {
    bare().with_iam_user(
        &format!("arn:aws:iam::123456789012:user/ops/{name}"),
        name,
        "AIDAEXAMPLE",
        "123456789012",
    )
}

fn key(name: &str, values: &[&str]) -> RequestContext {
    bare().with_key(name, values.iter().copied())
}

fn ip(addr: &str) -> RequestContext {
    bare().with_source_ip(addr.parse().unwrap())
}

/// Whether an Allow statement with this `Condition` block allows the request.
fn holds(condition: &str, ctx: &RequestContext) -> bool {
    let doc = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"opsworks:*","Resource":"*","Condition":{condition}}}}}"#
    );
    let policy = Policy::parse(&doc, PolicyKind::Managed).unwrap_or_else(|e| panic!("{doc}: {e}"));
    evaluate(ctx, &[&policy]) == Decision::Allow
}

fn check(cases: Vec<(&str, RequestContext, bool)>) {
    for (condition, ctx, want) in cases {
        assert_eq!(holds(condition, &ctx), want, "{condition} with {ctx:?}");
    }
}

#[test]
fn string_operators() {
    check(vec![
        (
            r#"{"StringEquals":{"aws:username":"alice"}}"#,
            user("alice"),
            true,
        ),
        (
            r#"{"StringEquals":{"aws:username":"alice"}}"#,
            user("bob"),
            false,
        ),
        (
            r#"{"StringEquals":{"aws:username":"alice"}}"#,
            bare(),
            false,
        ),
        (
            r#"{"StringEquals":{"aws:username":"Alice"}}"#,
            user("alice"),
            false,
        ),
        (
            r#"{"StringEquals":{"AWS:UserName":"alice"}}"#,
            user("alice"),
            true,
        ),
        (
            r#"{"StringEquals":{"aws:username":["bob","alice"]}}"#,
            user("alice"),
            true,
        ),
        (
            r#"{"StringEqualsIfExists":{"aws:username":"alice"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"StringEqualsIfExists":{"aws:username":"alice"}}"#,
            user("bob"),
            false,
        ),
        (
            r#"{"StringNotEquals":{"aws:username":"alice"}}"#,
            user("bob"),
            true,
        ),
        (
            r#"{"StringNotEquals":{"aws:username":"alice"}}"#,
            user("alice"),
            false,
        ),
        (
            r#"{"StringNotEquals":{"aws:username":"alice"}}"#,
            bare(),
            true,
        ),
        // Several values for a negated operator: the request value must match none of them.
        (
            r#"{"StringNotEquals":{"aws:username":["alice","bob"]}}"#,
            user("bob"),
            false,
        ),
        (
            r#"{"StringNotEquals":{"aws:username":["alice","bob"]}}"#,
            user("carol"),
            true,
        ),
        (
            r#"{"StringNotEqualsIfExists":{"aws:username":"alice"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"StringEqualsIgnoreCase":{"aws:username":"ALICE"}}"#,
            user("alice"),
            true,
        ),
        (
            r#"{"StringEqualsIgnoreCase":{"aws:username":"ALICE"}}"#,
            user("bob"),
            false,
        ),
        (
            r#"{"StringEqualsIgnoreCase":{"aws:username":"ÉLODIE"}}"#,
            user("élodie"),
            true,
        ),
        (
            r#"{"StringEqualsIgnoreCase":{"aws:username":"ALICE"}}"#,
            bare(),
            false,
        ),
        (
            r#"{"StringEqualsIgnoreCaseIfExists":{"aws:username":"ALICE"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"StringNotEqualsIgnoreCase":{"aws:username":"ALICE"}}"#,
            user("alice"),
            false,
        ),
        (
            r#"{"StringNotEqualsIgnoreCase":{"aws:username":"ALICE"}}"#,
            user("bob"),
            true,
        ),
        (
            r#"{"StringNotEqualsIgnoreCase":{"aws:username":"ALICE"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"StringLike":{"aws:username":"al*"}}"#,
            user("alice"),
            true,
        ),
        (
            r#"{"StringLike":{"aws:username":"a?ice"}}"#,
            user("alice"),
            true,
        ),
        (
            r#"{"StringLike":{"aws:username":"AL*"}}"#,
            user("alice"),
            false,
        ),
        (
            r#"{"StringLike":{"aws:username":"al*"}}"#,
            user("bob"),
            false,
        ),
        (r#"{"StringLike":{"aws:username":"al*"}}"#, bare(), false),
        (
            r#"{"StringLike":{"aws:username":["x*","b*"]}}"#,
            user("bob"),
            true,
        ),
        (
            r#"{"StringLikeIfExists":{"aws:username":"al*"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"StringLikeIfExists":{"aws:username":"al*"}}"#,
            user("bob"),
            false,
        ),
        (
            r#"{"StringNotLike":{"aws:username":"al*"}}"#,
            user("alice"),
            false,
        ),
        (
            r#"{"StringNotLike":{"aws:username":"al*"}}"#,
            user("bob"),
            true,
        ),
        (r#"{"StringNotLike":{"aws:username":"al*"}}"#, bare(), true),
        (
            r#"{"StringNotLikeIfExists":{"aws:username":"al*"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"StringEquals":{"aws:RequestedRegion":"us-east-1"}}"#,
            bare().with_requested_region("us-east-1"),
            true,
        ),
        (
            r#"{"StringEquals":{"aws:userid":"AIDAEXAMPLE"}}"#,
            user("alice"),
            true,
        ),
        (
            r#"{"StringEquals":{"aws:PrincipalType":"User"}}"#,
            user("alice"),
            true,
        ),
        (
            r#"{"StringEquals":{"aws:PrincipalAccount":"123456789012"}}"#,
            user("alice"),
            true,
        ),
        (
            r#"{"StringEquals":{"aws:SourceIp":"192.0.2.1"}}"#,
            ip("192.0.2.1"),
            true,
        ),
        (
            r#"{"StringEquals":{"aws:CurrentTime":"2026-12-07T12:00:00Z"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"BinaryEquals":{"test:blob":"QmluYXJ5VmFsdWU="}}"#,
            key("test:blob", &["QmluYXJ5VmFsdWU="]),
            true,
        ),
        (
            r#"{"BinaryEquals":{"test:blob":"QmluYXJ5VmFsdWU="}}"#,
            key("test:blob", &["eA=="]),
            false,
        ),
        (
            r#"{"BinaryEqualsIfExists":{"test:blob":"QmluYXJ5VmFsdWU="}}"#,
            bare(),
            true,
        ),
    ]);
}

#[test]
fn numeric_operators() {
    let n = |v: &str| key("s3:max-keys", &[v]);
    check(vec![
        (r#"{"NumericEquals":{"s3:max-keys":"10"}}"#, n("10"), true),
        (r#"{"NumericEquals":{"s3:max-keys":"10"}}"#, n("10.0"), true),
        (r#"{"NumericEquals":{"s3:max-keys":10}}"#, n("10"), true),
        (r#"{"NumericEquals":{"s3:max-keys":"10"}}"#, n("11"), false),
        (r#"{"NumericEquals":{"s3:max-keys":"10"}}"#, n("ten"), false),
        (r#"{"NumericEquals":{"s3:max-keys":"10"}}"#, bare(), false),
        (
            r#"{"NumericEquals":{"s3:max-keys":["5","10"]}}"#,
            n("5"),
            true,
        ),
        (
            r#"{"NumericEqualsIfExists":{"s3:max-keys":"10"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"NumericNotEquals":{"s3:max-keys":"10"}}"#,
            n("11"),
            true,
        ),
        (
            r#"{"NumericNotEquals":{"s3:max-keys":"10"}}"#,
            n("10"),
            false,
        ),
        (r#"{"NumericNotEquals":{"s3:max-keys":"10"}}"#, bare(), true),
        (
            r#"{"NumericNotEquals":{"s3:max-keys":["5","10"]}}"#,
            n("5"),
            false,
        ),
        (r#"{"NumericLessThan":{"s3:max-keys":"10"}}"#, n("9"), true),
        (
            r#"{"NumericLessThan":{"s3:max-keys":"10"}}"#,
            n("10"),
            false,
        ),
        (
            r#"{"NumericLessThan":{"s3:max-keys":"10.5"}}"#,
            n("10.25"),
            true,
        ),
        (r#"{"NumericLessThan":{"s3:max-keys":"10"}}"#, n("-3"), true),
        (r#"{"NumericLessThan":{"s3:max-keys":"10"}}"#, bare(), false),
        (
            r#"{"NumericLessThanIfExists":{"s3:max-keys":"10"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"NumericLessThanEquals":{"s3:max-keys":"10"}}"#,
            n("10"),
            true,
        ),
        (
            r#"{"NumericLessThanEquals":{"s3:max-keys":"10"}}"#,
            n("11"),
            false,
        ),
        (
            r#"{"NumericLessThanEquals":{"s3:max-keys":"10"}}"#,
            bare(),
            false,
        ),
        (
            r#"{"NumericGreaterThan":{"s3:max-keys":"10"}}"#,
            n("11"),
            true,
        ),
        (
            r#"{"NumericGreaterThan":{"s3:max-keys":"10"}}"#,
            n("10"),
            false,
        ),
        (
            r#"{"NumericGreaterThan":{"s3:max-keys":"10"}}"#,
            bare(),
            false,
        ),
        (
            r#"{"NumericGreaterThanEquals":{"s3:max-keys":"10"}}"#,
            n("10"),
            true,
        ),
        (
            r#"{"NumericGreaterThanEquals":{"s3:max-keys":"10"}}"#,
            n("9"),
            false,
        ),
        (
            r#"{"NumericGreaterThanEqualsIfExists":{"s3:max-keys":"10"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"NumericLessThan":{"aws:EpochTime":"1796644801"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"NumericLessThan":{"aws:EpochTime":"1796644800"}}"#,
            bare(),
            false,
        ),
    ]);
}

#[test]
fn date_operators() {
    let t = |v: &str| key("test:when", &[v]);
    check(vec![
        (
            r#"{"DateLessThan":{"aws:CurrentTime":"2026-12-07T12:15:00Z"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"DateLessThan":{"aws:CurrentTime":"2026-12-07T12:00:00Z"}}"#,
            bare(),
            false,
        ),
        (
            r#"{"DateLessThan":{"aws:CurrentTime":"2026-12-07T11:00:00Z"}}"#,
            bare(),
            false,
        ),
        (
            r#"{"DateLessThanEquals":{"aws:CurrentTime":"2026-12-07T12:00:00Z"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"DateLessThanEquals":{"aws:CurrentTime":"2026-12-07T11:59:59Z"}}"#,
            bare(),
            false,
        ),
        (
            r#"{"DateGreaterThan":{"aws:CurrentTime":"2026-01-01"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"DateGreaterThan":{"aws:CurrentTime":"2027-01-01"}}"#,
            bare(),
            false,
        ),
        (
            r#"{"DateGreaterThanEquals":{"aws:CurrentTime":"1796644800"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"DateGreaterThanEquals":{"aws:CurrentTime":"1796644801"}}"#,
            bare(),
            false,
        ),
        (
            r#"{"DateEquals":{"aws:CurrentTime":"2026-12-07T12:00:00Z"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"DateEquals":{"aws:CurrentTime":"2026-12-07T13:00:00+01:00"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"DateEquals":{"aws:CurrentTime":"2026-12-07T12:00:00"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"DateEquals":{"aws:CurrentTime":"2026-12-07T12:00:01Z"}}"#,
            bare(),
            false,
        ),
        (
            r#"{"DateNotEquals":{"aws:CurrentTime":"2026-12-07T12:00:00Z"}}"#,
            bare(),
            false,
        ),
        (
            r#"{"DateNotEquals":{"aws:CurrentTime":"2026-12-07T12:00:01Z"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"DateLessThan":{"aws:EpochTime":"2026-12-07T12:15:00Z"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"DateLessThan":{"test:when":"2026-12-07T12:15:00Z"}}"#,
            t("2026-12-07T12:10:00Z"),
            true,
        ),
        (
            r#"{"DateLessThan":{"test:when":"2026-12-07T12:15:00Z"}}"#,
            t("1796645000"),
            true,
        ),
        (
            r#"{"DateLessThan":{"test:when":"2026-12-07T12:15:00Z"}}"#,
            t("not a date"),
            false,
        ),
        (
            r#"{"DateLessThan":{"test:when":"2026-12-07T12:15:00Z"}}"#,
            bare(),
            false,
        ),
        (
            r#"{"DateLessThanIfExists":{"test:when":"2026-12-07T12:15:00Z"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"DateNotEquals":{"test:when":"2026-12-07T12:15:00Z"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"DateNotEqualsIfExists":{"test:when":"2026-12-07T12:15:00Z"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"DateGreaterThan":{"test:when":"2026-12-07T12:15:00Z"}}"#,
            bare(),
            false,
        ),
        (
            r#"{"DateGreaterThanEquals":{"test:when":"2026-12-07T12:15:00Z"}}"#,
            bare(),
            false,
        ),
        (
            r#"{"DateLessThanEquals":{"test:when":"2026-12-07T12:15:00Z"}}"#,
            bare(),
            false,
        ),
        (
            r#"{"DateEquals":{"test:when":"2026-12-07T12:15:00Z"}}"#,
            bare(),
            false,
        ),
    ]);
    // `aws opsworks register`'s fallback policy: valid for fifteen minutes from its creation.
    let register = r#"{"DateLessThan":{"aws:CurrentTime":"2026-12-07T12:15:00Z"}}"#;
    let later = bare().with_current_time("2026-12-07T12:16:00Z".parse().unwrap());
    assert!(!holds(register, &later));
}

#[test]
fn bool_operator() {
    let tls = |b: bool| bare().with_secure_transport(b);
    check(vec![
        (
            r#"{"Bool":{"aws:SecureTransport":"true"}}"#,
            tls(true),
            true,
        ),
        (
            r#"{"Bool":{"aws:SecureTransport":"true"}}"#,
            tls(false),
            false,
        ),
        (
            r#"{"Bool":{"aws:SecureTransport":"TRUE"}}"#,
            tls(true),
            true,
        ),
        (r#"{"Bool":{"aws:SecureTransport":true}}"#, tls(true), true),
        (
            r#"{"Bool":{"aws:SecureTransport":"false"}}"#,
            tls(false),
            true,
        ),
        (
            r#"{"Bool":{"aws:SecureTransport":"false"}}"#,
            tls(true),
            false,
        ),
        (r#"{"Bool":{"aws:SecureTransport":"true"}}"#, bare(), false),
        (r#"{"Bool":{"aws:SecureTransport":"false"}}"#, bare(), false),
        (
            r#"{"BoolIfExists":{"aws:SecureTransport":"true"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"BoolIfExists":{"aws:SecureTransport":"true"}}"#,
            tls(false),
            false,
        ),
        (
            r#"{"Bool":{"aws:MultiFactorAuthPresent":"true"}}"#,
            key("aws:MultiFactorAuthPresent", &["true"]),
            true,
        ),
        (
            r#"{"Bool":{"aws:MultiFactorAuthPresent":"true"}}"#,
            key("aws:MultiFactorAuthPresent", &["yes"]),
            false,
        ),
        (
            r#"{"Bool":{"aws:SecureTransport":"true"}}"#,
            key("aws:SecureTransport", &["true"]),
            true,
        ),
    ]);
}

#[test]
fn ip_operators() {
    check(vec![
        (
            r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            ip("10.1.2.3"),
            true,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            ip("192.0.2.1"),
            false,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            bare(),
            false,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"192.0.2.1"}}"#,
            ip("192.0.2.1"),
            true,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"192.0.2.1"}}"#,
            ip("192.0.2.2"),
            false,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":["203.0.113.0/24","10.0.0.0/8"]}}"#,
            ip("10.9.9.9"),
            true,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}"#,
            ip("2001:db8::1"),
            true,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}"#,
            ip("10.0.0.1"),
            false,
        ),
        (
            r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            key("aws:SourceIp", &["not-an-ip"]),
            false,
        ),
        (
            r#"{"IpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            ip("192.0.2.1"),
            true,
        ),
        (
            r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            ip("10.1.2.3"),
            false,
        ),
        (
            r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"NotIpAddress":{"aws:SourceIp":["10.0.0.0/8","192.0.2.0/24"]}}"#,
            ip("192.0.2.1"),
            false,
        ),
        (
            r#"{"NotIpAddressIfExists":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            bare(),
            true,
        ),
    ]);
}

#[test]
fn arn_operators() {
    let arn = |a: &str| bare().with_key("aws:PrincipalArn", [a]);
    let ops = "arn:aws:iam::123456789012:user/ops/alice";
    let dev = "arn:aws:iam::123456789012:user/dev/bob";
    check(vec![
        (
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/ops/*"}}"#,
            arn(ops),
            true,
        ),
        (
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/ops/*"}}"#,
            arn(dev),
            false,
        ),
        (
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/ops/*"}}"#,
            bare(),
            false,
        ),
        (
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::123*:user/ops/alice"}}"#,
            arn(ops),
            true,
        ),
        (
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/ops/ALICE"}}"#,
            arn(ops),
            false,
        ),
        (
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::?23456789012:user/ops/alice"}}"#,
            arn(ops),
            true,
        ),
        // Each part is compared on its own: a `*` in the account part does not reach the resource.
        (
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:alice"}}"#,
            arn(ops),
            false,
        ),
        (
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/ops/alice"}}"#,
            arn("not-an-arn"),
            false,
        ),
        (
            r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::*:user/ops/alice"}}"#,
            arn(ops),
            true,
        ),
        (
            r#"{"ArnEquals":{"aws:PrincipalArn":["arn:aws:iam::*:user/x","arn:aws:iam::*:user/dev/*"]}}"#,
            arn(dev),
            true,
        ),
        (
            r#"{"ArnLikeIfExists":{"aws:PrincipalArn":"arn:aws:iam::*:user/ops/*"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"ArnEqualsIfExists":{"aws:PrincipalArn":"arn:aws:iam::*:user/ops/*"}}"#,
            arn(dev),
            false,
        ),
        (
            r#"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/ops/*"}}"#,
            arn(dev),
            true,
        ),
        (
            r#"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/ops/*"}}"#,
            arn(ops),
            false,
        ),
        (
            r#"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/ops/*"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::*:user/ops/*"}}"#,
            arn(ops),
            false,
        ),
        (
            r#"{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::*:user/ops/*"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"ArnNotLikeIfExists":{"aws:PrincipalArn":"arn:aws:iam::*:user/ops/*"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/ops/alice"}}"#,
            user("alice"),
            true,
        ),
    ]);
}

#[test]
fn null_operator() {
    check(vec![
        (r#"{"Null":{"aws:SourceIp":"true"}}"#, bare(), true),
        (r#"{"Null":{"aws:SourceIp":"true"}}"#, ip("10.0.0.1"), false),
        (r#"{"Null":{"aws:SourceIp":"false"}}"#, ip("10.0.0.1"), true),
        (r#"{"Null":{"aws:SourceIp":"false"}}"#, bare(), false),
        (r#"{"Null":{"aws:SourceIp":false}}"#, ip("10.0.0.1"), true),
        (
            r#"{"Null":{"aws:TagKeys":"true"}}"#,
            key("aws:TagKeys", &[]),
            true,
        ),
        (
            r#"{"Null":{"aws:TagKeys":"false"}}"#,
            key("aws:TagKeys", &["a", "b"]),
            true,
        ),
        // aws:CurrentTime is always present.
        (r#"{"Null":{"aws:CurrentTime":"false"}}"#, bare(), true),
    ]);
}

#[test]
fn several_keys_and_operators_are_anded_values_ored() {
    let both = user("alice").with_requested_region("us-east-1");
    let wrong_region = user("alice").with_requested_region("eu-west-1");
    check(vec![
        (
            r#"{"StringEquals":{"aws:username":"alice","aws:RequestedRegion":"us-east-1"}}"#,
            both.clone(),
            true,
        ),
        (
            r#"{"StringEquals":{"aws:username":"alice","aws:RequestedRegion":"us-east-1"}}"#,
            wrong_region.clone(),
            false,
        ),
        (
            r#"{"StringEquals":{"aws:username":"alice","aws:RequestedRegion":["eu-west-1","us-east-1"]}}"#,
            wrong_region.clone(),
            true,
        ),
        (
            r#"{"StringEquals":{"aws:username":"alice"},"StringLike":{"aws:RequestedRegion":"us-*"}}"#,
            both.clone(),
            true,
        ),
        (
            r#"{"StringEquals":{"aws:username":"alice"},"StringLike":{"aws:RequestedRegion":"us-*"}}"#,
            wrong_region,
            false,
        ),
        (r#"{}"#, bare(), true),
        (r#"{"StringEquals":{}}"#, bare(), true),
    ]);
}

#[test]
fn set_qualifiers() {
    let tags = |v: &[&str]| key("aws:TagKeys", v);
    check(vec![
        (
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["env","team"]}}"#,
            tags(&["env"]),
            true,
        ),
        (
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["env","team"]}}"#,
            tags(&["env", "team"]),
            true,
        ),
        (
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["env","team"]}}"#,
            tags(&["env", "cost"]),
            false,
        ),
        (
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["env","team"]}}"#,
            bare(),
            true,
        ),
        (
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["env","team"]}}"#,
            tags(&[]),
            true,
        ),
        (
            r#"{"ForAllValues:StringLike":{"aws:TagKeys":"team-*"}}"#,
            tags(&["team-a", "team-b"]),
            true,
        ),
        (
            r#"{"ForAllValues:StringLike":{"aws:TagKeys":"team-*"}}"#,
            tags(&["team-a", "x"]),
            false,
        ),
        (
            r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":"secret"}}"#,
            tags(&["env", "team"]),
            true,
        ),
        (
            r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":"secret"}}"#,
            tags(&["env", "secret"]),
            false,
        ),
        (
            r#"{"ForAllValues:StringEqualsIgnoreCase":{"aws:TagKeys":["ENV"]}}"#,
            tags(&["env", "Env"]),
            true,
        ),
        (
            r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":"env"}}"#,
            tags(&["env", "cost"]),
            true,
        ),
        (
            r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":"env"}}"#,
            tags(&["cost"]),
            false,
        ),
        (
            r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":"env"}}"#,
            bare(),
            false,
        ),
        (
            r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":"env"}}"#,
            tags(&[]),
            false,
        ),
        (
            r#"{"ForAnyValue:StringEqualsIfExists":{"aws:TagKeys":"env"}}"#,
            bare(),
            true,
        ),
        (
            r#"{"ForAnyValue:StringNotLike":{"aws:TagKeys":"sec*"}}"#,
            tags(&["secret", "env"]),
            true,
        ),
        (
            r#"{"ForAnyValue:StringNotLike":{"aws:TagKeys":"sec*"}}"#,
            tags(&["secret"]),
            false,
        ),
        (
            r#"{"ForAnyValue:StringEquals":{"aws:username":"alice"}}"#,
            user("alice"),
            true,
        ),
        (
            r#"{"ForAllValues:StringEquals":{"aws:username":"alice"}}"#,
            user("bob"),
            false,
        ),
        (
            r#"{"ForAnyValue:IpAddress":{"test:ips":"10.0.0.0/8"}}"#,
            key("test:ips", &["192.0.2.1", "10.0.0.1"]),
            true,
        ),
        (
            r#"{"ForAllValues:NumericLessThan":{"test:sizes":"10"}}"#,
            key("test:sizes", &["1", "9"]),
            true,
        ),
        (
            r#"{"ForAllValues:NumericLessThan":{"test:sizes":"10"}}"#,
            key("test:sizes", &["1", "19"]),
            false,
        ),
        // No qualifier on a multivalued key: any value matching is enough; negated, none may.
        (
            r#"{"StringEquals":{"aws:TagKeys":"env"}}"#,
            tags(&["cost", "env"]),
            true,
        ),
        (
            r#"{"StringNotEquals":{"aws:TagKeys":"env"}}"#,
            tags(&["cost", "env"]),
            false,
        ),
        (
            r#"{"StringNotEquals":{"aws:TagKeys":"env"}}"#,
            tags(&["cost"]),
            true,
        ),
    ]);
}

#[test]
fn policy_variables_in_condition_values() {
    let owner = |tag: &str, name: &str| user(name).with_key("aws:PrincipalTag/owner", [tag]);
    check(vec![
        (
            r#"{"StringEquals":{"aws:PrincipalTag/owner":"${aws:username}"}}"#,
            owner("alice", "alice"),
            true,
        ),
        (
            r#"{"StringEquals":{"aws:PrincipalTag/owner":"${aws:username}"}}"#,
            owner("bob", "alice"),
            false,
        ),
        (
            r#"{"StringEqualsIgnoreCase":{"aws:PrincipalTag/owner":"${aws:username}"}}"#,
            owner("ALICE", "alice"),
            true,
        ),
        (
            r#"{"StringLike":{"aws:PrincipalTag/owner":"${aws:username}-*"}}"#,
            owner("alice-x", "alice"),
            true,
        ),
        (
            r#"{"StringEquals":{"aws:PrincipalTag/owner":"${aws:PrincipalTag/none, 'nobody'}"}}"#,
            owner("nobody", "alice"),
            true,
        ),
        (
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/ops/${aws:username}"}}"#,
            user("alice"),
            true,
        ),
    ]);
}
