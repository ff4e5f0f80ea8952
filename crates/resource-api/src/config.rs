//! The command line: every flag also reads a `RESOURCE_API_…` environment variable (docs/operations.md).

use std::net::SocketAddr;

use clap::{CommandFactory, FromArgMatches, Parser};
pub use service_kit::secret::Secret;
pub use service_kit::telemetry::LogFormat;

/// `resource-api`: an API protected by JWT access tokens.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "resource-api",
    version,
    about = "An API protected by RFC 9068 JWT access tokens"
)]
pub struct Config {
    /// Address to listen on (port 0: any free port, printed on stdout)
    #[arg(long, env = "RESOURCE_API_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// The authorization server's issuer identifier (its metadata is read from there)
    #[arg(
        long,
        env = "RESOURCE_API_ISSUER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub issuer: String,
    /// This API's audience: tokens must name it in `aud`
    #[arg(long, env = "RESOURCE_API_AUDIENCE", default_value = "resource-api")]
    pub audience: String,
    /// Client id for introspection (DELETE /items needs an active token)
    #[arg(long, env = "RESOURCE_API_INTROSPECTION_CLIENT_ID")]
    pub introspection_client_id: Option<String>,
    /// Secret of --introspection-client-id. Prefer the variable: a flag's value shows in process listings
    #[arg(
        long,
        env = "RESOURCE_API_INTROSPECTION_SECRET",
        hide_env_values = true,
        // `client create` prints base64url secrets: one in 64 starts with '-'.
        allow_hyphen_values = true
    )]
    pub introspection_secret: Option<Secret>,
    /// Minimum time between JWKS refetches for unknown key ids, milliseconds
    #[arg(long, env = "RESOURCE_API_JWKS_COOLDOWN_MS", default_value_t = 5_000)]
    pub jwks_cooldown_ms: u64,
    /// Time a client has from connecting until its request headers are in, milliseconds (and from the first
    /// byte of every later request head); slower connections are closed
    #[arg(long, env = "RESOURCE_API_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub header_read_timeout_ms: u64,
    /// A connection with no request in progress closes after this, milliseconds
    #[arg(long, env = "RESOURCE_API_IDLE_TIMEOUT_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub idle_timeout_ms: u64,
    /// Open connections at most (clamped to what the open-file limit allows); beyond it clients wait
    #[arg(long, env = "RESOURCE_API_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Open connections from one source at most (peers inside --trusted-proxy are exempt); a connection
    /// beyond it is closed at once
    #[arg(long, env = "RESOURCE_API_MAX_CONNECTIONS_PER_SOURCE", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections_per_source: u64,
    /// IPv6 sources count as one per prefix of this many bits
    #[arg(long, env = "RESOURCE_API_IPV6_SOURCE_PREFIX", default_value_t = 64, value_parser = clap::value_parser!(u8).range(1..=128))]
    pub ipv6_source_prefix: u8,
    /// A proxy in front of this API (repeatable; CIDR or a bare address): its connections count against
    /// --max-connections only
    #[arg(
        long = "trusted-proxy",
        env = "RESOURCE_API_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub trusted_proxies: Vec<service_kit::source::Cidr>,
    /// DPoP proof jtis remembered at once (1/64 of them per key, 1/8 per client)
    #[arg(long, env = "RESOURCE_API_DPOP_REPLAY_CAPACITY", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(64..))]
    pub dpop_replay_capacity: u64,
    /// Serve /metrics on this address instead of on --listen (so it need not be public)
    #[arg(long, env = "RESOURCE_API_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// This API's external base URL (e.g. https://api.example behind a proxy): DPoP proofs must name it in
    /// `htu`. Default: the listener's scheme (https with --tls-cert) and the request's Host
    #[arg(long, env = "RESOURCE_API_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// This API's resource identifier (RFC 8707, RFC 9728): served in its protected-resource metadata and
    /// accepted in `aud` beside --audience. Default: --public-url, else the listener's scheme and bound
    /// address
    #[arg(long, env = "RESOURCE_API_RESOURCE")]
    pub resource: Option<String>,
    /// PEM certificate chain: --listen speaks HTTPS only (with --tls-key); re-read as it changes on disk
    #[arg(
        long,
        env = "RESOURCE_API_TLS_CERT",
        requires = "tls_key",
        value_name = "PATH"
    )]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1)
    #[arg(
        long,
        env = "RESOURCE_API_TLS_KEY",
        requires = "tls_cert",
        value_name = "PATH"
    )]
    pub tls_key: Option<std::path::PathBuf>,
    /// How often the TLS files are read again, milliseconds
    #[arg(long, env = "RESOURCE_API_TLS_RELOAD_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=10_000), hide = true)]
    pub tls_reload_ms: u64,
    /// Require DPoP server nonces (RFC 9449 §9) in the proofs of DPoP-bound tokens
    #[arg(long, env = "RESOURCE_API_DPOP_NONCE")]
    pub dpop_nonce: bool,
    /// The key of the DPoP nonces (≥ 32 characters), the same at every replica behind one balancer; without
    /// it each process makes its own
    #[arg(
        long,
        env = "RESOURCE_API_DPOP_NONCE_KEY",
        hide_env_values = true,
        allow_hyphen_values = true
    )]
    pub dpop_nonce_key: Option<Secret>,
    /// Log format on stderr (filter with RUST_LOG)
    #[arg(
        long,
        env = "RESOURCE_API_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,
}

impl Default for Config {
    /// The defaults of the flags above, and nothing else: no environment variable is read.
    fn default() -> Self {
        match parse_without_environment(["resource-api"]) {
            Ok(config) => config,
            // Only a default that does not parse gets here: a bug the tests below catch.
            Err(error) => error.exit(),
        }
    }
}

/// Parses `args` as if no environment variable were set (tests of defaults and flags).
pub fn parse_without_environment<I, T>(args: I) -> Result<Config, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = Config::command()
        .mut_args(|arg| arg.env(None))
        .try_get_matches_from(args)?;
    Config::from_arg_matches(&matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_flags_are_the_documented_defaults() {
        let config = Config::default();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8081");
        assert_eq!(config.issuer, "http://127.0.0.1:8080");
        assert_eq!(config.audience, "resource-api");
        assert!(config.introspection_client_id.is_none());
        assert!(config.introspection_secret.is_none());
        assert_eq!(config.jwks_cooldown_ms, 5_000);
        assert_eq!(config.max_connections, 4096);
        assert_eq!(config.idle_timeout_ms, 60_000);
        assert_eq!(config.max_connections_per_source, 64);
        assert_eq!(config.ipv6_source_prefix, 64);
        assert!(config.trusted_proxies.is_empty());
        assert_eq!(config.dpop_replay_capacity, 1_000_000);
    }

    #[test]
    fn the_introspection_secret_is_a_flag_too_redacted_and_may_start_with_a_dash() {
        let config = parse_without_environment([
            "resource-api",
            "--introspection-client-id",
            "api",
            "--introspection-secret",
            "-dGVzdA_secret",
        ])
        .unwrap();
        assert_eq!(
            config.introspection_secret.as_ref().map(Secret::expose),
            Some("-dGVzdA_secret")
        );
        assert!(!format!("{config:?}").contains("dGVzdA"));
    }
}
