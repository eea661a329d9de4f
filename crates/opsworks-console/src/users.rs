//! The Users pages (for principals whose policies allow IAM's actions; the root always): the
//! account's users and groups, and one user's page — access keys, login profile, groups,
//! inline and managed policies, their OpsWorks profile (SSH key, self-management) and their
//! permission on each stack (level, SSH, sudo). Everything is read and changed through IAM's and
//! OpsWorks' operations as the signed-in principal; each form is shown only when the authorizer
//! would allow it, and the server refuses it anyway when not. The forms' actions are in
//! `user_actions`.

use axum::extract::Path;
use axum::response::Response;
use serde_json::{Value, json};

use opsworks_policy::PermissionLevel;

use crate::Signed;
use crate::form::{SignedForm, s};
use crate::iam::{self, Entity, Shown, items, items_or_none};
use crate::render::{list, see_other};

/// The levels a stack permission can have, as SetPermission takes them.
pub const LEVELS: &[PermissionLevel] = &[
    PermissionLevel::Deny,
    PermissionLevel::Show,
    PermissionLevel::Deploy,
    PermissionLevel::Manage,
    PermissionLevel::IamOnly,
];

/// The IAM operations a user's page offers, asked about the user's ARN.
const USER_OPERATIONS: &[&str] = &[
    "DeleteUser",
    "CreateAccessKey",
    "UpdateAccessKey",
    "DeleteAccessKey",
    "CreateLoginProfile",
    "UpdateLoginProfile",
    "DeleteLoginProfile",
    "PutUserPolicy",
    "DeleteUserPolicy",
    "AttachUserPolicy",
    "DetachUserPolicy",
];

/// The IAM operations on groups a user's page offers (membership), asked about groups.
const MEMBERSHIP_OPERATIONS: &[&str] = &["AddUserToGroup", "RemoveUserFromGroup"];

/// `GET /console/users`: the account's users and groups.
pub async fn users(signed: Signed) -> Response {
    users_page(&signed, None).await
}

/// The users page, with the error of a form that failed.
pub async fn users_page(signed: &Signed, error: Option<Shown>) -> Response {
    let users = match items(signed, "ListUsers", &[], "Users").await {
        Ok(u) => u,
        Err(e) => return iam::error_page(signed, e),
    };
    let groups = items_or_none(signed, "ListGroups", &[], "Groups").await;
    // Which users OpsWorks knows (their profiles), for the list.
    let profiles = list(signed, "DescribeUserProfiles", json!({}), "UserProfiles").await;
    let rows: Vec<Value> = users
        .into_iter()
        .map(|u| {
            let profile = profiles
                .iter()
                .find(|p| s(p, "IamUserArn") == s(&u, "Arn"))
                .cloned();
            json!({ "user": u, "profile": profile })
        })
        .collect();
    let account = signed.console().app().account_id();
    let can = json!({
        "CreateUser": signed.allowed("iam:CreateUser", &format!("arn:aws:iam::{account}:user/*")),
        "CreateGroup": signed.allowed("iam:CreateGroup", &format!("arn:aws:iam::{account}:group/*")),
    });
    let status = error.as_ref().map(Shown::status);
    let mut r = signed.render(
        "users.html",
        json!({ "rows": rows, "groups": groups, "can": can,
                "error": error.map(|e| e.value()) }),
    );
    if let Some(status) = status {
        *r.status_mut() = status;
    }
    r
}

/// The inline policy a user created with a password that must be changed gets, so they may set
/// it (as AWS's console attaches `IAMUserChangePassword`): their own login profile, nothing else.
pub const CHANGE_OWN_PASSWORD: &str = "ChangeOwnPassword";

/// The document of [`CHANGE_OWN_PASSWORD`] for the user `arn`.
pub fn change_own_password(arn: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "ChangeOwnPassword",
            "Effect": "Allow",
            "Action": ["iam:GetLoginProfile", "iam:UpdateLoginProfile"],
            "Resource": arn,
        }],
    })
    .to_string()
}

/// Gives user `name` a login profile: `PasswordResetRequired` when ticked, and with
/// `AllowChangePassword` ticked the [`CHANGE_OWN_PASSWORD`] policy.
pub async fn create_login_profile(
    signed: &Signed,
    name: &str,
    form: &crate::form::Form,
) -> Result<(), Shown> {
    let reset = if form.checked("PasswordResetRequired") {
        "true"
    } else {
        "false"
    };
    let password = form.get("Password");
    signed
        .iam(
            "CreateLoginProfile",
            &[
                ("UserName", name),
                ("Password", &password),
                ("PasswordResetRequired", reset),
            ],
        )
        .await?;
    if form.checked("AllowChangePassword") {
        let user = signed.iam("GetUser", &[("UserName", name)]).await?;
        let arn = s(&user["User"], "Arn").to_string();
        signed
            .iam(
                "PutUserPolicy",
                &[
                    ("UserName", name),
                    ("PolicyName", CHANGE_OWN_PASSWORD),
                    ("PolicyDocument", &change_own_password(&arn)),
                ],
            )
            .await?;
    }
    Ok(())
}

/// `POST /console/users`: CreateUser, and a login profile when a password is given; then the
/// user's page.
pub async fn create_user(SignedForm(signed, form): SignedForm) -> Response {
    let name = form.get("UserName");
    let made = async {
        signed.iam("CreateUser", &[("UserName", &name)]).await?;
        if !form.get("Password").is_empty() {
            create_login_profile(&signed, &name, &form).await?;
        }
        Ok::<_, Shown>(())
    }
    .await;
    match made {
        Ok(()) => see_other(&format!("/console/users/{name}")),
        Err(e) => users_page(&signed, Some(e)).await,
    }
}

/// `GET /console/users/{name}`: one user.
pub async fn user(signed: Signed, Path(name): Path<String>) -> Response {
    user_page(&signed, &name, None).await
}

/// A user's page, with the error of a form that failed.
pub async fn user_page(signed: &Signed, name: &str, error: Option<Shown>) -> Response {
    let user = match signed.iam("GetUser", &[("UserName", name)]).await {
        Ok(v) => v["User"].clone(),
        Err(e) => return iam::error_page(signed, e.into()),
    };
    let arn = s(&user, "Arn").to_string();
    let keys = items_or_none(
        signed,
        "ListAccessKeys",
        &[("UserName", name)],
        "AccessKeyMetadata",
    )
    .await;
    let login = signed
        .iam("GetLoginProfile", &[("UserName", name)])
        .await
        .ok()
        .map(|v| v["LoginProfile"].clone());
    let groups = items_or_none(signed, "ListGroupsForUser", &[("UserName", name)], "Groups").await;
    let all_groups = items_or_none(signed, "ListGroups", &[], "Groups").await;
    let other_groups: Vec<&Value> = all_groups
        .iter()
        .filter(|g| {
            !groups
                .iter()
                .any(|m| s(m, "GroupName") == s(g, "GroupName"))
        })
        .collect();
    let inline = iam::inline_policies(signed, Entity::User, name).await;
    let attached = items_or_none(
        signed,
        "ListAttachedUserPolicies",
        &[("UserName", name)],
        "AttachedPolicies",
    )
    .await;
    let policies = items_or_none(signed, "ListPolicies", &[], "Policies").await;
    let attachable: Vec<&Value> = policies
        .iter()
        .filter(|p| !attached.iter().any(|a| s(a, "PolicyArn") == s(p, "Arn")))
        .collect();
    let profile = signed
        .call("DescribeUserProfiles", json!({ "IamUserArns": [arn] }))
        .await
        .ok()
        .and_then(|v| v["UserProfiles"].get(0).cloned());
    let permissions = stack_permissions(signed, &arn).await;
    let mut can = iam::can(signed, USER_OPERATIONS, &arn);
    let groups_arn = iam::arn(signed, Entity::Group, "*");
    if let (Value::Object(m), Value::Object(more)) = (
        &mut can,
        iam::can(signed, MEMBERSHIP_OPERATIONS, &groups_arn),
    ) {
        m.extend(more);
        for op in [
            "CreateUserProfile",
            "UpdateUserProfile",
            "DeleteUserProfile",
        ] {
            m.insert(op.into(), signed.may_account(op).into());
        }
    }
    let status = error.as_ref().map(Shown::status);
    let mut r = signed.render(
        "user.html",
        json!({ "user": user, "keys": keys, "login": login, "groups": groups,
                "other_groups": other_groups, "inline": inline, "attached": attached,
                "attachable": attachable, "profile": profile, "permissions": permissions,
                "levels": LEVELS.iter().map(|l| l.as_str()).collect::<Vec<_>>(),
                "can": can, "error": error.map(|e| e.value()) }),
    );
    if let Some(status) = status {
        *r.status_mut() = status;
    }
    r
}

/// The user's permission on each stack the principal may see: `{stack, permission, may_set}`.
async fn stack_permissions(signed: &Signed, arn: &str) -> Vec<Value> {
    let stacks = list(signed, "DescribeStacks", json!({}), "Stacks").await;
    let permissions = list(
        signed,
        "DescribePermissions",
        json!({ "IamUserArn": arn }),
        "Permissions",
    )
    .await;
    let core = signed.console().app();
    let mut rows = Vec::new();
    for stack in stacks {
        let id = s(&stack, "StackId");
        let permission = permissions
            .iter()
            .find(|p| s(p, "StackId") == id)
            .cloned()
            .unwrap_or_else(|| json!({ "Level": PermissionLevel::IamOnly.as_str() }));
        let may_set = match core.find::<opsworks_model::resource::Stack>(id).await {
            Ok(Some(st)) => signed.may("SetPermission", &st),
            _ => false,
        };
        rows.push(json!({ "stack": stack, "permission": permission, "may_set": may_set }));
    }
    rows
}
