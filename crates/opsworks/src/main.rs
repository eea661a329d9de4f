//! The `opsworks` command: `server` runs the control plane, `up` is the quickstart.

mod cli;
mod exec;

use clap::Parser;

fn main() -> anyhow::Result<std::process::ExitCode> {
    // A local instance's PID 1: the provider re-executes this binary with its own private
    // arguments, so they bypass the command-line parser.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "sandbox-init")
    {
        opsworks_sandbox::init_main(std::env::args_os().skip(2));
    }
    let cli = cli::Cli::parse();
    cli::run(cli)
}
