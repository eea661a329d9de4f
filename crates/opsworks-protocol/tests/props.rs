//! Property tests of the agent protocol's messages: any JSON (or any bytes) read as any message
//! is a value or an error, never a panic, and a message that reads back writes the same JSON
//! again. Objects are drawn with the messages' own member names so that many of them parse.

use std::fmt::Debug;

use opsworks_protocol::{
    Ack, AgentCommand, AppSpec, CommandOutcome, Completion, Heartbeat, Hello, HelloReply, LogChunk,
    MetricSample, MetricsBatch, PollReply, PollRequest, ProtocolError, ReportedOs, SourceSpec,
};
use proptest::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Every member name the messages use.
const NAMES: &[&str] = &[
    "instance_id",
    "agent_version",
    "hostname",
    "reported_os",
    "family",
    "name",
    "version",
    "addresses",
    "stack_id",
    "heartbeat_seconds",
    "poll_seconds",
    "metrics_seconds",
    "wait_seconds",
    "commands",
    "command_id",
    "deployment_id",
    "type",
    "run_list",
    "attributes",
    "data_bags",
    "custom_cookbooks",
    "apps",
    "timeout_seconds",
    "created_at",
    "url",
    "revision",
    "username",
    "password",
    "ssh_key",
    "app_id",
    "shortname",
    "source",
    "environment",
    "offset",
    "text",
    "outcome",
    "exit_code",
    "report",
    "app_revisions",
    "running",
    "samples",
    "at",
    "values",
    "code",
    "message",
];

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop::sample::select(vec!["successful", "failed", "skipped", "git", "setup", ""])
            .prop_map(Value::from),
        ".{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 16, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..17).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(NAMES), inner.clone()), 0..10).prop_map(
                |kv| Value::Object(
                    kv.into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>()
                )
            ),
            prop::collection::vec(("[a-z]{0,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Reads `value` as `T`; what reads writes JSON that reads back to the same message.
fn round_trip<T>(value: &Value) -> Result<(), TestCaseError>
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let text = value.to_string();
    let Ok(msg) = serde_json::from_str::<T>(&text) else {
        return Ok(());
    };
    let again = serde_json::to_string(&msg).expect("a message always writes");
    let back: T = serde_json::from_str(&again)
        .map_err(|e| TestCaseError::fail(format!("{again} does not read back: {e}")))?;
    prop_assert_eq!(serde_json::to_string(&back).unwrap(), again);
    Ok(())
}

fn every_message(value: &Value) -> Result<(), TestCaseError> {
    round_trip::<Hello>(value)?;
    round_trip::<HelloReply>(value)?;
    round_trip::<ReportedOs>(value)?;
    round_trip::<PollRequest>(value)?;
    round_trip::<PollReply>(value)?;
    round_trip::<AgentCommand>(value)?;
    round_trip::<AppSpec>(value)?;
    round_trip::<SourceSpec>(value)?;
    round_trip::<Ack>(value)?;
    round_trip::<LogChunk>(value)?;
    round_trip::<CommandOutcome>(value)?;
    round_trip::<Completion>(value)?;
    round_trip::<Heartbeat>(value)?;
    round_trip::<MetricSample>(value)?;
    round_trip::<MetricsBatch>(value)?;
    round_trip::<ProtocolError>(value)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_json_reads_as_each_message_or_is_refused(value in json()) {
        every_message(&value)?;
        // The same value as a member of a typical envelope, to reach nested types.
        let wrapped = serde_json::json!({"instance_id": "i", "command_id": "c", "commands": [value]});
        every_message(&wrapped)?;
    }

    #[test]
    fn any_bytes_are_a_message_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = serde_json::from_slice::<AgentCommand>(&bytes);
        let _ = serde_json::from_slice::<Completion>(&bytes);
        let _ = serde_json::from_slice::<MetricsBatch>(&bytes);
        let _ = serde_json::from_slice::<LogChunk>(&bytes);
        let _ = serde_json::from_slice::<PollReply>(&bytes);
    }

    #[test]
    fn metric_samples_round_trip(at in any::<i64>(), values in prop::array::uniform16(
        any::<f64>().prop_filter("finite", |f| f.is_finite())
    )) {
        round_trip::<MetricSample>(&serde_json::to_value(MetricSample { at, values }).unwrap())?;
    }
}
