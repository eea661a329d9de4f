//! Command-line parsing and the subcommands' glue.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use opsworks_server::keys::RootKey;
use opsworks_server::{App, ServerConfig};

/// Self-hosted OpsWorks Stacks: the control plane, the agent and the recipe engine.
#[derive(Debug, Parser)]
#[command(name = "opsworks", version, about)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "OPSWORKS_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane (the OpsWorks Stacks API).
    Server(ServerArgs),
    /// Quickstart: the server on 127.0.0.1 with a default data dir, and how to reach it.
    Up(UpArgs),
    /// Converge cookbooks on this machine (Starlark recipes, Jinja2 templates), like `chef-client -z`.
    Converge(opsworks_recipe::cli::ConvergeArgs),
    /// The agent of an instance: takes commands from the server and runs them.
    Agent(opsworks_agent::AgentArgs),
    /// Inspect what the agent on this instance did (its last 30 commands, logs, JSON).
    AgentCli(AgentCliArgs),
    /// Run a shell (or a command after --) inside a running local instance; root only.
    Exec(crate::exec::ExecArgs),
    /// The service supervisor (started on demand by the `service` resource where systemd is not PID 1).
    #[command(hide = true)]
    Supervisor(opsworks_host::supervisor::SupervisorArgs),
}

#[derive(Debug, clap::Args)]
struct ServerArgs {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:9730", env = "OPSWORKS_LISTEN")]
    listen: SocketAddr,
    /// Directory holding the database, the master key and the root credentials.
    #[arg(long, env = "OPSWORKS_DATA_DIR")]
    data_dir: PathBuf,
    /// Run started instances as local machines on this host (Linux namespaces and overlayfs; root).
    #[arg(long, env = "OPSWORKS_LOCAL_INSTANCES")]
    local_instances: bool,
    #[command(flatten)]
    control: ControlArgs,
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9730", env = "OPSWORKS_LISTEN")]
    listen: SocketAddr,
    /// Data directory (default: $XDG_DATA_HOME/opsworks, else ~/.local/share/opsworks).
    #[arg(long, env = "OPSWORKS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Don't run started instances as local machines (they are only recorded).
    #[arg(long)]
    no_local_instances: bool,
    #[command(flatten)]
    control: ControlArgs,
}

/// What `server` and `up` share: the region, healing, scaling, events and metrics settings.
#[derive(Debug, clap::Args)]
struct ControlArgs {
    /// Region used in ARNs.
    #[arg(long, default_value = "us-east-1", env = "OPSWORKS_REGION")]
    region: String,
    /// Seconds an instance's agent may be silent before the instance is connection_lost (and healed
    /// where its layers auto-heal).
    #[arg(long, default_value_t = 300, env = "OPSWORKS_HEALING_TIMEOUT", value_parser = clap::value_parser!(u64).range(3..))]
    healing_timeout: u64,
    /// How often the scheduler applies time- and load-based scaling ("15s", "1s", "2m").
    #[arg(long, default_value = "15s", env = "OPSWORKS_SCHEDULER_INTERVAL", value_parser = parse_duration)]
    scheduler_interval: std::time::Duration,
    /// How long one minute of the load-based scaling settings (ThresholdsWaitTime,
    /// IgnoreMetricsTime) lasts. Shorten only for tests and demos.
    #[arg(long, default_value = "60s", env = "OPSWORKS_SCALING_MINUTE", value_parser = parse_duration)]
    scaling_minute: std::time::Duration,
    /// How long events are kept ("7d", "12h").
    #[arg(long, default_value = "7d", env = "OPSWORKS_EVENT_RETENTION", value_parser = parse_duration)]
    event_retention: std::time::Duration,
    /// The most events kept (the newest).
    #[arg(long, default_value_t = 100_000, env = "OPSWORKS_EVENT_MAX_ROWS", value_parser = clap::value_parser!(u64).range(1..))]
    event_max_rows: u64,
    #[command(flatten)]
    metrics: MetricsArgs,
}

impl ControlArgs {
    fn config(self, listen: SocketAddr, data_dir: PathBuf) -> anyhow::Result<ServerConfig> {
        Ok(ServerConfig {
            listen,
            data_dir,
            region: self.region,
            root_key: root_key_from_env()?,
            healing_timeout: std::time::Duration::from_secs(self.healing_timeout),
            scheduler_interval: self.scheduler_interval,
            scaling_minute: self.scaling_minute,
            event_retention: self.event_retention,
            event_max_rows: self.event_max_rows,
            metrics: self.metrics.config(),
        })
    }
}

/// Instance metrics: sampling, retention and who may read them.
#[derive(Debug, clap::Args)]
struct MetricsArgs {
    /// Seconds between the samples of instance metrics agents take.
    #[arg(long, default_value_t = 10, env = "OPSWORKS_METRICS_INTERVAL", value_parser = clap::value_parser!(u64).range(1..=3600))]
    metrics_interval: u64,
    /// Seconds raw metric samples are kept (then only their 5-minute averages).
    #[arg(long, default_value_t = 86_400, env = "OPSWORKS_METRICS_RAW_RETENTION", value_parser = clap::value_parser!(u64).range(600..))]
    metrics_raw_retention: u64,
    /// Seconds the 5-minute averages of metrics are kept.
    #[arg(long, default_value_t = 1_209_600, env = "OPSWORKS_METRICS_ROLLUP_RETENTION", value_parser = clap::value_parser!(u64).range(3600..))]
    metrics_rollup_retention: u64,
    /// A bearer token that may read /api/metrics and /metrics (besides SigV4-signed requests).
    #[arg(long, env = "OPSWORKS_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Serve the Prometheus exposition at /metrics to anyone, without credentials.
    #[arg(long, env = "OPSWORKS_METRICS_PUBLIC")]
    metrics_public: bool,
}

impl MetricsArgs {
    fn config(self) -> opsworks_server::MetricsConfig {
        opsworks_server::MetricsConfig {
            interval_seconds: self.metrics_interval,
            retention: opsworks_server::metrics::Retention {
                raw_seconds: self.metrics_raw_retention as i64,
                rollup_seconds: self.metrics_rollup_retention as i64,
            },
            token: self.metrics_token.filter(|t| !t.is_empty()),
            public: self.metrics_public,
        }
    }
}

#[derive(Debug, clap::Args)]
struct AgentCliArgs {
    /// The agent's state dir.
    #[arg(long, default_value = opsworks_agent::DEFAULT_STATE_DIR, env = "OPSWORKS_AGENT_STATE_DIR")]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: opsworks_agent::AgentCli,
}

/// How the server runs instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Instances {
    /// Only recorded: StartInstance leaves them `requested`.
    Recorded,
    /// Local machines, required: the server refuses to start without them.
    Local,
    /// Local machines when this host allows them, else recorded with a warning (`up`).
    LocalIfPossible,
}

/// The root key from `OPSWORKS_ROOT_ACCESS_KEY_ID` / `OPSWORKS_ROOT_SECRET_ACCESS_KEY`, when both are set.
fn root_key_from_env() -> anyhow::Result<Option<(String, String)>> {
    let id = std::env::var("OPSWORKS_ROOT_ACCESS_KEY_ID").ok();
    let secret = std::env::var("OPSWORKS_ROOT_SECRET_ACCESS_KEY").ok();
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Some((id, secret))),
        (None, None) => Ok(None),
        _ => anyhow::bail!(
            "set both OPSWORKS_ROOT_ACCESS_KEY_ID and OPSWORKS_ROOT_SECRET_ACCESS_KEY, or neither"
        ),
    }
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("opsworks"));
    }
    let home = std::env::var_os("HOME")
        .context("neither XDG_DATA_HOME nor HOME is set; pass --data-dir")?;
    Ok(PathBuf::from(home).join(".local/share/opsworks"))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OPSWORKS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let (config, quickstart, instances) = match cli.command {
        // The supervisor builds its own runtime and logs to its own file.
        Command::Supervisor(args) => {
            opsworks_host::supervisor::serve(args)?;
            return Ok(ExitCode::SUCCESS);
        }
        // The converge's output is its report; it sets up nothing else.
        Command::Converge(args) => return opsworks_recipe::cli::run(args),
        Command::Agent(args) => {
            init_logging(cli.log_format);
            opsworks_agent::run(args)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Exec(args) => return crate::exec::run(args),
        Command::AgentCli(args) => {
            opsworks_agent::run_cli(&args.state_dir, args.command)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Server(args) => {
            let config = args.control.config(args.listen, args.data_dir)?;
            let instances = if args.local_instances {
                Instances::Local
            } else {
                Instances::Recorded
            };
            (config, false, instances)
        }
        Command::Up(args) => {
            let data_dir = match args.data_dir {
                Some(d) => d,
                None => default_data_dir()?,
            };
            let config = args.control.config(args.listen, data_dir)?;
            let instances = if args.no_local_instances {
                Instances::Recorded
            } else {
                Instances::LocalIfPossible
            };
            (config, true, instances)
        }
    };
    init_logging(cli.log_format);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(config, quickstart, instances))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(config: ServerConfig, quickstart: bool, instances: Instances) -> anyhow::Result<()> {
    let (app, root) = App::open(&config)
        .await
        .with_context(|| format!("opening the data dir {}", config.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let endpoint = format!("http://{addr}");
    app.set_endpoint(&endpoint);
    let (password, password_source) = opsworks_console::Password::open(&config.data_dir)
        .context("setting up the console password")?;
    let console = opsworks_console::Console::new(app.clone(), password);
    // Tests and scripts wait for this exact line before they connect.
    println!("listening on {endpoint}");
    if quickstart {
        print_quickstart(&endpoint, &config, &root, &password_source);
    }
    if !quickstart
        && let RootKey::Generated {
            access_key_id,
            secret,
            file,
        } = &root
    {
        println!("root access key: {access_key_id}");
        println!(
            "root secret key: {secret} (shown once; also in {})",
            file.display()
        );
    }
    if !quickstart && let opsworks_console::PasswordSource::Generated(password) = &password_source {
        println!("console password: {password} (shown once; reset with OPSWORKS_CONSOLE_PASSWORD)");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let mut servers = tokio::task::JoinSet::new();
    if instances != Instances::Recorded {
        match attach_local_machines(&app, &config, addr.port()).await {
            Ok((agent_listener, agent_url)) => {
                println!("local instances: agents reach the server at {agent_url}");
                servers.spawn(opsworks_server::serve(
                    agent_listener,
                    app.clone(),
                    stopped(),
                ));
            }
            Err(e) if instances == Instances::LocalIfPossible => {
                eprintln!("warning: local instances are off: {e:#}");
                eprintln!(
                    "         started instances will stay 'requested'; run as root on Linux for local instances"
                );
            }
            Err(e) => return Err(e.context("local instances cannot run on this host")),
        }
    }
    tokio::spawn(opsworks_server::watchdog::run(app.clone()));
    // Load-based scaling reads the layers' averages of the agents' metrics.
    tokio::spawn(opsworks_server::scheduler::run(
        app.clone(),
        opsworks_server::scheduler::AgentMetrics,
    ));
    let events_app = app.clone();
    tokio::spawn(opsworks_server::metrics::run_maintenance(app.clone()));
    tracing::info!(%endpoint, data_dir = %config.data_dir.display(), "server started");
    let router =
        opsworks_server::http::router(app).merge(opsworks_console::router(console.clone()));
    servers.spawn(opsworks_server::serve_router(listener, router, stopped()));
    shutdown_signal().await;
    // Open event streams would hold the graceful shutdown up: end them first.
    events_app.events().close();
    console.close();
    let _ = stop_tx.send(true);
    while let Some(done) = servers.join_next().await {
        done??;
    }
    tracing::info!("server stopped");
    Ok(())
}

/// Attaches the local instance provider: machines under `DIR/machines`, and a listener on the
/// machines' gateway (same port as the API when it is free) where their agents reach the server.
async fn attach_local_machines(
    app: &App,
    config: &ServerConfig,
    port: u16,
) -> anyhow::Result<(tokio::net::TcpListener, String)> {
    use opsworks_sandbox::{LocalConfig, LocalProvider};
    let provider = LocalProvider::new(LocalConfig::new(config.data_dir.join("machines")))?;
    provider.check_host()?;
    let gateway = provider.prepare()?;
    let listener = match tokio::net::TcpListener::bind((gateway, port)).await {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind((gateway, 0))
            .await
            .context("binding the agents' listener")?,
    };
    let agent_url = format!("http://{}", listener.local_addr()?);
    // Machines have no NAT: their package manager reaches the mirrors through this proxy.
    let proxy = tokio::net::TcpListener::bind((gateway, 0))
        .await
        .context("binding the machines' package proxy")?;
    let proxy_url = format!("http://{}", proxy.local_addr()?);
    tokio::spawn(opsworks_server::proxy::serve(proxy));
    let exe = std::env::current_exe().context("finding the opsworks executable")?;
    let machines = opsworks_server::machines::Machines::new(
        std::sync::Arc::new(provider),
        agent_url.clone(),
        exe,
        vec![config.data_dir.clone()],
    )
    .with_package_proxy(proxy_url);
    app.set_machines(machines);
    Ok((listener, agent_url))
}

fn print_quickstart(
    endpoint: &str,
    config: &ServerConfig,
    root: &RootKey,
    console: &opsworks_console::PasswordSource,
) {
    let creds = config.data_dir.join("root-credentials");
    println!();
    println!("OpsWorks is up.");
    println!("  endpoint:  {endpoint}");
    println!("  console:   {endpoint}/console/");
    match console {
        opsworks_console::PasswordSource::Generated(password) => println!(
            "  console password: {password}   (shown once; reset with OPSWORKS_CONSOLE_PASSWORD)"
        ),
        opsworks_console::PasswordSource::Environment => {
            println!("  console password: from OPSWORKS_CONSOLE_PASSWORD")
        }
        opsworks_console::PasswordSource::Existing => println!(
            "  console password: as set at the first start (reset with OPSWORKS_CONSOLE_PASSWORD)"
        ),
    }
    println!("  data dir:  {}", config.data_dir.display());
    match root {
        RootKey::Generated {
            access_key_id,
            secret,
            ..
        } => {
            println!("  root access key: {access_key_id}");
            println!(
                "  root secret key: {secret}   (shown once; kept in {})",
                creds.display()
            );
        }
        RootKey::FromEnvironment { access_key_id } => {
            println!("  root access key: {access_key_id} (from OPSWORKS_ROOT_ACCESS_KEY_ID)");
        }
        RootKey::Existing { access_key_id } => {
            println!(
                "  root access key: {access_key_id} (secret in {})",
                creds.display()
            );
        }
    }
    println!();
    println!("Try it:");
    match root {
        RootKey::FromEnvironment { .. } => println!(
            "  AWS_ACCESS_KEY_ID=$OPSWORKS_ROOT_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$OPSWORKS_ROOT_SECRET_ACCESS_KEY aws opsworks describe-stacks --region {} --endpoint-url {endpoint}",
            config.region
        ),
        _ => println!(
            "  AWS_SHARED_CREDENTIALS_FILE={} aws opsworks describe-stacks --region {} --endpoint-url {endpoint}",
            creds.display(),
            config.region
        ),
    }
    println!();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
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
