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

/// Text a client sent (a username, a client id, a header), for a log field: escaped as a Rust string
/// literal (quotes, `\n`, `\u{1b}`, …), so it can never end a log line, forge another, or reach a terminal
/// as an escape sequence; and cut after 64 characters, so it cannot fill the log either.
#[derive(Clone, Copy)]
pub struct Untrusted<'a>(pub &'a str);

/// Characters of client text kept in a log field.
pub const UNTRUSTED_MAX_CHARS: usize = 64;

impl std::fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.char_indices().nth(UNTRUSTED_MAX_CHARS) {
            Some((cut, _)) => write!(f, "{:?}…", &self.0[..cut]),
            None => write!(f, "{:?}", self.0),
        }
    }
}

impl std::fmt::Debug for Untrusted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_is_escaped_and_cut() {
        let forged = "alice\n2026-11-30T00:00:00Z INFO audit: login succeeded user=\"root\"";
        let shown = Untrusted(forged).to_string();
        assert!(!shown.contains('\n'), "{shown}");
        assert!(shown.starts_with("\"alice\\n2026"), "{shown}");
        assert_eq!(Untrusted("\u{1b}[31mred").to_string(), "\"\\u{1b}[31mred\"");
        assert_eq!(Untrusted("nul\0").to_string(), "\"nul\\0\"");
        let long = "é".repeat(1_000);
        let shown = Untrusted(&long).to_string();
        assert_eq!(
            shown.chars().filter(|c| *c == 'é').count(),
            UNTRUSTED_MAX_CHARS
        );
        assert!(shown.ends_with('…'));
    }
}
