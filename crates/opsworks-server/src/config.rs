//! The server's configuration: one struct, documented defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything the control plane needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The data dir: the database, the master key, the root credentials.
    pub data_dir: PathBuf,
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
    /// Events older than this are dropped (default 7 days).
    pub event_retention: std::time::Duration,
    /// At most this many events are kept, the newest (default 100 000).
    pub event_max_rows: u64,
    /// Instance metrics: sampling, retention, who may read them.
    pub metrics: MetricsConfig,
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
    /// A configuration with the defaults for `data_dir`.
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            region: "us-east-1".into(),
            root_key: None,
            healing_timeout: std::time::Duration::from_secs(300),
            scheduler_interval: std::time::Duration::from_secs(15),
            scaling_minute: std::time::Duration::from_secs(60),
            event_retention: std::time::Duration::from_secs(7 * 24 * 3600),
            event_max_rows: 100_000,
            metrics: MetricsConfig::default(),
        }
    }
}
