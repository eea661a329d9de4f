//! Layer pages: the layer form (type, names, recipes per lifecycle event, packages, attributes,
//! auto healing, shutdown timeout) and deleting a layer.

use axum::extract::Path;
use axum::response::Response;
use serde_json::{Map, Value, json};

use opsworks_api::ApiError;
use opsworks_model::layer::LayerType;

use crate::Signed;
use crate::form::{Form, SignedForm, error_ctx, join, s, split_list};
use crate::render::{failure, found, see_other};
use crate::stacks::STACK_OPERATIONS;

/// The layer members an API error may name, for pointing at the form field.
pub const LAYER_FIELDS: &[&str] = &[
    "Type",
    "Name",
    "Shortname",
    "Packages",
    "CustomRecipes",
    "CustomJson",
    "Attributes",
    "LifecycleEventConfiguration",
];

/// Layer attributes the form offers, with their labels.
const LAYER_ATTRIBUTES: &[(&str, &str)] = &[
    ("EnableHaproxyStats", "HAProxy stats page (true/false)"),
    ("HaproxyStatsUrl", "HAProxy stats URL"),
    ("HaproxyStatsUser", "HAProxy stats user"),
    ("HaproxyStatsPassword", "HAProxy stats password"),
    ("HaproxyHealthCheckUrl", "HAProxy health check URL"),
    ("HaproxyHealthCheckMethod", "HAProxy health check method"),
    ("MysqlRootPassword", "MySQL root password"),
    ("MemcachedMemory", "Memcached memory (MB)"),
    ("NodejsVersion", "Node.js version"),
];

/// The lifecycle events a layer has custom recipes for.
const EVENTS: &[&str] = &["Setup", "Configure", "Deploy", "Undeploy", "Shutdown"];

/// The choices of the layer form.
fn layer_choices() -> Value {
    json!({
        "types": LayerType::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "attributes": LAYER_ATTRIBUTES.iter().map(|(k, l)| json!({"key": k, "label": l})).collect::<Vec<_>>(),
        "events": EVENTS,
    })
}

/// The layer members a layer form sets (`Type` only for a new layer).
fn layer_input(form: &Form, new: bool) -> Result<Map<String, Value>, ApiError> {
    let mut m = Map::new();
    if new {
        m.insert("Type".into(), form.get("Type").into());
    }
    m.insert("Name".into(), form.get("Name").into());
    m.insert("Shortname".into(), form.get("Shortname").into());
    m.insert(
        "Packages".into(),
        Value::Array(split_list(&form.get("Packages"))),
    );
    let mut recipes = Map::new();
    for event in EVENTS {
        recipes.insert(
            (*event).into(),
            Value::Array(split_list(&form.get(&format!("Recipes{event}")))),
        );
    }
    m.insert("CustomRecipes".into(), Value::Object(recipes));
    m.insert(
        "EnableAutoHealing".into(),
        form.checked("EnableAutoHealing").into(),
    );
    m.insert(
        "AutoAssignPublicIps".into(),
        form.checked("AutoAssignPublicIps").into(),
    );
    let timeout = form.get("ShutdownTimeout");
    if !timeout.is_empty() {
        let secs: i64 = timeout.parse().map_err(|_| {
            ApiError::Validation(format!(
                "LifecycleEventConfiguration: the shutdown timeout must be a whole number of seconds, not {timeout:?}"
            ))
        })?;
        m.insert(
            "LifecycleEventConfiguration".into(),
            json!({ "Shutdown": { "ExecutionTimeout": secs, "DelayUntilElbConnectionsDrained": false } }),
        );
    }
    let mut attributes = Map::new();
    for (key, _) in LAYER_ATTRIBUTES {
        let v = form.get(&format!("attr_{key}"));
        if !v.is_empty() {
            attributes.insert((*key).into(), v.into());
        }
    }
    if !attributes.is_empty() {
        m.insert("Attributes".into(), Value::Object(attributes));
    }
    let custom_json = form.get("CustomJson");
    if !custom_json.is_empty() {
        if let Err(e) = serde_json::from_str::<Value>(&custom_json) {
            return Err(ApiError::Validation(format!(
                "CustomJson is not valid JSON: {e}"
            )));
        }
        m.insert("CustomJson".into(), custom_json.into());
    }
    Ok(m)
}

/// `GET /console/stacks/{id}/layers/new`: an empty layer form.
pub async fn new_layer(signed: Signed, Path(stack_id): Path<String>) -> Response {
    signed.render(
        "layer_form.html",
        json!({ "new": true, "stack_id": stack_id, "choices": layer_choices(),
                "v": { "Type": "custom", "EnableAutoHealing": "on", "ShutdownTimeout": "120" } }),
    )
}

/// `POST /console/stacks/{id}/layers/new`: CreateLayer.
pub async fn create_layer(
    Path(stack_id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let result = async {
        let mut input = layer_input(&form, true)?;
        input.insert("StackId".into(), stack_id.clone().into());
        signed.call("CreateLayer", Value::Object(input)).await
    }
    .await;
    match result {
        Ok(_) => see_other(&format!("/console/stacks/{stack_id}")),
        Err(e) => signed.render(
            "layer_form.html",
            json!({ "new": true, "stack_id": stack_id, "choices": layer_choices(),
                    "v": form.values(), "error": error_ctx(&e, LAYER_FIELDS) }),
        ),
    }
}

/// `GET /console/layers/{id}/edit`: the layer form, filled in (secret attributes left empty: they
/// keep their value).
pub async fn edit_layer(signed: Signed, Path(id): Path<String>) -> Response {
    let layer = match found(
        &signed,
        "DescribeLayers",
        "LayerIds",
        &id,
        "Layers",
        "That layer",
    )
    .await
    {
        Ok(v) => v,
        Err(r) => return r,
    };
    let can = signed.can(s(&layer, "StackId"), STACK_OPERATIONS).await;
    let mut v = Map::new();
    for key in ["Type", "Name", "Shortname", "CustomJson"] {
        v.insert(key.into(), s(&layer, key).into());
    }
    v.insert("Packages".into(), join(layer.get("Packages")).into());
    for event in EVENTS {
        v.insert(
            format!("Recipes{event}"),
            join(layer.get("CustomRecipes").and_then(|r| r.get(*event))).into(),
        );
    }
    for flag in ["EnableAutoHealing", "AutoAssignPublicIps"] {
        if layer.get(flag).and_then(Value::as_bool) == Some(true) {
            v.insert(flag.into(), "on".into());
        }
    }
    if let Some(t) = layer
        .pointer("/LifecycleEventConfiguration/Shutdown/ExecutionTimeout")
        .and_then(Value::as_i64)
    {
        v.insert("ShutdownTimeout".into(), t.to_string().into());
    }
    if let Some(attrs) = layer.get("Attributes").and_then(Value::as_object) {
        for (key, _) in LAYER_ATTRIBUTES {
            // Secret attributes come back FILTERED: the field stays empty and keeps the value.
            if let Some(val) = attrs.get(*key).and_then(Value::as_str)
                && val != opsworks_api::FILTERED
            {
                v.insert(format!("attr_{key}"), val.into());
            }
        }
    }
    signed.render(
        "layer_form.html",
        json!({ "new": false, "layer_id": id, "stack_id": s(&layer, "StackId"),
                "choices": layer_choices(), "v": v, "can": can }),
    )
}

/// `POST /console/layers/{id}/edit`: UpdateLayer.
pub async fn update_layer(
    Path(id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    let stack_id = form.get("StackId");
    let result = async {
        let mut input = layer_input(&form, false)?;
        input.insert("LayerId".into(), id.clone().into());
        signed.call("UpdateLayer", Value::Object(input)).await
    }
    .await;
    match result {
        Ok(_) => see_other(&format!("/console/stacks/{stack_id}")),
        Err(e) => {
            let can = signed.can(&stack_id, STACK_OPERATIONS).await;
            signed.render(
                "layer_form.html",
                json!({ "new": false, "layer_id": id, "stack_id": stack_id, "can": can,
                        "choices": layer_choices(), "v": form.values(), "error": error_ctx(&e, LAYER_FIELDS) }),
            )
        }
    }
}

/// `POST /console/layers/{id}/delete`: DeleteLayer.
pub async fn delete_layer(
    Path(id): Path<String>,
    SignedForm(signed, form): SignedForm,
) -> Response {
    match signed.call("DeleteLayer", json!({ "LayerId": id })).await {
        Ok(_) => see_other(&format!("/console/stacks/{}", form.get("StackId"))),
        Err(e) => failure(&signed, e),
    }
}
