//! The `opsworks` command: `server` runs the control plane, `up` is the quickstart; the agent,
//! the converge tool and the supervisor are subcommands of the same binary.

mod cli;
mod db;
mod exec;
mod rds;
mod registration;
mod serve;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use cli::{Cli, Command, DbCommand};
use opsworks_server::Instances;

/// Every role of the binary allocates through mimalloc: the server's request path is
/// allocation-heavy, and glibc's malloc showed at the top of its profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<ExitCode> {
    // A local instance's PID 1: the provider re-executes this binary with its own private
    // arguments, so they bypass the command-line parser.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "sandbox-init")
    {
        opsworks_sandbox::init_main(std::env::args_os().skip(2));
    }
    let cli = Cli::parse();
    let (config, quickstart) = match cli.command {
        // The supervisor builds its own runtime and logs to its own file.
        Command::Supervisor(args) => {
            opsworks_host::supervisor::serve(args)?;
            return Ok(ExitCode::SUCCESS);
        }
        // The converge's output is its report; it sets up nothing else.
        Command::Converge(args) => return opsworks_recipe::cli::run(args),
        Command::Agent(args) => {
            serve::init_logging(cli.log_format);
            opsworks_agent::run(args)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Exec(args) => return exec::run(args),
        Command::Db(DbCommand::Migrate { from, to }) => {
            serve::init_logging(cli.log_format);
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime.block_on(db::migrate(&from, &to))?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Rds(cli::RdsCommand::Import(args)) => return rds::import(args),
        Command::Register(args) => return registration::register(args),
        Command::AgentVersion(cli::AgentVersionCommand::Add(args)) => {
            return registration::add_version(args);
        }
        Command::AgentInstall(args) => return registration::install(args),
        Command::AgentUninstall => return registration::uninstall(),
        Command::AgentGuard(args) => {
            serve::init_logging(cli.log_format);
            opsworks_agent::preconfig::run_guard(args)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::AgentCli(args) => {
            opsworks_agent::run_cli(&args.state_dir, args.command)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Server(args) => {
            let instances = if args.local_instances {
                Instances::Local
            } else {
                Instances::Recorded
            };
            (
                args.control.config(args.listen, args.data_dir, instances)?,
                false,
            )
        }
        Command::Up(args) => {
            let data_dir = match args.data_dir {
                Some(d) => d,
                None => cli::default_data_dir()?,
            };
            let instances = if args.no_local_instances {
                Instances::Recorded
            } else {
                Instances::LocalIfPossible
            };
            (args.control.config(args.listen, data_dir, instances)?, true)
        }
    };
    serve::init_logging(cli.log_format);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve::serve(config, quickstart))?;
    Ok(ExitCode::SUCCESS)
}
