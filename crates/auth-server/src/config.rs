//! Command line and environment (SPEC §2): every flag also reads an `AUTH_…` variable; defaults give a
//! working server with no flags.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use auth_core::keys::SigningAlgorithm;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// JWKS `Cache-Control: max-age`, and the default `keys rotate --activate-after`: a cache that refetches
/// only on expiry already holds a new key by the time it signs.
pub const JWKS_MAX_AGE_SECONDS: u64 = 300;

/// A configuration value that must never be printed (`Debug` shows `<redacted>`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.to_owned()))
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

/// `auth-server`: the OAuth 2.0 authorization server.
#[derive(Debug, Parser)]
#[command(
    name = "auth-server",
    version,
    about = "OAuth 2.0 authorization server issuing RFC 9068 JWT access tokens"
)]
pub struct Cli {
    /// Database: `sqlite://FILE` (embedded default) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://auth-server.db",
        global = true
    )]
    pub database_url: String,
    /// Log format on stderr (filter with RUST_LOG).
    #[arg(
        long,
        env = "AUTH_LOG_FORMAT",
        value_enum,
        default_value = "pretty",
        global = true
    )]
    pub log_format: LogFormat,
    /// Encrypts signing keys at rest (AES-256-GCM): 32 bytes as base64url, as `keys generate-kek` prints
    /// it. Prefer the variable: a flag's value shows in process listings.
    #[arg(
        long,
        env = "AUTH_KEY_ENCRYPTION_KEY",
        global = true,
        hide_env_values = true,
        // A base64url key starts with '-' one time in 64: without this, clap reads it as a flag.
        allow_hyphen_values = true,
        value_name = "KEY"
    )]
    pub key_encryption_key: Option<Secret>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (applies migrations first).
    Serve(ServeConfig),
    /// Apply migrations and exit.
    Migrate,
    /// Manage clients.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// `serve` settings.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "AUTH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Issuer identifier: the `iss` of every token, exactly.
    #[arg(long, env = "AUTH_ISSUER", default_value = "http://127.0.0.1:8080")]
    pub issuer: String,
    /// Algorithm of new signing keys.
    #[arg(long, env = "AUTH_SIGNING_ALG", default_value = "ES256", value_parser = parse_alg)]
    pub signing_alg: SigningAlgorithm,
    /// Access-token lifetime, seconds.
    #[arg(long, env = "AUTH_ACCESS_TOKEN_TTL", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub access_token_ttl: u64,
    /// Refresh-token lifetime, seconds.
    #[arg(long, env = "AUTH_REFRESH_TOKEN_TTL", default_value_t = 1_209_600, value_parser = clap::value_parser!(u64).range(1..))]
    pub refresh_token_ttl: u64,
    /// Authorization-code lifetime, seconds (RFC 6749 §4.1.2 recommends at most 10 minutes).
    #[arg(long, env = "AUTH_AUTH_CODE_TTL", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub auth_code_ttl: u64,
    /// Audience of tokens for clients registered without one.
    #[arg(long, env = "AUTH_DEFAULT_AUDIENCE", default_value = "resource-api")]
    pub default_audience: String,
    /// Login-session lifetime, seconds.
    #[arg(long, env = "AUTH_SESSION_TTL", default_value_t = 3_600, value_parser = clap::value_parser!(u64).range(1..))]
    pub session_ttl: u64,
    /// Database connections in the pool.
    #[arg(long, env = "AUTH_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// How often replicas look for client and key changes, milliseconds.
    #[arg(long, env = "AUTH_CONFIG_POLL_MS", default_value_t = 1_000)]
    pub config_poll_ms: u64,
    /// Request timeout, seconds.
    #[arg(long, env = "AUTH_REQUEST_TIMEOUT", default_value_t = 10)]
    pub request_timeout: u64,
    /// Time a client has to send a request's headers, milliseconds (slow-header clients are cut off).
    #[arg(long, env = "AUTH_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub header_read_timeout_ms: u64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            issuer: "http://127.0.0.1:8080".into(),
            signing_alg: SigningAlgorithm::Es256,
            access_token_ttl: 900,
            refresh_token_ttl: 1_209_600,
            auth_code_ttl: 60,
            default_audience: "resource-api".into(),
            session_ttl: 3_600,
            db_max_connections: 16,
            config_poll_ms: 1_000,
            request_timeout: 10,
            header_read_timeout_ms: 10_000,
        }
    }
}

fn parse_alg(text: &str) -> Result<SigningAlgorithm, String> {
    text.parse()
        .map_err(|error: auth_core::keys::UnsupportedAlgorithm| error.to_string())
}

/// Client management.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints {"client_id", "client_secret"} once.
    Create(ClientCreate),
}

/// `client create`.
#[derive(Debug, Clone, Args)]
pub struct ClientCreate {
    /// The client id.
    #[arg(long)]
    pub client_id: String,
    /// A public client (no secret; authenticates with `none` and must use PKCE).
    #[arg(long)]
    pub public: bool,
    /// Read the secret from stdin instead of generating one.
    #[arg(long)]
    pub secret_stdin: bool,
    /// Grants it may use (repeatable).
    #[arg(long = "grant-type", required = true, value_parser = ["authorization_code", "client_credentials", "refresh_token"])]
    pub grant_types: Vec<String>,
    /// Exact redirect URIs (repeatable).
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// The scopes it may ask for, space separated.
    #[arg(long, default_value = "")]
    pub scope: String,
    /// Audiences it may ask for (repeatable); the first is its default.
    #[arg(long = "audience")]
    pub audiences: Vec<String>,
    /// Approve authorization requests without the consent form.
    #[arg(long)]
    pub skip_consent: bool,
}

/// User management.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Register a user; the password is read from stdin.
    Create(UserCreate),
}

/// `user create`.
#[derive(Debug, Clone, Args)]
pub struct UserCreate {
    /// Login name.
    #[arg(long)]
    pub username: String,
    /// Read the password from stdin (required: passwords never go on a command line).
    #[arg(long, required = true)]
    pub password_stdin: bool,
}

/// Key management.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key: published at once, signing after --activate-after seconds.
    Rotate(KeysRotate),
    /// Print a new key-encryption key (one line, nothing else) for AUTH_KEY_ENCRYPTION_KEY.
    GenerateKek,
}

/// `keys rotate`.
#[derive(Debug, Clone, Args)]
pub struct KeysRotate {
    /// Seconds until the new key signs (0 for an emergency).
    #[arg(long, default_value_t = JWKS_MAX_AGE_SECONDS)]
    pub activate_after: u64,
    /// Algorithm of the new key.
    #[arg(long, env = "AUTH_SIGNING_ALG", default_value = "ES256", value_parser = parse_alg)]
    pub signing_alg: SigningAlgorithm,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_flags_give_a_working_server() {
        let cli = Cli::try_parse_from(["auth-server", "serve"]).unwrap();
        // The flag reads DATABASE_URL when set (CI sets it); the default is the embedded SQLite file.
        let expected =
            std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://auth-server.db".into());
        assert_eq!(cli.database_url, expected);
        let Command::Serve(serve) = cli.command else {
            panic!("serve expected")
        };
        assert_eq!(serve.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(serve.signing_alg, SigningAlgorithm::Es256);
        assert_eq!(serve.access_token_ttl, 900);
        assert_eq!(serve.auth_code_ttl, 60);
    }

    #[test]
    fn database_url_is_global_and_alg_is_checked() {
        let cli =
            Cli::try_parse_from(["auth-server", "migrate", "--database-url", "postgres://x/y"])
                .unwrap();
        assert_eq!(cli.database_url, "postgres://x/y");
        assert!(Cli::try_parse_from(["auth-server", "serve", "--signing-alg", "HS256"]).is_err());
        assert!(Cli::try_parse_from(["auth-server", "serve", "--signing-alg", "none"]).is_err());
        assert!(Cli::try_parse_from(["auth-server", "serve", "--access-token-ttl", "0"]).is_err());
    }

    #[test]
    fn client_create_takes_repeated_flags() {
        let cli = Cli::try_parse_from([
            "auth-server",
            "client",
            "create",
            "--client-id",
            "web",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--redirect-uri",
            "http://a/cb",
            "--redirect-uri",
            "http://b/cb",
            "--audience",
            "https://api.example",
        ])
        .unwrap();
        let Command::Client(ClientCommand::Create(create)) = cli.command else {
            panic!("client create expected")
        };
        assert_eq!(create.grant_types, ["authorization_code", "refresh_token"]);
        assert_eq!(create.redirect_uris.len(), 2);
        assert!(
            Cli::try_parse_from([
                "auth-server",
                "client",
                "create",
                "--client-id",
                "x",
                "--grant-type",
                "password"
            ])
            .is_err()
        );
    }

    #[test]
    fn a_key_encryption_key_starting_with_a_dash_is_a_value_in_every_form() {
        const KEY: &str = "-AECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
        for args in [
            &["auth-server", "--key-encryption-key", KEY, "migrate"][..],
            &[
                "auth-server",
                &format!("--key-encryption-key={KEY}"),
                "migrate",
            ][..],
            // Global: after the subcommand too.
            &["auth-server", "migrate", "--key-encryption-key", KEY][..],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            assert_eq!(
                cli.key_encryption_key.as_ref().map(Secret::expose),
                Some(KEY),
                "{args:?}"
            );
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let cli =
            Cli::try_parse_from(["auth-server", "--key-encryption-key", "c2VjcmV0", "migrate"])
                .unwrap();
        assert!(!format!("{cli:?}").contains("c2VjcmV0"));
    }
}
