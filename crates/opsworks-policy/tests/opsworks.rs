//! OpsWorks permission levels (User Guide opsworks-security-users-standard), the action table,
//! the combination with IAM (opsworks-security-users-console), the predefined managed policies
//! and AWS's AccessDenied wording.

use std::collections::BTreeSet;

use opsworks_policy::{
    AWS_MANAGED_POLICIES, AllowedBy, Authorization, Decision, Denial, DenialReason, Grant, Grants,
    OPSWORKS_ACTIONS, PermissionLevel, Policy, PolicyKind, RequestContext, Scope, StatementRef,
    access_denied_message, action_info, authorize, aws_managed_policy, evaluate, stack_resource,
};

const STACK: &str =
    "arn:aws:opsworks:us-east-1:123456789012:stack/2f18b4cb-4de5-4429-a149-ff7da9f0d8ee/";

/// The 74 operations of botocore's OpsWorks model, which this crate's table must cover.
fn model_operations() -> BTreeSet<String> {
    let model: serde_json::Value =
        serde_json::from_str(include_str!("../../opsworks-api/model/service-2.json"))
            .expect("the embedded OpsWorks model parses");
    model["operations"]
        .as_object()
        .expect("operations")
        .keys()
        .cloned()
        .collect()
}

#[test]
fn the_table_has_every_operation_once_sorted() {
    let ours: Vec<&str> = OPSWORKS_ACTIONS.iter().map(|a| a.name).collect();
    let model = model_operations();
    assert_eq!(model.len(), 74);
    assert_eq!(
        ours.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
        model
    );
    assert_eq!(ours.len(), 74);
    let mut sorted = ours.clone();
    sorted.sort();
    assert_eq!(ours, sorted, "action_info binary-searches the table");
    for a in OPSWORKS_ACTIONS {
        assert_eq!(a.iam_action, format!("opsworks:{}", a.name));
        assert_eq!(action_info(a.name), Some(a));
        assert_eq!(action_info(a.iam_action), Some(a));
    }
    assert_eq!(
        action_info("OpsWorks:DeleteStack").map(|a| a.name),
        Some("DeleteStack")
    );
    assert_eq!(action_info("iam:DeleteStack"), None);
    assert_eq!(action_info("DeleteEverything"), None);
}

#[test]
fn actions_without_a_resource_type() {
    let account: BTreeSet<&str> = OPSWORKS_ACTIONS
        .iter()
        .filter(|a| a.scope == Scope::Account)
        .map(|a| a.name)
        .collect();
    assert_eq!(
        account,
        BTreeSet::from([
            "CreateStack",
            "CreateUserProfile",
            "DeleteUserProfile",
            "DescribeMyUserProfile",
            "DescribeOperatingSystems",
            "DescribeUserProfiles",
            "UpdateMyUserProfile",
            "UpdateUserProfile",
        ])
    );
}

fn set(level: PermissionLevel) -> BTreeSet<&'static str> {
    level.actions().collect()
}

#[test]
fn what_each_level_grants() {
    let show: BTreeSet<&str> = model_operations()
        .iter()
        .filter(|op| op.starts_with("Describe"))
        .filter(|op| {
            ![
                "DescribePermissions",
                "DescribeUserProfiles",
                "DescribeMyUserProfile",
                "DescribeStackProvisioningParameters",
            ]
            .contains(&op.as_str())
        })
        .map(|op| action_info(op).expect("in the table").name)
        .collect();
    assert_eq!(show.len(), 18);
    assert_eq!(set(PermissionLevel::Show), show);

    let mut deploy = show.clone();
    deploy.extend(["CreateDeployment", "UpdateApp"]);
    assert_eq!(set(PermissionLevel::Deploy), deploy);

    let mut manage = deploy.clone();
    manage.extend([
        "AssignInstance",
        "AssignVolume",
        "AssociateElasticIp",
        "AttachElasticLoadBalancer",
        "CreateApp",
        "CreateInstance",
        "CreateLayer",
        "DeleteApp",
        "DeleteInstance",
        "DeleteLayer",
        "DeleteStack",
        "DeregisterElasticIp",
        "DeregisterInstance",
        "DeregisterRdsDbInstance",
        "DeregisterVolume",
        "DescribePermissions",
        "DetachElasticLoadBalancer",
        "DisassociateElasticIp",
        "GrantAccess",
        "GetHostnameSuggestion",
        "RebootInstance",
        "RegisterElasticIp",
        "RegisterInstance",
        "RegisterRdsDbInstance",
        "RegisterVolume",
        "SetLoadBasedAutoScaling",
        "SetPermission",
        "SetTimeBasedAutoScaling",
        "StartInstance",
        "StartStack",
        "StopInstance",
        "StopStack",
        "UnassignVolume",
        "UpdateElasticIp",
        "UpdateInstance",
        "UpdateLayer",
        "UpdateRdsDbInstance",
        "UpdateStack",
        "UpdateVolume",
        // Where the guide is silent, the API model's notes: Manage.
        "DeregisterEcsCluster",
        "RegisterEcsCluster",
        "UnassignInstance",
    ]);
    assert_eq!(set(PermissionLevel::Manage), manage);

    assert!(set(PermissionLevel::Deny).is_empty());
    assert!(set(PermissionLevel::IamOnly).is_empty());

    let iam_only: BTreeSet<&str> = OPSWORKS_ACTIONS
        .iter()
        .filter(|a| a.grant == Grant::IamOnly)
        .map(|a| a.name)
        .collect();
    for a in [
        "CloneStack",
        "CreateStack",
        "CreateUserProfile",
        "DeleteUserProfile",
        "DescribeUserProfiles",
        "UpdateUserProfile",
    ] {
        assert!(iam_only.contains(a), "{a} is IAM-only");
        assert!(!PermissionLevel::Manage.grants(a));
    }
    let self_management: BTreeSet<&str> = OPSWORKS_ACTIONS
        .iter()
        .filter(|a| a.grant == Grant::SelfManagement)
        .map(|a| a.name)
        .collect();
    assert_eq!(
        self_management,
        BTreeSet::from(["DescribeMyUserProfile", "UpdateMyUserProfile"])
    );
    // Every action is granted by exactly one kind of grant, and no level grants more than Manage.
    assert_eq!(manage.len() + iam_only.len() + self_management.len(), 74);
    assert!(PermissionLevel::Show.grants("opsworks:DescribeStacks"));
    assert!(!PermissionLevel::Show.grants("opsworks:CreateDeployment"));
    assert!(PermissionLevel::Deploy.grants("CreateDeployment"));
    assert!(!PermissionLevel::Deploy.grants("DeleteStack"));
    assert!(!PermissionLevel::Manage.grants("iam:CreateUser"));
}

#[test]
fn level_names_round_trip() {
    for level in PermissionLevel::ALL {
        assert_eq!(PermissionLevel::parse(level.as_str()), Some(level));
        assert_eq!(level.to_string(), level.as_str());
        let json = serde_json::to_string(&level).unwrap();
        assert_eq!(json, format!("\"{}\"", level.as_str()));
        assert_eq!(
            serde_json::from_str::<PermissionLevel>(&json).unwrap(),
            level
        );
    }
    assert_eq!(PermissionLevel::parse("IAM_ONLY"), None);
    assert_eq!(PermissionLevel::IamOnly.as_str(), "iam_only");
}

#[test]
fn combining_iam_and_the_permission_level() {
    let deny = Decision::ExplicitDeny {
        statement: StatementRef {
            policy: 0,
            statement: 2,
        },
    };
    let level = |l| Grants {
        level: Some(l),
        self_management: false,
    };
    use PermissionLevel::*;
    let cases: Vec<(&str, Decision, Grants, Authorization)> = vec![
        // Either may allow.
        (
            "CreateDeployment",
            Decision::ImplicitDeny,
            level(Deploy),
            Authorization::Allowed(AllowedBy::PermissionLevel(Deploy)),
        ),
        (
            "CreateDeployment",
            Decision::Allow,
            level(Show),
            Authorization::Allowed(AllowedBy::IamPolicy),
        ),
        (
            "CreateDeployment",
            Decision::Allow,
            Grants::default(),
            Authorization::Allowed(AllowedBy::IamPolicy),
        ),
        // Neither: denied.
        (
            "DeleteStack",
            Decision::ImplicitDeny,
            level(Deploy),
            Authorization::Denied(Denial::NotGranted),
        ),
        (
            "CreateLayer",
            Decision::ImplicitDeny,
            level(Deploy),
            Authorization::Denied(Denial::NotGranted),
        ),
        (
            "DescribeStacks",
            Decision::ImplicitDeny,
            level(IamOnly),
            Authorization::Denied(Denial::NotGranted),
        ),
        (
            "DescribeStacks",
            Decision::ImplicitDeny,
            Grants::default(),
            Authorization::Denied(Denial::NotGranted),
        ),
        // An explicit IAM Deny beats any level ("a Manage user with an IAM Deny of CreateLayer").
        (
            "CreateLayer",
            deny,
            level(Manage),
            Authorization::Denied(Denial::ExplicitPolicyDeny(StatementRef {
                policy: 0,
                statement: 2,
            })),
        ),
        // The level deny beats an IAM Allow ("even if they have ... full access").
        (
            "DescribeStacks",
            Decision::Allow,
            level(Deny),
            Authorization::Denied(Denial::StackPermissionDeny),
        ),
        (
            "DescribeStacks",
            Decision::ImplicitDeny,
            level(Deny),
            Authorization::Denied(Denial::StackPermissionDeny),
        ),
        // IAM-only actions: no level grants them.
        (
            "CloneStack",
            Decision::ImplicitDeny,
            level(Manage),
            Authorization::Denied(Denial::NotGranted),
        ),
        (
            "CloneStack",
            Decision::Allow,
            level(Manage),
            Authorization::Allowed(AllowedBy::IamPolicy),
        ),
        // Self-management.
        (
            "UpdateMyUserProfile",
            Decision::ImplicitDeny,
            Grants {
                level: None,
                self_management: true,
            },
            Authorization::Allowed(AllowedBy::SelfManagement),
        ),
        (
            "UpdateMyUserProfile",
            Decision::ImplicitDeny,
            Grants::default(),
            Authorization::Denied(Denial::NotGranted),
        ),
        (
            "UpdateMyUserProfile",
            deny,
            Grants {
                level: None,
                self_management: true,
            },
            Authorization::Denied(Denial::ExplicitPolicyDeny(StatementRef {
                policy: 0,
                statement: 2,
            })),
        ),
        (
            "UpdateUserProfile",
            Decision::ImplicitDeny,
            Grants {
                level: Some(Manage),
                self_management: true,
            },
            Authorization::Denied(Denial::NotGranted),
        ),
        // Actions OpsWorks does not have: IAM alone.
        (
            "iam:CreateUser",
            Decision::ImplicitDeny,
            level(Manage),
            Authorization::Denied(Denial::NotGranted),
        ),
        (
            "iam:CreateUser",
            Decision::Allow,
            Grants::default(),
            Authorization::Allowed(AllowedBy::IamPolicy),
        ),
    ];
    for (action, iam, grants, want) in cases {
        assert_eq!(
            authorize(action, iam, grants),
            want,
            "{action} with {iam:?} and {grants:?}"
        );
    }
    assert!(authorize("DescribeStacks", Decision::Allow, Grants::default()).is_allowed());
    assert!(!authorize("DescribeStacks", Decision::ImplicitDeny, Grants::default()).is_allowed());
}

#[test]
fn a_deploy_user_end_to_end() {
    // A deploy-level user with an IAM policy that only allows describing: deploys, cannot delete
    // the stack or create a layer; an explicit Deny of deployments beats the level.
    let policy = Policy::parse(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"opsworks:Describe*","Resource":"*"},
            {"Effect":"Deny","Action":"opsworks:CreateDeployment","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#,
        PolicyKind::InlineUser,
    )
    .unwrap();
    let grants = Grants {
        level: Some(PermissionLevel::Deploy),
        self_management: false,
    };
    let run = |action: &str, tls: bool| {
        let ctx = RequestContext::new(action, STACK).with_secure_transport(tls);
        authorize(action, evaluate(&ctx, &[&policy]), grants)
    };
    assert!(run("opsworks:CreateDeployment", true).is_allowed());
    assert!(run("opsworks:DescribeInstances", true).is_allowed());
    assert!(!run("opsworks:DeleteStack", true).is_allowed());
    assert!(!run("opsworks:CreateLayer", true).is_allowed());
    assert!(matches!(
        run("opsworks:CreateDeployment", false),
        Authorization::Denied(Denial::ExplicitPolicyDeny(_))
    ));
}

#[test]
fn managed_policies() {
    let names: Vec<&str> = AWS_MANAGED_POLICIES.iter().map(|p| p.name).collect();
    for name in [
        "AWSOpsWorks_FullAccess",
        "AWSOpsWorks_ReadOnlyAccess",
        "AWSOpsWorksInstanceRegistration",
    ] {
        assert!(names.contains(&name), "{name}");
    }
    for p in AWS_MANAGED_POLICIES {
        assert_eq!(p.arn, format!("arn:aws:iam::aws:policy/{}", p.name));
        assert_eq!(aws_managed_policy(p.arn), Some(p));
        assert_eq!(p.path, "/");
        assert_eq!(p.version_id, "v1");
        let parsed = p.policy().unwrap_or_else(|e| panic!("{}: {e}", p.name));
        assert!(!parsed.statements().is_empty());
        assert!(
            jiff::Timestamp::strptime("%Y-%m-%dT%H:%M:%S%:z", p.create_date).is_ok(),
            "{}",
            p.create_date
        );
    }
    assert_eq!(aws_managed_policy("arn:aws:iam::aws:policy/Nope"), None);

    let get = |name: &str| {
        aws_managed_policy(&format!("arn:aws:iam::aws:policy/{name}"))
            .unwrap()
            .policy()
            .unwrap()
    };
    let allows = |p: &Policy, action: &str, resource: &str| {
        evaluate(&RequestContext::new(action, resource), &[p]) == Decision::Allow
    };
    let full = get("AWSOpsWorks_FullAccess");
    for op in OPSWORKS_ACTIONS {
        let resource = if op.scope == Scope::Stack { STACK } else { "*" };
        assert!(allows(&full, op.iam_action, resource), "{}", op.name);
    }
    assert!(allows(&full, "ec2:DescribeInstances", "*"));
    assert!(!allows(&full, "iam:CreateUser", "*"));
    // iam:PassRole only to OpsWorks.
    let pass = |service: &str| {
        let ctx = RequestContext::new("iam:PassRole", "arn:aws:iam::123456789012:role/r")
            .with_key("iam:PassedToService", [service]);
        evaluate(&ctx, &[&full])
    };
    assert_eq!(pass("opsworks.amazonaws.com"), Decision::Allow);
    assert_eq!(pass("ec2.amazonaws.com"), Decision::ImplicitDeny);

    let read = get("AWSOpsWorks_ReadOnlyAccess");
    assert!(allows(&read, "opsworks:DescribeStacks", STACK));
    assert!(allows(&read, "opsworks:ListTags", STACK));
    assert!(!allows(&read, "opsworks:DeleteStack", STACK));
    assert!(!allows(&read, "opsworks:CreateDeployment", STACK));

    let registration = get("AWSOpsWorksInstanceRegistration");
    for action in [
        "DescribeStackProvisioningParameters",
        "DescribeStacks",
        "RegisterInstance",
    ] {
        assert!(
            allows(&registration, &format!("opsworks:{action}"), STACK),
            "{action}"
        );
    }
    assert!(!allows(&registration, "opsworks:DeregisterInstance", STACK));
}

#[test]
fn access_denied_wording() {
    let user = "arn:aws:iam::123456789012:user/JohnDoe";
    assert_eq!(
        access_denied_message(user, "opsworks:DeleteStack", STACK, DenialReason::Implicit),
        format!(
            "User: {user} is not authorized to perform: opsworks:DeleteStack on resource: {STACK} because no identity-based policy allows the opsworks:DeleteStack action"
        )
    );
    assert_eq!(
        access_denied_message(
            user,
            "opsworks:DeleteStack",
            STACK,
            DenialReason::ExplicitPolicyDeny
        ),
        format!(
            "User: {user} is not authorized to perform: opsworks:DeleteStack on resource: {STACK} with an explicit deny in an identity-based policy"
        )
    );
    assert_eq!(
        access_denied_message(
            user,
            "opsworks:DeleteStack",
            STACK,
            DenialReason::StackPermissionDeny
        ),
        format!(
            "User: {user} is not authorized to perform: opsworks:DeleteStack on resource: {STACK} with an explicit deny"
        )
    );
    // No resource type: no "on resource" (AWS's codecommit:ListRepositories example).
    assert_eq!(
        access_denied_message(user, "opsworks:CreateStack", "*", DenialReason::Implicit),
        format!(
            "User: {user} is not authorized to perform: opsworks:CreateStack because no identity-based policy allows the opsworks:CreateStack action"
        )
    );
    let deny = Decision::ExplicitDeny {
        statement: StatementRef {
            policy: 0,
            statement: 0,
        },
    };
    assert_eq!(
        DenialReason::of_decision(deny),
        Some(DenialReason::ExplicitPolicyDeny)
    );
    assert_eq!(
        DenialReason::of_decision(Decision::ImplicitDeny),
        Some(DenialReason::Implicit)
    );
    assert_eq!(DenialReason::of_decision(Decision::Allow), None);
    let grants = Grants {
        level: Some(PermissionLevel::Deny),
        self_management: false,
    };
    assert_eq!(
        DenialReason::of_authorization(authorize("DescribeStacks", Decision::Allow, grants)),
        Some(DenialReason::StackPermissionDeny)
    );
    assert_eq!(
        DenialReason::of_authorization(authorize("DescribeStacks", deny, grants)),
        Some(DenialReason::ExplicitPolicyDeny)
    );
    assert_eq!(
        DenialReason::of_authorization(authorize(
            "DescribeStacks",
            Decision::ImplicitDeny,
            Grants::default()
        )),
        Some(DenialReason::Implicit)
    );
    assert_eq!(
        DenialReason::of_authorization(authorize(
            "DescribeStacks",
            Decision::Allow,
            Grants::default()
        )),
        None
    );
}

#[test]
fn stack_resources() {
    assert_eq!(
        stack_resource(
            "us-east-1",
            "123456789012",
            "2f18b4cb-4de5-4429-a149-ff7da9f0d8ee"
        ),
        STACK
    );
}
