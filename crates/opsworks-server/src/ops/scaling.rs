//! Scaling operations: SetTimeBasedAutoScaling, DescribeTimeBasedAutoScaling,
//! SetLoadBasedAutoScaling, DescribeLoadBasedAutoScaling.
//!
//! The settings live on the resources they belong to, as private members the wire views leave
//! out: an instance's weekly schedule, a layer's load configuration. The decisions that act on
//! them are in `opsworks_model::scaling`, carried out by `core::scheduler`.

use std::collections::BTreeMap;

use serde_json::json;

use opsworks_api::{ApiError, shapes};
use opsworks_model::resource::{
    AutoScalingType, Instance, Layer, LoadBasedScaling, ScalingThresholds,
};
use opsworks_model::scaling::{LoadConfig, WeeklySchedule, default_config_json};

use super::{Ctx, OpResult, Reply};

/// The configuration of a layer never configured: disabled, with the console's defaults.
fn default_config() -> LoadBasedScaling {
    // The defaults are this crate's own constant document: they always read as the type.
    serde_json::from_value(default_config_json()).unwrap_or_default()
}

/// The weekday members of the API's schedule, in its spelling.
fn schedule_days(
    s: shapes::WeeklyAutoScalingSchedule,
) -> [(&'static str, Option<BTreeMap<String, Option<String>>>); 7] {
    [
        ("Monday", s.monday),
        ("Tuesday", s.tuesday),
        ("Wednesday", s.wednesday),
        ("Thursday", s.thursday),
        ("Friday", s.friday),
        ("Saturday", s.saturday),
        ("Sunday", s.sunday),
    ]
}

/// SetTimeBasedAutoScaling: replaces a `timer` instance's weekly schedule. A request without
/// `AutoScalingSchedule` clears it (every hour off).
pub async fn set_time_based_auto_scaling(
    cx: Ctx<'_>,
    req: shapes::SetTimeBasedAutoScalingRequest,
) -> OpResult {
    let mut days: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    if let Some(schedule) = req.auto_scaling_schedule {
        for (day, hours) in schedule_days(schedule) {
            // Days given as null carry nothing; keep the stored form as AWS echoes it.
            let Some(hours) = hours else { continue };
            let mut kept = BTreeMap::new();
            for (hour, switch) in hours {
                let switch = switch.ok_or_else(|| {
                    ApiError::Validation(format!(
                        "AutoScalingSchedule.{day}.{hour} must be \"on\" or \"off\""
                    ))
                })?;
                kept.insert(hour, switch);
            }
            days.insert(day.to_string(), kept);
        }
        WeeklySchedule::from_record(&days).map_err(|e| ApiError::Validation(e.to_string()))?;
    }
    let mut w = cx.core.write().await?;
    let mut inst: Instance = w.get(&req.instance_id).await?;
    if inst.auto_scaling_type != Some(AutoScalingType::Timer) {
        let kind = inst.auto_scaling_type.map_or("24/7", |t| t.as_str());
        return Err(ApiError::Validation(format!(
            "Instance {} is not a time-based instance (its AutoScalingType is {kind}); \
             only instances created with AutoScalingType timer take a schedule",
            req.instance_id
        )));
    }
    inst.auto_scaling_schedule = Some(days);
    w.put(&inst).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// DescribeTimeBasedAutoScaling: the schedule of each instance named, in the order named; an
/// instance never given one shows an empty schedule.
pub async fn describe_time_based_auto_scaling(
    cx: Ctx<'_>,
    req: shapes::DescribeTimeBasedAutoScalingRequest,
) -> OpResult {
    let instances = cx.core.get_all::<Instance>(&req.instance_ids).await?;
    let configs: Vec<_> = instances
        .iter()
        .map(|i| {
            json!({
                "InstanceId": i.instance_id,
                "AutoScalingSchedule": i.auto_scaling_schedule.clone().unwrap_or_default(),
            })
        })
        .collect();
    Reply::json(&json!({ "TimeBasedAutoScalingConfigurations": configs }))
}

/// Each member a request gives replaces that member only, so a call that sets one threshold keeps
/// the others.
fn merge(stored: &mut ScalingThresholds, given: Option<shapes::AutoScalingThresholds>) {
    let Some(g) = given else { return };
    macro_rules! take {
        ($($f:ident),*) => {$( if g.$f.is_some() { stored.$f = g.$f; } )*};
    }
    take!(
        instance_count,
        thresholds_wait_time,
        ignore_metrics_time,
        cpu_threshold,
        memory_threshold,
        load_threshold,
        alarms
    );
}

/// SetLoadBasedAutoScaling: merges the request into the layer's stored configuration (members
/// not given keep their values) and stores the result once it validates as a whole.
pub async fn set_load_based_auto_scaling(
    cx: Ctx<'_>,
    req: shapes::SetLoadBasedAutoScalingRequest,
) -> OpResult {
    let mut w = cx.core.write().await?;
    let mut layer: Layer = w.get(&req.layer_id).await?;
    let mut config = layer
        .load_based_auto_scaling
        .clone()
        .unwrap_or_else(default_config);
    if let Some(e) = req.enable {
        config.enable = e;
    }
    merge(&mut config.up_scaling, req.up_scaling);
    merge(&mut config.down_scaling, req.down_scaling);
    LoadConfig::from_record(&config).map_err(|e| ApiError::Validation(e.to_string()))?;
    layer.load_based_auto_scaling = Some(config);
    w.put(&layer).await?;
    w.commit().await?;
    Ok(Reply::empty())
}

/// DescribeLoadBasedAutoScaling: the configuration of each layer named, in the order named; a
/// layer never configured shows the disabled defaults.
pub async fn describe_load_based_auto_scaling(
    cx: Ctx<'_>,
    req: shapes::DescribeLoadBasedAutoScalingRequest,
) -> OpResult {
    let layers = cx.core.get_all::<Layer>(&req.layer_ids).await?;
    let configs: Vec<_> = layers
        .iter()
        .map(|l| {
            let c = l
                .load_based_auto_scaling
                .clone()
                .unwrap_or_else(default_config);
            json!({
                "LayerId": l.layer_id,
                "Enable": c.enable,
                "UpScaling": c.up_scaling,
                "DownScaling": c.down_scaling,
            })
        })
        .collect();
    Reply::json(&json!({ "LoadBasedAutoScalingConfigurations": configs }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_read_as_a_configuration() {
        let d = default_config();
        assert!(!d.enable);
        assert_eq!(d.up_scaling.cpu_threshold, Some(80.0));
        assert_eq!(d.down_scaling.thresholds_wait_time, Some(10));
        assert!(LoadConfig::from_record(&d).is_ok());
    }
}
