//! IAM users, their access keys and their login profiles.

use serde_json::{Value, json};

use opsworks_api::query::AwsError;
use opsworks_model::Kind;
use opsworks_model::resource::{AccessKey, IamTag, IamUser, LoginProfile, Permission, UserProfile};
use opsworks_store::Filter;

use super::{
    Ctx, IamResult, already_exists, check_path, delete_conflict, internal, limit_exceeded,
    named_or_caller, no_such, no_such_user, page, req, s,
};
use crate::core::identity::{self, iam_id, iam_now, user_principal};
use crate::core::keys::KeyRing;

/// AWS's quota of access keys per user.
const KEYS_PER_USER: usize = 2;

/// The user named `name` (names are unique whatever their case), if any.
pub(super) async fn by_name(cx: Ctx<'_>, name: &str) -> Result<Option<IamUser>, AwsError> {
    identity::user_by_name(cx.core, name)
        .await
        .map_err(internal)
}

/// The user owning access key `id`, if it is a user's key.
pub(super) async fn owner_of_key(cx: Ctx<'_>, id: &str) -> Result<Option<IamUser>, AwsError> {
    let Some(key) = cx.core.find::<AccessKey>(id).await.map_err(internal)? else {
        return Ok(None);
    };
    Ok(cx
        .core
        .find::<IamUser>(&key.user_id)
        .await
        .map_err(internal)?
        .map(|u| u.to_owned_value()))
}

/// The `User` shape.
pub(super) fn user_shape(u: &IamUser) -> Value {
    let mut v = json!({
        "Path": u.path,
        "UserName": u.user_name,
        "UserId": u.user_id,
        "Arn": u.arn,
        "CreateDate": u.create_date,
    });
    if !u.tags.is_empty() {
        v["Tags"] = json!(
            u.tags
                .iter()
                .map(|t| json!({"Key": t.key, "Value": t.value}))
                .collect::<Vec<_>>()
        );
    }
    v
}

fn tags(input: &Value) -> Vec<IamTag> {
    input
        .get("Tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some(IamTag {
                        key: t.get("Key")?.as_str()?.to_string(),
                        value: t.get("Value")?.as_str()?.to_string(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// CreateUser.
pub async fn create_user(cx: Ctx<'_>, input: &Value) -> IamResult {
    let name = req(input, "UserName")?;
    let path = s(input, "Path").unwrap_or("/");
    check_path(path)?;
    if input.get("PermissionsBoundary").is_some() {
        return Err(AwsError::UnsupportedOperation {
            message: "Permissions boundaries are not supported by this server.".into(),
        });
    }
    let mut w = cx.core.write().await.map_err(internal)?;
    let users: Vec<IamUser> = w.list(Filter::All).await.map_err(internal)?;
    if users.iter().any(|u| u.user_name.eq_ignore_ascii_case(name)) {
        return Err(already_exists(format!(
            "User with name {name} already exists."
        )));
    }
    let user = IamUser {
        user_id: iam_id("AIDA", 21),
        user_name: name.to_string(),
        path: path.to_string(),
        arn: format!("arn:aws:iam::{}:user{path}{name}", cx.core.account_id()),
        create_date: iam_now(),
        tags: tags(input),
        groups: Vec::new(),
        inline_policies: Default::default(),
        attached_policies: Vec::new(),
        login_profile: None,
    };
    w.put(&user).await.map_err(internal)?;
    w.commit().await.map_err(internal)?;
    Ok(json!({ "User": user_shape(&user) }))
}

/// GetUser: the user named, or the caller.
pub async fn get_user(cx: Ctx<'_>, input: &Value) -> IamResult {
    if s(input, "UserName").is_none() && cx.principal.is_root() {
        // The root has no IAM user; AWS describes the account's root this way.
        let account = cx.core.account_id();
        return Ok(json!({"User": {
            "Path": "/",
            "UserName": "root",
            "UserId": account,
            "Arn": format!("arn:aws:iam::{account}:root"),
            "CreateDate": "2026-01-01T00:00:00Z",
        }}));
    }
    let user = named_or_caller(cx, input).await?;
    Ok(json!({ "User": user_shape(&user) }))
}

/// ListUsers: by name, under `PathPrefix`.
pub async fn list_users(cx: Ctx<'_>, input: &Value) -> IamResult {
    let prefix = s(input, "PathPrefix").unwrap_or("/");
    let mut users: Vec<IamUser> = cx
        .core
        .list::<IamUser>(Filter::All)
        .await
        .map_err(internal)?
        .iter()
        .filter(|u| u.path.starts_with(prefix))
        .map(|u| u.to_owned_value())
        .collect();
    users.sort_by_key(|u| u.user_name.to_lowercase());
    page(users.iter().map(user_shape).collect(), input, "Users")
}

/// UpdateUser: a new name and/or path. The ARN follows, and so do the user's OpsWorks profile
/// and stack permissions (kept under the ARN).
pub async fn update_user(cx: Ctx<'_>, input: &Value) -> IamResult {
    let name = req(input, "UserName")?;
    let mut w = cx.core.write().await.map_err(internal)?;
    let users: Vec<IamUser> = w.list(Filter::All).await.map_err(internal)?;
    let mut user = users
        .iter()
        .find(|u| u.user_name.eq_ignore_ascii_case(name))
        .cloned()
        .ok_or_else(|| no_such_user(name))?;
    if let Some(new) = s(input, "NewUserName") {
        if users
            .iter()
            .any(|u| u.user_id != user.user_id && u.user_name.eq_ignore_ascii_case(new))
        {
            return Err(already_exists(format!(
                "User with name {new} already exists."
            )));
        }
        user.user_name = new.to_string();
    }
    if let Some(path) = s(input, "NewPath") {
        check_path(path)?;
        user.path = path.to_string();
    }
    let old_arn = user.arn.clone();
    user.arn = format!(
        "arn:aws:iam::{}:user{}{}",
        cx.core.account_id(),
        user.path,
        user.user_name
    );
    if user.arn != old_arn {
        if let Some(mut profile) = w.find::<UserProfile>(&old_arn).await.map_err(internal)? {
            w.delete(Kind::UserProfile, &old_arn)
                .await
                .map_err(internal)?;
            profile.iam_user_arn = user.arn.clone();
            profile.name = user.user_name.clone();
            w.put(&profile).await.map_err(internal)?;
        }
        let perms: Vec<Permission> = w.list(Filter::Parent(&old_arn)).await.map_err(internal)?;
        for mut p in perms {
            w.delete(Kind::Permission, &p.permission_id)
                .await
                .map_err(internal)?;
            p.iam_user_arn = user.arn.clone();
            p.permission_id = Permission::id_of(&p.stack_id, &user.arn);
            w.put(&p).await.map_err(internal)?;
        }
    }
    w.put(&user).await.map_err(internal)?;
    w.commit().await.map_err(internal)?;
    Ok(json!({}))
}

/// DeleteUser: only a user without keys, policies, groups or a login profile, as IAM requires.
pub async fn delete_user(cx: Ctx<'_>, input: &Value) -> IamResult {
    let name = req(input, "UserName")?;
    let mut w = cx.core.write().await.map_err(internal)?;
    let users: Vec<IamUser> = w.list(Filter::All).await.map_err(internal)?;
    let user = users
        .iter()
        .find(|u| u.user_name.eq_ignore_ascii_case(name))
        .cloned()
        .ok_or_else(|| no_such_user(name))?;
    if !user.inline_policies.is_empty() || !user.attached_policies.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must delete policies first.",
        ));
    }
    let keys: Vec<AccessKey> = w
        .list(Filter::Parent(&user.user_id))
        .await
        .map_err(internal)?;
    if !keys.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must delete access keys first.",
        ));
    }
    if !user.groups.is_empty() {
        return Err(delete_conflict(
            "Cannot delete entity, must remove user from all groups first.",
        ));
    }
    if user.login_profile.is_some() {
        return Err(delete_conflict(
            "Cannot delete entity, must delete login profile first.",
        ));
    }
    w.delete(Kind::IamUser, &user.user_id)
        .await
        .map_err(internal)?;
    w.commit().await.map_err(internal)?;
    Ok(json!({}))
}

fn key_shape(k: &AccessKey, user_name: &str) -> Value {
    json!({
        "UserName": user_name,
        "AccessKeyId": k.access_key_id,
        "Status": k.status,
        "CreateDate": k.create_date,
    })
}

/// CreateAccessKey: a new key for the user named (or the caller); the secret is shown once,
/// kept only sealed.
pub async fn create_access_key(cx: Ctx<'_>, input: &Value) -> IamResult {
    let user = named_or_caller(cx, input).await?;
    let mut w = cx.core.write().await.map_err(internal)?;
    let keys: Vec<AccessKey> = w
        .list(Filter::Parent(&user.user_id))
        .await
        .map_err(internal)?;
    if keys.len() >= KEYS_PER_USER {
        return Err(limit_exceeded(format!(
            "Cannot exceed quota for AccessKeysPerUser: {KEYS_PER_USER}"
        )));
    }
    let key = AccessKey {
        access_key_id: iam_id("AKIA", 20),
        user_id: user.user_id.clone(),
        status: "Active".into(),
        create_date: iam_now(),
        last_used: None,
    };
    let secret = KeyRing::new_secret();
    cx.core
        .keys()
        .put(
            &mut w,
            &key.access_key_id,
            &secret,
            &user_principal(&user.user_id),
        )
        .await
        .map_err(internal)?;
    w.put(&key).await.map_err(internal)?;
    w.commit().await.map_err(internal)?;
    let mut shape = key_shape(&key, &user.user_name);
    shape["SecretAccessKey"] = json!(secret);
    Ok(json!({ "AccessKey": shape }))
}

/// ListAccessKeys: the keys of the user named (or the caller), never their secrets.
pub async fn list_access_keys(cx: Ctx<'_>, input: &Value) -> IamResult {
    let user = named_or_caller(cx, input).await?;
    let keys = cx
        .core
        .list::<AccessKey>(Filter::Parent(&user.user_id))
        .await
        .map_err(internal)?;
    page(
        keys.iter().map(|k| key_shape(k, &user.user_name)).collect(),
        input,
        "AccessKeyMetadata",
    )
}

/// The key `id` of `user`, or IAM's NoSuchEntity.
fn own_key(keys: Vec<AccessKey>, id: &str, user: &IamUser) -> Result<AccessKey, AwsError> {
    keys.into_iter()
        .find(|k| k.access_key_id == id)
        .ok_or_else(|| {
            no_such(format!(
                "The Access Key with id {id} cannot be found for user {}.",
                user.user_name
            ))
        })
}

/// UpdateAccessKey: `Active` or `Inactive`; an inactive key is refused at once everywhere.
pub async fn update_access_key(cx: Ctx<'_>, input: &Value) -> IamResult {
    let id = req(input, "AccessKeyId")?;
    let status = req(input, "Status")?;
    let user = named_or_caller(cx, input).await?;
    let mut w = cx.core.write().await.map_err(internal)?;
    let keys = w
        .list(Filter::Parent(&user.user_id))
        .await
        .map_err(internal)?;
    let mut key = own_key(keys, id, &user)?;
    key.status = status.to_string();
    w.put(&key).await.map_err(internal)?;
    w.commit().await.map_err(internal)?;
    Ok(json!({}))
}

/// DeleteAccessKey.
pub async fn delete_access_key(cx: Ctx<'_>, input: &Value) -> IamResult {
    let id = req(input, "AccessKeyId")?;
    let user = named_or_caller(cx, input).await?;
    let mut w = cx.core.write().await.map_err(internal)?;
    let keys = w
        .list(Filter::Parent(&user.user_id))
        .await
        .map_err(internal)?;
    let key = own_key(keys, id, &user)?;
    w.delete(Kind::AccessKey, &key.access_key_id)
        .await
        .map_err(internal)?;
    cx.core
        .keys()
        .delete(&mut w, &key.access_key_id)
        .await
        .map_err(internal)?;
    w.commit().await.map_err(internal)?;
    Ok(json!({}))
}

/// GetAccessKeyLastUsed: when, where and for what service the key last signed a request.
pub async fn get_access_key_last_used(cx: Ctx<'_>, input: &Value) -> IamResult {
    let id = req(input, "AccessKeyId")?;
    let key = cx.core.find::<AccessKey>(id).await.map_err(internal)?;
    let user = owner_of_key(cx, id).await?;
    let (Some(key), Some(user)) = (key, user) else {
        // IAM answers an unknown key with an AccessDenied-free, empty answer for its caller's
        // own account; a key that is not there is not found.
        return Err(no_such(format!(
            "The Access Key with id {id} cannot be found."
        )));
    };
    let used = cx
        .core
        .keys()
        .last_used(id)
        .or_else(|| key.last_used.clone());
    let last = match used {
        Some(u) => json!({
            "LastUsedDate": u.last_used_date,
            "ServiceName": u.service_name,
            "Region": u.region,
        }),
        None => json!({"ServiceName": "N/A", "Region": "N/A"}),
    };
    Ok(json!({ "UserName": user.user_name, "AccessKeyLastUsed": last }))
}

fn login_shape(user: &IamUser, p: &LoginProfile) -> Value {
    json!({
        "UserName": user.user_name,
        "CreateDate": p.create_date,
        "PasswordResetRequired": p.password_reset_required,
    })
}

/// A password as IAM's default policy accepts it, hashed (off the request threads: argon2 is
/// slow on purpose).
async fn hashed(password: &str) -> Result<String, AwsError> {
    if password.chars().count() < 8 {
        return Err(AwsError::service(
            "PasswordPolicyViolation",
            "Password should have a minimum length of 8",
        ));
    }
    let plain = password.to_string();
    tokio::task::spawn_blocking(move || identity::hash_password(&plain))
        .await
        .map_err(|e| AwsError::internal(e.to_string()))?
        .map_err(internal)
}

/// CreateLoginProfile: a console password, kept as its argon2 hash.
pub async fn create_login_profile(cx: Ctx<'_>, input: &Value) -> IamResult {
    let user = named_or_caller(cx, input).await?;
    let Some(password) = s(input, "Password") else {
        return Err(AwsError::Invalid {
            code: "ValidationError",
            message: "A password is required to create a login profile".into(),
        });
    };
    let hash = hashed(password).await?;
    let mut w = cx.core.write().await.map_err(internal)?;
    let mut user: IamUser = w.get(&user.user_id).await.map_err(internal)?;
    if user.login_profile.is_some() {
        return Err(already_exists(format!(
            "Login Profile for user {} already exists.",
            user.user_name
        )));
    }
    let profile = LoginProfile {
        create_date: iam_now(),
        password_reset_required: input
            .get("PasswordResetRequired")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        password_hash: hash,
    };
    let shape = login_shape(&user, &profile);
    user.login_profile = Some(profile);
    w.put(&user).await.map_err(internal)?;
    w.commit().await.map_err(internal)?;
    Ok(json!({ "LoginProfile": shape }))
}

fn no_login(user: &IamUser) -> AwsError {
    no_such(format!(
        "Login Profile for User {} cannot be found.",
        user.user_name
    ))
}

/// GetLoginProfile: whether the user has a console password (never the password).
pub async fn get_login_profile(cx: Ctx<'_>, input: &Value) -> IamResult {
    let user = named_or_caller(cx, input).await?;
    let profile = user.login_profile.as_ref().ok_or_else(|| no_login(&user))?;
    Ok(json!({ "LoginProfile": login_shape(&user, profile) }))
}

/// UpdateLoginProfile: a new password and/or reset flag.
pub async fn update_login_profile(cx: Ctx<'_>, input: &Value) -> IamResult {
    let user = named_or_caller(cx, input).await?;
    let hash = match s(input, "Password") {
        Some(p) => Some(hashed(p).await?),
        None => None,
    };
    let mut w = cx.core.write().await.map_err(internal)?;
    let mut user: IamUser = w.get(&user.user_id).await.map_err(internal)?;
    let Some(profile) = user.login_profile.as_mut() else {
        return Err(no_login(&user));
    };
    if let Some(h) = hash {
        profile.password_hash = h;
    }
    if let Some(r) = input.get("PasswordResetRequired").and_then(Value::as_bool) {
        profile.password_reset_required = r;
    }
    w.put(&user).await.map_err(internal)?;
    w.commit().await.map_err(internal)?;
    Ok(json!({}))
}

/// DeleteLoginProfile.
pub async fn delete_login_profile(cx: Ctx<'_>, input: &Value) -> IamResult {
    let user = named_or_caller(cx, input).await?;
    let mut w = cx.core.write().await.map_err(internal)?;
    let mut user: IamUser = w.get(&user.user_id).await.map_err(internal)?;
    if user.login_profile.take().is_none() {
        return Err(no_login(&user));
    }
    w.put(&user).await.map_err(internal)?;
    w.commit().await.map_err(internal)?;
    Ok(json!({}))
}
