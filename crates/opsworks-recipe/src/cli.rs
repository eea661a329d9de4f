//! `opsworks converge`: the command-line face of the engine (what `chef-client -z` is to Chef).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::{DataBagSource, RunConfig};

/// Output format of `opsworks converge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Chef-like lines plus the summary.
    Text,
    /// The report as JSON.
    Json,
}

/// Arguments of `opsworks converge`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConvergeArgs {
    /// Cookbook directories, comma-separated; the first one holding a cookbook wins.
    #[arg(long, value_delimiter = ',', required = true)]
    pub cookbooks: Vec<PathBuf>,
    /// Recipes to run: `cookbook::recipe` or `cookbook` (its default recipe), comma-separated.
    #[arg(long = "run-list", required = true)]
    pub run_list: String,
    /// Node attribute JSON file (enters at the `normal` level; a top-level `_levels` object names levels).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Directory of data bags (`DIR/<bag>/<item>.json`) for search().
    #[arg(long = "data-bags")]
    pub data_bags: Option<PathBuf>,
    /// Report what would change without changing anything.
    #[arg(long = "why-run")]
    pub why_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// Runs a converge and prints its report. Exits non-zero when a resource fails or the run errors.
pub fn run(args: ConvergeArgs) -> anyhow::Result<ExitCode> {
    let json = match &args.json {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("invalid JSON in {}", p.display()))?
        }
        None => serde_json::Value::Null,
    };
    let cfg = RunConfig {
        cookbook_paths: args.cookbooks.clone(),
        run_list: crate::cookbook::parse_run_list(&args.run_list)?
            .iter()
            .map(|r| r.full_name())
            .collect(),
        json,
        data_bags: args
            .data_bags
            .clone()
            .map(DataBagSource::Dir)
            .unwrap_or_default(),
        why_run: args.why_run,
        ..Default::default()
    };
    let report = match crate::converge(&cfg) {
        Ok(r) => r,
        Err(e) => {
            if args.format == Format::Json {
                println!(
                    "{}",
                    serde_json::json!({"success": false, "error": e.to_string()})
                );
            } else {
                eprintln!("error: {e}");
            }
            return Ok(ExitCode::FAILURE);
        }
    };
    match args.format {
        Format::Text => print!("{}", report.to_text()),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(if report.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
