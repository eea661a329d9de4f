//! Micro benchmark of policy evaluation: a user with 10 statements over three policies, the
//! way every API call is authorized. Prints nanoseconds per evaluation.
//!
//! `cargo run --release -p opsworks-policy --example eval_bench`

use std::hint::black_box;
use std::time::Instant;

use opsworks_policy::{
    Grants, PermissionLevel, Policy, PolicyKind, RequestContext, authorize, evaluate,
};

const INLINE: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Sid": "Describe", "Effect": "Allow", "Action": ["opsworks:Describe*", "opsworks:ListTags"], "Resource": "*"},
    {"Sid": "Deploy", "Effect": "Allow", "Action": ["opsworks:CreateDeployment", "opsworks:UpdateApp"],
     "Resource": "arn:aws:opsworks:*:*:stack/2f18b4cb-*/"},
    {"Sid": "Office", "Effect": "Deny", "Action": "opsworks:*", "Resource": "*",
     "Condition": {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}}},
    {"Sid": "NoDelete", "Effect": "Deny", "Action": ["opsworks:Delete*", "opsworks:Deregister*"], "Resource": "*"}
  ]
}"#;

const GROUP: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": "opsworks:*Instance", "Resource": "arn:aws:opsworks:us-east-1:123456789012:stack/*",
     "Condition": {"Bool": {"aws:SecureTransport": "true"}, "StringLike": {"aws:username": "ops-*"}}},
    {"Effect": "Allow", "Action": ["ec2:Describe*", "cloudwatch:GetMetricStatistics"], "Resource": "*"},
    {"Effect": "Deny", "NotAction": ["opsworks:*", "ec2:Describe*", "cloudwatch:*", "iam:GetUser"], "Resource": "*"},
    {"Effect": "Allow", "Action": "opsworks:StartStack", "Resource": "*",
     "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}
  ]
}"#;

const MANAGED: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": "iam:GetUser", "Resource": "arn:aws:iam::*:user/${aws:username}"},
    {"Effect": "Deny", "Action": "opsworks:*", "NotResource": "arn:aws:opsworks:us-east-1:*:stack/*"}
  ]
}"#;

fn main() {
    let inline = Policy::parse(INLINE, PolicyKind::InlineUser).expect("inline policy");
    let group = Policy::parse(GROUP, PolicyKind::InlineGroup).expect("group policy");
    let managed = Policy::parse(MANAGED, PolicyKind::Managed).expect("managed policy");
    let policies = [&inline, &group, &managed];
    let statements: usize = policies.iter().map(|p| p.statements().len()).sum();

    let stack =
        "arn:aws:opsworks:us-east-1:123456789012:stack/2f18b4cb-4de5-4429-a149-ff7da9f0d8ee/";
    let requests = [
        (
            "allowed (CreateDeployment, every statement checked)",
            "opsworks:CreateDeployment",
        ),
        ("implicit deny (UpdateStack)", "opsworks:UpdateStack"),
        ("explicit deny (DeleteStack)", "opsworks:DeleteStack"),
    ];
    println!("{statements} statements in {} policies", policies.len());
    for (label, action) in requests {
        let ctx = RequestContext::new(action, stack)
            .with_source_ip("10.1.2.3".parse().expect("address"))
            .with_secure_transport(true)
            .with_iam_user(
                "arn:aws:iam::123456789012:user/ops-alice",
                "ops-alice",
                "AIDAEXAMPLE",
                "123456789012",
            );
        let grants = Grants {
            level: Some(PermissionLevel::Show),
            self_management: false,
        };
        // Warm up, then time enough rounds for a stable figure.
        for _ in 0..100_000 {
            black_box(evaluate(black_box(&ctx), black_box(&policies)));
        }
        let rounds = 2_000_000u32;
        let start = Instant::now();
        let mut last = None;
        for _ in 0..rounds {
            let decision = evaluate(black_box(&ctx), black_box(&policies));
            last = Some(authorize(action, decision, grants));
        }
        let per = start.elapsed().as_nanos() as f64 / f64::from(rounds);
        println!("{label}: {per:.0} ns/eval -> {:?}", black_box(last));

        let start = Instant::now();
        let build_rounds = 200_000u32;
        for _ in 0..build_rounds {
            black_box(
                RequestContext::new(black_box(action), black_box(stack))
                    .with_source_ip("10.1.2.3".parse().expect("address"))
                    .with_secure_transport(true)
                    .with_iam_user(
                        "arn:aws:iam::123456789012:user/ops-alice",
                        "ops-alice",
                        "AIDAEXAMPLE",
                        "123456789012",
                    ),
            );
        }
        let per = start.elapsed().as_nanos() as f64 / f64::from(build_rounds);
        println!("  building its RequestContext: {per:.0} ns");
    }
}
