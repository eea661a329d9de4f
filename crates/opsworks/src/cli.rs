//! Command-line parsing: the subcommands and their flags (each flag's environment variable is
//! declared in `opsworks-env`), and the server's configuration made from them. Nothing runs here.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use opsworks_env as env;
use opsworks_server::{Instances, MetricsConfig, ServerConfig};

/// The `opsworks` command.
#[derive(Debug, Parser)]
#[command(name = "opsworks", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = env::OPSWORKS_LOG_FORMAT)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane.
    Server(ServerArgs),
    /// The quickstart: the control plane with defaults, local instances where the host allows.
    Up(UpArgs),
    /// Converge cookbooks on this machine, like `chef-client -z`.
    Converge(opsworks_recipe::cli::ConvergeArgs),
    /// The agent of an instance.
    Agent(opsworks_agent::AgentArgs),
    /// Inspect what the agent did on this instance.
    AgentCli(AgentCliArgs),
    /// Manage the database: move a data dir's SQLite contents into PostgreSQL.
    #[command(subcommand)]
    Db(DbCommand),
    /// Run a command (a shell by default) inside a local instance (root only).
    Exec(ExecArgs),
    /// The RDS catalog of a running server.
    #[command(subcommand)]
    Rds(RdsCommand),
    /// Register a machine (over SSH, or this one) in a stack: install the agent and start it.
    Register(opsworks_agent::register::RegisterArgs),
    /// Agent releases the server hands out to registered machines.
    #[command(subcommand)]
    AgentVersion(AgentVersionCommand),
    /// Install the agent on this machine (run by `opsworks register` and `boot-registration`).
    #[command(hide = true)]
    AgentInstall(opsworks_agent::preconfig::InstallArgs),
    /// Remove the agent from this machine (run by the agent once the machine is deregistered).
    #[command(hide = true)]
    AgentUninstall,
    /// Put the previous agent back when an update does not report in (run by the agent).
    #[command(hide = true)]
    AgentGuard(opsworks_agent::preconfig::GuardArgs),
    /// The service supervisor (internal).
    #[command(hide = true)]
    Supervisor(opsworks_host::supervisor::SupervisorArgs),
}

/// `opsworks server`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:9730", env = env::OPSWORKS_LISTEN)]
    pub listen: SocketAddr,
    /// The data dir.
    #[arg(long, env = env::OPSWORKS_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Run local instances (root, Linux namespaces).
    #[arg(long, env = env::OPSWORKS_LOCAL_INSTANCES)]
    pub local_instances: bool,
    /// The rest.
    #[command(flatten)]
    pub control: ControlArgs,
}

/// `opsworks up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:9730", env = env::OPSWORKS_LISTEN)]
    pub listen: SocketAddr,
    /// The data dir (default: `$XDG_DATA_HOME/opsworks` or `~/.local/share/opsworks`).
    #[arg(long, env = env::OPSWORKS_DATA_DIR)]
    pub data_dir: Option<PathBuf>,
    /// Only record instances, never run them.
    #[arg(long)]
    pub no_local_instances: bool,
    /// The rest.
    #[command(flatten)]
    pub control: ControlArgs,
}

/// `opsworks db ...`.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copies everything a stopped server's data dir holds (its SQLite database and command
    /// logs) into an empty PostgreSQL database, which servers then share (`--database-url`).
    Migrate {
        /// The data dir whose `opsworks.db` to copy (its server must be stopped).
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL database to fill: `postgres://user:password@host:port/db` (empty).
        #[arg(long, env = env::OPSWORKS_DATABASE_URL, hide_env_values = true)]
        to: String,
    },
}

/// The settings `server` and `up` share.
#[derive(Debug, clap::Args)]
pub struct ControlArgs {
    /// The database: `postgres://user:password@host:port/db` (several servers may share one;
    /// each keeps its own data dir with the same master.key), or a SQLite file's path (default:
    /// `DATA_DIR/opsworks.db`).
    #[arg(long, env = env::OPSWORKS_DATABASE_URL, hide_env_values = true)]
    pub database_url: Option<String>,
    /// The URL clients reach this server at, for log links and the other servers of its
    /// database (default: `http://` and the `--listen` address).
    #[arg(long, env = env::OPSWORKS_ADVERTISE_URL, value_parser = parse_advertise_url)]
    pub advertise_url: Option<String>,
    /// The region in ARNs.
    #[arg(long, default_value = "us-east-1", env = env::OPSWORKS_REGION)]
    pub region: String,
    /// Seconds of agent silence before an instance is connection_lost (and healed where its
    /// layers auto-heal).
    #[arg(long, default_value_t = 300, env = env::OPSWORKS_HEALING_TIMEOUT, value_parser = clap::value_parser!(u64).range(3..))]
    pub healing_timeout: u64,
    /// How often time- and load-based scaling is applied.
    #[arg(long, default_value = "15s", env = env::OPSWORKS_SCHEDULER_INTERVAL, value_parser = parse_duration)]
    pub scheduler_interval: std::time::Duration,
    /// How long one minute of the load-based thresholds lasts (shorten only for tests and demos).
    #[arg(long, default_value = "60s", env = env::OPSWORKS_SCALING_MINUTE, value_parser = parse_duration)]
    pub scaling_minute: std::time::Duration,
    /// How long one minute of GrantAccess's ValidForInMinutes lasts (shorten only for tests and
    /// demos).
    #[arg(long, default_value = "60s", env = env::OPSWORKS_ACCESS_MINUTE, value_parser = parse_duration)]
    pub access_minute: std::time::Duration,
    /// How long a registered machine's updated agent has to report in before the agent puts the
    /// previous release back.
    #[arg(long, default_value = "60s", env = env::OPSWORKS_AGENT_UPDATE_DEADLINE, value_parser = parse_duration)]
    pub agent_update_deadline: std::time::Duration,
    /// How long events are kept.
    #[arg(long, default_value = "7d", env = env::OPSWORKS_EVENT_RETENTION, value_parser = parse_duration)]
    pub event_retention: std::time::Duration,
    /// How many events are kept at most.
    #[arg(long, default_value_t = 100_000, env = env::OPSWORKS_EVENT_MAX_ROWS, value_parser = clap::value_parser!(u64).range(1..))]
    pub event_max_rows: u64,
    /// Networks the machines' package proxy may reach besides public addresses (a package mirror
    /// on the LAN), comma-separated CIDRs.
    #[arg(long, env = env::OPSWORKS_PACKAGE_PROXY_ALLOW, value_delimiter = ',')]
    pub package_proxy_allow: Vec<ipnet::IpNet>,
    /// The addresses `ec2 allocate-address` hands out as Elastic IPs: on the machines' bridge
    /// (10.217.0.0/16), never given to a machine as its own.
    #[arg(long, default_value = "10.217.255.0/24", env = env::OPSWORKS_ELASTIC_IP_POOL)]
    pub elastic_ip_pool: opsworks_sandbox::AddressRange,
    /// Monitoring.
    #[command(flatten)]
    pub metrics: MetricsArgs,
}

/// Monitoring settings.
#[derive(Debug, clap::Args)]
pub struct MetricsArgs {
    /// Seconds between an agent's samples.
    #[arg(long, default_value_t = 10, env = env::OPSWORKS_METRICS_INTERVAL, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub metrics_interval: u64,
    /// Seconds raw samples are kept.
    #[arg(long, default_value_t = 86_400, env = env::OPSWORKS_METRICS_RAW_RETENTION, value_parser = clap::value_parser!(u64).range(600..))]
    pub metrics_raw_retention: u64,
    /// Seconds 5-minute averages are kept.
    #[arg(long, default_value_t = 1_209_600, env = env::OPSWORKS_METRICS_ROLLUP_RETENTION, value_parser = clap::value_parser!(u64).range(3600..))]
    pub metrics_rollup_retention: u64,
    /// A bearer token that may read the metrics endpoints.
    #[arg(long, env = env::OPSWORKS_METRICS_TOKEN, hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Open `/metrics` to anyone.
    #[arg(long, env = env::OPSWORKS_METRICS_PUBLIC)]
    pub metrics_public: bool,
}

/// `opsworks agent-version`.
#[derive(Debug, Subcommand)]
pub enum AgentVersionCommand {
    /// Offer an agent executable to registered machines under its version (DescribeAgentVersions
    /// lists it; stacks and instances may name it as their AgentVersion).
    Add(AgentVersionAddArgs),
}

/// `opsworks agent-version add`.
#[derive(Debug, clap::Args)]
pub struct AgentVersionAddArgs {
    /// The executable (an `opsworks` build for Linux).
    pub file: PathBuf,
    /// Its version (default: what `FILE --version` prints, run here).
    #[arg(long)]
    pub version: Option<String>,
    /// The server (credentials of the account's root from the AWS environment variables or
    /// shared credentials file, as `aws` finds them).
    #[arg(long = "endpoint-url")]
    pub endpoint_url: String,
}

/// `opsworks agent-cli`.
#[derive(Debug, clap::Args)]
pub struct AgentCliArgs {
    /// The agent's state dir.
    #[arg(long, default_value = opsworks_agent::DEFAULT_STATE_DIR, env = env::OPSWORKS_AGENT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// What to show.
    #[command(subcommand)]
    pub command: opsworks_agent::AgentCli,
}

/// Arguments of `opsworks exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The data dir of the server that runs the instance (default: as `opsworks up`'s,
    /// $XDG_DATA_HOME/opsworks, else ~/.local/share/opsworks).
    #[arg(long, env = env::OPSWORKS_DATA_DIR)]
    pub data_dir: Option<PathBuf>,
    /// The instance (its InstanceId); it must be running.
    pub instance_id: String,
    /// The command and its arguments, after `--` (default: root's login shell).
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// `opsworks rds <command>`.
#[derive(Debug, Subcommand)]
pub enum RdsCommand {
    /// Add a database that runs elsewhere (another host, a managed service) to the server's RDS
    /// catalog, so a stack can register it; the server checks that it answers first.
    Import(RdsImportArgs),
}

/// Arguments of `opsworks rds import`.
#[derive(Debug, clap::Args)]
pub struct RdsImportArgs {
    /// The DB instance identifier it gets (its ARN ends with it).
    pub id: String,
    /// `mysql`, `mariadb` or `postgres`.
    #[arg(long)]
    pub engine: String,
    /// Its host name or address, as the server and the instances reach it.
    #[arg(long)]
    pub address: String,
    /// Its port.
    #[arg(long)]
    pub port: u16,
    /// The server's endpoint.
    #[arg(long, default_value = "http://127.0.0.1:9730", env = env::OPSWORKS_ENDPOINT)]
    pub endpoint: String,
    /// An AWS shared-credentials file whose `[default]` keys sign the call (default:
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, else the default data dir's root-credentials).
    #[arg(long)]
    pub credentials: Option<PathBuf>,
    /// The region the call is signed for.
    #[arg(long, default_value = "us-east-1", env = env::OPSWORKS_REGION)]
    pub region: String,
}

impl ControlArgs {
    /// The server's configuration.
    pub fn config(
        self,
        listen: SocketAddr,
        data_dir: PathBuf,
        instances: Instances,
    ) -> anyhow::Result<ServerConfig> {
        let mut config = ServerConfig::new(data_dir);
        config.listen = listen;
        config.database = match self.database_url.as_deref().map(str::trim) {
            None | Some("") => None,
            // The error names the scheme at most, never the rest (it may hold a password).
            Some(url) => Some(opsworks_store::Engine::from_url(url).map_err(|e| {
                anyhow::anyhow!("--database-url / {}: {e}", env::OPSWORKS_DATABASE_URL)
            })?),
        };
        config.advertise_url = self.advertise_url;
        config.region = self.region;
        config.root_key = root_key_from_env()?;
        config.healing_timeout = std::time::Duration::from_secs(self.healing_timeout);
        config.scheduler_interval = self.scheduler_interval;
        config.scaling_minute = self.scaling_minute;
        config.access_minute = self.access_minute;
        config.event_retention = self.event_retention;
        config.agent_update_deadline = self.agent_update_deadline;
        config.event_max_rows = self.event_max_rows;
        config.metrics = MetricsConfig {
            interval_seconds: self.metrics.metrics_interval,
            retention: opsworks_store::metrics::Retention {
                raw_seconds: i64::try_from(self.metrics.metrics_raw_retention).unwrap_or(i64::MAX),
                rollup_seconds: i64::try_from(self.metrics.metrics_rollup_retention)
                    .unwrap_or(i64::MAX),
            },
            token: self.metrics.metrics_token.filter(|t| !t.is_empty()),
            public: self.metrics.metrics_public,
        };
        config.instances = instances;
        config.package_proxy_allow = self.package_proxy_allow;
        config.elastic_ip_pool = self.elastic_ip_pool;
        Ok(config)
    }
}

/// The root key from the environment: both variables, or neither.
fn root_key_from_env() -> anyhow::Result<Option<(String, String)>> {
    let id = std::env::var(env::OPSWORKS_ROOT_ACCESS_KEY_ID).ok();
    let secret = std::env::var(env::OPSWORKS_ROOT_SECRET_ACCESS_KEY).ok();
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some((id, secret))),
        (None, None) => Ok(None),
        _ => anyhow::bail!(
            "set both {} and {}, or neither",
            env::OPSWORKS_ROOT_ACCESS_KEY_ID,
            env::OPSWORKS_ROOT_SECRET_ACCESS_KEY
        ),
    }
}

/// An `http://` or `https://` URL with a host, without a trailing slash.
fn parse_advertise_url(text: &str) -> Result<String, String> {
    let t = text.trim().trim_end_matches('/');
    let rest = t
        .strip_prefix("http://")
        .or_else(|| t.strip_prefix("https://"))
        .ok_or_else(|| format!("'{text}' is not an http:// or https:// URL"))?;
    if rest.is_empty() || rest.starts_with(':') || rest.contains(['?', '#', ' ']) {
        return Err(format!("'{text}' needs a host (http://HOST:PORT)"));
    }
    Ok(t.to_string())
}

/// `$XDG_DATA_HOME/opsworks`, else `~/.local/share/opsworks`.
pub fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("opsworks"));
    }
    let home = std::env::var_os("HOME")
        .context("neither XDG_DATA_HOME nor HOME is set; pass --data-dir")?;
    Ok(PathBuf::from(home).join(".local/share/opsworks"))
}

/// A positive duration: "15s", "500ms", "2m", "7d", "1h 30m" (jiff's friendly format), or plain
/// seconds ("15").
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let days = t
        .strip_suffix('d')
        .and_then(|n| n.trim().parse::<u64>().ok());
    let d = match (t.parse::<u64>(), days) {
        (Ok(secs), _) => std::time::Duration::from_secs(secs),
        (_, Some(days)) => std::time::Duration::from_secs(days.saturating_mul(86_400)),
        _ => {
            let signed: jiff::SignedDuration = t.parse().map_err(|e| {
                format!("'{text}' is not a duration (e.g. 15s, 500ms, 2m, 7d): {e}")
            })?;
            std::time::Duration::try_from(signed)
                .map_err(|_| format!("'{text}' must not be negative"))?
        }
    };
    if d.is_zero() {
        return Err(format!("'{text}' must be more than zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn advertise_urls_are_http_with_a_host() {
        use super::parse_advertise_url as p;
        assert_eq!(
            p("http://ops.example:9730/"),
            Ok("http://ops.example:9730".into())
        );
        assert_eq!(p("https://ops.example"), Ok("https://ops.example".into()));
        assert!(p("ops.example:9730").is_err());
        assert!(p("http://").is_err());
        assert!(p("http://:80").is_err());
    }

    #[test]
    fn durations_in_friendly_form_or_seconds() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("168h"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }
}
