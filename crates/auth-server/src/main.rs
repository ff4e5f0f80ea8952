//! `auth-server`: parse the command line, initialise logging, run, and turn any failure into one line.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = auth_server::config::Cli::parse();
    service_kit::telemetry::init_tracing(cli.log_format);
    match auth_server::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the error and its causes, no backtrace.
            eprintln!("auth-server: {error:#}");
            ExitCode::FAILURE
        }
    }
}
