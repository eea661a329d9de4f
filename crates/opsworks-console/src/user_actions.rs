//! The forms of a user's page, each one IAM or OpsWorks operation (two for a login profile that
//! may change its own password) run as the signed-in principal: keys, login profile, groups,
//! policies, the OpsWorks profile and stack permissions. A new access key's secret is shown once,
//! on the answer to the form that made it, and is never kept or shown again.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::Signed;
use crate::form::{Form, SignedForm, s};
use crate::iam::Shown;
use crate::render::see_other;
use crate::users::{create_login_profile, user_page, users_page};

/// `POST /console/users/{name}/do/{action}`: one form of the user's page; back to the page, or
/// the page again with the error.
pub async fn user_action(
    Path((name, action)): Path<(String, String)>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let back = format!("/console/users/{name}");
    let result = match action.as_str() {
        "delete" => match signed.iam("DeleteUser", &[("UserName", &name)]).await {
            Ok(_) => return see_other("/console/users"),
            Err(e) => return users_page(&signed, Some(e.into())).await,
        },
        "create-key" => {
            return match signed.iam("CreateAccessKey", &[("UserName", &name)]).await {
                Ok(v) => new_key(&signed, &name, &v["AccessKey"]),
                Err(e) => user_page(&signed, &name, Some(e.into())).await,
            };
        }
        _ => run(&signed, &name, &action, &form).await,
    };
    match result {
        Ok(Some(())) => see_other(&back),
        Ok(None) => crate::render::not_found(&signed, "That action"),
        Err(e) => user_page(&signed, &name, Some(e)).await,
    }
}

/// Runs the form `action` for user `name`: `Ok(None)` when there is no such action.
async fn run(signed: &Signed, name: &str, action: &str, form: &Form) -> Result<Option<()>, Shown> {
    let f = |k: &str| form.get(k);
    let flag = |k: &str| if form.checked(k) { "true" } else { "false" };
    let iam = |op: &'static str, params: Vec<(&'static str, String)>| async move {
        let mut all: Vec<(&str, &str)> = vec![("UserName", name)];
        all.extend(params.iter().map(|(k, v)| (*k, v.as_str())));
        signed.iam(op, &all).await.map(|_| ()).map_err(Shown::from)
    };
    match action {
        "key-status" => {
            iam(
                "UpdateAccessKey",
                vec![("AccessKeyId", f("AccessKeyId")), ("Status", f("Status"))],
            )
            .await?
        }
        "delete-key" => iam("DeleteAccessKey", vec![("AccessKeyId", f("AccessKeyId"))]).await?,
        "login-create" => create_login_profile(signed, name, form).await?,
        "login-update" => {
            let mut params = vec![(
                "PasswordResetRequired",
                flag("PasswordResetRequired").to_string(),
            )];
            if !f("Password").is_empty() {
                params.push(("Password", f("Password")));
            }
            iam("UpdateLoginProfile", params).await?
        }
        "login-delete" => iam("DeleteLoginProfile", vec![]).await?,
        "add-group" => iam("AddUserToGroup", vec![("GroupName", f("GroupName"))]).await?,
        "remove-group" => iam("RemoveUserFromGroup", vec![("GroupName", f("GroupName"))]).await?,
        "put-policy" => {
            iam(
                "PutUserPolicy",
                vec![
                    ("PolicyName", f("PolicyName")),
                    ("PolicyDocument", f("PolicyDocument")),
                ],
            )
            .await?
        }
        "delete-policy" => iam("DeleteUserPolicy", vec![("PolicyName", f("PolicyName"))]).await?,
        "attach" => iam("AttachUserPolicy", vec![("PolicyArn", f("PolicyArn"))]).await?,
        "detach" => iam("DetachUserPolicy", vec![("PolicyArn", f("PolicyArn"))]).await?,
        "profile-create" | "profile-update" | "profile-delete" | "permission" => {
            opsworks(signed, name, action, form).await?
        }
        _ => return Ok(None),
    }
    Ok(Some(()))
}

/// The OpsWorks forms: the user's profile and their permission on a stack.
async fn opsworks(signed: &Signed, name: &str, action: &str, form: &Form) -> Result<(), Shown> {
    let user = signed.iam("GetUser", &[("UserName", name)]).await?;
    let arn = s(&user["User"], "Arn").to_string();
    let (op, input) = match action {
        "profile-create" | "profile-update" => {
            let mut input = json!({
                "IamUserArn": arn,
                "SshUsername": form.get("SshUsername"),
                "SshPublicKey": form.get("SshPublicKey"),
                "AllowSelfManagement": form.checked("AllowSelfManagement"),
            });
            if input["SshUsername"] == "" {
                // Create: OpsWorks derives it from the IAM name; update: keep it.
                input.as_object_mut().map(|m| m.remove("SshUsername"));
            }
            let op = if action == "profile-create" {
                "CreateUserProfile"
            } else {
                "UpdateUserProfile"
            };
            (op, input)
        }
        "profile-delete" => ("DeleteUserProfile", json!({ "IamUserArn": arn })),
        _ => (
            "SetPermission",
            json!({
                "StackId": form.get("StackId"),
                "IamUserArn": arn,
                "Level": form.get("Level"),
                "AllowSsh": form.checked("AllowSsh"),
                "AllowSudo": form.checked("AllowSudo"),
            }),
        ),
    };
    signed.call(op, input).await.map(|_: Value| ())?;
    Ok(())
}

/// The answer to CreateAccessKey: the key and its secret, this once (not cached, not kept).
fn new_key(signed: &Signed, name: &str, key: &Value) -> Response {
    let mut r = signed.render("new_key.html", json!({ "user": name, "key": key }));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
