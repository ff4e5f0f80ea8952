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

/// Characters of client text kept in a log field.
pub const UNTRUSTED_MAX_CHARS: usize = 64;

/// Text a client sent (a username, a client id), for a log field: cut after 64 characters (with `…`), so it
/// cannot fill the log. Log it as a string value (`user = &*untrusted(name)`), never with `%`: the text
/// format then writes it quoted and escaped as a Rust string literal (quotes, `\n`, `\u{1b}`, …), so it can
/// never end a line, forge another line or field, or reach a terminal as an escape sequence, and the JSON
/// format writes it as a JSON string, the same way as every other string field.
pub fn untrusted(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(UNTRUSTED_MAX_CHARS) {
        Some((cut, _)) => std::borrow::Cow::Owned(format!("{}…", &text[..cut])),
        None => std::borrow::Cow::Borrowed(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_is_cut_and_the_text_format_escapes_it() {
        let long = "é".repeat(1_000);
        let shown = untrusted(&long);
        assert_eq!(
            shown.chars().filter(|c| *c == 'é').count(),
            UNTRUSTED_MAX_CHARS
        );
        assert!(shown.ends_with('…'));
        assert_eq!(untrusted("webapp"), "webapp");
        // What the text format does with a string value: Debug, a quoted and escaped literal.
        let forged = "alice\n2026-11-30T00:00:00Z INFO audit: login succeeded user=\"root\"";
        let shown = format!("{:?}", untrusted(forged).as_ref());
        assert!(!shown.contains('\n'), "{shown}");
        assert!(shown.starts_with("\"alice\\n2026"), "{shown}");
        assert_eq!(format!("{:?}", "\u{1b}[31mred"), "\"\\u{1b}[31mred\"");
    }
}
