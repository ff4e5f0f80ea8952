//! Logs: tracing on stderr, as text or one JSON object per line, filtered by `RUST_LOG`.

use std::io::IsTerminal;

/// Log output format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log shippers.
    Json,
    /// Human-readable text.
    Pretty,
}

/// Installs the tracing subscriber on stderr. `RUST_LOG` filters (default `info`). Colour codes only when
/// stderr is a terminal: a log file or a pipe gets plain text. A second call (tests start several services
/// in one process) changes nothing.
pub fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
