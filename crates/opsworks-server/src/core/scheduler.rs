//! The scheduler: every tick (`--scheduler-interval`, default 15 s) it applies time-based scaling
//! to the `timer` instances and load-based scaling to the `load` instances of each layer that has
//! it enabled, through the same paths as StartInstance and StopInstance.
//!
//! The decisions are the pure plans of `opsworks_model::scaling` ([`time_plan`], [`load_plan`]);
//! this module only gathers their inputs (stored schedules and configurations, statuses, the
//! layer's metrics from a [`LayerLoad`], the layer's last scaling event kept on the layer) and
//! carries their actions out. A tick takes `now` as a parameter, so tests drive it with a chosen
//! clock.

use std::future::Future;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use opsworks_model::EventKind;
use opsworks_model::resource::{AutoScalingType, Instance, LastScalingRecord, Layer};
use opsworks_model::scaling::{
    Action, Direction, LastScaling, LoadConfig, LoadInstance, MINUTE, Sample, TimerInstance,
    WeeklySchedule, load_plan, time_plan,
};
use opsworks_store::{Cached, Filter};

use crate::core::events::new_event;
use crate::core::{Core, CoreResult, instances, metrics};

/// Minutes of samples fetched beyond the longest ThresholdsWaitTime, so the plan finds the sample
/// that opens its window.
const SAMPLE_MARGIN_MINUTES: u32 = 2;

/// Where the load-based scheduler gets a layer's metrics: the averages over the layer's online
/// instances, one [`Sample`] per sampling instant, taken at or after `since`.
pub trait LayerLoad: Send + Sync + 'static {
    /// The layer's samples since `since`, in any order.
    fn layer_samples(
        &self,
        core: &Core,
        layer_id: &str,
        since: Timestamp,
    ) -> impl Future<Output = CoreResult<Vec<Sample>>> + Send;
}

/// The agents' metrics: averages over the layer's online instances ([`metrics::layer_averages`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentMetrics;

impl LayerLoad for AgentMetrics {
    async fn layer_samples(
        &self,
        core: &Core,
        layer_id: &str,
        since: Timestamp,
    ) -> CoreResult<Vec<Sample>> {
        metrics::layer_averages(core, layer_id, since).await
    }
}

/// A metrics source with no samples: load-based scaling never fires with it (for tests of the
/// time-based side).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl LayerLoad for NoMetrics {
    async fn layer_samples(
        &self,
        _core: &Core,
        _layer_id: &str,
        _since: Timestamp,
    ) -> CoreResult<Vec<Sample>> {
        Ok(Vec::new())
    }
}

/// One pass at `now`: the time plan over every `timer` instance, then the load plan of every
/// layer with load-based scaling enabled. Returns the actions carried out (an action that fails,
/// e.g. an instance that cannot start, is logged and left for the next tick).
pub async fn tick<L: LayerLoad>(core: &Core, load: &L, now: Timestamp) -> CoreResult<Vec<Action>> {
    let instances = core.list::<Instance>(Filter::All).await?;
    let mut done = time_based(core, &instances, now).await;
    for layer in core.list::<Layer>(Filter::All).await? {
        match load_based(core, load, &layer, &instances, now).await {
            Ok(moved) => done.extend(moved),
            Err(e) => tracing::warn!(layer_id = layer.layer_id, "load scaling: {e}"),
        }
    }
    Ok(done)
}

/// Carries out one action through the StartInstance / StopInstance paths.
async fn carry_out(core: &Core, action: &Action) -> CoreResult<()> {
    match action {
        Action::Start(id) => instances::start(core, id).await,
        Action::Stop(id) => instances::stop(core, id, false).await,
    }
}

async fn time_based(core: &Core, instances: &[Cached<Instance>], now: Timestamp) -> Vec<Action> {
    let timers: Vec<TimerInstance> = instances
        .iter()
        .filter(|i| i.auto_scaling_type == Some(AutoScalingType::Timer))
        .map(|i| TimerInstance {
            id: i.instance_id.clone(),
            status: i.status,
            // Stored schedules were validated by SetTimeBasedAutoScaling.
            schedule: i
                .auto_scaling_schedule
                .as_ref()
                .and_then(|s| WeeklySchedule::from_record(s).ok())
                .unwrap_or_default(),
        })
        .collect();
    let mut done = Vec::new();
    for action in time_plan(&timers, now) {
        let (id, verb) = match &action {
            Action::Start(id) => (id, "start"),
            Action::Stop(id) => (id, "stop"),
        };
        if let Err(e) = carry_out(core, &action).await {
            tracing::warn!(instance_id = id, "time-based {verb}: {e}");
            continue;
        }
        tracing::info!(instance_id = id, "time-based {verb}");
        let stack = instances
            .iter()
            .find(|i| i.instance_id == *id)
            .map(|i| i.stack_id.clone())
            .unwrap_or_default();
        let mut event = new_event(&stack, EventKind::TimeScaling);
        event.instance_id = Some(id.clone());
        event.detail = json!({"Action": verb, "At": opsworks_model::timestamp(now)});
        if let Err(e) = record(core, event).await {
            tracing::warn!(instance_id = id, "recording a time-based {verb}: {e}");
        }
        done.push(action);
    }
    done
}

async fn record(core: &Core, event: opsworks_store::NewEvent) -> CoreResult<()> {
    let mut w = core.write().await?;
    w.record(event).await?;
    w.commit().await
}

/// The layer's last scaling event, as stored on it.
pub fn last_scaling(layer: &Layer) -> Option<LastScaling> {
    let last = layer.last_scaling.as_ref()?;
    Some(LastScaling {
        at: last.at.parse().ok()?,
        direction: last.direction,
    })
}

/// How long one of the configuration's minutes lasts on this server.
fn minute_of(core: &Core) -> SignedDuration {
    SignedDuration::try_from(core.scaling_minute())
        .ok()
        .filter(|m| m.is_positive())
        .unwrap_or(MINUTE)
}

async fn load_based<L: LayerLoad>(
    core: &Core,
    load: &L,
    layer: &Layer,
    instances: &[Cached<Instance>],
    now: Timestamp,
) -> CoreResult<Vec<Action>> {
    let Some(config) = layer
        .load_based_auto_scaling
        .as_ref()
        .and_then(|c| LoadConfig::from_record(c).ok())
        .filter(|c| c.enable)
    else {
        return Ok(Vec::new());
    };
    let layer_id = layer.layer_id.as_str();
    // Only load instances: 24/7 and timer instances are never moved by load scaling.
    let loads: Vec<LoadInstance> = instances
        .iter()
        .filter(|i| i.in_layer(layer_id) && i.auto_scaling_type == Some(AutoScalingType::Load))
        .map(|i| LoadInstance {
            id: i.instance_id.clone(),
            status: i.status,
        })
        .collect();
    if loads.is_empty() {
        return Ok(Vec::new());
    }
    let minute = minute_of(core);
    let span = config.up.wait_minutes.max(config.down.wait_minutes) + SAMPLE_MARGIN_MINUTES;
    let since = now
        .checked_sub(
            minute
                .checked_mul(i32::try_from(span).unwrap_or(i32::MAX))
                .unwrap_or(SignedDuration::MAX),
        )
        .unwrap_or(Timestamp::MIN);
    let samples = load.layer_samples(core, layer_id, since).await?;
    let plan = load_plan(&config, &samples, &loads, last_scaling(layer), now, minute);
    let Some(first) = plan.first() else {
        return Ok(Vec::new());
    };
    let direction = match first {
        Action::Start(_) => Direction::Up,
        Action::Stop(_) => Direction::Down,
    };
    let mut moved = Vec::new();
    for action in plan {
        match carry_out(core, &action).await {
            Ok(()) => moved.push(action),
            Err(e) => tracing::warn!(layer_id, ?action, "load-based scaling: {e}"),
        }
    }
    if moved.is_empty() {
        return Ok(moved);
    }
    let ids: Vec<&str> = moved
        .iter()
        .map(|a| match a {
            Action::Start(id) | Action::Stop(id) => id.as_str(),
        })
        .collect();
    tracing::info!(layer_id, direction = direction.as_str(), instances = ?ids, "load-based scaling");
    let mut w = core.write().await?;
    let mut stored: Layer = w.get(layer_id).await?;
    stored.last_scaling = Some(LastScalingRecord {
        at: opsworks_model::timestamp(now),
        direction,
    });
    w.put(&stored).await?;
    let mut event = new_event(&layer.stack_id, EventKind::LoadScaling);
    event.layer_id = Some(layer_id.to_string());
    event.detail = json!({"Direction": direction.as_str(), "InstanceIds": ids});
    w.record(event).await?;
    w.commit().await?;
    Ok(moved)
}
