//! Evaluation against AWS's documented identity-policy logic (IAM reference_policies_evaluation-logic,
//! _elements_action, _notaction, _resource, _notresource, _variables), table-driven.

use opsworks_policy::{
    Decision, Effect, Policy, PolicyKind, RequestContext, StatementRef, Version, evaluate,
};

const STACK: &str =
    "arn:aws:opsworks:us-east-1:123456789012:stack/2f18b4cb-4de5-4429-a149-ff7da9f0d8ee/";
const OTHER_STACK: &str =
    "arn:aws:opsworks:us-west-2:123456789012:stack/0000aaaa-4de5-4429-a149-ff7da9f0d8ee/";

fn policy(doc: &str) -> Policy {
    Policy::parse(doc, PolicyKind::InlineUser).unwrap_or_else(|e| panic!("{doc}: {e}"))
}

fn stmt(effect: &str, action: &str, resource: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Statement":{{"Effect":"{effect}",{action},{resource}}}}}"#)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Allow,
    Deny,
    Implicit,
}

fn decide(docs: &[String], action: &str, resource: &str) -> Decision {
    let policies: Vec<Policy> = docs.iter().map(|d| policy(d)).collect();
    let refs: Vec<&Policy> = policies.iter().collect();
    let ctx = RequestContext::new(action, resource).with_iam_user(
        "arn:aws:iam::123456789012:user/ops/alice",
        "alice",
        "AIDAEXAMPLE",
        "123456789012",
    );
    evaluate(&ctx, &refs)
}

fn want(decision: Decision) -> Want {
    match decision {
        Decision::Allow => Want::Allow,
        Decision::ExplicitDeny { .. } => Want::Deny,
        Decision::ImplicitDeny => Want::Implicit,
    }
}

#[test]
fn single_statement_table() {
    use Want::*;
    let a = |s: &str| format!(r#""Action":{s}"#);
    let na = |s: &str| format!(r#""NotAction":{s}"#);
    let r = |s: &str| format!(r#""Resource":{s}"#);
    let nr = |s: &str| format!(r#""NotResource":{s}"#);
    let cases: Vec<(&str, String, &str, &str, Want)> = vec![
        (
            "exact action",
            stmt("Allow", &a(r#""opsworks:DeleteStack""#), &r(r#""*""#)),
            "opsworks:DeleteStack",
            STACK,
            Allow,
        ),
        (
            "other action",
            stmt("Allow", &a(r#""opsworks:DeleteStack""#), &r(r#""*""#)),
            "opsworks:CreateLayer",
            STACK,
            Implicit,
        ),
        (
            "action case-insensitive (name)",
            stmt("Allow", &a(r#""opsworks:deletestack""#), &r(r#""*""#)),
            "opsworks:DeleteStack",
            STACK,
            Allow,
        ),
        (
            "action case-insensitive (prefix)",
            stmt("Allow", &a(r#""OpsWorks:DeleteStack""#), &r(r#""*""#)),
            "opsworks:DeleteStack",
            STACK,
            Allow,
        ),
        (
            "request action in odd case",
            stmt("Allow", &a(r#""opsworks:DeleteStack""#), &r(r#""*""#)),
            "OPSWORKS:deleteSTACK",
            STACK,
            Allow,
        ),
        (
            "action star",
            stmt("Allow", &a(r#""*""#), &r(r#""*""#)),
            "opsworks:DeleteStack",
            STACK,
            Allow,
        ),
        (
            "service star",
            stmt("Allow", &a(r#""opsworks:*""#), &r(r#""*""#)),
            "opsworks:DeleteStack",
            STACK,
            Allow,
        ),
        (
            "service star, other service",
            stmt("Allow", &a(r#""opsworks:*""#), &r(r#""*""#)),
            "iam:CreateUser",
            "*",
            Implicit,
        ),
        (
            "prefix wildcard",
            stmt("Allow", &a(r#""opsworks:Describe*""#), &r(r#""*""#)),
            "opsworks:DescribeStacks",
            STACK,
            Allow,
        ),
        (
            "prefix wildcard miss",
            stmt("Allow", &a(r#""opsworks:Describe*""#), &r(r#""*""#)),
            "opsworks:DeleteStack",
            STACK,
            Implicit,
        ),
        (
            "infix wildcard",
            stmt("Allow", &a(r#""opsworks:*Elastic*""#), &r(r#""*""#)),
            "opsworks:AssociateElasticIp",
            STACK,
            Allow,
        ),
        (
            "question mark",
            stmt("Allow", &a(r#""opsworks:?tartStack""#), &r(r#""*""#)),
            "opsworks:StartStack",
            STACK,
            Allow,
        ),
        (
            "question mark is one char",
            stmt("Allow", &a(r#""opsworks:?tartStack""#), &r(r#""*""#)),
            "opsworks:RestartStack",
            STACK,
            Implicit,
        ),
        (
            "action list",
            stmt(
                "Allow",
                &a(r#"["opsworks:StopStack","opsworks:StartStack"]"#),
                &r(r#""*""#),
            ),
            "opsworks:StartStack",
            STACK,
            Allow,
        ),
        (
            "action list miss",
            stmt(
                "Allow",
                &a(r#"["opsworks:StopStack","opsworks:StartStack"]"#),
                &r(r#""*""#),
            ),
            "opsworks:DeleteStack",
            STACK,
            Implicit,
        ),
        (
            "NotAction allows the rest",
            stmt("Allow", &na(r#""opsworks:DeleteStack""#), &r(r#""*""#)),
            "opsworks:CreateLayer",
            STACK,
            Allow,
        ),
        (
            "NotAction not the listed",
            stmt("Allow", &na(r#""opsworks:DeleteStack""#), &r(r#""*""#)),
            "opsworks:DeleteStack",
            STACK,
            Implicit,
        ),
        (
            "NotAction other services too",
            stmt("Allow", &na(r#""iam:*""#), &r(r#""*""#)),
            "opsworks:DeleteStack",
            STACK,
            Allow,
        ),
        (
            "NotAction wildcard excludes",
            stmt("Allow", &na(r#""iam:*""#), &r(r#""*""#)),
            "iam:CreateUser",
            "*",
            Implicit,
        ),
        (
            "Deny NotAction denies the rest",
            stmt("Deny", &na(r#""opsworks:Describe*""#), &r(r#""*""#)),
            "opsworks:DeleteStack",
            STACK,
            Deny,
        ),
        (
            "Deny NotAction spares the listed",
            stmt("Deny", &na(r#""opsworks:Describe*""#), &r(r#""*""#)),
            "opsworks:DescribeStacks",
            STACK,
            Implicit,
        ),
        (
            "resource exact",
            stmt("Allow", &a(r#""opsworks:*""#), &r(&format!("{STACK:?}"))),
            "opsworks:DeleteStack",
            STACK,
            Allow,
        ),
        (
            "resource other stack",
            stmt("Allow", &a(r#""opsworks:*""#), &r(&format!("{STACK:?}"))),
            "opsworks:DeleteStack",
            OTHER_STACK,
            Implicit,
        ),
        (
            "resource wildcards",
            stmt(
                "Allow",
                &a(r#""opsworks:*""#),
                &r(r#""arn:aws:opsworks:*:*:stack/2f18b4cb-4de5-4429-a149-ff7da9f0d8ee/""#),
            ),
            "opsworks:DeleteStack",
            STACK,
            Allow,
        ),
        (
            "resource all stacks",
            stmt(
                "Allow",
                &a(r#""opsworks:*""#),
                &r(r#""arn:aws:opsworks:*:*:stack/*""#),
            ),
            "opsworks:DeleteStack",
            OTHER_STACK,
            Allow,
        ),
        (
            "resource star spans colons",
            stmt(
                "Allow",
                &a(r#""opsworks:*""#),
                &r(r#""arn:aws:opsworks:*""#),
            ),
            "opsworks:DeleteStack",
            STACK,
            Allow,
        ),
        (
            "resource question mark",
            stmt(
                "Allow",
                &a(r#""opsworks:*""#),
                &r(r#""arn:aws:opsworks:us-east-?:*:stack/*""#),
            ),
            "opsworks:DeleteStack",
            STACK,
            Allow,
        ),
        (
            "resource region mismatch",
            stmt(
                "Allow",
                &a(r#""opsworks:*""#),
                &r(r#""arn:aws:opsworks:us-east-1:*:stack/*""#),
            ),
            "opsworks:DeleteStack",
            OTHER_STACK,
            Implicit,
        ),
        (
            "resource case-sensitive",
            stmt(
                "Allow",
                &a(r#""opsworks:*""#),
                &r(r#""arn:aws:opsworks:*:*:STACK/*""#),
            ),
            "opsworks:DeleteStack",
            STACK,
            Implicit,
        ),
        (
            "stack ARN needs its trailing slash",
            stmt(
                "Allow",
                &a(r#""opsworks:*""#),
                &r(r#""arn:aws:opsworks:*:*:stack/2f18b4cb-4de5-4429-a149-ff7da9f0d8ee""#),
            ),
            "opsworks:DeleteStack",
            STACK,
            Implicit,
        ),
        (
            "resource list",
            stmt(
                "Allow",
                &a(r#""opsworks:*""#),
                &r(&format!("[{OTHER_STACK:?},{STACK:?}]")),
            ),
            "opsworks:DeleteStack",
            STACK,
            Allow,
        ),
        (
            "account-wide action needs *",
            stmt(
                "Allow",
                &a(r#""opsworks:CreateStack""#),
                &r(r#""arn:aws:opsworks:*:*:stack/*""#),
            ),
            "opsworks:CreateStack",
            "*",
            Implicit,
        ),
        (
            "account-wide action with *",
            stmt("Allow", &a(r#""opsworks:CreateStack""#), &r(r#""*""#)),
            "opsworks:CreateStack",
            "*",
            Allow,
        ),
        (
            "NotResource allows the rest",
            stmt(
                "Allow",
                &a(r#""opsworks:*""#),
                &nr(&format!("{OTHER_STACK:?}")),
            ),
            "opsworks:DeleteStack",
            STACK,
            Allow,
        ),
        (
            "NotResource not the listed",
            stmt(
                "Allow",
                &a(r#""opsworks:*""#),
                &nr(&format!("{OTHER_STACK:?}")),
            ),
            "opsworks:DeleteStack",
            OTHER_STACK,
            Implicit,
        ),
        (
            "Deny NotResource: all but one stack",
            stmt("Deny", &a(r#""opsworks:*""#), &nr(&format!("{STACK:?}"))),
            "opsworks:DeleteStack",
            OTHER_STACK,
            Deny,
        ),
        (
            "Deny NotResource spares it",
            stmt("Deny", &a(r#""opsworks:*""#), &nr(&format!("{STACK:?}"))),
            "opsworks:DeleteStack",
            STACK,
            Implicit,
        ),
        (
            "NotAction and NotResource",
            stmt(
                "Allow",
                &na(r#""opsworks:Delete*""#),
                &nr(r#""arn:aws:opsworks:*:*:stack/0000*""#),
            ),
            "opsworks:UpdateStack",
            STACK,
            Allow,
        ),
        (
            "NotAction and NotResource, excluded resource",
            stmt(
                "Allow",
                &na(r#""opsworks:Delete*""#),
                &nr(r#""arn:aws:opsworks:*:*:stack/0000*""#),
            ),
            "opsworks:UpdateStack",
            OTHER_STACK,
            Implicit,
        ),
        (
            "deny alone",
            stmt("Deny", &a(r#""opsworks:*""#), &r(r#""*""#)),
            "opsworks:DeleteStack",
            STACK,
            Deny,
        ),
        (
            "deny of another action is no allow",
            stmt("Deny", &a(r#""opsworks:DeleteStack""#), &r(r#""*""#)),
            "opsworks:CreateLayer",
            STACK,
            Implicit,
        ),
    ];
    for (name, doc, action, resource, expected) in cases {
        let got = want(decide(std::slice::from_ref(&doc), action, resource));
        assert_eq!(got, expected, "{name}: {doc} for {action} on {resource}");
    }
}

#[test]
fn explicit_deny_wins_in_any_order_and_any_policy() {
    let allow = stmt("Allow", r#""Action":"opsworks:*""#, r#""Resource":"*""#);
    let deny = stmt(
        "Deny",
        r#""Action":"opsworks:DeleteStack""#,
        r#""Resource":"*""#,
    );
    for docs in [
        vec![allow.clone(), deny.clone()],
        vec![deny.clone(), allow.clone()],
        vec![allow.clone(), allow.clone(), deny.clone()],
    ] {
        assert!(matches!(
            decide(&docs, "opsworks:DeleteStack", STACK),
            Decision::ExplicitDeny { .. }
        ));
        assert_eq!(decide(&docs, "opsworks:StopStack", STACK), Decision::Allow);
    }
    // Several statements in one policy: the same.
    let one = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"All","Effect":"Allow","Action":"opsworks:*","Resource":"*"},
        {"Sid":"NoDelete","Effect":"Deny","Action":"opsworks:Delete*","Resource":"*"}]}"#;
    let p = policy(one);
    let ctx = RequestContext::new("opsworks:DeleteApp", STACK);
    let decision = evaluate(&ctx, &[&p]);
    assert_eq!(
        decision,
        Decision::ExplicitDeny {
            statement: StatementRef {
                policy: 0,
                statement: 1
            }
        }
    );
    assert_eq!(p.statements()[1].sid(), Some("NoDelete"));
    assert_eq!(p.statements()[1].effect(), Effect::Deny);
}

#[test]
fn deny_statement_reference_points_at_the_policy_in_the_slice() {
    let allow = policy(&stmt("Allow", r#""Action":"*""#, r#""Resource":"*""#));
    let deny = policy(
        r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Deny","Action":"iam:*","Resource":"*"},
        {"Effect":"Deny","Action":"opsworks:DeleteStack","Resource":"*"}]}"#,
    );
    let ctx = RequestContext::new("opsworks:DeleteStack", STACK);
    assert_eq!(
        evaluate(&ctx, &[&allow, &allow, &deny]),
        Decision::ExplicitDeny {
            statement: StatementRef {
                policy: 2,
                statement: 1
            }
        }
    );
}

#[test]
fn no_policies_is_an_implicit_deny() {
    let ctx = RequestContext::new("opsworks:DescribeStacks", STACK);
    assert_eq!(evaluate(&ctx, &[]), Decision::ImplicitDeny);
    assert!(!Decision::ImplicitDeny.is_allowed());
    assert!(Decision::Allow.is_allowed());
}

#[test]
fn an_allow_with_a_failing_condition_does_not_allow() {
    let p = policy(
        r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"opsworks:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#,
    );
    let plain = RequestContext::new("opsworks:DescribeStacks", STACK).with_secure_transport(false);
    let tls = RequestContext::new("opsworks:DescribeStacks", STACK).with_secure_transport(true);
    assert_eq!(evaluate(&plain, &[&p]), Decision::ImplicitDeny);
    assert_eq!(evaluate(&tls, &[&p]), Decision::Allow);
}

#[test]
fn a_deny_with_a_failing_condition_does_not_deny() {
    let p = policy(
        r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"opsworks:*","Resource":"*"},
        {"Effect":"Deny","Action":"opsworks:*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#,
    );
    let inside = RequestContext::new("opsworks:DeleteStack", STACK)
        .with_source_ip("10.1.2.3".parse().unwrap());
    let outside = RequestContext::new("opsworks:DeleteStack", STACK)
        .with_source_ip("192.0.2.1".parse().unwrap());
    assert_eq!(evaluate(&inside, &[&p]), Decision::Allow);
    assert!(matches!(
        evaluate(&outside, &[&p]),
        Decision::ExplicitDeny { .. }
    ));
}

#[test]
fn policy_variables_in_resources_follow_the_version() {
    let doc = |version: &str| {
        format!(
            r#"{{{version}"Statement":{{"Effect":"Allow","Action":"iam:*AccessKey*","Resource":"arn:aws:iam::*:user/${{aws:username}}"}}}}"#
        )
    };
    let v2012 = policy(&doc(r#""Version":"2012-10-17","#));
    let v2008 = policy(&doc(r#""Version":"2008-10-17","#));
    let absent = policy(&doc(""));
    assert_eq!(v2012.version(), Some(Version::V2012_10_17));
    assert_eq!(v2008.version(), Some(Version::V2008_10_17));
    assert_eq!(absent.version(), None);
    let user = |name: &str, resource: &str| {
        RequestContext::new("iam:CreateAccessKey", resource).with_iam_user(
            &format!("arn:aws:iam::123456789012:user/{name}"),
            name,
            "AIDA",
            "123456789012",
        )
    };
    let own = user("alice", "arn:aws:iam::123456789012:user/alice");
    let other = user("alice", "arn:aws:iam::123456789012:user/bob");
    assert_eq!(evaluate(&own, &[&v2012]), Decision::Allow);
    assert_eq!(evaluate(&other, &[&v2012]), Decision::ImplicitDeny);
    // In 2008-10-17 (and without a Version) `${aws:username}` is literal text.
    assert_eq!(evaluate(&own, &[&v2008]), Decision::ImplicitDeny);
    assert_eq!(evaluate(&own, &[&absent]), Decision::ImplicitDeny);
    let literal = user("alice", "arn:aws:iam::123456789012:user/${aws:username}");
    assert_eq!(evaluate(&literal, &[&v2008]), Decision::Allow);
    // A user name with wildcard characters stays literal once substituted.
    let starry = user("a*", "arn:aws:iam::123456789012:user/abc");
    assert_eq!(evaluate(&starry, &[&v2012]), Decision::ImplicitDeny);
    // No user name in the request: the variable resolves to nothing and matches nothing.
    let anonymous = RequestContext::new("iam:CreateAccessKey", "arn:aws:iam::123456789012:user/");
    assert_eq!(evaluate(&anonymous, &[&v2012]), Decision::ImplicitDeny);
}

#[test]
fn policy_variable_defaults_and_escapes() {
    let p = policy(
        r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"opsworks:*","Resource":"arn:aws:opsworks:*:*:stack/${aws:PrincipalTag/team, 'none'}-${*}/"}]}"#,
    );
    let none = RequestContext::new(
        "opsworks:DescribeStacks",
        "arn:aws:opsworks:us-east-1:1:stack/none-*/",
    );
    let literal_only = RequestContext::new(
        "opsworks:DescribeStacks",
        "arn:aws:opsworks:us-east-1:1:stack/none-x/",
    );
    let team = RequestContext::new(
        "opsworks:DescribeStacks",
        "arn:aws:opsworks:us-east-1:1:stack/web-*/",
    )
    .with_key("aws:PrincipalTag/team", ["web"]);
    assert_eq!(evaluate(&none, &[&p]), Decision::Allow);
    assert_eq!(
        evaluate(&literal_only, &[&p]),
        Decision::ImplicitDeny,
        "${{*}} is a literal star"
    );
    assert_eq!(evaluate(&team, &[&p]), Decision::Allow);
}

#[test]
fn statement_and_policy_accessors() {
    let p = policy(
        r#"{"Version":"2012-10-17","Id":"MyPolicy","Statement":[{"Sid":"A1","Effect":"Allow","Action":"opsworks:*","Resource":"*"}]}"#,
    );
    assert_eq!(p.id(), Some("MyPolicy"));
    assert_eq!(p.statements().len(), 1);
    assert_eq!(p.statements()[0].effect(), Effect::Allow);
    let ctx = RequestContext::new("opsworks:StartStack", STACK);
    assert!(p.statements()[0].applies(&ctx));
    assert_eq!(ctx.action(), "opsworks:StartStack");
    assert_eq!(ctx.resource(), STACK);
}
