//! The registration commands of the binary: `register` (the operator's side), `agent-version add`
//! (the server's releases), and the machine's `agent-install` and `agent-uninstall`. Each prints
//! its steps on standard output and one line `opsworks <command>: <why>` on failure.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::AgentVersionAddArgs;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn failed(command: &str, e: impl std::fmt::Display) -> ExitCode {
    eprintln!("opsworks {command}: {e}");
    ExitCode::FAILURE
}

/// `opsworks register`.
pub fn register(args: opsworks_agent::register::RegisterArgs) -> anyhow::Result<ExitCode> {
    Ok(
        match runtime()?.block_on(opsworks_agent::register::run(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => failed("register", e),
        },
    )
}

/// `opsworks agent-install`.
pub fn install(args: opsworks_agent::preconfig::InstallArgs) -> anyhow::Result<ExitCode> {
    Ok(
        match runtime()?.block_on(opsworks_agent::preconfig::run_install(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => failed("agent-install", e),
        },
    )
}

/// `opsworks agent-uninstall`.
pub fn uninstall() -> anyhow::Result<ExitCode> {
    Ok(match opsworks_agent::preconfig::run_uninstall() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed("agent-uninstall", e),
    })
}

/// `opsworks agent-version add`: sends the executable to the server, which keeps it and offers
/// it (its version: `--version`, else what `FILE --version` prints here).
pub fn add_version(args: AgentVersionAddArgs) -> anyhow::Result<ExitCode> {
    let added = runtime()?.block_on(opsworks_agent::register::add_release(
        &args.endpoint_url,
        &args.file,
        args.version.as_deref(),
    ));
    Ok(match added {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => failed("agent-version add", e),
    })
}
