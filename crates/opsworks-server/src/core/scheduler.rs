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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use opsworks_model::InstanceStatus;
    use serde_json::Value;

    use crate::testkit::{call, open, open_with, stack_and_layer};

    /// A metrics source that answers the samples the test chose, and remembers what was asked.
    #[derive(Default)]
    struct FakeLoad {
        samples: Mutex<Vec<Sample>>,
        asked: Mutex<Vec<(String, Timestamp)>>,
    }

    impl FakeLoad {
        fn set(&self, samples: Vec<Sample>) {
            *self.samples.lock().expect("lock") = samples;
        }
    }

    impl LayerLoad for FakeLoad {
        async fn layer_samples(
            &self,
            _core: &Core,
            layer_id: &str,
            since: Timestamp,
        ) -> CoreResult<Vec<Sample>> {
            self.asked
                .lock()
                .expect("lock")
                .push((layer_id.to_string(), since));
            Ok(self.samples.lock().expect("lock").clone())
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    /// 2026-11-23 is a Monday.
    const MONDAY_0930: &str = "2026-11-23T09:30:00Z";

    /// An instance of the layer with the given scaling type (`None`: 24/7), put in `status`.
    async fn instance(
        app: &Core,
        sid: &str,
        lid: &str,
        kind: Option<&str>,
        status: &str,
    ) -> String {
        let mut req = json!({"StackId": sid, "LayerIds": [lid], "InstanceType": "t2.micro"});
        if let Some(k) = kind {
            req["AutoScalingType"] = json!(k);
        }
        let id = call(app, "CreateInstance", req).await.expect("instance")["InstanceId"]
            .as_str()
            .expect("id")
            .to_string();
        force_status(app, &id, status).await;
        id
    }

    /// Puts an instance in a status directly, as if its lifecycle had brought it there.
    async fn force_status(app: &Core, id: &str, status: &str) {
        let mut w = app.write().await.expect("write");
        let mut inst: Instance = w.get(id).await.expect("instance");
        inst.status = status.parse::<InstanceStatus>().expect("status");
        w.put(&inst).await.expect("put");
        w.commit().await.expect("commit");
    }

    async fn status_of(app: &Core, id: &str) -> String {
        app.get::<Instance>(id)
            .await
            .expect("instance")
            .status
            .as_str()
            .to_string()
    }

    async fn schedule(app: &Core, id: &str, schedule: Value) {
        call(
            app,
            "SetTimeBasedAutoScaling",
            json!({"InstanceId": id, "AutoScalingSchedule": schedule}),
        )
        .await
        .expect("schedule");
    }

    async fn events_of(app: &Core, kind: EventKind) -> Vec<Value> {
        app.store()
            .backend()
            .events_after(None, 0, 1000)
            .await
            .expect("events")
            .iter()
            .filter(|e| e.event.kind == kind)
            .map(crate::edge::events::view)
            .collect()
    }

    #[tokio::test]
    async fn time_plan_moves_only_timer_instances_that_are_due() {
        let (_dir, app) = open().await;
        let (sid, lid) = stack_and_layer(&app).await;
        let on_now = json!({"Monday": {"9": "on"}});
        let due_start = instance(&app, &sid, &lid, Some("timer"), "stopped").await;
        schedule(&app, &due_start, on_now.clone()).await;
        let keeps_running = instance(&app, &sid, &lid, Some("timer"), "online").await;
        schedule(&app, &keeps_running, on_now.clone()).await;
        let due_stop = instance(&app, &sid, &lid, Some("timer"), "online").await;
        schedule(&app, &due_stop, json!({"Monday": {"10": "on"}})).await;
        let booting = instance(&app, &sid, &lid, Some("timer"), "booting").await;
        // Never given a schedule: every hour off, and it is stopped already.
        let never = instance(&app, &sid, &lid, Some("timer"), "stopped").await;
        let always_on = instance(&app, &sid, &lid, None, "stopped").await;
        let load = instance(&app, &sid, &lid, Some("load"), "online").await;

        let done = tick(&app, &NoMetrics, ts(MONDAY_0930)).await.expect("tick");
        assert_eq!(
            done,
            vec![
                Action::Start(due_start.clone()),
                Action::Stop(due_stop.clone())
            ]
        );
        // Started through StartInstance's path: without machines it stays requested.
        assert_eq!(status_of(&app, &due_start).await, "requested");
        // Stopped through StopInstance's path: stopping, then stopped in the background.
        assert!(["stopping", "stopped"].contains(&status_of(&app, &due_stop).await.as_str()));
        assert_eq!(status_of(&app, &keeps_running).await, "online");
        assert_eq!(status_of(&app, &booting).await, "booting");
        assert_eq!(status_of(&app, &never).await, "stopped");
        assert_eq!(status_of(&app, &always_on).await, "stopped");
        assert_eq!(status_of(&app, &load).await, "online");

        let scaled = events_of(&app, EventKind::TimeScaling).await;
        assert_eq!(scaled.len(), 2);
        assert_eq!(scaled[0]["InstanceId"], json!(due_start));
        assert_eq!(scaled[0]["Detail"]["Action"], json!("start"));
        // The status changes were recorded as events too, by change_status.
        let changes = events_of(&app, EventKind::InstanceStatus).await;
        assert!(changes.iter().any(
            |e| e["InstanceId"] == json!(due_start) && e["Detail"]["To"] == json!("requested")
        ));

        // A second tick in the same hour finds nothing more to do.
        let again = tick(&app, &NoMetrics, ts("2026-11-23T09:45:00Z"))
            .await
            .expect("tick");
        assert!(again.is_empty(), "{again:?}");
    }

    fn samples(now: Timestamp, seconds: i64, cpu: f64) -> Vec<Sample> {
        (0..=seconds / 10)
            .map(|k| Sample {
                at: now
                    .checked_sub(SignedDuration::from_secs(k * 10))
                    .expect("in range"),
                cpu,
                memory: 10.0,
                load: 0.1,
            })
            .collect()
    }

    #[tokio::test]
    async fn load_plan_moves_only_load_instances_and_remembers_the_event() {
        let (_dir, app) = open().await;
        let (sid, lid) = stack_and_layer(&app).await;
        let (other_sid, other_lid) = stack_and_layer(&app).await;
        call(
            &app,
            "SetLoadBasedAutoScaling",
            json!({"LayerId": lid, "Enable": true,
                   "UpScaling": {"InstanceCount": 1, "ThresholdsWaitTime": 1, "IgnoreMetricsTime": 5, "CpuThreshold": 50},
                   "DownScaling": {"InstanceCount": 1, "ThresholdsWaitTime": 1, "IgnoreMetricsTime": 5, "CpuThreshold": 20}}),
        )
        .await
        .expect("configure");
        let online_load = instance(&app, &sid, &lid, Some("load"), "online").await;
        let first_stopped = instance(&app, &sid, &lid, Some("load"), "stopped").await;
        let second_stopped = instance(&app, &sid, &lid, Some("load"), "stopped").await;
        let always_on = instance(&app, &sid, &lid, None, "stopped").await;
        let timer = instance(&app, &sid, &lid, Some("timer"), "stopped").await;
        // A load instance of a layer without load scaling is never moved.
        let elsewhere = instance(&app, &other_sid, &other_lid, Some("load"), "stopped").await;

        let fake = FakeLoad::default();
        let now = ts(MONDAY_0930);
        // High for 30 s only: the wait of one minute has not passed.
        fake.set(samples(now, 30, 90.0));
        assert!(tick(&app, &fake, now).await.expect("tick").is_empty());
        // High for 3 minutes: one instance (InstanceCount 1), the first stopped one, starts.
        fake.set(samples(now, 180, 90.0));
        let done = tick(&app, &fake, now).await.expect("tick");
        assert_eq!(done, vec![Action::Start(first_stopped.clone())]);
        assert_eq!(status_of(&app, &first_stopped).await, "requested");
        for id in [&second_stopped, &always_on, &timer, &elsewhere] {
            assert_eq!(status_of(&app, id).await, "stopped", "{id}");
        }
        // Samples were asked for the configured layer only, from far enough back.
        let asked = fake.asked.lock().expect("lock").clone();
        assert!(asked.iter().all(|(l, _)| *l == lid), "{asked:?}");
        assert_eq!(
            asked[0].1,
            now.checked_sub(SignedDuration::from_mins(3))
                .expect("in range")
        );

        // The event is kept on the layer (a restart reads it back) and recorded.
        let layer = app.get::<Layer>(&lid).await.expect("layer");
        assert_eq!(
            last_scaling(&layer),
            Some(LastScaling {
                at: now,
                direction: Direction::Up
            })
        );
        let scaled = events_of(&app, EventKind::LoadScaling).await;
        assert_eq!(scaled.len(), 1);
        assert_eq!(scaled[0]["LayerId"], json!(lid));
        assert_eq!(scaled[0]["Detail"]["Direction"], json!("up"));
        assert_eq!(scaled[0]["Detail"]["InstanceIds"], json!([first_stopped]));
        // Not part of the API's view of the layer.
        let described = call(&app, "DescribeLayers", json!({"LayerIds": [lid]}))
            .await
            .expect("describe");
        assert!(described["Layers"][0].get("_LastScaling").is_none());

        // Within the IgnoreMetricsTime (5 minutes) nothing moves, however high the load.
        let later = now
            .checked_add(SignedDuration::from_mins(2))
            .expect("in range");
        fake.set(samples(later, 600, 95.0));
        assert!(tick(&app, &fake, later).await.expect("tick").is_empty());

        // Well after it, low load for long enough: the last online load instance stops.
        let much_later = now
            .checked_add(SignedDuration::from_mins(10))
            .expect("in range");
        force_status(&app, &first_stopped, "online").await;
        fake.set(samples(much_later, 180, 5.0));
        let done = tick(&app, &fake, much_later).await.expect("tick");
        assert_eq!(done, vec![Action::Stop(first_stopped.clone())]);
        assert_eq!(status_of(&app, &online_load).await, "online");
    }

    #[tokio::test]
    async fn a_short_scaling_minute_shortens_the_wait() {
        let (_dir, app) = open_with(|c| c.scaling_minute = std::time::Duration::from_secs(1)).await;
        let (sid, lid) = stack_and_layer(&app).await;
        call(
            &app,
            "SetLoadBasedAutoScaling",
            json!({"LayerId": lid, "Enable": true,
                   "UpScaling": {"ThresholdsWaitTime": 5, "CpuThreshold": 50}}),
        )
        .await
        .expect("configure");
        let stopped = instance(&app, &sid, &lid, Some("load"), "stopped").await;
        let fake = FakeLoad::default();
        let now = ts(MONDAY_0930);
        // Ten seconds of high load: five (one-second) minutes have passed.
        fake.set(samples(now, 10, 90.0));
        let done = tick(&app, &fake, now).await.expect("tick");
        assert_eq!(done, vec![Action::Start(stopped)]);
    }
}
