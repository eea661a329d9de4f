//! `opsworks converge` without the main binary: the same arguments and output, for development
//! and for benchmarking the engine alone (`cargo run --release -p opsworks-recipe --example converge`).

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: opsworks_recipe::cli::ConvergeArgs,
}

fn main() -> anyhow::Result<ExitCode> {
    opsworks_recipe::cli::run(Cli::parse().args)
}
