//! The agent on every instance: it says hello to the control plane, long-polls it for commands
//! and runs them one at a time — custom cookbooks fetched, apps deployed to `/srv/www`, recipes
//! converged by `opsworks converge` as a subprocess — streaming each command's log and reporting
//! its outcome, with a local history of the last 30 commands and an inspection CLI over it.
//!
//! Module map: [`client`] signs and retries protocol calls; [`agent`] is the loop and the
//! exactly-once bookkeeping; [`runner`] runs one command; [`apps`] and [`sources`] lay out
//! releases and fetch code; [`archive`] unpacks archives without letting them out; [`hooks`] runs
//! an app's deploy hooks; [`state`] owns the state directory; [`cli`] reads it back; [`facts`]
//! describes the host; [`metrics`] samples the machine (its control group, or `/proc`) and sends
//! the samples. Registered machines: [`register`] is `opsworks register` (the operator's side: the
//! machine reached over SSH or itself), [`install`] puts the agent on the machine and takes it off
//! again, [`preconfig`] reads what `aws opsworks register` hands the installer, and [`update`]
//! moves an installed agent to the release the server names, and back when it does not report in.

pub mod agent;
pub mod apps;
pub mod archive;
pub mod cli;
pub mod client;
pub mod error;
pub mod facts;
pub mod hooks;
pub mod install;
pub mod metrics;
pub mod preconfig;
pub mod register;
pub mod runner;
pub mod sources;
pub mod state;
pub mod update;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

pub use cli::{AgentCli, run_cli};
pub use error::{AgentError, Result};

/// The agent's version, as it says hello.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/opsworks-agent";

/// Arguments of `opsworks agent`.
#[derive(Debug, Clone, clap::Args)]
pub struct AgentArgs {
    /// The server's URL (`http://HOST:PORT`); several (repeated, or comma-separated) for the
    /// servers of one database, the first used first: the agent moves to the next when its
    /// server stops answering, and learns the others from the servers' answers.
    #[arg(long, env = opsworks_env::OPSWORKS_SERVER, value_delimiter = ',', required = true, num_args = 1..)]
    pub server: Vec<String>,
    /// The instance this agent runs on.
    #[arg(long = "instance-id", env = opsworks_env::OPSWORKS_INSTANCE_ID)]
    pub instance_id: String,
    /// JSON file with the instance's credential: `{"access_key_id": ..., "secret_access_key": ...}`.
    #[arg(long, env = opsworks_env::OPSWORKS_AGENT_CREDENTIALS)]
    pub credentials: PathBuf,
    /// Where the agent keeps its history, outbox, locks and cookbook cache.
    #[arg(long = "state-dir", env = opsworks_env::OPSWORKS_AGENT_STATE_DIR, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// The executable whose `converge` subcommand runs recipes (default: this executable).
    #[arg(long = "converge-exe", env = opsworks_env::OPSWORKS_CONVERGE_EXE)]
    pub converge_exe: Option<PathBuf>,
    /// The built-in cookbooks directory, searched before the custom cookbooks (default: the
    /// cookbooks built into this binary, written under the state dir).
    #[arg(long = "builtin-cookbooks", env = opsworks_env::OPSWORKS_BUILTIN_COOKBOOKS)]
    pub builtin_cookbooks: Option<PathBuf>,
    /// Where apps are deployed (`<root>/<shortname>/releases/...`).
    #[arg(
        long = "www-root",
        env = opsworks_env::OPSWORKS_WWW_ROOT,
        default_value = "/srv/www"
    )]
    pub www_root: PathBuf,
    /// The installation the agent runs from (`/opt/opsworks` on registered machines): it then
    /// updates itself to the release the server names. Without it the agent never updates.
    #[arg(long = "install-dir")]
    pub install_dir: Option<PathBuf>,
}

/// Runs the agent until SIGINT or SIGTERM. The server being unreachable is never a reason to
/// stop; bad arguments, unreadable credentials or a second agent on the same state directory are.
pub fn run(args: AgentArgs) -> anyhow::Result<()> {
    // One thread is plenty for one long-poll and one command at a time, and keeps the idle
    // agent small; blocking work (git, downloads) goes to tokio's blocking pool.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(run_until(args, shutdown_signal()))
}

/// Runs the agent until `shutdown` completes (for embedding and tests). A command running at
/// that moment is cut off; its history entry then has no result, and it is reported failed,
/// not run again, if the server hands it out once more.
pub async fn run_until(args: AgentArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let state = state::StateDir::open(&args.state_dir)?;
    let _lock = state.lock_agent()?;
    let creds = client::Credentials::load(&args.credentials)?;
    let client = client::Client::with_servers(&args.server, creds)?;
    let converge_exe = match &args.converge_exe {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("cannot find the agent's own executable")?,
    };
    // Without a directory given, the agent runs the cookbooks built into its own binary.
    let builtin_cookbooks = match &args.builtin_cookbooks {
        Some(dir) => dir.clone(),
        None => {
            let dir = args.state_dir.join("builtin-cookbooks");
            opsworks_cookbooks::extract(&dir).with_context(|| {
                format!("cannot write the built-in cookbooks to {}", dir.display())
            })?;
            dir
        }
    };
    let info = state::AgentInfo {
        version: VERSION.to_string(),
        pid: std::process::id(),
        started_at: state::now_rfc3339(),
        last_activity: state::now_rfc3339(),
        server: args.server.join(","),
        instance_id: args.instance_id.clone(),
        converge_exe: converge_exe.clone(),
        builtin_cookbooks: Some(builtin_cookbooks.clone()),
        www_root: args.www_root.clone(),
        running: None,
        reported_in_at: None,
    };
    state.write_info(&info)?;
    let settings = runner::RunSettings {
        converge_exe,
        // The first server named: the one this machine was started against (the others are
        // failover targets, learned later).
        server_url: args.server.first().cloned().unwrap_or_default(),
        builtin_cookbooks: Some(builtin_cookbooks),
        www_root: args.www_root.clone(),
        state,
    };
    tracing::info!(server = %args.server.join(","), instance_id = %args.instance_id, "agent starting");
    // A machine that booted again brings its enabled services back, as systemd would at boot.
    match tokio::task::spawn_blocking(opsworks_host::service::start_enabled_services).await {
        Ok(Ok(true)) => tracing::info!("supervisor started: enabled services are running again"),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => tracing::warn!("could not start the enabled services: {e}"),
        Err(e) => tracing::warn!("could not start the enabled services: {e}"),
    }
    let installed = args.install_dir.as_deref().map(update::Installed::detect);
    if let Some(i) = &installed {
        match i.release() {
            Some(r) => tracing::info!(version = %r.version, sha256 = %r.sha256, "agent release"),
            None => tracing::warn!(
                "the agent does not run from a release of its install dir; it will not update itself"
            ),
        }
    }
    let agent = Arc::new(
        agent::Agent::new(client, args.instance_id.clone(), settings, info)
            .with_installation(installed),
    );
    tokio::select! {
        _ = agent.run() => {}
        _ = shutdown => tracing::info!("agent stopping"),
    }
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
