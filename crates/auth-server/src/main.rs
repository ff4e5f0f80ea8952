//! `auth-server`: parse the command line, initialise logging, run, and turn any failure into one line.

use std::process::ExitCode;

use auth_server::declared::Problems;
use auth_server::declared::server::{Refusal, parse};
use clap::CommandFactory;

#[tokio::main]
async fn main() -> ExitCode {
    let parsed = parse(
        auth_server::config::Cli::command(),
        std::env::args_os().collect(),
        &|name| std::env::var(name).ok(),
    );
    let (cli, declaration) = match parsed {
        Ok(parsed) => parsed,
        Err(Refusal::Usage(error)) => error.exit(),
        Err(Refusal::File(problems)) => return problems_exit(&problems),
    };
    service_kit::telemetry::init_tracing(cli.log_format);
    match auth_server::run(cli, declaration).await {
        Ok(()) => ExitCode::SUCCESS,
        // A configuration file's problems: one line each, `FILE:LINE: KEY: reason`, as written.
        Err(error) if error.downcast_ref::<Problems>().is_some() => problems_exit(
            error
                .downcast_ref::<Problems>()
                .unwrap_or(&Problems(Vec::new())),
        ),
        Err(error) => {
            // One line: the error and its causes, no backtrace.
            eprintln!("auth-server: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn problems_exit(problems: &Problems) -> ExitCode {
    for line in &problems.0 {
        // The file's own text, whole, with any control character escaped: each problem stays one line.
        let shown: String = line
            .chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect();
        eprintln!("{shown}");
    }
    ExitCode::FAILURE
}
