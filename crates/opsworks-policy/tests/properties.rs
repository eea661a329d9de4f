//! Properties: no input panics the parser; a Deny never turns a refusal into an allow; the order
//! of policies and statements does not change the outcome; an explicit deny is reported exactly
//! when a Deny statement applies.

use opsworks_policy::{Decision, Effect, Policy, PolicyKind, RequestContext, evaluate};
use proptest::prelude::*;
use serde_json::{Value, json};

const KINDS: [PolicyKind; 3] = [
    PolicyKind::InlineUser,
    PolicyKind::InlineGroup,
    PolicyKind::Managed,
];

/// JSON values leaning towards policy shapes: policy field names, operators, ARNs, wildcards.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop::sample::select(vec![
        "Version",
        "Statement",
        "Id",
        "Sid",
        "Effect",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Principal",
        "Condition",
        "StringEquals",
        "ForAllValues:StringLike",
        "DateLessThanIfExists",
        "IpAddress",
        "Null",
        "aws:SourceIp",
        "aws:CurrentTime",
        "Foo",
        "",
    ])
    .prop_map(str::to_owned);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        prop::sample::select(vec![
            "2012-10-17",
            "2008-10-17",
            "Allow",
            "Deny",
            "allow",
            "*",
            "opsworks:*",
            "a:b:c",
            "arn:aws:opsworks:*:*:stack/*",
            "arn:aws",
            "arn:aws::x",
            "a:b",
            "10.0.0.0/8",
            "2026-12-07T12:00:00Z",
            "${aws:username}",
            "${",
            "true",
            "-1",
            "01T",
            "",
        ])
        .prop_map(|s| Value::String(s.to_owned())),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// A statement from small alphabets, so that matches and misses both happen often.
fn statement() -> impl Strategy<Value = Value> {
    let actions = prop::collection::vec(
        prop::sample::select(vec![
            "*",
            "opsworks:*",
            "opsworks:Describe*",
            "opsworks:De*",
            "iam:*",
            "opsworks:?reateLayer",
            "OPSWORKS:deletestack",
            "opsworks:*Stack*",
        ]),
        1..3,
    );
    let resources = prop::collection::vec(
        prop::sample::select(vec![
            "*",
            "arn:aws:opsworks:*:*:stack/a*",
            "arn:aws:opsworks:us-east-1:*:stack/*",
            "arn:aws:opsworks:us-east-1:111122223333:stack/a1/",
            "arn:aws:opsworks:*:*:stack/?2/",
        ]),
        1..3,
    );
    let condition = prop::option::of(prop::sample::select(vec![
        json!({"Bool": {"aws:SecureTransport": "true"}}),
        json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}),
        json!({"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8"]}}),
        json!({"StringLike": {"aws:username": "a*"}}),
        json!({"StringNotEqualsIfExists": {"aws:username": "bob"}}),
        json!({"DateLessThan": {"aws:CurrentTime": "2026-12-07T12:15:00Z"}}),
        json!({"Null": {"aws:SourceIp": "true"}}),
        json!({"ForAnyValue:StringEquals": {"aws:TagKeys": ["env"]}}),
        json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["env", "team"]}}),
    ]));
    (
        any::<bool>(),
        any::<bool>(),
        actions,
        any::<bool>(),
        resources,
        condition,
    )
        .prop_map(
            |(deny, not_action, actions, not_resource, resources, condition)| {
                let mut s = serde_json::Map::new();
                s.insert("Effect".into(), json!(if deny { "Deny" } else { "Allow" }));
                s.insert(
                    (if not_action { "NotAction" } else { "Action" }).into(),
                    json!(actions),
                );
                s.insert(
                    (if not_resource {
                        "NotResource"
                    } else {
                        "Resource"
                    })
                    .into(),
                    json!(resources),
                );
                if let Some(c) = condition {
                    s.insert("Condition".into(), c);
                }
                Value::Object(s)
            },
        )
}

fn policy_doc() -> impl Strategy<Value = Value> {
    prop::collection::vec(statement(), 1..4)
        .prop_map(|statements| json!({"Version": "2012-10-17", "Statement": statements}))
}

fn request() -> impl Strategy<Value = RequestContext> {
    (
        prop::sample::select(vec![
            "opsworks:DeleteStack",
            "opsworks:DescribeStacks",
            "opsworks:CreateLayer",
            "iam:CreateUser",
            "opsworks:CreateStack",
        ]),
        prop::sample::select(vec![
            "*",
            "arn:aws:opsworks:us-east-1:111122223333:stack/a1/",
            "arn:aws:opsworks:eu-west-1:111122223333:stack/b2/",
        ]),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::select(vec!["10.1.2.3", "192.0.2.7"])),
        prop::option::of(prop::sample::select(vec!["alice", "bob"])),
        prop::option::of(prop::collection::vec(
            prop::sample::select(vec!["env", "team", "cost"]),
            0..3,
        )),
        prop::sample::select(vec!["2026-12-07T12:00:00Z", "2026-12-07T13:00:00Z"]),
    )
        .prop_map(|(action, resource, tls, ip, user, tags, now)| {
            let mut ctx =
                RequestContext::new(action, resource).with_current_time(now.parse().unwrap());
            if let Some(tls) = tls {
                ctx = ctx.with_secure_transport(tls);
            }
            if let Some(ip) = ip {
                ctx = ctx.with_source_ip(ip.parse().unwrap());
            }
            if let Some(user) = user {
                ctx = ctx.with_iam_user(
                    &format!("arn:aws:iam::111122223333:user/{user}"),
                    user,
                    "AIDA",
                    "111122223333",
                );
            }
            if let Some(tags) = tags {
                ctx = ctx.with_key("aws:TagKeys", tags);
            }
            ctx
        })
}

fn parse(doc: &Value) -> Policy {
    Policy::parse(&doc.to_string(), PolicyKind::Managed).unwrap_or_else(|e| panic!("{doc}: {e}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        for kind in KINDS {
            let _ = Policy::parse(&text, kind);
        }
    }

    #[test]
    fn arbitrary_json_never_panics(value in json_value()) {
        let text = value.to_string();
        for kind in KINDS {
            if let Ok(policy) = Policy::parse(&text, kind) {
                // Whatever parses also evaluates without panicking.
                let ctx = RequestContext::new("opsworks:DeleteStack", "arn:aws:opsworks:us-east-1:1:stack/x/");
                let _ = evaluate(&ctx, &[&policy]);
            }
            if let Err(e) = Policy::parse(&text, kind) {
                prop_assert!(!e.to_string().is_empty());
                prop_assert!(!e.aws_message().is_empty());
            }
        }
    }

    #[test]
    fn truncated_documents_never_panic(doc in policy_doc(), cut in 0usize..400) {
        let text = serde_json::to_string_pretty(&doc).unwrap();
        let cut = text.char_indices().map(|(i, _)| i).take_while(|i| *i <= cut).last().unwrap_or(0);
        let _ = Policy::parse(&text[..cut], PolicyKind::InlineUser);
    }

    #[test]
    fn adding_a_deny_never_allows(docs in prop::collection::vec(policy_doc(), 0..3), deny in statement(), ctx in request()) {
        let mut deny = deny;
        deny["Effect"] = json!("Deny");
        let policies: Vec<Policy> = docs.iter().map(parse).collect();
        let deny_policy = parse(&json!({"Version": "2012-10-17", "Statement": [deny]}));
        let mut with_deny: Vec<&Policy> = policies.iter().collect();
        let before = evaluate(&ctx, &with_deny);
        with_deny.push(&deny_policy);
        let after = evaluate(&ctx, &with_deny);
        if before != Decision::Allow {
            prop_assert_ne!(after, Decision::Allow);
        }
        // And a Deny that applies always wins.
        if deny_policy.statements()[0].applies(&ctx) {
            let is_explicit = matches!(after, Decision::ExplicitDeny { .. });
            prop_assert!(is_explicit);
        }
    }

    #[test]
    fn order_does_not_matter_and_explicit_deny_is_exact(docs in prop::collection::vec(policy_doc(), 1..4), ctx in request()) {
        let policies: Vec<Policy> = docs.iter().map(parse).collect();
        let forward: Vec<&Policy> = policies.iter().collect();
        let backward: Vec<&Policy> = policies.iter().rev().collect();
        let a = evaluate(&ctx, &forward);
        let b = evaluate(&ctx, &backward);
        prop_assert_eq!(a.is_allowed(), b.is_allowed());
        prop_assert_eq!(matches!(a, Decision::ExplicitDeny { .. }), matches!(b, Decision::ExplicitDeny { .. }));

        let statements = || policies.iter().flat_map(|p| p.statements());
        let any_deny = statements().any(|s| s.effect() == Effect::Deny && s.applies(&ctx));
        let any_allow = statements().any(|s| s.effect() == Effect::Allow && s.applies(&ctx));
        let expected = if any_deny { "deny" } else if any_allow { "allow" } else { "implicit" };
        let got = match a {
            Decision::ExplicitDeny { statement } => {
                let s = &policies[statement.policy].statements()[statement.statement];
                prop_assert_eq!(s.effect(), Effect::Deny);
                prop_assert!(s.applies(&ctx));
                "deny"
            }
            Decision::Allow => "allow",
            Decision::ImplicitDeny => "implicit",
        };
        prop_assert_eq!(got, expected);
    }
}
