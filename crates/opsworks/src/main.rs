//! The `opsworks` command: `server` runs the control plane, `up` is the quickstart.

mod cli;

use clap::Parser;

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = cli::Cli::parse();
    cli::run(cli)
}
