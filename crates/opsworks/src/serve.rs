//! Running the control plane from the command line: the server started through its one
//! assembly (`opsworks_server::Server`), with the console mounted, and what `up` prints.

use std::io::IsTerminal;

use anyhow::Context;

use opsworks_env as env;
use opsworks_server::core::keys::RootKey;
use opsworks_server::{LocalInstances, Server, ServerConfig};

use crate::cli::LogFormat;

/// Sets up logging to stderr, filtered by `OPSWORKS_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(env::OPSWORKS_LOG)
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

/// Raises this process's soft limit on open files to its hard limit, and says what it is.
///
/// Every agent holds a connection (its long poll) and, now and then for a moment, a second one
/// (a metrics batch while the poll waits), so the first limit a large fleet meets is the soft `RLIMIT_NOFILE` (often 1,024 or 20,000) while the
/// hard one is larger. Past the hard limit only the operator can go (`ulimit -Hn`, systemd's
/// `LimitNOFILE=`); the log names the limit so a refused connection is explained.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    // About 1.2 per agent (measured: 12,200 for 10,000 agents), with room for the rest: the
    // fleet this process can hold before connections are refused.
    tracing::info!(
        open_files = lim.rlim_cur,
        agents = lim.rlim_cur * 3 / 4,
        "open-files limit (raise the hard limit, e.g. LimitNOFILE=, for a larger fleet)"
    );
}

/// Runs the server until SIGINT or SIGTERM; `quickstart` prints `up`'s guide.
pub async fn serve(mut config: ServerConfig, quickstart: bool) -> anyhow::Result<()> {
    raise_open_files_limit();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data dir {}", config.data_dir.display()))?;
    let (password, password_source) = opsworks_console::Password::open(&config.data_dir)
        .context("setting up the console password")?;
    config.mounts.push(opsworks_console::mount(password));
    config.agent_program =
        Some(std::env::current_exe().context("finding the opsworks executable")?);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let server = Server::start(config.clone(), listener, shutdown_signal())
        .await
        .with_context(|| format!("starting the server on {}", config.data_dir.display()))?;
    let endpoint = server.endpoint().to_string();
    // Tests and scripts wait for this exact line before they connect.
    println!("listening on {endpoint}");
    // Which engine, never its password.
    println!("database: {}", database(&config));
    match server.local_instances() {
        LocalInstances::On { agent_url, reaped } => {
            println!("local instances: agents reach the server at {agent_url}");
            if !reaped.is_empty() {
                println!(
                    "reaped {} orphaned local machine(s) whose data dir is gone: {}",
                    reaped.len(),
                    reaped.join(", ")
                );
            }
        }
        LocalInstances::Unavailable(why) => {
            eprintln!("warning: local instances are off: {why}");
            eprintln!(
                "         started instances will stay 'requested'; run as root on Linux for local instances"
            );
        }
        LocalInstances::Off => {}
    }
    if quickstart {
        print_quickstart(&endpoint, &config, server.root_key(), &password_source);
    } else {
        if let RootKey::Generated {
            access_key_id,
            secret,
            file,
        } = server.root_key()
        {
            println!("root access key: {access_key_id}");
            println!(
                "root secret key: {secret} (shown once; also in {})",
                file.display()
            );
        }
        if let opsworks_console::PasswordSource::Generated(password) = &password_source {
            println!(
                "console password: {password} (shown once; reset with {})",
                env::OPSWORKS_CONSOLE_PASSWORD
            );
        }
    }
    server.wait().await?;
    Ok(())
}

/// What `up` prints: where everything is, the credentials, and a line to paste.
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
    println!("  database:  {}", database(config));
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

/// The database as the user may see it: the engine and where, never a password.
fn database(config: &ServerConfig) -> String {
    match &config.database {
        Some(engine) => engine.to_string(),
        None => format!("sqlite://{}", config.data_dir.join("opsworks.db").display()),
    }
}

/// SIGINT or SIGTERM.
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
