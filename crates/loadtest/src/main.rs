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
    #[arg(long, env = "LOADTEST_SCENARIO", value_enum, default_value_t = ScenarioKind::Mixed)]
    scenario: ScenarioKind,
    /// Also write the summary table as JSON to this file
    #[arg(long, env = "LOADTEST_SUMMARY_FILE")]
    summary_file: Option<PathBuf>,
    /// Only check that the scenario can run (discovery, a token, the API), then exit: no load
    #[arg(long, env = "LOADTEST_CHECK")]
    check: bool,
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
    if cli.check {
        return match runtime.block_on(loadtest::check(cli.target, cli.scenario)) {
            Ok(()) => {
                println!("loadtest: {} can run", cli.scenario.name());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("loadtest: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_flag_of_ours_reads_a_loadtest_variable() {
        let goose: Vec<String> = <GooseConfiguration as clap::CommandFactory>::command()
            .get_arguments()
            .map(|arg| arg.get_id().to_string())
            .collect();
        let ours: Vec<_> = Cli::command()
            .get_arguments()
            .filter(|arg| !goose.contains(&arg.get_id().to_string()))
            .filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version"))
            .map(|arg| {
                (
                    arg.get_id().to_string(),
                    arg.get_env().map(|env| env.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert!(ours.len() >= 15, "{ours:?}");
        for (id, env) in ours {
            let env = env.unwrap_or_else(|| panic!("--{id} reads no variable"));
            assert!(env.starts_with("LOADTEST_"), "--{id}: {env}");
        }
    }
}
