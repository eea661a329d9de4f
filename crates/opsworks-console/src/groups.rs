//! The group pages: creating a group, and one group's page — its members, inline and managed
//! policies — with its forms, each one IAM operation as the signed-in principal.

use axum::extract::Path;
use axum::response::Response;
use serde_json::{Value, json};

use crate::Signed;
use crate::form::{Form, SignedForm, s};
use crate::iam::{self, Entity, Shown, items_or_none};
use crate::render::see_other;
use crate::users::users_page;

/// The IAM operations a group's page offers, asked about the group's ARN.
const GROUP_OPERATIONS: &[&str] = &[
    "DeleteGroup",
    "AddUserToGroup",
    "RemoveUserFromGroup",
    "PutGroupPolicy",
    "DeleteGroupPolicy",
    "AttachGroupPolicy",
    "DetachGroupPolicy",
];

/// `POST /console/groups`: CreateGroup, then the group's page.
pub async fn create_group(SignedForm(signed, form): SignedForm) -> Response {
    let name = form.get("GroupName");
    match signed.iam("CreateGroup", &[("GroupName", &name)]).await {
        Ok(_) => see_other(&format!("/console/groups/{name}")),
        Err(e) => users_page(&signed, Some(e.into())).await,
    }
}

/// `GET /console/groups/{name}`: one group.
pub async fn group(signed: Signed, Path(name): Path<String>) -> Response {
    group_page(&signed, &name, None).await
}

/// A group's page, with the error of a form that failed.
async fn group_page(signed: &Signed, name: &str, error: Option<Shown>) -> Response {
    let got = match signed
        .iam(
            "GetGroup",
            &[("GroupName", name), ("MaxItems", iam::MAX_ITEMS)],
        )
        .await
    {
        Ok(v) => v,
        Err(e) => return iam::error_page(signed, e.into()),
    };
    let group = got["Group"].clone();
    let members = got["Users"].as_array().cloned().unwrap_or_default();
    let users = items_or_none(signed, "ListUsers", &[], "Users").await;
    let others: Vec<&Value> = users
        .iter()
        .filter(|u| !members.iter().any(|m| s(m, "UserName") == s(u, "UserName")))
        .collect();
    let inline = iam::inline_policies(signed, Entity::Group, name).await;
    let attached = items_or_none(
        signed,
        "ListAttachedGroupPolicies",
        &[("GroupName", name)],
        "AttachedPolicies",
    )
    .await;
    let policies = items_or_none(signed, "ListPolicies", &[], "Policies").await;
    let attachable: Vec<&Value> = policies
        .iter()
        .filter(|p| !attached.iter().any(|a| s(a, "PolicyArn") == s(p, "Arn")))
        .collect();
    let can = iam::can(signed, GROUP_OPERATIONS, s(&group, "Arn"));
    let status = error.as_ref().map(Shown::status);
    let mut r = signed.render(
        "group.html",
        json!({ "group": group, "members": members, "others": others, "inline": inline,
                "attached": attached, "attachable": attachable, "can": can,
                "error": error.map(|e| e.value()) }),
    );
    if let Some(status) = status {
        *r.status_mut() = status;
    }
    r
}

/// `POST /console/groups/{name}/do/{action}`: one form of the group's page.
pub async fn group_action(
    Path((name, action)): Path<(String, String)>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    if action == "delete" {
        return match signed.iam("DeleteGroup", &[("GroupName", &name)]).await {
            Ok(_) => see_other("/console/users"),
            Err(e) => group_page(&signed, &name, Some(e.into())).await,
        };
    }
    let Some((op, fields)) = operation(&action) else {
        return crate::render::not_found(&signed, "That action");
    };
    match run(&signed, &name, op, fields, &form).await {
        Ok(()) => see_other(&format!("/console/groups/{name}")),
        Err(e) => group_page(&signed, &name, Some(e)).await,
    }
}

/// The IAM operation of a group form, and the form fields it takes.
fn operation(action: &str) -> Option<(&'static str, &'static [&'static str])> {
    Some(match action {
        "add-member" => ("AddUserToGroup", &["UserName"]),
        "remove-member" => ("RemoveUserFromGroup", &["UserName"]),
        "put-policy" => ("PutGroupPolicy", &["PolicyName", "PolicyDocument"]),
        "delete-policy" => ("DeleteGroupPolicy", &["PolicyName"]),
        "attach" => ("AttachGroupPolicy", &["PolicyArn"]),
        "detach" => ("DetachGroupPolicy", &["PolicyArn"]),
        _ => return None,
    })
}

async fn run(
    signed: &Signed,
    group: &str,
    op: &str,
    fields: &[&str],
    form: &Form,
) -> Result<(), Shown> {
    let values: Vec<(&str, String)> = fields.iter().map(|k| (*k, form.get(k))).collect();
    let mut params: Vec<(&str, &str)> = vec![("GroupName", group)];
    params.extend(values.iter().map(|(k, v)| (*k, v.as_str())));
    signed.iam(op, &params).await?;
    Ok(())
}
