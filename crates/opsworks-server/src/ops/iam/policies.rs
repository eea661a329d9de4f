//! IAM policies: inline policies of users and groups, customer managed policies (AWS's OpsWorks
//! managed policies are predefined), and attaching managed policies to users and groups.
//!
//! Every document is parsed when written, so a malformed one is refused then with IAM's
//! `MalformedPolicyDocument` and what is wrong; sizes follow IAM's quotas (`LimitExceeded`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use opsworks_api::query::{AwsError, percent_encode_document};
use opsworks_model::Kind;
use opsworks_model::resource::{IamGroup, IamPolicy, IamUser, PolicyVersion};
use opsworks_policy::{
    AWS_MANAGED_POLICIES, ManagedPolicy, Policy, PolicyKind, aws_managed_policy, check_size,
    counted_size,
};
use opsworks_store::Filter;

use super::{
    Ctx, IamResult, already_exists, arn_name, arn_path, check_path, delete_conflict, internal,
    invalid_input, limit_exceeded, no_such, no_such_group, no_such_user, page, req, s,
};
use crate::core::identity::{iam_id, iam_now};

/// AWS's quota of managed policies attached to one user or group.
const ATTACHED_PER_ENTITY: usize = 10;

fn malformed(e: opsworks_policy::PolicyError) -> AwsError {
    AwsError::service("MalformedPolicyDocument", e.to_string())
}

fn too_large(e: opsworks_policy::SizeLimitExceeded) -> AwsError {
    limit_exceeded(e.to_string())
}

/// Checks an inline document and the entity's inline policies' total size with it.
fn check_inline(
    kind: PolicyKind,
    existing: &BTreeMap<String, String>,
    name: &str,
    doc: &str,
    entity: &str,
) -> Result<(), AwsError> {
    Policy::parse(doc, kind).map_err(malformed)?;
    let total: usize = existing
        .iter()
        .filter(|(n, _)| n.as_str() != name)
        .map(|(_, d)| counted_size(d))
        .sum::<usize>()
        + counted_size(doc);
    check_size(kind, total, entity).map_err(too_large)
}

async fn users(w: &mut crate::core::Write<'_>) -> Result<Vec<IamUser>, AwsError> {
    w.list(Filter::All).await.map_err(internal)
}

async fn groups(w: &mut crate::core::Write<'_>) -> Result<Vec<IamGroup>, AwsError> {
    w.list(Filter::All).await.map_err(internal)
}

fn pick_user(all: Vec<IamUser>, name: &str) -> Result<IamUser, AwsError> {
    all.into_iter()
        .find(|u| u.user_name.eq_ignore_ascii_case(name))
        .ok_or_else(|| no_such_user(name))
}

fn pick_group(all: Vec<IamGroup>, name: &str) -> Result<IamGroup, AwsError> {
    all.into_iter()
        .find(|g| g.group_name.eq_ignore_ascii_case(name))
        .ok_or_else(|| no_such_group(name))
}

/// PutUserPolicy: adds or replaces an inline policy of a user.
pub async fn put_user_policy(cx: Ctx<'_>, input: &Value) -> IamResult {
    let (name, policy, doc) = (
        req(input, "UserName")?,
        req(input, "PolicyName")?,
        req(input, "PolicyDocument")?,
    );
    let mut w = cx.core.write().await.map_err(internal)?;
    let mut user = pick_user(users(&mut w).await?, name)?;
    check_inline(
        PolicyKind::InlineUser,
        &user.inline_policies,
        policy,
        doc,
        &user.user_name,
    )?;
    user.inline_policies.insert(policy.into(), doc.into());
    w.put(&user).await.map_err(internal)?;
    w.commit().await.map_err(internal)?;
    Ok(json!({}))
}

/// PutGroupPolicy: adds or replaces an inline policy of a group.
pub async fn put_group_policy(cx: Ctx<'_>, input: &Value) -> IamResult {
    let (name, policy, doc) = (
        req(input, "GroupName")?,
        req(input, "PolicyName")?,
        req(input, "PolicyDocument")?,
    );
    let mut w = cx.core.write().await.map_err(internal)?;
    let mut group = pick_group(groups(&mut w).await?, name)?;
    check_inline(
        PolicyKind::InlineGroup,
        &group.inline_policies,
        policy,
        doc,
        &group.group_name,
    )?;
    group.inline_policies.insert(policy.into(), doc.into());
    w.put(&group).await.map_err(internal)?;
    w.commit().await.map_err(internal)?;
    Ok(json!({}))
}

fn no_such_inline(what: &str, policy: &str) -> AwsError {
    no_such(format!(
        "The {what} policy with name {policy} cannot be found."
    ))
}

/// GetUserPolicy: the document URL-encoded, as IAM returns it.
pub async fn get_user_policy(cx: Ctx<'_>, input: &Value) -> IamResult {
    let (name, policy) = (req(input, "UserName")?, req(input, "PolicyName")?);
    let user = super::users::by_name(cx, name)
        .await?
        .ok_or_else(|| no_such_user(name))?;
    let doc = user
        .inline_policies
        .get(policy)
        .ok_or_else(|| no_such_inline("user", policy))?;
    Ok(json!({
        "UserName": user.user_name,
        "PolicyName": policy,
        "PolicyDocument": percent_encode_document(doc),
    }))
}

/// GetGroupPolicy.
pub async fn get_group_policy(cx: Ctx<'_>, input: &Value) -> IamResult {
    let (name, policy) = (req(input, "GroupName")?, req(input, "PolicyName")?);
    let group = super::group_by_name(cx, name)
        .await?
        .ok_or_else(|| no_such_group(name))?;
    let doc = group
        .inline_policies
        .get(policy)
        .ok_or_else(|| no_such_inline("group", policy))?;
    Ok(json!({
        "GroupName": group.group_name,
        "PolicyName": policy,
        "PolicyDocument": percent_encode_document(doc),
    }))
}

/// ListUserPolicies: the inline policies' names.
pub async fn list_user_policies(cx: Ctx<'_>, input: &Value) -> IamResult {
    let name = req(input, "UserName")?;
    let user = super::users::by_name(cx, name)
        .await?
        .ok_or_else(|| no_such_user(name))?;
    page(
        user.inline_policies.keys().map(|k| json!(k)).collect(),
        input,
        "PolicyNames",
    )
}

/// ListGroupPolicies.
pub async fn list_group_policies(cx: Ctx<'_>, input: &Value) -> IamResult {
    let name = req(input, "GroupName")?;
    let group = super::group_by_name(cx, name)
        .await?
        .ok_or_else(|| no_such_group(name))?;
    page(
        group.inline_policies.keys().map(|k| json!(k)).collect(),
        input,
        "PolicyNames",
    )
}

/// DeleteUserPolicy.
pub async fn delete_user_policy(cx: Ctx<'_>, input: &Value) -> IamResult {
    let (name, policy) = (req(input, "UserName")?, req(input, "PolicyName")?);
    let mut w = cx.core.write().await.map_err(internal)?;
    let mut user = pick_user(users(&mut w).await?, name)?;
    if user.inline_policies.remove(policy).is_none() {
        return Err(no_such_inline("user", policy));
    }
    w.put(&user).await.map_err(internal)?;
    w.commit().await.map_err(internal)?;
    Ok(json!({}))
}

/// DeleteGroupPolicy.
pub async fn delete_group_policy(cx: Ctx<'_>, input: &Value) -> IamResult {
    let (name, policy) = (req(input, "GroupName")?, req(input, "PolicyName")?);
    let mut w = cx.core.write().await.map_err(internal)?;
    let mut group = pick_group(groups(&mut w).await?, name)?;
    if group.inline_policies.remove(policy).is_none() {
        return Err(no_such_inline("group", policy));
    }
    w.put(&group).await.map_err(internal)?;
    w.commit().await.map_err(internal)?;
    Ok(json!({}))
}

/// How many users and groups attach `arn`.
async fn attachments(cx: Ctx<'_>, arn: &str) -> Result<usize, AwsError> {
    let users = cx
        .core
        .list::<IamUser>(Filter::All)
        .await
        .map_err(internal)?;
    let groups = cx
        .core
        .list::<IamGroup>(Filter::All)
        .await
        .map_err(internal)?;
    Ok(users
        .iter()
        .filter(|u| u.attached_policies.iter().any(|a| a == arn))
        .count()
        + groups
            .iter()
            .filter(|g| g.attached_policies.iter().any(|a| a == arn))
            .count())
}

fn policy_shape(p: &IamPolicy, attached: usize) -> Value {
    let mut v = json!({
        "PolicyName": p.policy_name,
        "PolicyId": p.policy_id,
        "Arn": p.arn,
        "Path": p.path,
        "DefaultVersionId": p.default_version_id,
        "AttachmentCount": attached,
        "PermissionsBoundaryUsageCount": 0,
        "IsAttachable": true,
        "CreateDate": p.create_date,
        "UpdateDate": p.update_date,
    });
    if let Some(d) = &p.description {
        v["Description"] = json!(d);
    }
    v
}

/// AWS's predefined managed policy as the `Policy` shape.
fn aws_policy_shape(p: &ManagedPolicy, attached: usize) -> Value {
    json!({
        "PolicyName": p.name,
        // A stable ID per policy, in AWS's form.
        "PolicyId": format!("ANPA{}", &hex::encode(sha_of(p.arn))[..17].to_uppercase()),
        "Arn": p.arn,
        "Path": p.path,
        "DefaultVersionId": p.version_id,
        "AttachmentCount": attached,
        "PermissionsBoundaryUsageCount": 0,
        "IsAttachable": true,
        "Description": p.description,
        "CreateDate": iso_z(p.create_date),
        "UpdateDate": iso_z(p.update_date),
    })
}

fn sha_of(s: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes()).to_vec()
}

/// `2021-01-22T16:29:08+00:00` → `2021-01-22T16:29:08Z`, IAM's form.
fn iso_z(t: &str) -> String {
    t.strip_suffix("+00:00")
        .map_or_else(|| t.to_string(), |b| format!("{b}Z"))
}

/// CreatePolicy: a customer managed policy, version `v1`.
pub async fn create_policy(cx: Ctx<'_>, input: &Value) -> IamResult {
    let (name, doc) = (req(input, "PolicyName")?, req(input, "PolicyDocument")?);
    let path = s(input, "Path").unwrap_or("/");
    check_path(path)?;
    Policy::parse(doc, PolicyKind::Managed).map_err(malformed)?;
    check_size(PolicyKind::Managed, counted_size(doc), name).map_err(too_large)?;
    let arn = format!("arn:aws:iam::{}:policy{path}{name}", cx.core.account_id());
    let mut w = cx.core.write().await.map_err(internal)?;
    let existing: Vec<IamPolicy> = w.list(Filter::All).await.map_err(internal)?;
    if existing.iter().any(|p| p.policy_name == name) {
        return Err(already_exists(format!(
            "A policy called {name} already exists. Duplicate names are not allowed."
        )));
    }
    let now = iam_now();
    let policy = IamPolicy {
        arn,
        policy_id: iam_id("ANPA", 21),
        policy_name: name.to_string(),
        path: path.to_string(),
        description: s(input, "Description").map(str::to_string),
        create_date: now.clone(),
        update_date: now.clone(),
        default_version_id: "v1".into(),
        versions: vec![PolicyVersion {
            version_id: "v1".into(),
            document: doc.to_string(),
            create_date: now,
        }],
        tags: Vec::new(),
    };
    w.put(&policy).await.map_err(internal)?;
    w.commit().await.map_err(internal)?;
    Ok(json!({ "Policy": policy_shape(&policy, 0) }))
}

fn no_such_policy(arn: &str) -> AwsError {
    no_such(format!("Policy {arn} was not found."))
}

/// GetPolicy: AWS's or the account's.
pub async fn get_policy(cx: Ctx<'_>, input: &Value) -> IamResult {
    let arn = req(input, "PolicyArn")?;
    let attached = attachments(cx, arn).await?;
    if let Some(p) = aws_managed_policy(arn) {
        return Ok(json!({ "Policy": aws_policy_shape(p, attached) }));
    }
    let p = cx
        .core
        .find::<IamPolicy>(arn)
        .await
        .map_err(internal)?
        .ok_or_else(|| no_such_policy(arn))?;
    Ok(json!({ "Policy": policy_shape(&p, attached) }))
}

/// GetPolicyVersion: the document URL-encoded, as IAM returns it.
pub async fn get_policy_version(cx: Ctx<'_>, input: &Value) -> IamResult {
    let (arn, version) = (req(input, "PolicyArn")?, req(input, "VersionId")?);
    let missing = || {
        no_such(format!(
            "Policy {arn} version {version} does not exist or is not attachable."
        ))
    };
    if let Some(p) = aws_managed_policy(arn) {
        if version != p.version_id {
            return Err(missing());
        }
        return Ok(json!({"PolicyVersion": {
            "Document": percent_encode_document(p.document),
            "VersionId": p.version_id,
            "IsDefaultVersion": true,
            "CreateDate": iso_z(p.create_date),
        }}));
    }
    let p = cx
        .core
        .find::<IamPolicy>(arn)
        .await
        .map_err(internal)?
        .ok_or_else(|| no_such_policy(arn))?;
    let v = p
        .versions
        .iter()
        .find(|v| v.version_id == version)
        .ok_or_else(missing)?;
    Ok(json!({"PolicyVersion": {
        "Document": percent_encode_document(&v.document),
        "VersionId": v.version_id,
        "IsDefaultVersion": v.version_id == p.default_version_id,
        "CreateDate": v.create_date,
    }}))
}

/// ListPolicies: `Scope` `All` (default), `AWS` or `Local`; `OnlyAttached`; `PathPrefix`.
pub async fn list_policies(cx: Ctx<'_>, input: &Value) -> IamResult {
    let scope = s(input, "Scope").unwrap_or("All");
    let only_attached = input
        .get("OnlyAttached")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let prefix = s(input, "PathPrefix").unwrap_or("/");
    let users = cx
        .core
        .list::<IamUser>(Filter::All)
        .await
        .map_err(internal)?;
    let groups = cx
        .core
        .list::<IamGroup>(Filter::All)
        .await
        .map_err(internal)?;
    let count = |arn: &str| {
        users
            .iter()
            .filter(|u| u.attached_policies.iter().any(|a| a == arn))
            .count()
            + groups
                .iter()
                .filter(|g| g.attached_policies.iter().any(|a| a == arn))
                .count()
    };
    let mut out: Vec<(String, Value)> = Vec::new();
    if scope != "Local" {
        for p in AWS_MANAGED_POLICIES {
            out.push((p.name.to_string(), aws_policy_shape(p, count(p.arn))));
        }
    }
    if scope != "AWS" {
        for p in cx
            .core
            .list::<IamPolicy>(Filter::All)
            .await
            .map_err(internal)?
            .iter()
        {
            out.push((p.policy_name.clone(), policy_shape(p, count(&p.arn))));
        }
    }
    out.retain(|(_, v)| {
        v["Path"].as_str().is_some_and(|p| p.starts_with(prefix))
            && (!only_attached || v["AttachmentCount"].as_u64().unwrap_or(0) > 0)
    });
    out.sort_by(|a, b| a.0.cmp(&b.0));
    page(out.into_iter().map(|(_, v)| v).collect(), input, "Policies")
}

/// DeletePolicy: a customer managed policy attached to nothing.
pub async fn delete_policy(cx: Ctx<'_>, input: &Value) -> IamResult {
    let arn = req(input, "PolicyArn")?;
    if aws_managed_policy(arn).is_some() {
        return Err(invalid_input(format!(
            "{arn} is an AWS managed policy; it cannot be deleted."
        )));
    }
    let mut w = cx.core.write().await.map_err(internal)?;
    w.find::<IamPolicy>(arn)
        .await
        .map_err(internal)?
        .ok_or_else(|| no_such_policy(arn))?;
    let attached = users(&mut w)
        .await?
        .iter()
        .any(|u| u.attached_policies.iter().any(|a| a == arn))
        || groups(&mut w)
            .await?
            .iter()
            .any(|g| g.attached_policies.iter().any(|a| a == arn));
    if attached {
        return Err(delete_conflict(
            "Cannot delete a policy attached to entities.",
        ));
    }
    w.delete(Kind::IamPolicy, arn).await.map_err(internal)?;
    w.commit().await.map_err(internal)?;
    Ok(json!({}))
}

/// Whether `arn` names a policy that can be attached (AWS's or the account's).
async fn attachable(w: &mut crate::core::Write<'_>, arn: &str) -> Result<(), AwsError> {
    if aws_managed_policy(arn).is_some()
        || w.find::<IamPolicy>(arn).await.map_err(internal)?.is_some()
    {
        Ok(())
    } else {
        Err(no_such(format!(
            "Policy {arn} does not exist or is not attachable."
        )))
    }
}

fn attach(list: &mut Vec<String>, arn: &str) -> Result<bool, AwsError> {
    if list.iter().any(|a| a == arn) {
        return Ok(false);
    }
    if list.len() >= ATTACHED_PER_ENTITY {
        return Err(limit_exceeded(format!(
            "Cannot exceed quota for PoliciesPerUser: {ATTACHED_PER_ENTITY}"
        )));
    }
    list.push(arn.to_string());
    Ok(true)
}

fn detach(list: &mut Vec<String>, arn: &str) -> Result<(), AwsError> {
    let before = list.len();
    list.retain(|a| a != arn);
    if list.len() == before {
        return Err(no_such(format!("Policy {arn} was not found.")));
    }
    Ok(())
}

/// AttachUserPolicy.
pub async fn attach_user_policy(cx: Ctx<'_>, input: &Value) -> IamResult {
    let (name, arn) = (req(input, "UserName")?, req(input, "PolicyArn")?);
    let mut w = cx.core.write().await.map_err(internal)?;
    let mut user = pick_user(users(&mut w).await?, name)?;
    attachable(&mut w, arn).await?;
    if attach(&mut user.attached_policies, arn)? {
        w.put(&user).await.map_err(internal)?;
    }
    w.commit().await.map_err(internal)?;
    Ok(json!({}))
}

/// DetachUserPolicy.
pub async fn detach_user_policy(cx: Ctx<'_>, input: &Value) -> IamResult {
    let (name, arn) = (req(input, "UserName")?, req(input, "PolicyArn")?);
    let mut w = cx.core.write().await.map_err(internal)?;
    let mut user = pick_user(users(&mut w).await?, name)?;
    detach(&mut user.attached_policies, arn)?;
    w.put(&user).await.map_err(internal)?;
    w.commit().await.map_err(internal)?;
    Ok(json!({}))
}

/// AttachGroupPolicy.
pub async fn attach_group_policy(cx: Ctx<'_>, input: &Value) -> IamResult {
    let (name, arn) = (req(input, "GroupName")?, req(input, "PolicyArn")?);
    let mut w = cx.core.write().await.map_err(internal)?;
    let mut group = pick_group(groups(&mut w).await?, name)?;
    attachable(&mut w, arn).await?;
    if attach(&mut group.attached_policies, arn)? {
        w.put(&group).await.map_err(internal)?;
    }
    w.commit().await.map_err(internal)?;
    Ok(json!({}))
}

/// DetachGroupPolicy.
pub async fn detach_group_policy(cx: Ctx<'_>, input: &Value) -> IamResult {
    let (name, arn) = (req(input, "GroupName")?, req(input, "PolicyArn")?);
    let mut w = cx.core.write().await.map_err(internal)?;
    let mut group = pick_group(groups(&mut w).await?, name)?;
    detach(&mut group.attached_policies, arn)?;
    w.put(&group).await.map_err(internal)?;
    w.commit().await.map_err(internal)?;
    Ok(json!({}))
}

fn attached_shapes(list: &[String], input: &Value) -> Vec<Value> {
    let prefix = s(input, "PathPrefix").unwrap_or("/");
    list.iter()
        .filter(|arn| arn_path(arn).starts_with(prefix))
        .map(|arn| json!({"PolicyName": arn_name(arn), "PolicyArn": arn}))
        .collect()
}

/// ListAttachedUserPolicies.
pub async fn list_attached_user_policies(cx: Ctx<'_>, input: &Value) -> IamResult {
    let name = req(input, "UserName")?;
    let user = super::users::by_name(cx, name)
        .await?
        .ok_or_else(|| no_such_user(name))?;
    page(
        attached_shapes(&user.attached_policies, input),
        input,
        "AttachedPolicies",
    )
}

/// ListAttachedGroupPolicies.
pub async fn list_attached_group_policies(cx: Ctx<'_>, input: &Value) -> IamResult {
    let name = req(input, "GroupName")?;
    let group = super::group_by_name(cx, name)
        .await?
        .ok_or_else(|| no_such_group(name))?;
    page(
        attached_shapes(&group.attached_policies, input),
        input,
        "AttachedPolicies",
    )
}
