//! `resource-api`: parse the command line, initialise logging, serve; any failure is one line.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use resource_api::config::Config;
use resource_api::startup::Application;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    service_kit::telemetry::init_tracing(config.log_format);
    let result = async {
        let application =
            Application::build(config, Arc::new(auth_core::clock::SystemClock)).await?;
        // Handlers first: whoever reads the line below may stop the API at once.
        let stop = service_kit::shutdown_signal();
        // One line on stdout, so whoever started the API learns the port of `--listen …:0`.
        println!("resource-api listening on {}", application.local_addr()?);
        if let Some(metrics) = application.metrics_addr() {
            println!("resource-api metrics on {metrics}");
        }
        application.run_until(stop).await
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
