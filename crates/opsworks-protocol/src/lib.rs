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
//!
//! Registered machines (`opsworks register`) run an installed agent that also updates itself:
//! the hello and poll answers name the [`AgentRelease`] it should run (downloaded from
//! [`RELEASES_PATH`], checked against its SHA-256), and a poll answer says when the machine was
//! [deregistered](PollReply::deregistered); the agent then says [`Goodbye`] and uninstalls itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use opsworks_model::CommandName;
use opsworks_model::metrics;

/// The path prefix of the agent protocol.
pub const PREFIX: &str = "/agent/v1";

/// The longest a poll may wait on the server, in seconds.
pub const MAX_POLL_SECONDS: u64 = 25;

/// Where agent executables are downloaded: `GET <RELEASES_PATH>/<sha256>` (no signature: the
/// file is public, and its SHA-256 comes over the signed protocol).
pub const RELEASES_PATH: &str = "/agent/releases";

/// The installer tarball `DescribeStackProvisioningParameters` names (`AgentInstallerUrl`): it
/// holds `opsworks-agent-installer/boot-registration`, which `aws opsworks register` runs.
pub const INSTALLER_PATH: &str = "/agent/installer";

/// The member of RegisterInstance's answer (besides `InstanceId`) that carries the registered
/// instance's own access key, to the caller that registered it and only then: the key the
/// machine's agent signs with, never the caller's.
pub const REGISTERED_CREDENTIALS: &str = "AgentCredentials";

/// What RegisterInstance's `InstanceIdentity.Document` carries for a machine this project's
/// installer registers: the facts the server records at once (the hello confirms them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineIdentity {
    /// The machine's hostname.
    #[serde(default)]
    pub hostname: String,
    /// `uname -m` (`x86_64`, `aarch64`).
    #[serde(default)]
    pub architecture: String,
    /// The OS, from `/etc/os-release`.
    #[serde(default)]
    pub os: ReportedOs,
    /// `on-premises` or `ec2`.
    #[serde(default)]
    pub infrastructure_class: String,
}

/// An agent executable the server hands out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRelease {
    /// The version the agent reports when it runs it.
    pub version: String,
    /// The executable's SHA-256, lowercase hex: checked before it is run.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// Where to download it on the server (`/agent/releases/<sha256>`).
    pub path: String,
    /// How long the new agent has to report in before the old one is put back, in seconds.
    pub confirm_seconds: u64,
}

/// The release an installed agent runs (absent for agents run from elsewhere, such as local
/// instances', which run the server's own executable and never update themselves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningRelease {
    /// The version.
    pub version: String,
    /// The executable's SHA-256.
    pub sha256: String,
}

/// An update the agent undid because the new release did not report in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolledBack {
    /// The release that failed.
    pub version: String,
    /// Its SHA-256.
    pub sha256: String,
    /// Why it was undone.
    pub reason: String,
}

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
    /// The installed release the agent runs, when it was installed (registered machines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<RunningRelease>,
    /// An update undone since the last hello.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<RolledBack>,
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
    /// The release the agent should run (an installed agent updates itself when it differs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_release: Option<AgentRelease>,
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
    /// The release the agent should run (an installed agent updates itself between commands).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_release: Option<AgentRelease>,
    /// The machine was deregistered: the agent says [`Goodbye`] and uninstalls itself (the
    /// machine keeps running, and keeps its files).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deregistered: bool,
    /// As [`HelloReply::servers`]: an agent sends no heartbeat while its poll waits, so the poll's
    /// answer keeps its list of servers current.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
}

/// `POST /agent/v1/goodbye`: a deregistered machine's agent is uninstalling itself; the server
/// forgets the instance (and its key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Goodbye {
    /// The instance.
    pub instance_id: String,
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
    fn older_messages_parse_and_new_members_stay_out_when_empty() {
        let hello = r#"{"instance_id":"i","agent_version":"1","hostname":"h","reported_os":{"family":"debian","name":"debian","version":"12"},"addresses":[]}"#;
        let parsed: Hello = serde_json::from_str(hello).unwrap();
        assert_eq!((parsed.release, parsed.rolled_back), (None, None));
        let reply: PollReply = serde_json::from_str(r#"{"commands":[]}"#).unwrap();
        assert!(!reply.deregistered && reply.agent_release.is_none());
        assert_eq!(serde_json::to_string(&reply).unwrap(), r#"{"commands":[]}"#);
        let gone = PollReply {
            deregistered: true,
            ..PollReply::default()
        };
        assert!(
            serde_json::to_string(&gone)
                .unwrap()
                .contains(r#""deregistered":true"#)
        );
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
