//! Condition operators on booleans, addresses, ARNs and presence; several keys and operators
//! (AND) and several values (OR); the set qualifiers; policy variables in condition values.

mod common;

use common::{bare, check, ip, key, user};

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
