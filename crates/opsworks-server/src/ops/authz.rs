//! Authorization of every OpsWorks operation, before its handler runs: the stacks a request
//! acts on are found from its members (StackId, or the stack of its LayerId, InstanceId, AppId,
//! DeploymentId, ... ), and for each the caller's IAM policies are evaluated for
//! `opsworks:<Operation>` on the stack's ARN and combined with the caller's permission level on
//! the stack as OpsWorks did (an explicit Deny wins; a Deny level refuses; an IAM Allow or a
//! level that grants the action allows). The root may do anything.
//!
//! Describe calls that name no stack (DescribeStacks without StackIds, DescribeServiceErrors,
//! DescribePermissions without StackId) pass here and show only what the caller may see
//! ([`may`]). The same [`Targets`] tell the audit log what a call acted on.

use std::net::IpAddr;

use serde_json::Value;

use opsworks_api::ApiError;
use opsworks_model::resource::{
    App, Command, Deployment, ElasticIp, Instance, Layer, RdsDbInstance, ServiceError, Stack,
    TemporaryAccess, Volume,
};
use opsworks_model::{Arn, Kind, Resource, ResourceKind};
use opsworks_policy::{
    DenialReason, Grants, PermissionLevel, Policy, RequestContext, Scope, access_denied_message,
    action_info, authorize, evaluate,
};
use opsworks_store::Cached;

use super::{Ctx, Principal};
use crate::core::identity::{DecisionKey, UserAccess};
use crate::core::{Core, CoreResult};

/// What a request acts on.
#[derive(Debug, Default)]
pub struct Targets {
    /// The existing stacks it names or reaches through its resources, each once, in order.
    pub stacks: Vec<Cached<Stack>>,
    /// A stack ID it names that does not exist.
    pub missing_stack: Option<String>,
    /// What it acts on, for the audit log: the first ID or ARN it names.
    pub target: Option<String>,
}

impl Targets {
    /// The stack of the call for the audit log: the first one it reaches.
    pub fn stack_id(&self) -> Option<&str> {
        self.stacks
            .first()
            .map(|s| s.stack_id.as_str())
            .or(self.missing_stack.as_deref())
    }
}

/// The members that name resources of a stack, and what they name.
const MEMBERS: &[(&str, Kind)] = &[
    ("StackId", Kind::Stack),
    ("SourceStackId", Kind::Stack),
    ("StackIds", Kind::Stack),
    ("LayerId", Kind::Layer),
    ("LayerIds", Kind::Layer),
    ("InstanceId", Kind::Instance),
    ("InstanceIds", Kind::Instance),
    ("AppId", Kind::App),
    ("AppIds", Kind::App),
    ("DeploymentId", Kind::Deployment),
    ("DeploymentIds", Kind::Deployment),
    ("CommandIds", Kind::Command),
    ("ServiceErrorIds", Kind::ServiceError),
    ("RdsDbInstanceArn", Kind::RdsDbInstance),
    ("ElasticIp", Kind::ElasticIp),
    ("Ips", Kind::ElasticIp),
    ("VolumeId", Kind::Volume),
    ("VolumeIds", Kind::Volume),
];

/// Operations that, naming no stack, list across the stacks the caller may see.
const LISTINGS: &[&str] = &[
    "DescribeStacks",
    "DescribeCommands",
    "DescribeServiceErrors",
    "DescribePermissions",
    "DescribeEcsClusters",
];

async fn stack_of(core: &Core, kind: Kind, id: &str) -> CoreResult<Option<String>> {
    async fn of<R: Resource>(core: &Core, id: &str) -> CoreResult<Option<String>> {
        Ok(core
            .find::<R>(id)
            .await?
            .and_then(|r| r.stack_id().map(str::to_string)))
    }
    match kind {
        Kind::Stack => Ok(Some(id.to_string())),
        Kind::Layer => of::<Layer>(core, id).await,
        Kind::Instance => of::<Instance>(core, id).await,
        Kind::App => of::<App>(core, id).await,
        Kind::Deployment => of::<Deployment>(core, id).await,
        Kind::Command => of::<Command>(core, id).await,
        Kind::ServiceError => of::<ServiceError>(core, id).await,
        Kind::TemporaryAccess => of::<TemporaryAccess>(core, id).await,
        Kind::RdsDbInstance => of::<RdsDbInstance>(core, id).await,
        Kind::ElasticIp => of::<ElasticIp>(core, id).await,
        Kind::Volume => of::<Volume>(core, id).await,
        _ => Ok(None),
    }
}

/// Finds what a request acts on (see [`Targets`]).
pub async fn targets(core: &Core, input: &Value) -> CoreResult<Targets> {
    let mut out = Targets::default();
    let mut stack_ids: Vec<String> = Vec::new();
    let mut named_stacks: Vec<String> = Vec::new();
    for (member, kind) in MEMBERS {
        let ids: Vec<&str> = match input.get(*member) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        for id in ids {
            out.target.get_or_insert_with(|| id.to_string());
            if *kind == Kind::Stack {
                named_stacks.push(id.to_string());
            }
            if let Some(stack) = stack_of(core, *kind, id).await?
                && !stack_ids.contains(&stack)
            {
                stack_ids.push(stack);
            }
        }
    }
    if let Some(arn) = input.get("ResourceArn").and_then(Value::as_str) {
        out.target.get_or_insert_with(|| arn.to_string());
        if let Some(parsed) = Arn::parse(arn) {
            let kind = match parsed.kind {
                ResourceKind::Stack => Kind::Stack,
                ResourceKind::Layer => Kind::Layer,
                ResourceKind::Instance => Kind::Instance,
            };
            if let Some(stack) = stack_of(core, kind, &parsed.id).await?
                && !stack_ids.contains(&stack)
            {
                stack_ids.push(stack);
            }
        }
    }
    if out.target.is_none()
        && let Some(arn) = input.get("IamUserArn").and_then(Value::as_str)
    {
        out.target = Some(arn.to_string());
    }
    for id in stack_ids {
        match core.find::<Stack>(&id).await? {
            Some(stack) => out.stacks.push(stack),
            None if named_stacks.contains(&id) => {
                out.missing_stack.get_or_insert(id);
            }
            None => {}
        }
    }
    Ok(out)
}

/// The policy context of a request by `user` for `action` on `resource`.
fn context(
    p: &Principal,
    user: &UserAccess,
    account: &str,
    action: &str,
    resource: &str,
) -> RequestContext {
    let mut ctx = RequestContext::new(action, resource)
        .with_iam_user(&user.arn, &user.user_name, &user.user_id, account)
        .with_secure_transport(p.secure_transport)
        .with_requested_region(&p.region);
    if let Some(ip) = p.source_ip {
        ctx = ctx.with_source_ip(ip);
    }
    ctx
}

/// The IAM policies of `user` for `action` (`service:Name`) on `resource`, with OpsWorks'
/// permission level combined in: the refusal's message when refused.
pub fn decide(
    p: &Principal,
    user: &UserAccess,
    account: &str,
    action: &str,
    resource: &str,
    grants: Grants,
) -> Result<(), String> {
    let key = DecisionKey {
        action,
        resource,
        level: grants.level,
        source_ip: p.source_ip,
        secure: p.secure_transport,
        region: &p.region,
        second: if user.time_dependent {
            jiff::Timestamp::now().as_second()
        } else {
            0
        },
    };
    if let Some(known) = user.decisions.get(&key) {
        return known;
    }
    let outcome = evaluate_now(p, user, account, action, resource, grants);
    user.decisions.put(&key, outcome.clone());
    outcome
}

fn evaluate_now(
    p: &Principal,
    user: &UserAccess,
    account: &str,
    action: &str,
    resource: &str,
    grants: Grants,
) -> Result<(), String> {
    let ctx = context(p, user, account, action, resource);
    let policies: Vec<&Policy> = user.policies.iter().collect();
    let decision = evaluate(&ctx, &policies);
    let reason = if action.starts_with("opsworks:") {
        DenialReason::of_authorization(authorize(action, decision, grants))
    } else {
        DenialReason::of_decision(decision)
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(access_denied_message(&user.arn, action, resource, reason)),
    }
}

fn grants(user: &UserAccess, level: Option<PermissionLevel>) -> Grants {
    Grants {
        level,
        self_management: user.self_management,
    }
}

/// Refuses the request unless the caller may run `operation` on everything it targets.
pub fn check(cx: &Ctx<'_>, operation: &str, targets: &Targets) -> Result<(), ApiError> {
    let Some(user) = &cx.principal.user else {
        return Ok(());
    };
    let Some(info) = action_info(operation) else {
        return Ok(());
    };
    let account = cx.core.account_id();
    let action = info.iam_action;
    let denied = |m: String| ApiError::AccessDenied(m);
    if info.scope == Scope::Account {
        // Account-wide reads a stack's level grants (DescribeOperatingSystems: Show) take the
        // user's best level; the IAM-only and self-management ones take none.
        return decide(
            cx.principal,
            user,
            account,
            action,
            "*",
            grants(user, user.best_level()),
        )
        .map_err(denied);
    }
    if let Some(id) = &targets.missing_stack {
        // An unknown stack: IAM alone decides, on the ARN it would have.
        let arn = Arn::new(cx.core.region(), account, ResourceKind::Stack, id).to_string();
        decide(
            cx.principal,
            user,
            account,
            action,
            &arn,
            grants(user, None),
        )
        .map_err(denied)?;
    }
    if targets.stacks.is_empty() {
        if targets.missing_stack.is_some() || LISTINGS.contains(&operation) {
            // Listings show only what the caller may see; unknown IDs are the handler's.
            return Ok(());
        }
        return decide(
            cx.principal,
            user,
            account,
            action,
            "*",
            grants(user, user.best_level()),
        )
        .map_err(denied);
    }
    for stack in &targets.stacks {
        decide(
            cx.principal,
            user,
            account,
            action,
            &stack.arn,
            grants(user, user.level(&stack.stack_id)),
        )
        .map_err(denied)?;
    }
    Ok(())
}

/// Whether the caller may run `operation` on `stack`: what listings show.
pub fn may(cx: &Ctx<'_>, operation: &str, stack: &Stack) -> bool {
    allowed_on(cx.principal, cx.core.account_id(), operation, stack)
}

/// [`may`], for callers without an operation context (the event and metrics endpoints).
pub fn allowed_on(p: &Principal, account: &str, operation: &str, stack: &Stack) -> bool {
    let Some(user) = &p.user else {
        return true;
    };
    let Some(info) = action_info(operation) else {
        return false;
    };
    decide(
        p,
        user,
        account,
        info.iam_action,
        &stack.arn,
        grants(user, user.level(&stack.stack_id)),
    )
    .is_ok()
}

/// Refuses unless the caller may run `operation` on `stack` (the event and metrics endpoints,
/// the log links), with AWS's refusal.
pub fn require_on(
    p: &Principal,
    account: &str,
    operation: &str,
    stack: &Stack,
) -> Result<(), ApiError> {
    let Some(user) = &p.user else {
        return Ok(());
    };
    let Some(info) = action_info(operation) else {
        return Err(ApiError::AccessDenied(format!(
            "User: {} is not authorized to perform: opsworks:{operation}",
            user.arn
        )));
    };
    decide(
        p,
        user,
        account,
        info.iam_action,
        &stack.arn,
        grants(user, user.level(&stack.stack_id)),
    )
    .map_err(ApiError::AccessDenied)
}

/// The address a principal called from, as the audit log writes it.
pub fn source(p: &Principal) -> Option<String> {
    p.source_ip.map(|ip: IpAddr| ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::identity;
    use crate::testkit;
    use serde_json::json;

    async fn user_with(core: &Core, doc: &str) -> std::sync::Arc<UserAccess> {
        let root = Principal::root("us-east-1");
        let cx = Ctx {
            core,
            principal: &root,
        };
        let made = crate::ops::iam::dispatch(cx, "CreateUser", json!({"UserName": "u"}))
            .await
            .unwrap();
        crate::ops::iam::dispatch(
            cx,
            "PutUserPolicy",
            json!({"UserName": "u", "PolicyName": "p", "PolicyDocument": doc}),
        )
        .await
        .unwrap();
        let stamps = identity::stamps(core).await.unwrap();
        let id = made["User"]["UserId"].as_str().unwrap();
        identity::user_access(core, id, &stamps)
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn kept_decisions_follow_the_source_address_and_the_clock() {
        let (_dir, core) = testkit::open().await;
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"opsworks:Describe*","Resource":"*",
            "Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#;
        let user = user_with(&core, doc).await;
        assert!(!user.time_dependent);
        let p = Principal::iam_user(user.clone(), "AKIA", "us-east-1");
        let from = |ip: &str| p.clone().from_ip(Some(ip.parse().unwrap()));
        let ask = |p: &Principal| {
            decide(
                p,
                &user,
                "123456789012",
                "opsworks:DescribeStacks",
                "arn:aws:opsworks:us-east-1:123456789012:stack/s/",
                Grants::default(),
            )
        };
        for _ in 0..2 {
            assert!(ask(&from("10.1.2.3")).is_ok());
            assert!(ask(&from("192.168.0.1")).is_err());
            assert!(ask(&p).is_err(), "no address: the condition fails");
        }
        let (_dir2, core2) = testkit::open().await;
        let timed = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"opsworks:*","Resource":"*",
            "Condition":{"DateLessThan":{"aws:CurrentTime":"2000-01-01T00:00:00Z"}}}]}"#;
        let user = user_with(&core2, timed).await;
        assert!(user.time_dependent);
        let p = Principal::iam_user(user.clone(), "AKIA", "us-east-1");
        assert!(
            decide(
                &p,
                &user,
                "1",
                "opsworks:DescribeStacks",
                "*",
                Grants::default()
            )
            .is_err()
        );
    }
}
