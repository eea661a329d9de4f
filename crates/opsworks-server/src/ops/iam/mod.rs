//! IAM on the server's own endpoint (the Query protocol, driven by botocore's `iam` model):
//! users, access keys, groups, inline and managed policies, login profiles. Each call is
//! authorized for its caller (`iam:<Operation>` on the entity's ARN; the root may do anything)
//! and, when it may change something, written to the audit log.
//!
//! Inputs arrive parsed and validated against the model (`opsworks_api::query`); outputs are
//! JSON values shaped like the model's output shapes, written as XML by the edge. Errors carry
//! IAM's codes and wording (`NoSuchEntity`, `EntityAlreadyExists`, `DeleteConflict`,
//! `LimitExceeded`, `MalformedPolicyDocument`, ...).

mod groups;
mod policies;
mod users;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};

use opsworks_api::query::AwsError;
use opsworks_model::resource::{IamGroup, IamUser};
use opsworks_store::Filter;

use super::Ctx;
use super::query_calls::{self, Call, access_denied};
use crate::core::CoreError;

/// What an IAM handler returns.
pub type IamResult = Result<Value, AwsError>;

/// Runs an IAM operation for the caller (see the module): the handler table of the Query
/// endpoint's `iam` service.
pub fn dispatch<'a>(cx: Ctx<'a>, operation: &'a str, input: Value) -> BoxFuture<'a, IamResult> {
    Box::pin(async move {
        // A call whose target cannot be named (no such entity) is still audited, as a refusal.
        let (target, found) = match target_of(cx, operation, &input).await {
            Ok(target) => (target, Ok(())),
            Err(e) => ("*".to_string(), Err(e)),
        };
        let call = Call {
            service: "iam",
            operation,
            target: &target,
            denied: access_denied,
        };
        let audited = |result: &IamResult| audited(&input, result);
        match found {
            Ok(()) => query_calls::run(cx, call, run(cx, operation, &input), audited).await,
            Err(e) => query_calls::refused(cx, call, e, audited).await,
        }
    })
}

async fn run(cx: Ctx<'_>, operation: &str, input: &Value) -> IamResult {
    match operation {
        "CreateUser" => users::create_user(cx, input).await,
        "GetUser" => users::get_user(cx, input).await,
        "ListUsers" => users::list_users(cx, input).await,
        "UpdateUser" => users::update_user(cx, input).await,
        "DeleteUser" => users::delete_user(cx, input).await,
        "CreateAccessKey" => users::create_access_key(cx, input).await,
        "ListAccessKeys" => users::list_access_keys(cx, input).await,
        "UpdateAccessKey" => users::update_access_key(cx, input).await,
        "DeleteAccessKey" => users::delete_access_key(cx, input).await,
        "GetAccessKeyLastUsed" => users::get_access_key_last_used(cx, input).await,
        "CreateLoginProfile" => users::create_login_profile(cx, input).await,
        "GetLoginProfile" => users::get_login_profile(cx, input).await,
        "UpdateLoginProfile" => users::update_login_profile(cx, input).await,
        "DeleteLoginProfile" => users::delete_login_profile(cx, input).await,
        "CreateGroup" => groups::create_group(cx, input).await,
        "GetGroup" => groups::get_group(cx, input).await,
        "ListGroups" => groups::list_groups(cx, input).await,
        "DeleteGroup" => groups::delete_group(cx, input).await,
        "AddUserToGroup" => groups::add_user_to_group(cx, input).await,
        "RemoveUserFromGroup" => groups::remove_user_from_group(cx, input).await,
        "ListGroupsForUser" => groups::list_groups_for_user(cx, input).await,
        "PutUserPolicy" => policies::put_user_policy(cx, input).await,
        "GetUserPolicy" => policies::get_user_policy(cx, input).await,
        "ListUserPolicies" => policies::list_user_policies(cx, input).await,
        "DeleteUserPolicy" => policies::delete_user_policy(cx, input).await,
        "PutGroupPolicy" => policies::put_group_policy(cx, input).await,
        "GetGroupPolicy" => policies::get_group_policy(cx, input).await,
        "ListGroupPolicies" => policies::list_group_policies(cx, input).await,
        "DeleteGroupPolicy" => policies::delete_group_policy(cx, input).await,
        "CreatePolicy" => policies::create_policy(cx, input).await,
        "GetPolicy" => policies::get_policy(cx, input).await,
        "GetPolicyVersion" => policies::get_policy_version(cx, input).await,
        "ListPolicies" => policies::list_policies(cx, input).await,
        "DeletePolicy" => policies::delete_policy(cx, input).await,
        "AttachUserPolicy" => policies::attach_user_policy(cx, input).await,
        "DetachUserPolicy" => policies::detach_user_policy(cx, input).await,
        "ListAttachedUserPolicies" => policies::list_attached_user_policies(cx, input).await,
        "AttachGroupPolicy" => policies::attach_group_policy(cx, input).await,
        "DetachGroupPolicy" => policies::detach_group_policy(cx, input).await,
        "ListAttachedGroupPolicies" => policies::list_attached_group_policies(cx, input).await,
        other => Err(AwsError::UnsupportedOperation {
            message: format!("The operation {other} of IAM is not supported by this server."),
        }),
    }
}

/// The ARN a call acts on, as the authorizer evaluates it: the user's, the group's, the
/// policy's, or `*` for listings.
async fn target_of(cx: Ctx<'_>, operation: &str, input: &Value) -> Result<String, AwsError> {
    let account = cx.core.account_id();
    if let Some(arn) = s(input, "PolicyArn")
        && !operation.ends_with("UserPolicy")
        && !operation.ends_with("GroupPolicy")
    {
        return Ok(arn.to_string());
    }
    if operation == "CreatePolicy" {
        return Ok(format!(
            "arn:aws:iam::{account}:policy{}{}",
            s(input, "Path").unwrap_or("/"),
            s(input, "PolicyName").unwrap_or("")
        ));
    }
    if operation == "GetAccessKeyLastUsed" {
        let owner = match s(input, "AccessKeyId") {
            Some(id) => users::owner_of_key(cx, id).await?,
            None => None,
        };
        return Ok(owner.map_or_else(|| "*".to_string(), |u| u.arn));
    }
    let group_ops = operation.contains("Group") && operation != "ListGroupsForUser";
    if group_ops && let Some(name) = s(input, "GroupName") {
        return Ok(match group_by_name(cx, name).await? {
            Some(g) => g.arn,
            None => format!("arn:aws:iam::{account}:group{}{name}", path_or_root(input)),
        });
    }
    let name = match s(input, "UserName") {
        Some(n) => Some(n.to_string()),
        None if user_optional(operation) => cx.principal.user.as_ref().map(|u| u.user_name.clone()),
        None => None,
    };
    match name {
        Some(name) => Ok(match users::by_name(cx, &name).await? {
            Some(u) => u.arn,
            None => format!("arn:aws:iam::{account}:user{}{name}", path_or_root(input)),
        }),
        None if cx.principal.is_root() && user_optional(operation) => {
            Ok(format!("arn:aws:iam::{account}:root"))
        }
        None => Ok("*".to_string()),
    }
}

fn path_or_root(input: &Value) -> &str {
    s(input, "Path").unwrap_or("/")
}

/// Operations whose `UserName` defaults to the caller.
fn user_optional(operation: &str) -> bool {
    matches!(
        operation,
        "GetUser"
            | "CreateAccessKey"
            | "ListAccessKeys"
            | "UpdateAccessKey"
            | "DeleteAccessKey"
            | "CreateLoginProfile"
            | "GetLoginProfile"
            | "DeleteLoginProfile"
    )
}

/// What an audit record of an IAM call is about: the entity its input names, or what a create
/// made when the input named nothing (CreateAccessKey for oneself).
fn audited(input: &Value, result: &IamResult) -> Option<String> {
    [
        "UserName",
        "GroupName",
        "PolicyArn",
        "PolicyName",
        "AccessKeyId",
    ]
    .iter()
    .find_map(|k| s(input, k))
    .map(str::to_string)
    .or_else(|| {
        result.as_ref().ok().and_then(|v| {
            v.as_object()?
                .values()
                .find_map(|x| x.get("AccessKeyId").and_then(Value::as_str))
                .map(str::to_string)
        })
    })
}

// Helpers shared by the handlers.

/// A string member of the input.
fn s<'a>(input: &'a Value, key: &str) -> Option<&'a str> {
    input.get(key).and_then(Value::as_str)
}

/// A required string member (the model's validation has checked it is there).
fn req<'a>(input: &'a Value, key: &str) -> Result<&'a str, AwsError> {
    s(input, key).ok_or_else(|| AwsError::Invalid {
        code: "ValidationError",
        message: format!("1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null", lower_camel(key)),
    })
}

fn lower_camel(name: &str) -> String {
    let mut c = name.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

/// A store failure as IAM's `ServiceFailure` (its detail goes to the log only).
fn internal(e: impl Into<CoreError>) -> AwsError {
    AwsError::internal(e.into().to_string())
}

fn no_such(message: String) -> AwsError {
    AwsError::service("NoSuchEntity", message)
}

fn no_such_user(name: &str) -> AwsError {
    no_such(format!("The user with name {name} cannot be found."))
}

fn no_such_group(name: &str) -> AwsError {
    no_such(format!("The group with name {name} cannot be found."))
}

fn already_exists(message: String) -> AwsError {
    AwsError::service("EntityAlreadyExists", message)
}

fn limit_exceeded(message: String) -> AwsError {
    AwsError::service("LimitExceeded", message)
}

fn delete_conflict(message: &str) -> AwsError {
    AwsError::service("DeleteConflict", message.to_string())
}

fn invalid_input(message: String) -> AwsError {
    AwsError::service("InvalidInput", message)
}

/// A path as IAM requires it: `/`, or `/a/b/`.
fn check_path(path: &str) -> Result<(), AwsError> {
    if path.starts_with('/') && path.ends_with('/') && !path.contains("//") {
        Ok(())
    } else {
        Err(AwsError::Invalid {
            code: "ValidationError",
            message: format!(
                "The specified value for path is invalid. It must begin and end with / and contain only alphanumeric characters and/or / characters. Got '{path}'."
            ),
        })
    }
}

/// The group named `name` (whatever its case), if any.
async fn group_by_name(cx: Ctx<'_>, name: &str) -> Result<Option<IamGroup>, AwsError> {
    Ok(cx
        .core
        .list::<IamGroup>(Filter::All)
        .await
        .map_err(internal)?
        .iter()
        .find(|g| g.group_name.eq_ignore_ascii_case(name))
        .map(|g| g.to_owned_value()))
}

/// The user a call names, or the caller when it names none (operations whose `UserName` is
/// optional); the root, naming none, has no user.
async fn named_or_caller(cx: Ctx<'_>, input: &Value) -> Result<IamUser, AwsError> {
    match s(input, "UserName") {
        Some(name) => users::by_name(cx, name)
            .await?
            .ok_or_else(|| no_such_user(name)),
        None => match &cx.principal.user {
            Some(u) => cx
                .core
                .find::<IamUser>(&u.user_id)
                .await
                .map_err(internal)?
                .map(|u| u.to_owned_value())
                .ok_or_else(|| no_such_user(&u.user_name)),
            None => Err(invalid_input(
                "The root user has no IAM user: name one with UserName".to_string(),
            )),
        },
    }
}

/// A page of a listing: `MaxItems` (default 100) items from the opaque `Marker` on, with
/// `IsTruncated` and the next `Marker` added to `out` under `member`.
fn page(items: Vec<Value>, input: &Value, member: &str) -> Result<Value, AwsError> {
    let start = match s(input, "Marker") {
        None => 0,
        Some(m) => m
            .strip_prefix("m")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= items.len())
            .ok_or_else(|| invalid_input(format!("Invalid Marker: {m}")))?,
    };
    let max = input
        .get("MaxItems")
        .and_then(Value::as_u64)
        .map_or(100, |n| n as usize)
        .max(1);
    let end = (start + max).min(items.len());
    let truncated = end < items.len();
    let mut out = Map::new();
    out.insert(member.into(), Value::Array(items[start..end].to_vec()));
    out.insert("IsTruncated".into(), json!(truncated));
    if truncated {
        out.insert("Marker".into(), json!(format!("m{end}")));
    }
    Ok(Value::Object(out))
}

/// The name part of an IAM ARN (`...:user/path/name` → `name`).
fn arn_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The path part of an IAM ARN (`...:policy/a/b/name` → `/a/b/`).
fn arn_path(arn: &str) -> String {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or("");
    match resource.split_once('/') {
        Some((_, rest)) => match rest.rfind('/') {
            Some(i) => format!("/{}/", &rest[..i]),
            None => "/".into(),
        },
        None => "/".into(),
    }
}

#[cfg(test)]
mod tests;
