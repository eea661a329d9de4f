//! Stack pages: the list of stacks, the stack's dashboard (layers and their instances, apps,
//! the newest deployments), the stack form, and the stack's actions (start, stop, clone, delete,
//! run a command).

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Map, Value, json};

use opsworks_api::ApiError;
use opsworks_model::catalog::OPERATING_SYSTEMS;
use opsworks_model::themes::THEME_NAMES;

use crate::deployments::newest_first;
use crate::form::{Form, SignedForm, error_ctx, s, split_list};
use crate::render::{failure, found, list, not_found, see_other};
use crate::{Console, Signed};

/// The operations a stack's pages offer as buttons and forms, each shown only when the signed-in
/// principal may run it on the stack.
pub const STACK_OPERATIONS: &[&str] = &[
    "UpdateStack",
    "StartStack",
    "StopStack",
    "CloneStack",
    "DeleteStack",
    "CreateLayer",
    "UpdateLayer",
    "DeleteLayer",
    "CreateInstance",
    "StartInstance",
    "StopInstance",
    "RebootInstance",
    "DeleteInstance",
    "CreateApp",
    "UpdateApp",
    "DeleteApp",
    "CreateDeployment",
];

/// `GET /console/`: every stack with its counts of layers, apps and instances by status.
pub async fn stacks(signed: Signed) -> Response {
    let stacks = list(&signed, "DescribeStacks", json!({}), "Stacks").await;
    let mut rows = Vec::new();
    for stack in stacks {
        let id = s(&stack, "StackId");
        let summary = signed
            .call("DescribeStackSummary", json!({ "StackId": id }))
            .await
            .ok()
            .and_then(|v| v.get("StackSummary").cloned())
            .unwrap_or(Value::Null);
        rows.push(json!({ "stack": stack, "summary": summary }));
    }
    let can_create = signed.may_account("CreateStack");
    signed.render(
        "stacks.html",
        json!({ "rows": rows, "can_create": can_create }),
    )
}

/// The choices of the stack form.
fn stack_choices() -> Value {
    json!({
        "os": OPERATING_SYSTEMS.iter().filter(|o| o.supported).map(|o| o.name).collect::<Vec<_>>(),
        "themes": THEME_NAMES,
    })
}

/// `GET /console/stacks/new`: an empty stack form.
pub async fn new_stack(signed: Signed) -> Response {
    signed.render(
        "stack_form.html",
        json!({ "new": true, "choices": stack_choices(),
                "v": { "DefaultOs": opsworks_model::catalog::DEFAULT_OS, "HostnameTheme": "Layer_Dependent",
                       "DefaultRootDeviceType": "instance-store" } }),
    )
}

/// How many deployments the dashboard shows, the newest.
const LATEST: usize = 5;

/// The stack members an API error may name, for pointing at the form field.
pub const STACK_FIELDS: &[&str] = &[
    "Name",
    "DefaultOs",
    "HostnameTheme",
    "CustomJson",
    "CustomCookbooksSource",
    "DefaultRootDeviceType",
    "DefaultSshKeyName",
];

/// The stack members a stack form sets.
fn stack_input(form: &Form) -> Result<Map<String, Value>, ApiError> {
    let mut m = Map::new();
    m.insert("Name".into(), form.get("Name").into());
    for key in ["DefaultOs", "HostnameTheme", "DefaultRootDeviceType"] {
        let v = form.get(key);
        if !v.is_empty() {
            m.insert(key.into(), v.into());
        }
    }
    let custom_json = form.get("CustomJson");
    if custom_json.is_empty() {
        // The API takes no empty document; an emptied field on edit means "no custom JSON".
        if !form.get("StackId").is_empty() {
            m.insert("CustomJson".into(), "{}".into());
        }
    } else {
        if let Err(e) = serde_json::from_str::<Value>(&custom_json) {
            return Err(ApiError::Validation(format!(
                "CustomJson is not valid JSON: {e}"
            )));
        }
        m.insert("CustomJson".into(), custom_json.into());
    }
    let url = form.get("CookbooksUrl");
    m.insert("UseCustomCookbooks".into(), (!url.is_empty()).into());
    if !url.is_empty() {
        let mut src = Map::new();
        src.insert("Type".into(), form.get("CookbooksType").into());
        src.insert("Url".into(), url.into());
        let rev = form.get("CookbooksRevision");
        if !rev.is_empty() {
            src.insert("Revision".into(), rev.into());
        }
        m.insert("CustomCookbooksSource".into(), Value::Object(src));
    }
    Ok(m)
}

/// `POST /console/stacks/new`: CreateStack (with the account's default roles); the form again with
/// the error next to its field when refused.
pub async fn create_stack(
    State(console): State<Console>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let account = console.app().account_id().to_string();
    let result = async {
        let mut input = stack_input(&form)?;
        input.insert("Region".into(), console.app().region().into());
        input.insert(
            "ServiceRoleArn".into(),
            format!("arn:aws:iam::{account}:role/aws-opsworks-service-role").into(),
        );
        input.insert(
            "DefaultInstanceProfileArn".into(),
            format!("arn:aws:iam::{account}:instance-profile/aws-opsworks-ec2-role").into(),
        );
        signed.call("CreateStack", Value::Object(input)).await
    }
    .await;
    match result {
        Ok(v) => see_other(&format!("/console/stacks/{}", s(&v, "StackId"))),
        Err(e) => signed.render(
            "stack_form.html",
            json!({ "new": true, "choices": stack_choices(),
                    "v": form.values(), "error": error_ctx(&e, STACK_FIELDS) }),
        ),
    }
}

/// `GET /console/stacks/{id}/edit`: the stack form, filled in.
pub async fn edit_stack(signed: Signed, Path(id): Path<String>) -> Response {
    let stack = match found(
        &signed,
        "DescribeStacks",
        "StackIds",
        &id,
        "Stacks",
        "That stack",
    )
    .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let src = stack
        .get("CustomCookbooksSource")
        .cloned()
        .unwrap_or(Value::Null);
    let v = json!({
        "StackId": id, "Name": s(&stack, "Name"), "DefaultOs": s(&stack, "DefaultOs"),
        "HostnameTheme": s(&stack, "HostnameTheme"), "CustomJson": s(&stack, "CustomJson"),
        "DefaultRootDeviceType": s(&stack, "DefaultRootDeviceType"),
        "CookbooksType": s(&src, "Type"), "CookbooksUrl": s(&src, "Url"), "CookbooksRevision": s(&src, "Revision"),
    });
    signed.render(
        "stack_form.html",
        json!({ "new": false, "choices": stack_choices(), "v": v }),
    )
}

/// `POST /console/stacks/{id}/edit`: UpdateStack.
pub async fn update_stack(
    Path(id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let result = async {
        let mut input = stack_input(&form)?;
        input.insert("StackId".into(), id.clone().into());
        signed.call("UpdateStack", Value::Object(input)).await
    }
    .await;
    match result {
        Ok(_) => see_other(&format!("/console/stacks/{id}")),
        Err(e) => {
            let mut v = form.values();
            v.insert("StackId".into(), id.into());
            signed.render(
                "stack_form.html",
                json!({ "new": false, "choices": stack_choices(),
                        "v": v, "error": error_ctx(&e, STACK_FIELDS) }),
            )
        }
    }
}

/// `GET /console/stacks/{id}`: the stack's dashboard, followed live.
pub async fn stack(signed: Signed, Path(id): Path<String>) -> Response {
    let stack = match found(
        &signed,
        "DescribeStacks",
        "StackIds",
        &id,
        "Stacks",
        "That stack",
    )
    .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let can = signed.can(&id, STACK_OPERATIONS).await;
    let layers = list(
        &signed,
        "DescribeLayers",
        json!({ "StackId": id }),
        "Layers",
    )
    .await;
    let instances = list(
        &signed,
        "DescribeInstances",
        json!({ "StackId": id }),
        "Instances",
    )
    .await;
    let apps = list(&signed, "DescribeApps", json!({ "StackId": id }), "Apps").await;
    let mut deployments = list(
        &signed,
        "DescribeDeployments",
        json!({ "StackId": id }),
        "Deployments",
    )
    .await;
    newest_first(&mut deployments);
    deployments.truncate(LATEST);
    let layers: Vec<Value> = layers
        .into_iter()
        .map(|layer| {
            let lid = s(&layer, "LayerId").to_string();
            let members: Vec<&Value> = instances
                .iter()
                .filter(|i| {
                    i.get("LayerIds")
                        .and_then(Value::as_array)
                        .is_some_and(|ids| ids.iter().any(|x| x.as_str() == Some(&lid)))
                })
                .collect();
            json!({ "layer": layer, "instances": members })
        })
        .collect();
    let rds = crate::rds::stack_databases(&signed, &id).await;
    signed.render(
        "stack.html",
        json!({ "stack": stack, "layers": layers, "apps": apps, "can": can,
                "deployments": deployments, "has_instances": !instances.is_empty(), "rds": rds }),
    )
}

/// `POST /console/stacks/{id}/do/{start|stop|delete|clone|command}`.
pub async fn stack_action(
    State(console): State<Console>,
    Path((id, action)): Path<(String, String)>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let back = format!("/console/stacks/{id}");
    let result = match action.as_str() {
        "start" => signed
            .call("StartStack", json!({ "StackId": id }))
            .await
            .map(|_| back.clone()),
        "stop" => signed
            .call("StopStack", json!({ "StackId": id }))
            .await
            .map(|_| back.clone()),
        "delete" => signed
            .call("DeleteStack", json!({ "StackId": id }))
            .await
            .map(|_| "/console/".to_string()),
        "clone" => {
            let account = console.app().account_id().to_string();
            let mut input = json!({
                "SourceStackId": id,
                "ServiceRoleArn": format!("arn:aws:iam::{account}:role/aws-opsworks-service-role"),
                "ClonePermissions": false,
            });
            let name = form.get("Name");
            if !name.is_empty() {
                input["Name"] = name.into();
            }
            signed
                .call("CloneStack", input)
                .await
                .map(|v| format!("/console/stacks/{}", s(&v, "StackId")))
        }
        "command" => {
            let name = form.get("Command");
            let mut command = json!({ "Name": name });
            if name == "execute_recipes" {
                command["Args"] = json!({ "recipes": split_list(&form.get("Recipes")) });
            }
            let mut input = json!({ "StackId": id, "Command": command });
            let comment = form.get("Comment");
            if !comment.is_empty() {
                input["Comment"] = comment.into();
            }
            signed
                .call("CreateDeployment", input)
                .await
                .map(|v| format!("/console/deployments/{}", s(&v, "DeploymentId")))
        }
        _ => return not_found(&signed, "That action"),
    };
    match result {
        Ok(to) => see_other(&to),
        Err(e) => failure(&signed, e),
    }
}
