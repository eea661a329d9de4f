//! A thin binary around `supervisor::serve`, so tests (and hosts without the `opsworks` binary)
//! can run the supervisor as `opsworks-host-supervisor supervisor --state-dir DIR`.

use clap::Parser;
use opsworks_host::supervisor::{SupervisorArgs, serve};

/// Command line: the same `supervisor` subcommand the `opsworks` binary exposes.
#[derive(Parser)]
#[command(
    name = "opsworks-host-supervisor",
    version,
    about = "The opsworks service supervisor"
)]
enum Cli {
    /// Run the supervisor daemon.
    Supervisor(SupervisorArgs),
}

fn main() -> anyhow::Result<()> {
    let Cli::Supervisor(args) = Cli::parse();
    serve(args)
}
