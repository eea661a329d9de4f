//! The agent protocol: what the control plane and the agent on each instance say to each other.
//!
//! JSON over HTTP on the server's own port, under [`PREFIX`]. Every request is SigV4-signed with
//! the instance's own access key (issued when the instance starts; never a user's key), service
//! `opsworks`, so the server's one verifier covers both the public API and the agents.
//!
//! The flow: the agent says [`Hello`] once it runs, then long-polls ([`PollRequest`] →
//! [`PollReply`]) for [`AgentCommand`]s, runs one at a time, acknowledges it ([`Ack`]), streams its
//! log ([`LogChunk`]) and reports the outcome ([`Completion`]). [`Heartbeat`]s tell the server it
//! is alive between commands; [`MetricsBatch`]es carry the metrics it samples. Every call is
//! idempotent on the server (a repeated ack or completion of the same command changes nothing), so
//! an agent may retry any of them after a network fault without a command running or counting
//! twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use opsworks_model::CommandName;
use opsworks_model::metrics;

/// The path prefix of the agent protocol.
pub const PREFIX: &str = "/agent/v1";

/// The longest a poll may wait on the server, in seconds.
pub const MAX_POLL_SECONDS: u64 = 25;

/// How an agent reports its host (like the API's `ReportedOs`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedOs {
    /// OS family (`debian`, `rhel`, ...).
    pub family: String,
    /// OS name (`debian`, `ubuntu`, ...).
    pub name: String,
    /// OS version (`12`, ...).
    pub version: String,
}

/// `POST /agent/v1/hello`: the agent announces itself after it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The instance the agent runs on.
    pub instance_id: String,
    /// The agent's version.
    pub agent_version: String,
    /// The host's name as the agent sees it.
    pub hostname: String,
    /// The host's OS.
    pub reported_os: ReportedOs,
    /// The host's IPv4 addresses, loopback excluded.
    pub addresses: Vec<String>,
}

/// The server's answer to [`Hello`]: the cadence it expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloReply {
    /// The stack of the instance.
    pub stack_id: String,
    /// Seconds between heartbeats.
    pub heartbeat_seconds: u64,
    /// Seconds a poll waits on the server.
    pub poll_seconds: u64,
    /// Seconds between metric samples (absent from older servers: the agent's default then).
    #[serde(default)]
    pub metrics_seconds: Option<u64>,
    /// The URLs agents reach every live server of the cluster at, this one first (several
    /// servers on one database); empty when the server is alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
}

/// `POST /agent/v1/poll`: waits up to `wait_seconds` for commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollRequest {
    /// The instance polling.
    pub instance_id: String,
    /// How long to wait when nothing is pending (capped at [`MAX_POLL_SECONDS`]).
    pub wait_seconds: u64,
}

/// Commands for the agent, oldest first; empty when the wait ended with nothing to do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PollReply {
    /// The commands to run, in order.
    pub commands: Vec<AgentCommand>,
}

/// A custom cookbooks source, as the stack's `CustomCookbooksSource`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSpec {
    /// `git`, `archive`, `s3`, `svn`, or `local` (a path on the instance, for development).
    #[serde(rename = "type")]
    pub kind: String,
    /// Repository or archive URL (or path).
    pub url: String,
    /// Branch, tag or commit (git).
    #[serde(default)]
    pub revision: Option<String>,
    /// User name for the source.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for the source.
    #[serde(default)]
    pub password: Option<String>,
    /// SSH key for the source.
    #[serde(default)]
    pub ssh_key: Option<String>,
}

/// An app to deploy (or undeploy, roll back) with a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppSpec {
    /// The app's ID.
    pub app_id: String,
    /// The app's short name: it deploys to `/srv/www/<shortname>`.
    pub shortname: String,
    /// The app's name.
    pub name: String,
    /// The app's type (`nodejs`, `static`, `other`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Where its code comes from.
    pub source: Option<SourceSpec>,
    /// Environment variables written for the app (secure values included: the agent needs them).
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

/// A command for an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentCommand {
    /// The command's ID (`DescribeCommands`).
    pub command_id: String,
    /// The deployment it belongs to, if any.
    pub deployment_id: Option<String>,
    /// What to run.
    #[serde(rename = "type")]
    pub kind: CommandName,
    /// The recipes to run, in order (`cookbook::recipe`).
    pub run_list: Vec<String>,
    /// The node attributes of the run (Chef 11's `opsworks` and `deploy` trees, custom JSON merged).
    pub attributes: Value,
    /// Data bags by name then item (Chef 12's `aws_opsworks_*`).
    pub data_bags: BTreeMap<String, BTreeMap<String, Value>>,
    /// The stack's custom cookbooks, when it uses them.
    pub custom_cookbooks: Option<SourceSpec>,
    /// The apps the command concerns.
    #[serde(default)]
    pub apps: Vec<AppSpec>,
    /// How long the command may run, in seconds (the Shutdown timeout, for instance).
    pub timeout_seconds: Option<u64>,
    /// When the server created the command.
    pub created_at: String,
}

/// `POST /agent/v1/ack`: the agent took a command and starts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    /// The instance.
    pub instance_id: String,
    /// The command.
    pub command_id: String,
}

/// `POST /agent/v1/log`: a piece of a command's log, at its byte offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    /// The instance.
    pub instance_id: String,
    /// The command.
    pub command_id: String,
    /// Where this piece starts in the log; a piece the server already has is ignored.
    pub offset: u64,
    /// The text.
    pub text: String,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandOutcome {
    /// Every recipe converged.
    Successful,
    /// A recipe failed, or the command could not run.
    Failed,
    /// Not run: a newer command of the same kind superseded it (a Configure storm).
    Skipped,
}

/// `POST /agent/v1/complete`: a command ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// The instance.
    pub instance_id: String,
    /// The command.
    pub command_id: String,
    /// How it ended.
    pub outcome: CommandOutcome,
    /// The exit code (0 on success).
    pub exit_code: i32,
    /// The converge report, as JSON.
    #[serde(default)]
    pub report: Option<Value>,
    /// The git commit each app of the command was deployed at, by app ID: the revision the
    /// app's source names (branch, tag or commit), resolved when the command ran. Absent when
    /// no git app was deployed (and from older agents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_revisions: Option<BTreeMap<String, String>>,
}

/// `POST /agent/v1/heartbeat`: the agent is alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The instance.
    pub instance_id: String,
    /// The command being run, if any.
    pub running: Option<String>,
}

/// The server's answer to a [`Heartbeat`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// As [`HelloReply::servers`]: where the agent may go when this server stops answering.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
}

/// The most samples one [`MetricsBatch`] may carry.
pub const MAX_METRICS_BATCH: usize = 2000;

/// One sample of an instance's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricSample {
    /// When it was taken, in seconds since the Unix epoch (UTC).
    pub at: i64,
    /// The values, in the order of [`opsworks_model::metrics::METRICS`].
    pub values: [f64; metrics::COUNT],
}

/// `POST /agent/v1/metrics`: samples the agent took, oldest first (a backlog after an outage
/// comes in several batches of at most [`MAX_METRICS_BATCH`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsBatch {
    /// The instance.
    pub instance_id: String,
    /// The samples.
    pub samples: Vec<MetricSample>,
}

/// An error answer of the agent protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolError {
    /// A machine-readable code (`not_found`, `forbidden`, `invalid`, ...).
    pub code: String,
    /// What is wrong.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_through_json() {
        let cmd = AgentCommand {
            command_id: "c".into(),
            deployment_id: Some("d".into()),
            kind: CommandName::Setup,
            run_list: vec!["opsworks_initial_setup".into()],
            attributes: serde_json::json!({"opsworks": {"stack": {"name": "s"}}}),
            data_bags: BTreeMap::new(),
            custom_cookbooks: Some(SourceSpec {
                kind: "git".into(),
                url: "/r".into(),
                ..Default::default()
            }),
            apps: vec![],
            timeout_seconds: None,
            created_at: "2026-11-25T00:00:00+00:00".into(),
        };
        let text = serde_json::to_string(&cmd).unwrap();
        assert!(text.contains("\"type\":\"setup\""));
        assert_eq!(serde_json::from_str::<AgentCommand>(&text).unwrap(), cmd);
        let outcome: CommandOutcome = serde_json::from_str("\"skipped\"").unwrap();
        assert_eq!(outcome, CommandOutcome::Skipped);
    }

    #[test]
    fn completions_carry_app_revisions_and_older_ones_still_parse() {
        let old = r#"{"instance_id":"i","command_id":"c","outcome":"successful","exit_code":0}"#;
        let parsed: Completion = serde_json::from_str(old).unwrap();
        assert_eq!(parsed.app_revisions, None);
        assert!(
            !serde_json::to_string(&parsed)
                .unwrap()
                .contains("app_revisions")
        );
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let with = Completion {
            app_revisions: Some(BTreeMap::from([("app-1".to_string(), sha.to_string())])),
            ..parsed
        };
        let text = serde_json::to_string(&with).unwrap();
        assert!(
            text.contains(&format!(r#""app_revisions":{{"app-1":"{sha}"}}"#)),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Completion>(&text).unwrap(), with);
    }
}
