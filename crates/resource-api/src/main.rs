//! `resource-api`: parse the command line, initialise logging, serve; any failure is one line.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use resource_api::config::Config;
use resource_api::startup::{Application, init_tracing};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    init_tracing(config.log_format);
    let result = async {
        let application =
            Application::build(config, Arc::new(auth_core::clock::SystemClock)).await?;
        application.run_until_stopped().await
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("resource-api: {error:#}");
            ExitCode::FAILURE
        }
    }
}
