//! OpsWorks users and permissions: CreateUserProfile, DescribeUserProfiles, UpdateUserProfile,
//! DeleteUserProfile, DescribeMyUserProfile, UpdateMyUserProfile, SetPermission,
//! DescribePermissions and GrantAccess.
//!
//! A profile gives an IAM user a Linux account (`SshUsername`, a stable UID, `SshPublicKey` in
//! its `authorized_keys`) on every instance of each stack where their permission has `AllowSsh`
//! (`AllowSudo` adds a sudoers line). Every change that alters who may log in where reaches the
//! stacks' online instances at once as an `execute_recipes` command running `ssh_users` (the
//! original's `sync_remote_users`), without Setup.

use serde_json::{Value, json};

use opsworks_api::{ApiError, shapes};
use opsworks_model::Kind;
use opsworks_model::instance::InstanceStatus;
use opsworks_model::resource::{IamUser, Instance, Permission, Stack, UserProfile};
use opsworks_policy::PermissionLevel;
use opsworks_store::Filter;

use super::{Ctx, OpResult, Reply, authz};
use crate::core::{CoreError, users};

/// Account names the instances already use for themselves.
const RESERVED: &[&str] = &[
    "root",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "nobody",
    "sshd",
    "deploy",
    "opsworks",
    "memcache",
    "mysql",
    "haproxy",
    "nginx",
    "systemd-network",
    "messagebus",
    "_apt",
];

/// `SshUsername` as OpsWorks keeps it: letters, digits, `-` and `_` (other punctuation
/// removed), lower case as Linux account names are, starting with a letter or `_`, at most 32.
pub fn clean_username(raw: &str) -> String {
    let mut s: String = raw
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if s.chars()
        .next()
        .is_some_and(|c| !(c.is_ascii_lowercase() || c == '_'))
    {
        s.insert(0, 'u');
    }
    s.truncate(32);
    s
}

fn check_username(name: &str) -> Result<(), ApiError> {
    if name.is_empty() {
        return Err(ApiError::Validation(
            "SshUsername must have at least one letter, digit, - or _".into(),
        ));
    }
    if RESERVED.contains(&name) {
        return Err(ApiError::Validation(format!(
            "SshUsername {name} is an account the instances use for themselves; choose another"
        )));
    }
    Ok(())
}

fn check_key(key: Option<&str>) -> Result<(), ApiError> {
    if let Some(k) = key.filter(|k| !k.trim().is_empty()) {
        let kind = k.split_whitespace().next().unwrap_or("");
        let known =
            kind.starts_with("ssh-") || kind.starts_with("ecdsa-") || kind.starts_with("sk-");
        if !known || k.split_whitespace().count() < 2 || k.contains('\n') {
            return Err(ApiError::Validation(
                "SshPublicKey must be one OpenSSH public key line (ssh-ed25519 AAAA... comment)"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// The name part of an IAM user ARN, or a validation error for anything else.
fn user_name_of(arn: &str) -> Result<&str, ApiError> {
    let resource = arn
        .strip_prefix("arn:aws:iam::")
        .and_then(|r| r.split_once(':'))
        .map(|(_, r)| r);
    match resource.and_then(|r| r.strip_prefix("user/")) {
        Some(path_name) if !path_name.is_empty() => {
            Ok(path_name.rsplit('/').next().unwrap_or(path_name))
        }
        _ => Err(ApiError::Validation(format!(
            "IamUserArn must be an IAM user ARN (arn:aws:iam::ACCOUNT:user/NAME); got '{arn}'"
        ))),
    }
}

fn profile_view(p: &UserProfile) -> Value {
    let mut v = json!({
        "IamUserArn": p.iam_user_arn,
        "Name": p.name,
        "SshUsername": p.ssh_username,
        "AllowSelfManagement": p.allow_self_management,
    });
    if let Some(k) = &p.ssh_public_key {
        v["SshPublicKey"] = json!(k);
    }
    v
}

fn permission_view(p: &Permission) -> Value {
    json!({
        "StackId": p.stack_id,
        "IamUserArn": p.iam_user_arn,
        "AllowSsh": p.allow_ssh,
        "AllowSudo": p.allow_sudo,
        "Level": p.level,
    })
}

fn not_found_profile(arn: &str) -> ApiError {
    ApiError::ResourceNotFound(format!("Unable to find user with ARN {arn}"))
}

/// CreateUserProfile.
pub async fn create_user_profile(cx: Ctx<'_>, req: shapes::CreateUserProfileRequest) -> OpResult {
    let arn = req.iam_user_arn;
    let iam_name = user_name_of(&arn)?.to_string();
    let username = clean_username(req.ssh_username.as_deref().unwrap_or(&iam_name));
    check_username(&username)?;
    check_key(req.ssh_public_key.as_deref())?;
    let mut w = cx.core.write().await?;
    let profiles: Vec<UserProfile> = w.list(Filter::All).await?;
    if profiles.iter().any(|p| p.iam_user_arn == arn) {
        return Err(ApiError::Validation(format!(
            "There is already a user profile for {arn}"
        )));
    }
    if profiles.iter().any(|p| p.ssh_username == username) {
        return Err(ApiError::Validation(format!(
            "The SSH username {username} is already taken by another user profile"
        )));
    }
    // The IAM user's own name when this server knows the user.
    let users_now: Vec<IamUser> = w.list(Filter::All).await?;
    let name = users_now
        .iter()
        .find(|u| u.arn == arn)
        .map_or(iam_name, |u| u.user_name.clone());
    let profile = UserProfile {
        iam_user_arn: arn.clone(),
        name,
        ssh_username: username,
        ssh_public_key: req.ssh_public_key.filter(|k| !k.trim().is_empty()),
        allow_self_management: req.allow_self_management.unwrap_or(false),
        unix_uid: profiles
            .iter()
            .map(|p| p.unix_uid + 1)
            .max()
            .unwrap_or(4000)
            .max(4000),
    };
    w.put(&profile).await?;
    w.commit().await?;
    Reply::json(&json!({ "IamUserArn": arn }))
}

/// DescribeUserProfiles: those named (each must exist), or all.
pub async fn describe_user_profiles(
    cx: Ctx<'_>,
    req: shapes::DescribeUserProfilesRequest,
) -> OpResult {
    let all = cx.core.list::<UserProfile>(Filter::All).await?;
    let shown: Vec<Value> = match req.iam_user_arns {
        Some(arns) => {
            let mut out = Vec::new();
            for arn in &arns {
                let p = all
                    .iter()
                    .find(|p| p.iam_user_arn == *arn)
                    .ok_or_else(|| not_found_profile(arn))?;
                out.push(profile_view(p));
            }
            out
        }
        None => all.iter().map(|p| profile_view(p)).collect(),
    };
    Reply::json(&json!({ "UserProfiles": shown }))
}

/// The stacks where `arn` may log in (AllowSsh).
async fn ssh_stacks(w: &mut crate::core::Write<'_>, arn: &str) -> Result<Vec<String>, ApiError> {
    let perms: Vec<Permission> = w.list(Filter::Parent(arn)).await?;
    Ok(perms
        .into_iter()
        .filter(|p| p.allow_ssh)
        .map(|p| p.stack_id)
        .collect())
}

/// Applies an update to a profile and syncs the user's instances.
async fn update_profile(
    cx: Ctx<'_>,
    arn: &str,
    username: Option<String>,
    key: Option<String>,
    self_management: Option<bool>,
) -> OpResult {
    check_key(key.as_deref())?;
    let mut w = cx.core.write().await?;
    let profiles: Vec<UserProfile> = w.list(Filter::All).await?;
    let mut profile = profiles
        .iter()
        .find(|p| p.iam_user_arn == arn)
        .cloned()
        .ok_or_else(|| not_found_profile(arn))?;
    if let Some(u) = username {
        let u = clean_username(&u);
        check_username(&u)?;
        if profiles
            .iter()
            .any(|p| p.iam_user_arn != arn && p.ssh_username == u)
        {
            return Err(ApiError::Validation(format!(
                "The SSH username {u} is already taken by another user profile"
            )));
        }
        profile.ssh_username = u;
    }
    if let Some(k) = key {
        profile.ssh_public_key = Some(k).filter(|k| !k.trim().is_empty());
    }
    if let Some(b) = self_management {
        profile.allow_self_management = b;
    }
    w.put(&profile).await?;
    let stacks = ssh_stacks(&mut w, arn).await?;
    users::sync_stacks(&mut w, &stacks).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// UpdateUserProfile.
pub async fn update_user_profile(cx: Ctx<'_>, req: shapes::UpdateUserProfileRequest) -> OpResult {
    update_profile(
        cx,
        &req.iam_user_arn,
        req.ssh_username,
        req.ssh_public_key,
        req.allow_self_management,
    )
    .await
}

/// DeleteUserProfile: the profile and the user's stack permissions go; their accounts leave
/// every instance.
pub async fn delete_user_profile(cx: Ctx<'_>, req: shapes::DeleteUserProfileRequest) -> OpResult {
    let arn = req.iam_user_arn;
    let mut w = cx.core.write().await?;
    w.find::<UserProfile>(&arn)
        .await?
        .ok_or_else(|| not_found_profile(&arn))?;
    let stacks = ssh_stacks(&mut w, &arn).await?;
    let perms: Vec<Permission> = w.list(Filter::Parent(&arn)).await?;
    for p in perms {
        w.delete(Kind::Permission, &p.permission_id).await?;
    }
    w.delete(Kind::UserProfile, &arn).await?;
    users::sync_stacks(&mut w, &stacks).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// DescribeMyUserProfile: the caller's own profile.
pub async fn describe_my_user_profile(cx: Ctx<'_>, _req: Value) -> OpResult {
    let arn = cx.principal.name.clone();
    let p = cx
        .core
        .find::<UserProfile>(&arn)
        .await?
        .ok_or_else(|| not_found_profile(&arn))?;
    let mut v = json!({
        "IamUserArn": p.iam_user_arn,
        "Name": p.name,
        "SshUsername": p.ssh_username,
    });
    if let Some(k) = &p.ssh_public_key {
        v["SshPublicKey"] = json!(k);
    }
    Reply::json(&json!({ "UserProfile": v }))
}

/// UpdateMyUserProfile: the caller's own SSH key (with AllowSelfManagement, or an IAM policy).
pub async fn update_my_user_profile(
    cx: Ctx<'_>,
    req: shapes::UpdateMyUserProfileRequest,
) -> OpResult {
    let arn = cx.principal.name.clone();
    update_profile(
        cx,
        &arn,
        None,
        Some(req.ssh_public_key.unwrap_or_default()),
        None,
    )
    .await
}

/// SetPermission: a user's level and SSH/sudo rights on a stack.
pub async fn set_permission(cx: Ctx<'_>, req: shapes::SetPermissionRequest) -> OpResult {
    if let Some(l) = req.level.as_deref()
        && PermissionLevel::parse(l).is_none()
    {
        return Err(ApiError::Validation(format!(
            "Invalid Level {l}: it must be deny, show, deploy, manage or iam_only"
        )));
    }
    let mut w = cx.core.write().await?;
    w.get::<Stack>(&req.stack_id).await?;
    w.find::<UserProfile>(&req.iam_user_arn)
        .await?
        .ok_or_else(|| not_found_profile(&req.iam_user_arn))?;
    let id = Permission::id_of(&req.stack_id, &req.iam_user_arn);
    let mut p = w.find::<Permission>(&id).await?.unwrap_or(Permission {
        permission_id: id,
        stack_id: req.stack_id.clone(),
        iam_user_arn: req.iam_user_arn.clone(),
        allow_ssh: false,
        allow_sudo: false,
        level: PermissionLevel::IamOnly.as_str().into(),
    });
    let before = (p.allow_ssh, p.allow_sudo);
    if let Some(b) = req.allow_ssh {
        p.allow_ssh = b;
    }
    if let Some(b) = req.allow_sudo {
        p.allow_sudo = b;
    }
    if let Some(l) = req.level {
        p.level = l;
    }
    let changed_logins = before != (p.allow_ssh, p.allow_sudo);
    w.put(&p).await?;
    if changed_logins {
        users::sync_stacks(&mut w, std::slice::from_ref(&req.stack_id)).await?;
    }
    w.commit().await?;
    Ok(Reply::empty())
}

/// DescribePermissions: one user's on one stack, a stack's, a user's (on the stacks the caller
/// may see), or every one the caller may see.
pub async fn describe_permissions(
    cx: Ctx<'_>,
    req: shapes::DescribePermissionsRequest,
) -> OpResult {
    let perms = match (&req.stack_id, &req.iam_user_arn) {
        (Some(stack), Some(arn)) => {
            cx.core.get::<Stack>(stack).await?;
            cx.core
                .find::<Permission>(&Permission::id_of(stack, arn))
                .await?
                .into_iter()
                .collect()
        }
        (Some(stack), None) => {
            cx.core.get::<Stack>(stack).await?;
            cx.core.list::<Permission>(Filter::Stack(stack)).await?
        }
        (None, Some(arn)) => cx.core.list::<Permission>(Filter::Parent(arn)).await?,
        (None, None) => cx.core.list::<Permission>(Filter::All).await?,
    };
    let mut shown = Vec::with_capacity(perms.len());
    for p in &perms {
        if req.stack_id.is_none() && !cx.principal.is_root() {
            // Only the stacks the caller may manage.
            match cx.core.find::<Stack>(&p.stack_id).await? {
                Some(s) if authz::may(&cx, "DescribePermissions", &s) => {}
                _ => continue,
            }
        }
        shown.push(permission_view(p));
    }
    Reply::json(&json!({ "Permissions": shown }))
}

/// GrantAccess: a temporary login with a generated password on one online instance, removed when
/// `ValidForInMinutes` (60–1440, default 60) runs out.
pub async fn grant_access(cx: Ctx<'_>, req: shapes::GrantAccessRequest) -> OpResult {
    let minutes = req.valid_for_in_minutes.unwrap_or(60);
    if !(60..=1440).contains(&minutes) {
        return Err(ApiError::Validation(format!(
            "ValidForInMinutes must be between 60 and 1440; it is {minutes}"
        )));
    }
    let mut w = cx.core.write().await?;
    let inst: Instance = w.get(&req.instance_id).await?;
    if inst.status != InstanceStatus::Online {
        return Err(ApiError::Validation(format!(
            "Instance {} must be online to grant access; it is {}",
            inst.instance_id,
            inst.status.as_str()
        )));
    }
    let granted = users::grant(
        &mut w,
        &inst,
        &cx.principal.arn(cx.core.account_id()).unwrap_or_default(),
        minutes,
    )
    .await
    .map_err(|e: CoreError| ApiError::from(e))?;
    w.commit().await?;
    Reply::json(&json!({"TemporaryCredential": {
        "Username": granted.username,
        "Password": granted.password,
        "ValidForInMinutes": minutes,
        "InstanceId": inst.instance_id,
    }}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_keep_letters_digits_dash_and_underscore() {
        assert_eq!(clean_username("my.name"), "myname");
        assert_eq!(clean_username("Alice_B-2"), "alice_b-2");
        assert_eq!(clean_username("9lives"), "u9lives");
        assert_eq!(clean_username(&"x".repeat(40)).len(), 32);
        assert!(check_username("root").is_err());
        assert!(check_username("").is_err());
        assert!(check_username("alice").is_ok());
    }

    #[test]
    fn keys_are_one_openssh_line() {
        assert!(check_key(Some("ssh-ed25519 AAAAC3Nza alice@host")).is_ok());
        assert!(check_key(Some("")).is_ok());
        assert!(check_key(Some("not a key")).is_err());
        assert!(check_key(Some("ssh-rsa AAAA\nssh-rsa BBBB")).is_err());
    }

    #[test]
    fn profile_arns_name_iam_users() {
        assert_eq!(
            user_name_of("arn:aws:iam::123456789012:user/ops/alice").unwrap(),
            "alice"
        );
        assert!(user_name_of("arn:aws:iam::123456789012:role/x").is_err());
    }
}
