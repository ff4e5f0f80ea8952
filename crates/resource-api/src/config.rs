//! Command line and environment (SPEC §4).

use std::net::SocketAddr;

use clap::{Parser, ValueEnum};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

/// `resource-api`: an API protected by JWT access tokens.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "resource-api",
    version,
    about = "An API protected by RFC 9068 JWT access tokens"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "RESOURCE_API_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// The authorization server's issuer identifier (its metadata is read from there).
    #[arg(
        long,
        env = "RESOURCE_API_ISSUER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub issuer: String,
    /// This API's audience: tokens must name it in `aud`.
    #[arg(long, env = "RESOURCE_API_AUDIENCE", default_value = "resource-api")]
    pub audience: String,
    /// Client id for introspection (DELETE /items needs an active token); its secret comes from
    /// RESOURCE_API_INTROSPECTION_SECRET.
    #[arg(long, env = "RESOURCE_API_INTROSPECTION_CLIENT_ID")]
    pub introspection_client_id: Option<String>,
    /// Minimum time between JWKS refetches for unknown key ids, milliseconds.
    #[arg(long, env = "RESOURCE_API_JWKS_COOLDOWN_MS", default_value_t = 5_000)]
    pub jwks_cooldown_ms: u64,
    /// Time a client has to send a request's headers, milliseconds (slow-header clients are cut off).
    #[arg(long, env = "RESOURCE_API_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub header_read_timeout_ms: u64,
    /// Log format on stderr (filter with RUST_LOG).
    #[arg(
        long,
        env = "RESOURCE_API_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,
}

/// The introspection secret (never a flag, so it stays out of process listings).
pub fn introspection_secret() -> Option<String> {
    std::env::var("RESOURCE_API_INTROSPECTION_SECRET")
        .ok()
        .filter(|secret| !secret.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let config = Config::try_parse_from(["resource-api"]).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8081");
        assert_eq!(config.issuer, "http://127.0.0.1:8080");
        assert_eq!(config.audience, "resource-api");
        assert!(config.introspection_client_id.is_none());
    }
}
