//! Instance pages: the instance form (started at once when asked), the instance's page (facts,
//! charts, command history) and its actions (start, stop, reboot, delete).

use std::collections::HashMap;

use axum::extract::{Path, Query};
use axum::response::Response;
use serde_json::{Value, json};

use opsworks_model::catalog::OPERATING_SYSTEMS;

use crate::Signed;
use crate::form::{SignedForm, error_ctx, s};
use crate::monitoring::{CHARTED, PERIODS, period};
use crate::render::{failure, found, list, not_found, safe_path, see_other};
use crate::stacks::STACK_OPERATIONS;

/// The instance members an API error may name, for pointing at the form field.
const INSTANCE_FIELDS: &[&str] = &[
    "LayerIds",
    "InstanceType",
    "Hostname",
    "AutoScalingType",
    "RootDeviceType",
    "Os",
];

/// The instance form, the layers to choose from and a hostname suggested by the first layer.
async fn instance_form(
    signed: &Signed,
    stack_id: &str,
    v: Value,
    error: Option<Value>,
) -> Response {
    let layers = list(
        signed,
        "DescribeLayers",
        json!({ "StackId": stack_id }),
        "Layers",
    )
    .await;
    let suggestion = match layers.first() {
        Some(l) => signed
            .call(
                "GetHostnameSuggestion",
                json!({ "LayerId": s(l, "LayerId") }),
            )
            .await
            .ok()
            .map(|v| s(&v, "Hostname").to_string()),
        None => None,
    };
    signed.render(
        "instance_form.html",
        json!({ "stack_id": stack_id, "layers": layers, "suggestion": suggestion,
                "os": OPERATING_SYSTEMS.iter().filter(|o| o.supported).map(|o| o.name).collect::<Vec<_>>(),
                "v": v, "error": error }),
    )
}

/// `GET /console/stacks/{id}/instances/new`: the instance form with a suggested hostname.
pub async fn new_instance(signed: Signed, Path(stack_id): Path<String>) -> Response {
    instance_form(&signed,
        &stack_id,
        json!({ "InstanceType": "c5.large", "RootDeviceType": "instance-store", "AutoScalingType": "" }),
        None,
    )
    .await
}

/// `POST /console/stacks/{id}/instances/new`: CreateInstance, then StartInstance when "start it
/// now" is ticked.
pub async fn create_instance(
    Path(stack_id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let mut input = json!({
        "StackId": stack_id,
        "LayerIds": form.all("LayerIds"),
        "InstanceType": form.get("InstanceType"),
    });
    for key in ["Hostname", "AutoScalingType", "RootDeviceType", "Os"] {
        let v = form.get(key);
        if !v.is_empty() {
            input[key] = v.into();
        }
    }
    let result = signed.call("CreateInstance", input).await;
    let result = match (result, form.checked("StartNow")) {
        (Ok(v), true) => signed
            .call(
                "StartInstance",
                json!({ "InstanceId": s(&v, "InstanceId") }),
            )
            .await
            .map(|_| v),
        (other, _) => other,
    };
    match result {
        Ok(_) => see_other(&format!("/console/stacks/{stack_id}")),
        Err(e) => {
            let error = error_ctx(&e, INSTANCE_FIELDS);
            let mut v = form.values();
            v.insert("LayerIds".into(), json!(form.all("LayerIds")));
            instance_form(&signed, &stack_id, Value::Object(v), Some(error)).await
        }
    }
}

/// `GET /console/instances/{id}?Period=..`: the instance's facts, charts and commands, followed
/// live.
pub async fn instance(
    signed: Signed,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let inst = match found(
        &signed,
        "DescribeInstances",
        "InstanceIds",
        &id,
        "Instances",
        "That instance",
    )
    .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let can = signed.can(s(&inst, "StackId"), STACK_OPERATIONS).await;
    let layers = list(
        &signed,
        "DescribeLayers",
        json!({ "StackId": s(&inst, "StackId") }),
        "Layers",
    )
    .await;
    let names: Vec<Value> = layers
        .iter()
        .filter(|l| {
            inst.get("LayerIds")
                .and_then(Value::as_array)
                .is_some_and(|ids| ids.iter().any(|x| x.as_str() == Some(s(l, "LayerId"))))
        })
        .map(|l| json!({ "id": s(l, "LayerId"), "name": s(l, "Name") }))
        .collect();
    let mut commands = list(
        &signed,
        "DescribeCommands",
        json!({ "InstanceId": id }),
        "Commands",
    )
    .await;
    commands.sort_by(|a, b| s(b, "CreatedAt").cmp(s(a, "CreatedAt")));
    signed.render(
        "instance.html",
        json!({ "i": inst, "layers": names, "commands": commands, "can": can,
                "period": period(&q), "periods": PERIODS, "metrics": CHARTED }),
    )
}

/// `POST /console/instances/{id}/do/{start|stop|reboot|delete}`; back to the page the form names (a
/// console page) or the stack.
pub async fn instance_action(
    Path((id, action)): Path<(String, String)>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let op = match action.as_str() {
        "start" => "StartInstance",
        "stop" => "StopInstance",
        "reboot" => "RebootInstance",
        "delete" => "DeleteInstance",
        _ => return not_found(&signed, "That action"),
    };
    let back = form.get("back");
    match signed.call(op, json!({ "InstanceId": id })).await {
        Ok(_) if safe_path(&back) == back && op != "DeleteInstance" => see_other(&back),
        Ok(_) => see_other(&format!("/console/stacks/{}", form.get("StackId"))),
        Err(e) => failure(&signed, e),
    }
}
