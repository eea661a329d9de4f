//! Scaling operations: SetTimeBasedAutoScaling, DescribeTimeBasedAutoScaling,
//! SetLoadBasedAutoScaling, DescribeLoadBasedAutoScaling.
//!
//! The settings live on the documents they belong to, as private members the API views strip:
//! an instance's weekly schedule in `_AutoScalingSchedule`, a layer's load configuration in
//! `_LoadBasedAutoScaling`. The decisions that act on them are in `opsworks_model::scaling`.

use serde_json::{Map, Value, json};

use opsworks_api::ApiError;
use opsworks_model::scaling::{LoadConfig, WeeklySchedule, default_config_json, merge_config};
use opsworks_store::Kind;

use super::doc_str as str_of;
use super::instances::load_instance;
use super::layers::load_layer;
use super::{OpResult, Req, apply, load_all, put, required_str, str_list};
use crate::App;

/// The private member of an instance document that holds its weekly schedule.
pub const SCHEDULE_MEMBER: &str = "_AutoScalingSchedule";

/// The private member of a layer document that holds its load-based configuration.
pub const LOAD_MEMBER: &str = "_LoadBasedAutoScaling";

/// The stored schedule of an instance (`{}`, every hour off, when it was never given one).
pub fn stored_schedule(doc: &Value) -> Value {
    doc.get(SCHEDULE_MEMBER)
        .filter(|v| v.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}))
}

/// The stored load-based configuration of a layer, or the defaults of one never configured.
pub fn stored_load_config(doc: &Value) -> Value {
    doc.get(LOAD_MEMBER)
        .filter(|v| v.is_object())
        .cloned()
        .unwrap_or_else(default_config_json)
}

/// Orders `docs` as `ids` asks (the store lists in insertion order); every id is present, as
/// `load_all` has checked.
fn in_request_order(docs: Vec<Value>, ids: &[String], id_member: &str) -> Vec<Value> {
    ids.iter()
        .filter_map(|id| docs.iter().find(|d| str_of(d, id_member) == id).cloned())
        .collect()
}

/// SetTimeBasedAutoScaling: replaces a `timer` instance's weekly schedule. A request without
/// `AutoScalingSchedule` clears it (every hour off).
pub async fn set_time_based_auto_scaling(app: &App, req: Req) -> OpResult {
    let id = required_str(&req, "InstanceId")?.to_string();
    let schedule = match req.get("AutoScalingSchedule").filter(|v| !v.is_null()) {
        Some(v) => {
            WeeklySchedule::parse(v).map_err(|e| ApiError::Validation(e.to_string()))?;
            // Days given as null carry nothing; keep the stored form as AWS echoes it.
            let days: Map<String, Value> = v
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter(|(_, h)| !h.is_null())
                        .map(|(k, h)| (k.clone(), h.clone()))
                        .collect()
                })
                .unwrap_or_default();
            Value::Object(days)
        }
        None => json!({}),
    };
    let _guard = app.write_lock().await;
    let old = load_instance(app, &id).await?;
    let scaling_type = old
        .get("AutoScalingType")
        .and_then(Value::as_str)
        .unwrap_or("24/7");
    if scaling_type != "timer" {
        return Err(ApiError::Validation(format!(
            "Instance {id} is not a time-based instance (its AutoScalingType is {scaling_type}); \
             only instances created with AutoScalingType timer take a schedule"
        )));
    }
    let stack_id = str_of(&old, "StackId").to_string();
    let mut doc = old.as_object().cloned().unwrap_or_default();
    doc.insert(SCHEDULE_MEMBER.into(), schedule);
    apply(
        app,
        vec![put(
            Kind::Instance,
            &id,
            &stack_id,
            None,
            Value::Object(doc),
        )],
    )
    .await?;
    Ok(json!({}))
}

/// DescribeTimeBasedAutoScaling: the schedule of each instance named, in the order named; an
/// instance never given one shows an empty schedule.
pub async fn describe_time_based_auto_scaling(app: &App, req: Req) -> OpResult {
    let ids = str_list(&req, "InstanceIds").unwrap_or_default();
    let docs = load_all(app, Kind::Instance, "instance", &ids).await?;
    let configs: Vec<Value> = in_request_order(docs, &ids, "InstanceId")
        .iter()
        .map(|d| {
            json!({
                "InstanceId": str_of(d, "InstanceId"),
                "AutoScalingSchedule": stored_schedule(d),
            })
        })
        .collect();
    Ok(json!({ "TimeBasedAutoScalingConfigurations": configs }))
}

/// SetLoadBasedAutoScaling: merges the request into the layer's stored configuration (members
/// not given keep their values) and stores the result once it validates as a whole.
pub async fn set_load_based_auto_scaling(app: &App, req: Req) -> OpResult {
    let id = required_str(&req, "LayerId")?.to_string();
    let _guard = app.write_lock().await;
    let old = load_layer(app, &id).await?;
    let merged = merge_config(&stored_load_config(&old), &req);
    LoadConfig::from_json(&merged).map_err(|e| ApiError::Validation(e.to_string()))?;
    let stack_id = str_of(&old, "StackId").to_string();
    let mut doc = old.as_object().cloned().unwrap_or_default();
    doc.insert(LOAD_MEMBER.into(), merged);
    apply(
        app,
        vec![put(Kind::Layer, &id, &stack_id, None, Value::Object(doc))],
    )
    .await?;
    Ok(json!({}))
}

/// DescribeLoadBasedAutoScaling: the configuration of each layer named, in the order named; a
/// layer never configured shows the disabled defaults.
pub async fn describe_load_based_auto_scaling(app: &App, req: Req) -> OpResult {
    let ids = str_list(&req, "LayerIds").unwrap_or_default();
    let docs = load_all(app, Kind::Layer, "layer", &ids).await?;
    let configs: Vec<Value> = in_request_order(docs, &ids, "LayerId")
        .iter()
        .map(|d| load_view(str_of(d, "LayerId"), &stored_load_config(d)))
        .collect();
    Ok(json!({ "LoadBasedAutoScalingConfigurations": configs }))
}

/// The API's `LoadBasedAutoScalingConfiguration` of a layer from its stored configuration.
fn load_view(layer_id: &str, config: &Value) -> Value {
    let defaults = default_config_json();
    let member = |name: &str| {
        config
            .get(name)
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or_else(|| defaults[name].clone())
    };
    json!({
        "LayerId": layer_id,
        "Enable": member("Enable"),
        "UpScaling": member("UpScaling"),
        "DownScaling": member("DownScaling"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_configured_layer_shows_disabled_defaults() {
        let v = load_view("l1", &stored_load_config(&json!({"LayerId": "l1"})));
        assert_eq!(v["LayerId"], json!("l1"));
        assert_eq!(v["Enable"], json!(false));
        assert_eq!(v["UpScaling"]["CpuThreshold"], json!(80.0));
        assert_eq!(v["DownScaling"]["ThresholdsWaitTime"], json!(10));
    }

    #[test]
    fn stored_members_win_and_are_not_in_the_public_view() {
        let doc = json!({
            "LayerId": "l1",
            LOAD_MEMBER: {"Enable": true, "UpScaling": {"CpuThreshold": 50}},
        });
        let v = load_view("l1", &stored_load_config(&doc));
        assert_eq!(v["Enable"], json!(true));
        assert_eq!(v["UpScaling"], json!({"CpuThreshold": 50}));
        assert_eq!(v["DownScaling"], default_config_json()["DownScaling"]);
        assert!(super::super::public_view(doc).get(LOAD_MEMBER).is_none());
    }

    #[test]
    fn schedule_defaults_to_empty_and_order_follows_the_request() {
        assert_eq!(stored_schedule(&json!({"InstanceId": "i"})), json!({}));
        let docs = vec![json!({"InstanceId": "a"}), json!({"InstanceId": "b"})];
        let ordered = in_request_order(docs, &["b".into(), "a".into()], "InstanceId");
        assert_eq!(ordered[0]["InstanceId"], json!("b"));
        assert_eq!(ordered[1]["InstanceId"], json!("a"));
    }
}
