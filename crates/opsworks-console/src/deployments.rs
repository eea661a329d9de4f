//! Deployment pages: the deploy form of an app, the stack's deployments (newest first), one
//! deployment with each instance's command and its log, and a command's raw log.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::form::{SignedForm, error_ctx, s};
use crate::live::read_log;
use crate::render::{first, list, not_found, see_other};
use crate::{Console, Signed};

/// Orders deployments newest first. `CreatedAt` is to the second, so deployments of the same
/// second keep the API's order reversed (it lists them oldest first).
pub fn newest_first(deployments: &mut [Value]) {
    deployments.reverse();
    deployments.sort_by(|a, b| s(b, "CreatedAt").cmp(s(a, "CreatedAt")));
}

/// The deploy form of `app`: its stack's instances and layers to choose from.
async fn deploy_form(
    console: &Console,
    signed: &Signed,
    app: &Value,
    error: Option<Value>,
) -> Response {
    let stack_id = s(app, "StackId");
    let instances = list(
        console,
        "DescribeInstances",
        json!({ "StackId": stack_id }),
        "Instances",
    )
    .await;
    let layers = list(
        console,
        "DescribeLayers",
        json!({ "StackId": stack_id }),
        "Layers",
    )
    .await;
    console.render(
        "deploy_form.html",
        json!({ "csrf": signed.csrf, "app": app, "instances": instances, "layers": layers, "error": error }),
    )
}

/// `GET /console/apps/{id}/deploy`: the deploy form of an app.
pub async fn deploy_page(
    State(console): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match first(&console, "DescribeApps", "AppIds", &id, "Apps").await {
        Some(app) => deploy_form(&console, &signed, &app, None).await,
        None => not_found(&console, &signed, "That app"),
    }
}

/// `POST /console/apps/{id}/deploy`: CreateDeployment of the app, then its page.
pub async fn deploy(
    State(console): State<Console>,
    Path(id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let Some(app) = first(&console, "DescribeApps", "AppIds", &id, "Apps").await else {
        return not_found(&console, &signed, "That app");
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
    match console.call("CreateDeployment", input).await {
        Ok(v) => see_other(&format!("/console/deployments/{}", s(&v, "DeploymentId"))),
        Err(e) => {
            let error = error_ctx(&e, &["InstanceIds", "LayerIds", "Command", "Comment"]);
            deploy_form(&console, &signed, &app, Some(error)).await
        }
    }
}

/// `GET /console/stacks/{id}/deployments`: the stack's deployments, newest first.
pub async fn deployments(
    State(console): State<Console>,
    signed: Signed,
    Path(stack_id): Path<String>,
) -> Response {
    let Some(stack) = first(&console, "DescribeStacks", "StackIds", &stack_id, "Stacks").await
    else {
        return not_found(&console, &signed, "That stack");
    };
    let mut deployments = list(
        &console,
        "DescribeDeployments",
        json!({ "StackId": stack_id }),
        "Deployments",
    )
    .await;
    newest_first(&mut deployments);
    console.render(
        "deployments.html",
        json!({ "csrf": signed.csrf, "stack": stack, "deployments": deployments }),
    )
}

/// `GET /console/deployments/{id}`: a deployment, each instance's command and log, followed live.
pub async fn deployment(
    State(console): State<Console>,
    signed: Signed,
    Path(id): Path<String>,
) -> Response {
    let Some(dep) = first(
        &console,
        "DescribeDeployments",
        "DeploymentIds",
        &id,
        "Deployments",
    )
    .await
    else {
        return not_found(&console, &signed, "That deployment");
    };
    let commands = list(
        &console,
        "DescribeCommands",
        json!({ "DeploymentId": id }),
        "Commands",
    )
    .await;
    let instances = list(
        &console,
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
        let log = read_log(&console, s(c, "CommandId")).await;
        rows.push(json!({ "c": c, "hostname": host, "log": log }));
    }
    console.render(
        "deployment.html",
        json!({ "csrf": signed.csrf, "d": dep, "rows": rows }),
    )
}

/// `GET /console/commands/{id}/log`: a command's log as plain text.
pub async fn command_log(
    State(console): State<Console>,
    _signed: Signed,
    Path(id): Path<String>,
) -> Response {
    match read_log(&console, &id).await {
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
