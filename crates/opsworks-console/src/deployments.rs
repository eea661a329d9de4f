//! Deployment pages: the deploy form of an app, the stack's deployments (newest first), one
//! deployment with each instance's command and its log, and a command's raw log.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use opsworks_api::ApiError;

use crate::Signed;
use crate::form::{SignedForm, error_ctx, s};
use crate::live::read_log;
use crate::render::{found, list, see_other};

/// Orders deployments newest first. `CreatedAt` is to the second, so deployments of the same
/// second keep the API's order reversed (it lists them oldest first).
pub fn newest_first(deployments: &mut [Value]) {
    deployments.reverse();
    deployments.sort_by(|a, b| s(b, "CreatedAt").cmp(s(a, "CreatedAt")));
}

/// The deploy form of `app`: its stack's instances and layers to choose from.
async fn deploy_form(signed: &Signed, app: &Value, error: Option<Value>) -> Response {
    let stack_id = s(app, "StackId");
    let instances = list(
        signed,
        "DescribeInstances",
        json!({ "StackId": stack_id }),
        "Instances",
    )
    .await;
    let layers = list(
        signed,
        "DescribeLayers",
        json!({ "StackId": stack_id }),
        "Layers",
    )
    .await;
    signed.render(
        "deploy_form.html",
        json!({ "app": app, "instances": instances, "layers": layers, "error": error }),
    )
}

/// `GET /console/apps/{id}/deploy`: the deploy form of an app.
pub async fn deploy_page(signed: Signed, Path(id): Path<String>) -> Response {
    match found(&signed, "DescribeApps", "AppIds", &id, "Apps", "That app").await {
        Ok(app) => deploy_form(&signed, &app, None).await,
        Err(r) => r,
    }
}

/// `POST /console/apps/{id}/deploy`: CreateDeployment of the app, then its page.
pub async fn deploy(Path(id): Path<String>, SignedForm(signed, form): SignedForm) -> Response {
    let app = match found(&signed, "DescribeApps", "AppIds", &id, "Apps", "That app").await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let name = form.get("Command");
    let mut input =
        json!({ "StackId": s(&app, "StackId"), "AppId": id, "Command": { "Name": name } });
    let instances = form.all("InstanceIds");
    let layers = form.all("LayerIds");
    if !instances.is_empty() {
        input["InstanceIds"] = json!(instances);
    }
    if !layers.is_empty() {
        input["LayerIds"] = json!(layers);
    }
    let comment = form.get("Comment");
    if !comment.is_empty() {
        input["Comment"] = comment.into();
    }
    match signed.call("CreateDeployment", input).await {
        Ok(v) => see_other(&format!("/console/deployments/{}", s(&v, "DeploymentId"))),
        Err(e) => {
            let error = error_ctx(&e, &["InstanceIds", "LayerIds", "Command", "Comment"]);
            deploy_form(&signed, &app, Some(error)).await
        }
    }
}

/// `GET /console/stacks/{id}/deployments`: the stack's deployments, newest first.
pub async fn deployments(signed: Signed, Path(stack_id): Path<String>) -> Response {
    let stack = match found(
        &signed,
        "DescribeStacks",
        "StackIds",
        &stack_id,
        "Stacks",
        "That stack",
    )
    .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut deployments = list(
        &signed,
        "DescribeDeployments",
        json!({ "StackId": stack_id }),
        "Deployments",
    )
    .await;
    newest_first(&mut deployments);
    signed.render(
        "deployments.html",
        json!({ "stack": stack, "deployments": deployments }),
    )
}

/// `GET /console/deployments/{id}`: a deployment, each instance's command and log, followed live.
pub async fn deployment(signed: Signed, Path(id): Path<String>) -> Response {
    let dep = match found(
        &signed,
        "DescribeDeployments",
        "DeploymentIds",
        &id,
        "Deployments",
        "That deployment",
    )
    .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let commands = list(
        &signed,
        "DescribeCommands",
        json!({ "DeploymentId": id }),
        "Commands",
    )
    .await;
    let instances = list(
        &signed,
        "DescribeInstances",
        json!({ "StackId": s(&dep, "StackId") }),
        "Instances",
    )
    .await;
    let mut rows: Vec<Value> = Vec::with_capacity(commands.len());
    for c in &commands {
        let host = instances
            .iter()
            .find(|i| s(i, "InstanceId") == s(c, "InstanceId"))
            .map(|i| s(i, "Hostname"))
            .unwrap_or("");
        let log = read_log(signed.console(), s(c, "CommandId")).await;
        rows.push(json!({ "c": c, "hostname": host, "log": log }));
    }
    signed.render("deployment.html", json!({ "d": dep, "rows": rows }))
}

/// `GET /console/commands/{id}/log`: a command's log as plain text, for a principal who may
/// describe the command (the authorizer finds its stack, as for the API's log links).
pub async fn command_log(signed: Signed, Path(id): Path<String>) -> Response {
    match signed
        .call("DescribeCommands", json!({ "CommandIds": [id] }))
        .await
    {
        Ok(_) => {}
        Err(e @ ApiError::AccessDenied(_)) => {
            return (StatusCode::FORBIDDEN, format!("{e}\n")).into_response();
        }
        Err(_) => {
            return (StatusCode::NOT_FOUND, "no such command\n").into_response();
        }
    }
    match read_log(signed.console(), &id).await {
        Some(text) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        None => (StatusCode::NOT_FOUND, "no log for this command (yet)\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_are_listed_newest_first() {
        let mut list = vec![
            json!({ "DeploymentId": "a", "CreatedAt": "2026-12-07T09:00:00+00:00" }),
            json!({ "DeploymentId": "b", "CreatedAt": "2026-12-07T09:00:05+00:00" }),
            json!({ "DeploymentId": "c", "CreatedAt": "2026-12-07T09:00:05+00:00" }),
            json!({ "DeploymentId": "d", "CreatedAt": "2026-12-07T10:00:00+00:00" }),
        ];
        newest_first(&mut list);
        let order: Vec<&str> = list.iter().map(|d| s(d, "DeploymentId")).collect();
        assert_eq!(order, ["d", "c", "b", "a"]);
    }
}
