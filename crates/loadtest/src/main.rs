//! `loadtest`: Goose scenarios against an authorization server and a protected API, given by URL.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use goose::config::GooseConfiguration;
use loadtest::{ScenarioKind, TargetArgs};

/// Load tests an OAuth 2.0 authorization server and a bearer-protected API.
///
/// Goose's own options (--users, --run-time or --iterations, --report-file, …) follow ours.
#[derive(Parser)]
#[command(name = "loadtest")]
struct Cli {
    #[command(flatten)]
    target: TargetArgs,
    /// What to measure
    #[arg(long, value_enum, default_value_t = ScenarioKind::Mixed)]
    scenario: ScenarioKind,
    /// Also write the summary table as JSON to this file
    #[arg(long)]
    summary_file: Option<PathBuf>,
    #[command(flatten, next_help_heading = "Goose")]
    goose: GooseConfiguration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("loadtest: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(loadtest::run(cli.target, cli.scenario, cli.goose)) {
        Ok(summary) => {
            print!("{}", summary.render());
            if let Some(path) = cli.summary_file {
                let written = serde_json::to_vec_pretty(&summary)
                    .map_err(std::io::Error::other)
                    .and_then(|json| std::fs::write(&path, json));
                if let Err(error) = written {
                    eprintln!("loadtest: writing {}: {error}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("loadtest: {error:#}");
            ExitCode::FAILURE
        }
    }
}
