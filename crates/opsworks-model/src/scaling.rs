//! Time- and load-based scaling: the weekly schedule and load thresholds of the API, and the pure
//! decisions of which `timer` and `load` instances to start or stop at a given moment.
//!
//! Nothing here reads a clock or a store: every decision is a function of its inputs and `now`,
//! so the scheduler that acts on the plans stays thin and the rules are tested on their own.

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

use crate::instance::InstanceStatus;

/// The day names of `WeeklyAutoScalingSchedule`, Monday first (the index of a day below).
pub const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// The bounds of the model's `Minute` (ThresholdsWaitTime, IgnoreMetricsTime).
pub const MINUTE_RANGE: std::ops::RangeInclusive<i64> = 1..=100;

/// The most CloudWatch alarm names one direction may list (the original's limit).
pub const MAX_ALARMS: usize = 5;

/// A scaling setting the API must refuse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScalingError {
    /// A schedule or configuration that is not a JSON object where one is expected.
    #[error("{0} must be an object")]
    NotObject(String),
    /// A day name that is not one of Monday..Sunday.
    #[error(
        "invalid day '{0}' in AutoScalingSchedule; days are Monday, Tuesday, Wednesday, Thursday, Friday, Saturday and Sunday"
    )]
    Day(String),
    /// An hour key that is not "0".."23".
    #[error(
        "invalid hour '{hour}' for {day} in AutoScalingSchedule; hours are UTC, \"0\" to \"23\""
    )]
    Hour {
        /// The day it was given for.
        day: String,
        /// The key given.
        hour: String,
    },
    /// A switch that is not "on" or "off".
    #[error(
        "invalid value {value} for {day} hour {hour} in AutoScalingSchedule; use \"on\" or \"off\""
    )]
    Switch {
        /// The day.
        day: String,
        /// The hour.
        hour: String,
        /// The value given, as JSON.
        value: String,
    },
    /// A threshold member of the wrong JSON type or outside its range.
    #[error("{direction}.{member} {reason}")]
    Threshold {
        /// `UpScaling` or `DownScaling`.
        direction: &'static str,
        /// The member.
        member: &'static str,
        /// What is wrong, in words.
        reason: String,
    },
    /// `Enable` that is not a boolean.
    #[error("Enable must be true or false")]
    Enable,
}

/// A weekly schedule: for each day (Monday first) and UTC hour, whether the instance should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WeeklySchedule {
    on: [[bool; 24]; 7],
}

impl WeeklySchedule {
    /// The schedule of an instance's stored `day → hour → on/off` map (validated when set).
    pub fn from_record(
        days: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    ) -> Result<Self, ScalingError> {
        let value = serde_json::to_value(days)
            .map_err(|_| ScalingError::NotObject("AutoScalingSchedule".into()))?;
        Self::parse(&value)
    }

    /// Parses the API's `{"Monday": {"9": "on", ...}, ...}`. Absent days and hours are off.
    pub fn parse(value: &Value) -> Result<Self, ScalingError> {
        let days = value
            .as_object()
            .ok_or_else(|| ScalingError::NotObject("AutoScalingSchedule".into()))?;
        let mut schedule = Self::default();
        for (day, hours) in days {
            let d = WEEKDAYS
                .iter()
                .position(|w| w == day)
                .ok_or_else(|| ScalingError::Day(day.clone()))?;
            if hours.is_null() {
                continue;
            }
            let hours = hours
                .as_object()
                .ok_or_else(|| ScalingError::NotObject(format!("AutoScalingSchedule.{day}")))?;
            for (hour, switch) in hours {
                let h = parse_hour(hour).ok_or_else(|| ScalingError::Hour {
                    day: day.clone(),
                    hour: hour.clone(),
                })?;
                schedule.on[d][h] = match switch.as_str() {
                    Some("on") => true,
                    Some("off") => false,
                    _ => {
                        return Err(ScalingError::Switch {
                            day: day.clone(),
                            hour: hour.clone(),
                            value: switch.to_string(),
                        });
                    }
                };
            }
        }
        Ok(schedule)
    }

    /// Whether the hour `hour` (0–23, UTC) of day `day` (0 = Monday) is on; out of range is off.
    pub fn is_on(&self, day: usize, hour: usize) -> bool {
        self.on
            .get(day)
            .and_then(|d| d.get(hour))
            .copied()
            .unwrap_or(false)
    }

    /// Sets one hour (builder for callers and tests); out-of-range indices are ignored.
    pub fn set(&mut self, day: usize, hour: usize, on: bool) {
        if let Some(slot) = self.on.get_mut(day).and_then(|d| d.get_mut(hour)) {
            *slot = on;
        }
    }
}

/// "0".."23" exactly: no sign, no padding beyond what AWS shows, no spaces.
fn parse_hour(s: &str) -> Option<usize> {
    if s.is_empty() || s.len() > 2 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // "09" is refused: the API's keys are the plain numbers.
    if s.len() == 2 && s.starts_with('0') {
        return None;
    }
    s.parse::<usize>().ok().filter(|h| *h < 24)
}

/// Whether `schedule` wants the instance running at `now` (its UTC day and hour).
pub fn scheduled_on(schedule: &WeeklySchedule, now: Timestamp) -> bool {
    // Plain arithmetic on seconds since the epoch: UTC has no offsets to look up, and
    // 1970-01-01 was a Thursday (day 3 counting from Monday).
    let secs = now.as_second();
    let days = secs.div_euclid(86_400);
    let day = (days + 3).rem_euclid(7);
    let hour = secs.rem_euclid(86_400) / 3_600;
    schedule.is_on(
        usize::try_from(day).unwrap_or(0),
        usize::try_from(hour).unwrap_or(0),
    )
}

/// One change a plan asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the instance with this ID.
    Start(String),
    /// Stop the instance with this ID.
    Stop(String),
}

/// A `timer` instance as the time plan sees it.
#[derive(Debug, Clone)]
pub struct TimerInstance {
    /// Its ID.
    pub id: String,
    /// Its current status.
    pub status: InstanceStatus,
    /// Its schedule (an instance never given one has the all-off default).
    pub schedule: WeeklySchedule,
}

/// What the time-based scheduler should do at `now`: start each stopped instance whose hour is
/// on, stop each online one whose hour is off. Instances in any other status (booting, stopping,
/// setup_failed, ...) are left alone: a change is under way or needs a person, and the next tick
/// sees them again once they settle.
pub fn time_plan(instances: &[TimerInstance], now: Timestamp) -> Vec<Action> {
    instances
        .iter()
        .filter_map(|i| {
            let on = scheduled_on(&i.schedule, now);
            match i.status {
                InstanceStatus::Stopped if on => Some(Action::Start(i.id.clone())),
                InstanceStatus::Online if !on => Some(Action::Stop(i.id.clone())),
                _ => None,
            }
        })
        .collect()
}

/// One direction of load-based scaling (the API's `AutoScalingThresholds`).
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// How many instances one scaling event starts or stops.
    pub instance_count: u32,
    /// Minutes the layer average must stay past the threshold.
    pub wait_minutes: u32,
    /// Minutes after a scaling event during which metrics are ignored.
    pub ignore_minutes: u32,
    /// CPU percent; `None` when disabled (-1 or absent).
    pub cpu: Option<f64>,
    /// Memory percent; `None` when disabled.
    pub memory: Option<f64>,
    /// 1-minute load average; `None` when disabled.
    pub load: Option<f64>,
    /// CloudWatch alarm names: stored and shown, not evaluated (there is no CloudWatch here).
    pub alarms: Vec<String>,
}

/// A layer's load-based scaling configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadConfig {
    /// Whether load-based scaling acts at all.
    pub enable: bool,
    /// When to start instances.
    pub up: Thresholds,
    /// When to stop instances.
    pub down: Thresholds,
}

/// The configuration DescribeLoadBasedAutoScaling shows for a layer never configured: disabled,
/// with the console's defaults (up: 1 instance after 5 minutes above 80% CPU, ignore 5 minutes;
/// down: 1 instance after 10 minutes below 30% CPU, ignore 10 minutes), as the AWS CLI
/// documentation's example shows them. Memory and load thresholds are absent (disabled).
pub fn default_config_json() -> Value {
    json!({
        "Enable": false,
        "UpScaling": {
            "InstanceCount": 1,
            "ThresholdsWaitTime": 5,
            "IgnoreMetricsTime": 5,
            "CpuThreshold": 80.0
        },
        "DownScaling": {
            "InstanceCount": 1,
            "ThresholdsWaitTime": 10,
            "IgnoreMetricsTime": 10,
            "CpuThreshold": 30.0
        }
    })
}

/// Merges a SetLoadBasedAutoScaling request into the stored configuration: `Enable` replaces, and
/// each member given in `UpScaling`/`DownScaling` replaces that member only, so a call that sets
/// one threshold keeps the others. Null members are ignored.
pub fn merge_config(stored: &Value, request: &Map<String, Value>) -> Value {
    let mut merged = stored.as_object().cloned().unwrap_or_default();
    if let Some(e) = request.get("Enable").filter(|v| !v.is_null()) {
        merged.insert("Enable".into(), e.clone());
    }
    for direction in ["UpScaling", "DownScaling"] {
        let Some(given) = request.get(direction).and_then(Value::as_object) else {
            continue;
        };
        let mut dir = merged
            .get(direction)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in given {
            if !v.is_null() {
                dir.insert(k.clone(), v.clone());
            }
        }
        merged.insert(direction.into(), Value::Object(dir));
    }
    Value::Object(merged)
}

impl LoadConfig {
    /// The configuration of a layer's stored settings (validated when they were set).
    pub fn from_record(record: &crate::resource::LoadBasedScaling) -> Result<Self, ScalingError> {
        let value = serde_json::to_value(record)
            .map_err(|_| ScalingError::NotObject("LoadBasedAutoScaling".into()))?;
        Self::from_json(&value)
    }

    /// Parses and validates a configuration document (`Enable`, `UpScaling`, `DownScaling`);
    /// members absent take the defaults of [`default_config_json`].
    pub fn from_json(value: &Value) -> Result<Self, ScalingError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ScalingError::NotObject("LoadBasedAutoScaling".into()))?;
        let enable = match obj.get("Enable") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(ScalingError::Enable),
        };
        let defaults = default_config_json();
        Ok(Self {
            enable,
            up: Thresholds::from_json("UpScaling", obj.get("UpScaling"), &defaults["UpScaling"])?,
            down: Thresholds::from_json(
                "DownScaling",
                obj.get("DownScaling"),
                &defaults["DownScaling"],
            )?,
        })
    }
}

impl Thresholds {
    fn from_json(
        direction: &'static str,
        value: Option<&Value>,
        defaults: &Value,
    ) -> Result<Self, ScalingError> {
        let empty = Map::new();
        let obj = match value {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => return Err(ScalingError::NotObject(direction.into())),
        };
        let err = |member: &'static str, reason: String| ScalingError::Threshold {
            direction,
            member,
            reason,
        };
        let get = |member: &str| {
            obj.get(member)
                .filter(|v| !v.is_null())
                .or_else(|| defaults.get(member))
        };
        let int = |member: &'static str, range: std::ops::RangeInclusive<i64>| {
            let Some(v) = get(member) else {
                return Ok(*range.start());
            };
            let n = v
                .as_i64()
                .ok_or_else(|| err(member, format!("must be an integer; got {v}")))?;
            if !range.contains(&n) {
                return Err(err(
                    member,
                    format!(
                        "must be between {} and {}; got {n}",
                        range.start(),
                        range.end()
                    ),
                ));
            }
            Ok(n)
        };
        let percent_or_load = |member: &'static str, max: Option<f64>| {
            let Some(v) = get(member) else {
                return Ok(None);
            };
            let x = v
                .as_f64()
                .ok_or_else(|| err(member, format!("must be a number; got {v}")))?;
            if x == -1.0 {
                return Ok(None);
            }
            let in_range = x.is_finite() && x >= 0.0 && max.is_none_or(|m| x <= m);
            if !in_range {
                let bounds = match max {
                    Some(m) => format!("between 0 and {m}"),
                    None => "at least 0".into(),
                };
                return Err(err(
                    member,
                    format!("must be {bounds}, or -1 to disable it; got {x}"),
                ));
            }
            Ok(Some(x))
        };
        let alarms = match get("Alarms") {
            None => Vec::new(),
            Some(Value::Array(a)) => {
                let names: Option<Vec<String>> =
                    a.iter().map(|v| v.as_str().map(String::from)).collect();
                names.ok_or_else(|| err("Alarms", "must be a list of alarm names".into()))?
            }
            Some(_) => return Err(err("Alarms", "must be a list of alarm names".into())),
        };
        if alarms.len() > MAX_ALARMS {
            return Err(err(
                "Alarms",
                format!("may name at most {MAX_ALARMS} alarms; got {}", alarms.len()),
            ));
        }
        let as_u32 = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        Ok(Self {
            instance_count: as_u32(int("InstanceCount", 1..=i64::from(i32::MAX))?),
            wait_minutes: as_u32(int("ThresholdsWaitTime", MINUTE_RANGE)?),
            ignore_minutes: as_u32(int("IgnoreMetricsTime", MINUTE_RANGE)?),
            cpu: percent_or_load("CpuThreshold", Some(100.0))?,
            memory: percent_or_load("MemoryThreshold", Some(100.0))?,
            load: percent_or_load("LoadThreshold", None)?,
            alarms,
        })
    }

    /// Whether `sample` is above any enabled threshold (false when none is enabled).
    fn above_any(&self, s: &Sample) -> bool {
        [
            (self.cpu, s.cpu),
            (self.memory, s.memory),
            (self.load, s.load),
        ]
        .iter()
        .any(|(t, v)| t.is_some_and(|t| *v > t))
    }

    /// Whether `sample` is below every enabled threshold (false when none is enabled).
    fn below_all(&self, s: &Sample) -> bool {
        let enabled: Vec<(f64, f64)> = [
            (self.cpu, s.cpu),
            (self.memory, s.memory),
            (self.load, s.load),
        ]
        .iter()
        .filter_map(|(t, v)| t.map(|t| (t, *v)))
        .collect();
        !enabled.is_empty() && enabled.iter().all(|(t, v)| *v < *t)
    }
}

/// One snapshot of a layer's averages over its online instances.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When it was taken.
    pub at: Timestamp,
    /// CPU use, percent (100 - cpu_idle).
    pub cpu: f64,
    /// Memory use, percent of total.
    pub memory: f64,
    /// 1-minute load average.
    pub load: f64,
}

/// A `load` instance of the layer as the load plan sees it.
#[derive(Debug, Clone)]
pub struct LoadInstance {
    /// Its ID.
    pub id: String,
    /// Its current status.
    pub status: InstanceStatus,
}

/// Which way a scaling event went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Instances were started.
    Up,
    /// Instances were stopped.
    Down,
}

impl Direction {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

impl std::str::FromStr for Direction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "up" => Ok(Self::Up),
            "down" => Ok(Self::Down),
            other => Err(format!("unknown scaling direction {other}")),
        }
    }
}

crate::serde_str::serde_as_str!(Direction);

/// The layer's last scaling event, whose direction's IgnoreMetricsTime applies after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastScaling {
    /// When it happened.
    pub at: Timestamp,
    /// Which way it went.
    pub direction: Direction,
}

/// How long one of the API's minutes lasts in production: sixty seconds.
pub const MINUTE: SignedDuration = SignedDuration::from_secs(60);

/// `minutes` of `minute` each, saturating (a huge product is as good as forever).
fn minutes_span(minutes: u32, minute: SignedDuration) -> SignedDuration {
    minute
        .checked_mul(i32::try_from(minutes).unwrap_or(i32::MAX))
        .unwrap_or(SignedDuration::MAX)
}

fn minutes_before(t: Timestamp, minutes: u32, minute: SignedDuration) -> Timestamp {
    t.checked_sub(minutes_span(minutes, minute))
        .unwrap_or(Timestamp::MIN)
}

fn minutes_after(t: Timestamp, minutes: u32, minute: SignedDuration) -> Timestamp {
    t.checked_add(minutes_span(minutes, minute))
        .unwrap_or(Timestamp::MAX)
}

/// Whether `past` held for the whole wait before `now`, using only samples taken after
/// `ignore_until`: the last sample at or before `now - wait` (the start of the window) and every
/// sample after it up to `now` must be past, and at least one sample must fall inside the window
/// (so a series that stopped arriving never triggers anything).
fn stayed_past(
    samples: &[Sample],
    wait_minutes: u32,
    minute: SignedDuration,
    ignore_until: Option<Timestamp>,
    now: Timestamp,
    past: impl Fn(&Sample) -> bool,
) -> bool {
    let window_start = minutes_before(now, wait_minutes, minute);
    let mut usable: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at <= now && ignore_until.is_none_or(|t| s.at >= t))
        .collect();
    usable.sort_by_key(|s| s.at);
    let Some(anchor) = usable.iter().rposition(|s| s.at <= window_start) else {
        return false;
    };
    let inside = usable.len() - anchor - 1;
    inside > 0 && usable[anchor..].iter().all(|s| past(s))
}

/// What load-based scaling should do for a layer at `now`: the instances to start (scale up) or
/// stop (scale down), empty when nothing is due. A plan, not one action, because one scaling
/// event moves up to `InstanceCount` instances at once; all actions of a plan go the same way.
///
/// - Nothing happens when the configuration is disabled, or within the IgnoreMetricsTime of the
///   direction of `last` (samples taken during that window are ignored afterwards too).
/// - Up: every sample over the last ThresholdsWaitTime is above ANY enabled up threshold.
///   Down: every sample is below ALL enabled down thresholds. A direction with no threshold
///   enabled never fires; if both fire (a contradictory configuration), up wins, as serving load
///   matters more than saving it.
/// - Up starts up to `InstanceCount` stopped instances, in the order given; down stops up to
///   `InstanceCount` online instances, the last ones given first, so the first instances of a
///   layer stay up the longest. Only `load` instances are passed in, so 24/7 and timer
///   instances are never touched. Alarms are not evaluated (there is no CloudWatch here).
/// - `minute` is how long one of the configuration's minutes lasts: [`MINUTE`] in production;
///   tests and demos shorten it so a wait of "1 minute" passes in a second.
pub fn load_plan(
    config: &LoadConfig,
    layer_metrics: &[Sample],
    load_instances: &[LoadInstance],
    last: Option<LastScaling>,
    now: Timestamp,
    minute: SignedDuration,
) -> Vec<Action> {
    if !config.enable {
        return Vec::new();
    }
    let ignore_until = last.map(|l| {
        let minutes = match l.direction {
            Direction::Up => config.up.ignore_minutes,
            Direction::Down => config.down.ignore_minutes,
        };
        minutes_after(l.at, minutes, minute)
    });
    if ignore_until.is_some_and(|t| now < t) {
        return Vec::new();
    }
    let cap = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
    let up = &config.up;
    if stayed_past(
        layer_metrics,
        up.wait_minutes,
        minute,
        ignore_until,
        now,
        |s| up.above_any(s),
    ) {
        return load_instances
            .iter()
            .filter(|i| i.status == InstanceStatus::Stopped)
            .take(cap(up.instance_count))
            .map(|i| Action::Start(i.id.clone()))
            .collect();
    }
    let down = &config.down;
    if stayed_past(
        layer_metrics,
        down.wait_minutes,
        minute,
        ignore_until,
        now,
        |s| down.below_all(s),
    ) {
        return load_instances
            .iter()
            .rev()
            .filter(|i| i.status == InstanceStatus::Online)
            .take(cap(down.instance_count))
            .map(|i| Action::Stop(i.id.clone()))
            .collect();
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn sched(v: Value) -> WeeklySchedule {
        WeeklySchedule::parse(&v).expect("valid schedule")
    }

    // 2026-11-23 is a Monday; 2026-11-29 a Sunday.
    const MONDAY: &str = "2026-11-23";
    const SUNDAY: &str = "2026-11-29";

    #[test]
    fn parse_accepts_the_api_shape_and_absent_hours_are_off() {
        let s = sched(json!({"Monday": {"9": "on", "10": "off", "0": "on", "23": "on"}}));
        assert!(s.is_on(0, 9));
        assert!(!s.is_on(0, 10));
        assert!(s.is_on(0, 0));
        assert!(s.is_on(0, 23));
        assert!(!s.is_on(0, 11), "absent hour is off");
        assert!(!s.is_on(1, 9), "absent day is off");
        assert_eq!(sched(json!({})), WeeklySchedule::default());
        assert_eq!(sched(json!({"Friday": null})), WeeklySchedule::default());
    }

    #[test]
    fn parse_refuses_bad_days_hours_and_values() {
        let e = WeeklySchedule::parse(&json!({"monday": {"9": "on"}})).unwrap_err();
        assert_eq!(e, ScalingError::Day("monday".into()));
        assert!(e.to_string().contains("Monday, Tuesday"), "{e}");
        for bad in ["24", "-1", "09", "", " 9", "9.0", "nine", "100"] {
            let e = WeeklySchedule::parse(&json!({"Monday": {bad: "on"}})).unwrap_err();
            assert!(matches!(e, ScalingError::Hour { .. }), "{bad}: {e}");
        }
        for bad in [json!("ON"), json!(true), json!(1), json!(""), json!(null)] {
            let e = WeeklySchedule::parse(&json!({"Tuesday": {"3": bad}})).unwrap_err();
            assert!(matches!(e, ScalingError::Switch { .. }), "{e}");
            assert!(e.to_string().contains("\"on\" or \"off\""), "{e}");
        }
        assert!(matches!(
            WeeklySchedule::parse(&json!({"Monday": ["9"]})),
            Err(ScalingError::NotObject(_))
        ));
        assert!(matches!(
            WeeklySchedule::parse(&json!("Monday")),
            Err(ScalingError::NotObject(_))
        ));
    }

    #[test]
    fn scheduled_on_follows_hour_boundaries_in_utc() {
        let s = sched(json!({"Monday": {"9": "on"}}));
        assert!(!scheduled_on(&s, ts(&format!("{MONDAY}T08:59:59Z"))));
        assert!(scheduled_on(&s, ts(&format!("{MONDAY}T09:00:00Z"))));
        assert!(scheduled_on(&s, ts(&format!("{MONDAY}T09:59:59.999Z"))));
        assert!(!scheduled_on(&s, ts(&format!("{MONDAY}T10:00:00Z"))));
        // The same instant written with an offset is still 09:xx UTC.
        assert!(scheduled_on(&s, ts(&format!("{MONDAY}T11:30:00+02:00"))));
        // A week later, same hour: on again.
        assert!(scheduled_on(&s, ts("2026-11-30T09:15:00Z")));
        // Tuesday at 9: off.
        assert!(!scheduled_on(&s, ts("2026-11-24T09:15:00Z")));
    }

    #[test]
    fn scheduled_on_wraps_from_sunday_to_monday() {
        let s = sched(json!({"Sunday": {"23": "on"}, "Monday": {"0": "off"}}));
        assert!(scheduled_on(&s, ts(&format!("{SUNDAY}T23:59:59Z"))));
        assert!(
            !scheduled_on(&s, ts("2026-11-30T00:00:00Z")),
            "Monday 0 is off"
        );
        let s = sched(json!({"Sunday": {"23": "on"}, "Monday": {"0": "on"}}));
        assert!(scheduled_on(&s, ts("2026-11-30T00:00:00Z")));
        assert!(!scheduled_on(&s, ts(&format!("{SUNDAY}T22:59:59Z"))));
    }

    fn timer(id: &str, status: InstanceStatus, s: WeeklySchedule) -> TimerInstance {
        TimerInstance {
            id: id.into(),
            status,
            schedule: s,
        }
    }

    #[test]
    fn time_plan_starts_stopped_on_and_stops_online_off() {
        let on9 = sched(json!({"Monday": {"9": "on"}}));
        let now = ts(&format!("{MONDAY}T09:00:00Z"));
        let later = ts(&format!("{MONDAY}T10:00:00Z"));
        let instances = vec![
            timer("a", InstanceStatus::Stopped, on9),
            timer("b", InstanceStatus::Online, on9),
            timer("c", InstanceStatus::Stopped, WeeklySchedule::default()),
            timer("d", InstanceStatus::Online, WeeklySchedule::default()),
        ];
        assert_eq!(
            time_plan(&instances, now),
            vec![Action::Start("a".into()), Action::Stop("d".into())]
        );
        assert_eq!(
            time_plan(&instances, later),
            vec![Action::Stop("b".into()), Action::Stop("d".into())]
        );
    }

    #[test]
    fn time_plan_leaves_transitional_statuses_alone() {
        let on = sched(json!({"Monday": {"9": "on"}}));
        let off = WeeklySchedule::default();
        let now = ts(&format!("{MONDAY}T09:30:00Z"));
        for status in InstanceStatus::ALL.iter() {
            if matches!(status, InstanceStatus::Stopped | InstanceStatus::Online) {
                continue;
            }
            let instances = vec![timer("x", *status, on), timer("y", *status, off)];
            assert!(time_plan(&instances, now).is_empty(), "{status:?}");
        }
        assert!(time_plan(&[], now).is_empty());
    }

    fn config(up: Value, down: Value) -> LoadConfig {
        LoadConfig::from_json(&json!({"Enable": true, "UpScaling": up, "DownScaling": down}))
            .expect("valid config")
    }

    fn t(minute: i64) -> Timestamp {
        ts(&format!("{MONDAY}T12:00:00Z"))
            .checked_add(SignedDuration::from_secs(minute * 60))
            .expect("in range")
    }

    /// One sample per minute from `from` to `to` (inclusive) with the same values.
    fn series(from: i64, to: i64, cpu: f64, memory: f64, load: f64) -> Vec<Sample> {
        (from..=to)
            .map(|m| Sample {
                at: t(m),
                cpu,
                memory,
                load,
            })
            .collect()
    }

    fn loads(spec: &[(&str, InstanceStatus)]) -> Vec<LoadInstance> {
        spec.iter()
            .map(|(id, status)| LoadInstance {
                id: (*id).into(),
                status: *status,
            })
            .collect()
    }

    use InstanceStatus::{Booting, Online, Stopped, Stopping};

    fn cpu_only() -> LoadConfig {
        config(
            json!({"InstanceCount": 1, "ThresholdsWaitTime": 5, "IgnoreMetricsTime": 5, "CpuThreshold": 80.0}),
            json!({"InstanceCount": 1, "ThresholdsWaitTime": 10, "IgnoreMetricsTime": 10, "CpuThreshold": 30.0}),
        )
    }

    #[test]
    fn config_defaults_and_disabling() {
        let c = LoadConfig::from_json(&default_config_json()).expect("defaults parse");
        assert!(!c.enable);
        assert_eq!(c.up.cpu, Some(80.0));
        assert_eq!(c.up.memory, None);
        assert_eq!(c.down.wait_minutes, 10);
        let c = config(
            json!({"CpuThreshold": -1, "MemoryThreshold": 70, "LoadThreshold": -1}),
            json!({}),
        );
        assert_eq!(c.up.cpu, None);
        assert_eq!(c.up.memory, Some(70.0));
        assert_eq!(c.up.load, None);
        assert_eq!(c.up.instance_count, 1);
        assert_eq!(c.up.wait_minutes, 5, "default fills absent members");
    }

    #[test]
    fn config_validation_errors_name_the_member() {
        let bad = [
            (
                json!({"ThresholdsWaitTime": 0}),
                "UpScaling.ThresholdsWaitTime",
            ),
            (
                json!({"ThresholdsWaitTime": 101}),
                "UpScaling.ThresholdsWaitTime",
            ),
            (
                json!({"IgnoreMetricsTime": 0}),
                "UpScaling.IgnoreMetricsTime",
            ),
            (json!({"InstanceCount": 0}), "UpScaling.InstanceCount"),
            (json!({"InstanceCount": -3}), "UpScaling.InstanceCount"),
            (json!({"InstanceCount": 1.5}), "UpScaling.InstanceCount"),
            (json!({"CpuThreshold": 101}), "UpScaling.CpuThreshold"),
            (json!({"CpuThreshold": -2}), "UpScaling.CpuThreshold"),
            (
                json!({"MemoryThreshold": -0.5}),
                "UpScaling.MemoryThreshold",
            ),
            (json!({"LoadThreshold": -5}), "UpScaling.LoadThreshold"),
            (json!({"CpuThreshold": "80"}), "UpScaling.CpuThreshold"),
            (
                json!({"Alarms": ["a", "b", "c", "d", "e", "f"]}),
                "UpScaling.Alarms",
            ),
            (json!({"Alarms": [1]}), "UpScaling.Alarms"),
        ];
        for (up, member) in bad {
            let e = LoadConfig::from_json(&json!({"UpScaling": up})).unwrap_err();
            assert!(e.to_string().starts_with(member), "{up}: {e}");
        }
        assert!(LoadConfig::from_json(&json!({"Enable": "yes"})).is_err());
        assert!(LoadConfig::from_json(&json!({"DownScaling": 3})).is_err());
        // Bounds themselves are fine.
        let c = config(
            json!({"ThresholdsWaitTime": 1, "IgnoreMetricsTime": 100, "CpuThreshold": 0, "MemoryThreshold": 100, "LoadThreshold": 64.5}),
            json!({"ThresholdsWaitTime": 100, "IgnoreMetricsTime": 1}),
        );
        assert_eq!(c.up.load, Some(64.5));
    }

    #[test]
    fn merge_keeps_unmentioned_members() {
        let stored = default_config_json();
        let req = json!({"Enable": true, "UpScaling": {"CpuThreshold": 60, "InstanceCount": null}});
        let merged = merge_config(&stored, req.as_object().expect("object"));
        assert_eq!(merged["Enable"], json!(true));
        assert_eq!(merged["UpScaling"]["CpuThreshold"], json!(60));
        assert_eq!(merged["UpScaling"]["InstanceCount"], json!(1));
        assert_eq!(merged["UpScaling"]["ThresholdsWaitTime"], json!(5));
        assert_eq!(merged["DownScaling"], stored["DownScaling"]);
        let merged = merge_config(&merged, json!({}).as_object().expect("object"));
        assert_eq!(
            merged["Enable"],
            json!(true),
            "absent Enable keeps the stored one"
        );
    }

    #[test]
    fn scales_up_after_the_whole_wait_above_threshold() {
        let c = cpu_only();
        let inst = loads(&[("a", Online), ("b", Stopped), ("c", Stopped)]);
        let high = series(0, 5, 90.0, 10.0, 0.1);
        assert_eq!(
            load_plan(&c, &high, &inst, None, t(5), MINUTE),
            vec![Action::Start("b".into())]
        );
        // Wait not yet elapsed: the first high sample is at minute 1.
        let short = series(1, 5, 90.0, 10.0, 0.1);
        assert!(load_plan(&c, &short, &inst, None, t(5), MINUTE).is_empty());
        // One dip inside the window resets it.
        let mut dip = series(0, 5, 90.0, 10.0, 0.1);
        dip[3].cpu = 50.0;
        assert!(load_plan(&c, &dip, &inst, None, t(5), MINUTE).is_empty());
        // Exactly at the threshold is not above it.
        let edge = series(0, 5, 80.0, 10.0, 0.1);
        assert!(load_plan(&c, &edge, &inst, None, t(5), MINUTE).is_empty());
        // An old high period followed by silence: no sample inside the window.
        let stale = series(-20, -10, 90.0, 10.0, 0.1);
        assert!(load_plan(&c, &stale, &inst, None, t(5), MINUTE).is_empty());
        // Samples from the future (clock skew) are not used.
        let future = series(6, 12, 90.0, 10.0, 0.1);
        assert!(load_plan(&c, &future, &inst, None, t(5), MINUTE).is_empty());
        // Unsorted input gives the same answer.
        let mut shuffled = high.clone();
        shuffled.reverse();
        assert_eq!(
            load_plan(&c, &shuffled, &inst, None, t(5), MINUTE),
            vec![Action::Start("b".into())]
        );
    }

    #[test]
    fn up_fires_on_any_enabled_threshold_and_ignores_disabled_ones() {
        let c = config(
            json!({"ThresholdsWaitTime": 5, "CpuThreshold": -1, "MemoryThreshold": 70, "LoadThreshold": 2.0}),
            json!({"CpuThreshold": -1}),
        );
        let inst = loads(&[("a", Stopped)]);
        let start = vec![Action::Start("a".into())];
        // CPU at 100 but CPU is disabled, memory and load low: nothing.
        assert!(
            load_plan(
                &c,
                &series(0, 5, 100.0, 10.0, 0.5),
                &inst,
                None,
                t(5),
                MINUTE
            )
            .is_empty()
        );
        assert_eq!(
            load_plan(&c, &series(0, 5, 0.0, 75.0, 0.5), &inst, None, t(5), MINUTE),
            start
        );
        assert_eq!(
            load_plan(&c, &series(0, 5, 0.0, 10.0, 2.5), &inst, None, t(5), MINUTE),
            start
        );
        // Every up threshold disabled: never scales up.
        let none = config(
            json!({"CpuThreshold": -1, "MemoryThreshold": -1, "LoadThreshold": -1}),
            json!({"CpuThreshold": -1}),
        );
        assert!(
            load_plan(
                &none,
                &series(0, 5, 100.0, 100.0, 99.0),
                &inst,
                None,
                t(5),
                MINUTE
            )
            .is_empty()
        );
    }

    #[test]
    fn down_needs_every_enabled_threshold_below() {
        let c = config(
            json!({"CpuThreshold": 90}),
            json!({"ThresholdsWaitTime": 10, "CpuThreshold": 30, "MemoryThreshold": 40, "LoadThreshold": -1}),
        );
        let inst = loads(&[("a", Online), ("b", Online), ("c", Stopped)]);
        // CPU low but memory high: no scale down.
        assert!(
            load_plan(
                &c,
                &series(0, 10, 10.0, 60.0, 9.0),
                &inst,
                None,
                t(10),
                MINUTE
            )
            .is_empty()
        );
        // Both low (load disabled, so its high value does not matter): stop the last online one.
        assert_eq!(
            load_plan(
                &c,
                &series(0, 10, 10.0, 20.0, 9.0),
                &inst,
                None,
                t(10),
                MINUTE
            ),
            vec![Action::Stop("b".into())]
        );
        // Wait time of 10 not yet elapsed at minute 9 of the series.
        assert!(
            load_plan(
                &c,
                &series(1, 10, 10.0, 20.0, 9.0),
                &inst,
                None,
                t(10),
                MINUTE
            )
            .is_empty()
        );
        // Every down threshold disabled: never scales down.
        let none = config(
            json!({"CpuThreshold": 90}),
            json!({"CpuThreshold": -1, "MemoryThreshold": -1, "LoadThreshold": -1}),
        );
        assert!(
            load_plan(
                &none,
                &series(0, 10, 0.0, 0.0, 0.0),
                &inst,
                None,
                t(10),
                MINUTE
            )
            .is_empty()
        );
    }

    #[test]
    fn disabled_configuration_does_nothing() {
        let mut c = cpu_only();
        c.enable = false;
        let inst = loads(&[("a", Stopped), ("b", Online)]);
        assert!(
            load_plan(
                &c,
                &series(0, 30, 100.0, 0.0, 0.0),
                &inst,
                None,
                t(30),
                MINUTE
            )
            .is_empty()
        );
        assert!(
            load_plan(
                &c,
                &series(0, 30, 0.0, 0.0, 0.0),
                &inst,
                None,
                t(30),
                MINUTE
            )
            .is_empty()
        );
    }

    #[test]
    fn ignore_window_suppresses_events_and_its_samples() {
        let c = cpu_only(); // up: wait 5, ignore 5; down: wait 10, ignore 10
        let inst = loads(&[("a", Online), ("b", Stopped)]);
        let high = series(0, 20, 90.0, 10.0, 0.1);
        let after_up = Some(LastScaling {
            at: t(10),
            direction: Direction::Up,
        });
        // Inside the ignore window (ends at minute 15): nothing.
        assert!(load_plan(&c, &high, &inst, after_up, t(12), MINUTE).is_empty());
        // Window over, but the samples of minutes 10..15 are ignored, so the wait restarts at 15.
        assert!(load_plan(&c, &high, &inst, after_up, t(16), MINUTE).is_empty());
        assert!(load_plan(&c, &high, &inst, after_up, t(19), MINUTE).is_empty());
        assert_eq!(
            load_plan(&c, &high, &inst, after_up, t(20), MINUTE),
            vec![Action::Start("b".into())]
        );
        // After a scale down the down direction's ignore time (10) applies.
        let after_down = Some(LastScaling {
            at: t(0),
            direction: Direction::Down,
        });
        assert!(load_plan(&c, &high, &inst, after_down, t(9), MINUTE).is_empty());
        assert!(load_plan(&c, &high, &inst, after_down, t(14), MINUTE).is_empty());
        assert_eq!(
            load_plan(&c, &high, &inst, after_down, t(15), MINUTE),
            vec![Action::Start("b".into())]
        );
    }

    #[test]
    fn instance_count_caps_the_batch() {
        let c = config(
            json!({"InstanceCount": 2, "CpuThreshold": 80}),
            json!({"InstanceCount": 3, "CpuThreshold": 30}),
        );
        let inst = loads(&[
            ("a", Stopped),
            ("b", Online),
            ("c", Stopped),
            ("d", Booting),
            ("e", Stopped),
            ("f", Online),
        ]);
        assert_eq!(
            load_plan(&c, &series(0, 5, 95.0, 0.0, 0.0), &inst, None, t(5), MINUTE),
            vec![Action::Start("a".into()), Action::Start("c".into())]
        );
        // Down: only two are online, so only two stop (the cap is a maximum).
        assert_eq!(
            load_plan(
                &c,
                &series(0, 10, 5.0, 0.0, 0.0),
                &inst,
                None,
                t(10),
                MINUTE
            ),
            vec![Action::Stop("f".into()), Action::Stop("b".into())]
        );
    }

    #[test]
    fn nothing_to_start_or_stop_gives_an_empty_plan() {
        let c = cpu_only();
        let busy = loads(&[("a", Online), ("b", Booting), ("c", Stopping)]);
        assert!(load_plan(&c, &series(0, 5, 95.0, 0.0, 0.0), &busy, None, t(5), MINUTE).is_empty());
        let idle = loads(&[("a", Stopped), ("b", Stopping)]);
        assert!(
            load_plan(
                &c,
                &series(0, 10, 5.0, 0.0, 0.0),
                &idle,
                None,
                t(10),
                MINUTE
            )
            .is_empty()
        );
        assert!(load_plan(&c, &series(0, 10, 5.0, 0.0, 0.0), &[], None, t(10), MINUTE).is_empty());
        assert!(load_plan(&c, &[], &idle, None, t(10), MINUTE).is_empty());
    }

    /// One sample per second from `from` to `to` seconds after `t(0)`.
    fn per_second(from: i64, to: i64, cpu: f64) -> Vec<Sample> {
        (from..=to)
            .map(|sec| Sample {
                at: t(0)
                    .checked_add(SignedDuration::from_secs(sec))
                    .expect("in range"),
                cpu,
                memory: 0.0,
                load: 0.0,
            })
            .collect()
    }

    fn sec(n: i64) -> Timestamp {
        t(0).checked_add(SignedDuration::from_secs(n))
            .expect("in range")
    }

    #[test]
    fn a_short_minute_scales_the_wait_and_the_ignore_window() {
        let c = cpu_only(); // up: wait 5, ignore 5; down: wait 10, ignore 10
        let second = SignedDuration::from_secs(1);
        let inst = loads(&[("a", Online), ("b", Stopped)]);
        let high = per_second(0, 30, 90.0);
        // With one-second minutes a wait of 5 passes in 5 seconds...
        assert_eq!(
            load_plan(&c, &high, &inst, None, sec(5), second),
            vec![Action::Start("b".into())]
        );
        assert!(load_plan(&c, &per_second(1, 5, 90.0), &inst, None, sec(5), second).is_empty());
        // ...while with real minutes five seconds of samples are nowhere near enough.
        assert!(load_plan(&c, &high, &inst, None, sec(5), MINUTE).is_empty());
        // The ignore window after an up event lasts 5 short minutes, and its samples stay ignored.
        let last = Some(LastScaling {
            at: sec(10),
            direction: Direction::Up,
        });
        assert!(load_plan(&c, &high, &inst, last, sec(14), second).is_empty());
        assert!(load_plan(&c, &high, &inst, last, sec(19), second).is_empty());
        assert_eq!(
            load_plan(&c, &high, &inst, last, sec(20), second),
            vec![Action::Start("b".into())]
        );
        // Down with short minutes: 10 seconds below every enabled threshold.
        let low = per_second(0, 30, 5.0);
        assert_eq!(
            load_plan(&c, &low, &inst, None, sec(10), second),
            vec![Action::Stop("a".into())]
        );
        assert!(load_plan(&c, &per_second(1, 10, 5.0), &inst, None, sec(10), second).is_empty());
    }
}
