//! The server's configuration: one struct, documented defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::ServerError;
use crate::core::Core;

/// Everything the control plane needs to start.
#[derive(Clone)]
pub struct ServerConfig {
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The data dir: the master key, the root credentials, command logs, machines' disks, and the
    /// SQLite database unless [`database`](Self::database) names another.
    pub data_dir: PathBuf,
    /// The store; `None` for the data dir's SQLite file.
    pub database: Option<opsworks_store::Engine>,
    /// The URL clients reach this server at (log links, `DescribeStackProvisioningParameters`,
    /// the registry of servers on a shared database); `None` for `http://` + the bound address.
    pub advertise_url: Option<String>,
    /// The region used in ARNs and in the stacks' default `Region` checks.
    pub region: String,
    /// The root access key to install, when given (from `OPSWORKS_ROOT_ACCESS_KEY_ID` /
    /// `OPSWORKS_ROOT_SECRET_ACCESS_KEY`); otherwise one is generated on first start.
    pub root_key: Option<(String, String)>,
    /// How long an instance's agent may stay silent before the instance is `connection_lost`
    /// (and, where its layers auto-heal, healed). The original's was about five minutes.
    pub healing_timeout: std::time::Duration,
    /// How often the scheduler applies time- and load-based scaling (default 15 s).
    pub scheduler_interval: std::time::Duration,
    /// How long one of the scaling settings' minutes (ThresholdsWaitTime, IgnoreMetricsTime)
    /// lasts: 60 s; shorten only for tests and demos.
    pub scaling_minute: std::time::Duration,
    /// How long one of GrantAccess's `ValidForInMinutes` lasts: 60 s; shorten only for tests and
    /// demos.
    pub access_minute: std::time::Duration,
    /// Events older than this are dropped (default 7 days).
    pub event_retention: std::time::Duration,
    /// At most this many events are kept, the newest (default 100 000).
    pub event_max_rows: u64,
    /// Instance metrics: sampling, retention, who may read them.
    pub metrics: MetricsConfig,
    /// Whether instances run on this host.
    pub instances: Instances,
    /// Non-public networks the machines' package proxy may reach (a mirror on the LAN); by default
    /// it reaches public addresses only.
    pub package_proxy_allow: Vec<ipnet::IpNet>,
    /// The program agents run as (`opsworks agent ...`): the server's own executable. It is
    /// also the agent release the server hands out as its own build.
    pub agent_program: Option<PathBuf>,
    /// The addresses `ec2 AllocateAddress` hands out as Elastic IPs: on the machines' bridge,
    /// kept out of the machines' own addresses (default 10.217.255.0/24).
    pub elastic_ip_pool: opsworks_sandbox::AddressRange,
    /// How long an installed agent's new release has to report in before the agent puts the
    /// old one back (default 60 s).
    pub agent_update_deadline: std::time::Duration,
    /// What else the server's port serves (the web console), mounted at start.
    pub mounts: Vec<Mount>,
}

/// Whether StartInstance boots machines on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instances {
    /// Instances are only recorded: a started one stays `requested`.
    Recorded,
    /// Local instances; the server does not start if the host cannot run them.
    Local,
    /// Local instances where the host can run them, recorded ones otherwise (`opsworks up`).
    LocalIfPossible,
}

/// Routes mounted beside the API (the console), made from the server's state once it exists;
/// `on_shutdown` runs first when the server stops (open streams would hold the stop up).
pub struct Mounted {
    /// The routes.
    pub router: axum::Router,
    /// What to do first at shutdown.
    pub on_shutdown: Option<Box<dyn FnOnce() + Send>>,
}

/// A mount: makes its routes from the server's state.
pub type Mount = Arc<dyn Fn(&Core) -> Result<Mounted, ServerError> + Send + Sync>;

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database)
            .field("advertise_url", &self.advertise_url)
            .field("region", &self.region)
            .field("root_key", &self.root_key.as_ref().map(|(id, _)| id))
            .field("instances", &self.instances)
            .field("mounts", &self.mounts.len())
            .finish_non_exhaustive()
    }
}

/// How instance metrics are sampled, kept and read.
#[derive(Clone)]
pub struct MetricsConfig {
    /// Seconds between an agent's samples (told to agents in the hello answer; default 10).
    pub interval_seconds: u64,
    /// How long raw samples and 5-minute averages are kept.
    pub retention: opsworks_store::metrics::Retention,
    /// A bearer token that may read the metrics endpoints (besides SigV4-signed requests).
    pub token: Option<String>,
    /// Whether `GET /metrics` (the Prometheus exposition) is open to anyone.
    pub public: bool,
}

impl std::fmt::Debug for MetricsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsConfig")
            .field("interval_seconds", &self.interval_seconds)
            .field("retention", &self.retention)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("public", &self.public)
            .finish()
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            interval_seconds: 10,
            retention: Default::default(),
            token: None,
            public: false,
        }
    }
}

impl ServerConfig {
    /// A configuration with the defaults for `data_dir`: instances recorded only, no mounts.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            database: None,
            advertise_url: None,
            region: "us-east-1".into(),
            root_key: None,
            healing_timeout: std::time::Duration::from_secs(300),
            scheduler_interval: std::time::Duration::from_secs(15),
            scaling_minute: std::time::Duration::from_secs(60),
            access_minute: std::time::Duration::from_secs(60),
            event_retention: std::time::Duration::from_secs(7 * 24 * 3600),
            event_max_rows: 100_000,
            metrics: MetricsConfig::default(),
            instances: Instances::Recorded,
            package_proxy_allow: Vec::new(),
            agent_program: None,
            elastic_ip_pool: opsworks_sandbox::DEFAULT_RESERVED,
            agent_update_deadline: std::time::Duration::from_secs(60),
            mounts: Vec::new(),
        }
    }
}
