//! The command line (docs/operations.md lists every flag): `serve` and the global flags also read an
//! `AUTH_…` environment variable; the flags of the one-shot subcommands are command-line only. The clap
//! attributes below are the one source of defaults, and give a working server with no flags.

use std::net::SocketAddr;

use auth_core::keys::SigningAlgorithm;

pub use crate::clients::policy::RegistrationPolicy;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

pub use service_kit::secret::Secret;
pub use service_kit::source::Cidr;
pub use service_kit::telemetry::LogFormat;

/// The longest `--access-token-ttl` allows (one day): a family is purged only when even a token that long
/// lived would have expired.
pub const MAX_ACCESS_TOKEN_TTL: i64 = 86_400;

/// JWKS `Cache-Control: max-age`, and the default `keys rotate --activate-after`: a cache that refetches
/// only on expiry already holds a new key by the time it signs.
pub const JWKS_MAX_AGE_SECONDS: u64 = 300;

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
    /// A configuration file (TOML): `[server]` settings under the flags and variables, and the clients,
    /// users and scope descriptions that `serve` and `config apply` make the database match.
    #[arg(long, env = "AUTH_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
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
    /// Manage remembered consent.
    #[command(subcommand)]
    Consent(ConsentCommand),
    /// Dynamic client registration (RFC 7591).
    #[command(subcommand)]
    Registration(RegistrationCommand),
    /// Tokens for test fixtures.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// Dynamic client registration.
#[derive(Debug, Subcommand)]
pub enum RegistrationCommand {
    /// Initial access tokens for `--registration token`.
    #[command(subcommand)]
    Token(RegistrationTokenCommand),
}

/// Initial access tokens.
#[derive(Debug, Subcommand)]
pub enum RegistrationTokenCommand {
    /// Print a new initial access token once, as {"initial_access_token", "expires_in", "max_uses"}.
    Create {
        /// Lifetime, seconds.
        #[arg(long, default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
        ttl: u64,
        /// Registrations it allows.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        max_uses: u32,
    },
}

/// Configuration files (`--config`).
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a file without a database: silent exit 0, or one line per problem and exit 1.
    Check {
        /// The file.
        file: std::path::PathBuf,
    },
    /// Make the database's clients and users match a file; prints what changed as JSON.
    Apply {
        /// The file.
        file: std::path::PathBuf,
    },
    /// Print the operator's clients and users as a file `config apply` takes back unchanged (never a
    /// secret or a password hash).
    Export,
}

/// `serve` settings.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "AUTH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Issuer identifier: the `iss` of every token, exactly [default: http:// and the --listen address]
    #[arg(long, env = "AUTH_ISSUER")]
    pub issuer: Option<String>,
    /// Algorithm of new signing keys.
    #[arg(long, env = "AUTH_SIGNING_ALG", default_value = "ES256", value_parser = parse_alg)]
    pub signing_alg: SigningAlgorithm,
    /// Access-token lifetime, seconds.
    #[arg(long, env = "AUTH_ACCESS_TOKEN_TTL", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=MAX_ACCESS_TOKEN_TTL as u64))]
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
    /// Time a client has from connecting until its request headers are in, milliseconds (and from the
    /// first byte of every later request head); slower connections are closed.
    #[arg(long, env = "AUTH_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub header_read_timeout_ms: u64,
    /// A connection with no request in progress (HTTP/1 keep-alive, HTTP/2) closes after this, milliseconds.
    #[arg(long, env = "AUTH_IDLE_TIMEOUT_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub idle_timeout_ms: u64,
    /// Open connections at most (clamped to what the open-file limit allows); beyond it clients wait.
    #[arg(long, env = "AUTH_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Open connections from one source at most (peers inside --trusted-proxy are exempt); a connection
    /// beyond it is closed at once.
    #[arg(long, env = "AUTH_MAX_CONNECTIONS_PER_SOURCE", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections_per_source: u64,
    /// IPv6 sources count as one per prefix of this many bits (every per-source limit).
    #[arg(long, env = "AUTH_IPV6_SOURCE_PREFIX", default_value_t = 64, value_parser = clap::value_parser!(u8).range(1..=128))]
    pub ipv6_source_prefix: u8,
    /// A refresh-token family's absolute lifetime, seconds from its creation: after it, its refresh token is
    /// refused however recently it was rotated.
    #[arg(long, env = "AUTH_REFRESH_FAMILY_MAX_AGE", default_value_t = 2_592_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub refresh_family_max_age: u64,
    /// argon2 password checks at once (19 MiB and a thread each); one source gets half of them.
    #[arg(long, env = "AUTH_MAX_PASSWORD_CHECKS", default_value_t = default_password_checks(), value_parser = clap::value_parser!(u64).range(1..=256))]
    pub max_password_checks: u64,
    /// Serve /metrics on this address instead of on --listen (so it need not be public).
    #[arg(long, env = "AUTH_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Require DPoP server nonces (RFC 9449 §8): a proof without the current nonce gets `use_dpop_nonce`.
    #[arg(long, env = "AUTH_DPOP_NONCE")]
    pub dpop_nonce: bool,
    /// Also accept client assertions whose `aud` is the token endpoint URL (older libraries). This re-opens
    /// audience injection: an assertion made for this URL is accepted wherever it is replayed to us.
    #[arg(long, env = "AUTH_ACCEPT_TOKEN_ENDPOINT_AUDIENCE")]
    pub accept_token_endpoint_audience: bool,
    /// PEM certificate chain: --listen speaks HTTPS only (with --tls-key); re-read as it changes on disk.
    #[arg(long, env = "AUTH_TLS_CERT", requires = "tls_key", value_name = "PATH")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "AUTH_TLS_KEY", requires = "tls_cert", value_name = "PATH")]
    pub tls_key: Option<std::path::PathBuf>,
    /// How often the TLS files are read again, milliseconds.
    #[arg(long, env = "AUTH_TLS_RELOAD_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=10_000), hide = true)]
    pub tls_reload_ms: u64,
    /// A proxy whose X-Forwarded-For is believed (repeatable; CIDR or a bare address). Without one the
    /// source of a request is always its TCP peer.
    #[arg(
        long = "trusted-proxy",
        env = "AUTH_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub trusted_proxies: Vec<Cidr>,
    /// Who may register clients at /register (RFC 7591): nobody (`off`: no endpoint), holders of an initial
    /// access token from `registration token create` (`token`), or anyone (`open`, capped per source).
    #[arg(long, env = "AUTH_REGISTRATION", value_enum, default_value = "off")]
    pub registration: RegistrationPolicy,
    /// The scopes a dynamically registered client may have, space separated [default: every scope of
    /// `scopes_supported`].
    #[arg(long, env = "AUTH_REGISTRATION_SCOPES", value_name = "SCOPES")]
    pub registration_scopes: Option<String>,
    /// Dynamically registered clients at most; beyond, registration answers 403 `access_denied`.
    #[arg(long, env = "AUTH_REGISTRATION_MAX_CLIENTS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub registration_max_clients: u64,
    /// A dynamic client to which no token was issued for this many days is deleted, as `client delete`
    /// deletes (its registration forgotten, its tokens inactive).
    #[arg(long, env = "AUTH_REGISTRATION_IDLE_DAYS", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub registration_idle_days: u32,
    /// An https `client_id` with a path names the client's metadata document
    /// (draft-ietf-oauth-client-id-metadata-document): fetched (64 KiB, 5 s, no redirects, never from a
    /// special-use address), checked under the rules of an open registration, and cached.
    #[arg(long, env = "AUTH_CLIENT_ID_METADATA_DOCUMENTS")]
    pub client_id_metadata_documents: bool,
    /// Back-channel logouts waiting at most, in all (OpenID Connect Back-Channel Logout); beyond, a new one
    /// is dropped and audited. Each client has at most 100 waiting.
    #[arg(long, env = "AUTH_BACKCHANNEL_MAX_PENDING", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub backchannel_max_pending: u64,
    /// Tests only: metadata documents on 127.0.0.1, [::1] and localhost may be fetched, over http too.
    #[arg(long, env = "AUTH_INSECURE_LOOPBACK_METADATA")]
    pub insecure_loopback_metadata: bool,
    /// What a scope lets an application do, as the consent page says it (repeatable; in the variable one
    /// per line). Defaults exist for openid, profile, email, read and write.
    #[arg(
        long = "scope-description",
        env = "AUTH_SCOPE_DESCRIPTIONS",
        value_delimiter = '\n',
        value_name = "SCOPE=TEXT",
        value_parser = crate::authorize::scope_descriptions::parse
    )]
    pub scope_descriptions: Vec<(String, String)>,
}

/// min(CPUs, 4): more checks at once than cores only queue on the CPU while holding their memory.
pub fn default_password_checks() -> u64 {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    u64::try_from(cpus.min(4)).unwrap_or(4)
}

impl Default for ServeConfig {
    /// The defaults of the flags above, and nothing else: no environment variable is read.
    fn default() -> Self {
        let command = without_environment(ServeConfig::augment_args(clap::Command::new("serve")));
        match command
            .try_get_matches_from(["serve"])
            .and_then(|matches| ServeConfig::from_arg_matches(&matches))
        {
            Ok(serve) => serve,
            // Only a default that does not parse gets here: a bug the tests below catch.
            Err(error) => error.exit(),
        }
    }
}

impl ServeConfig {
    /// `serve`'s arguments alone, as clap sees them (a configuration file's `[server]` keys are their long
    /// names).
    pub fn command() -> clap::Command {
        Self::augment_args(clap::Command::new("serve"))
    }

    /// The issuer: `--issuer`, or else `http://` (`https://` with TLS) and the address the server listens
    /// on, so `--listen 127.0.0.1:0` gives a working server on whatever port the system picks. A wildcard
    /// address (`0.0.0.0`, `::`) stands for 127.0.0.1: the one host it surely covers, and the name a local
    /// certificate is made for; anything else reachable needs `--issuer`.
    pub fn issuer_for(&self, bound: SocketAddr) -> String {
        if let Some(issuer) = &self.issuer {
            return issuer.clone();
        }
        let mut address = bound;
        if address.ip().is_unspecified() {
            address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let scheme = if self.tls().is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{address}")
    }

    /// The TLS files, when both are given.
    pub fn tls(&self) -> Option<service_kit::tls::TlsFiles> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(service_kit::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        }
    }
}

/// `command` and its subcommands with every environment variable unbound: the defaults alone.
pub fn without_environment(command: clap::Command) -> clap::Command {
    command
        .mut_args(|arg| arg.env(None))
        .mut_subcommands(without_environment)
}

/// Parses `args` as if no environment variable were set (tests of defaults and flags).
pub fn parse_without_environment<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = without_environment(Cli::command()).try_get_matches_from(args)?;
    Cli::from_arg_matches(&matches)
}

/// `--signing-alg`: the algorithms access tokens are signed with.
fn parse_alg(text: &str) -> Result<SigningAlgorithm, String> {
    match text {
        "ES256" | "EdDSA" | "RS256" => parse_any_alg(text),
        _ => Err(format!(
            "unsupported signing algorithm {text:?} for access tokens (supported: ES256, EdDSA, RS256)"
        )),
    }
}

/// Any algorithm a key may have.
fn parse_any_alg(text: &str) -> Result<SigningAlgorithm, String> {
    text.parse()
        .map_err(|error: auth_core::keys::UnsupportedAlgorithm| error.to_string())
}

/// Test fixtures.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print one JWT signed offline by the database's active key: an access token as /token would issue
    /// it, or with --id-token an ID token; audited.
    Mint(TokenMint),
}

/// The claims a token sets itself or that change how it is read (`nbf`, `auth_time`: a user token's
/// without a family is inactive; `nonce`, `at_hash`, `sid` of an ID token), which `--claim` may not name.
pub const RESERVED_CLAIMS: [&str; 15] = [
    "iss",
    "exp",
    "iat",
    "jti",
    "cnf",
    "fam",
    "sub",
    "aud",
    "scope",
    "client_id",
    "nbf",
    "auth_time",
    "nonce",
    "at_hash",
    "sid",
];

/// `token mint`.
#[derive(Debug, Clone, Args)]
pub struct TokenMint {
    /// The client the token is issued to.
    #[arg(long)]
    pub client_id: String,
    /// The subject [default: the client id].
    #[arg(long)]
    pub sub: Option<String>,
    /// Space-separated scopes, each registered for the client [default: the client's scopes].
    #[arg(long)]
    pub scope: Option<String>,
    /// The audience: one registered for the client with --audience [default: its first, else resource-api].
    #[arg(long)]
    pub audience: Option<String>,
    /// Lifetime, seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub ttl: u64,
    /// An extra claim, NAME=JSON (repeatable); the token's own claims cannot be named.
    #[arg(long = "claim", value_name = "NAME=JSON", value_parser = parse_claim)]
    pub claims: Vec<(String, serde_json::Value)>,
    /// An ID token for the client (its ID-token algorithm) instead of an access token.
    #[arg(long)]
    pub id_token: bool,
    /// The ID token's nonce.
    #[arg(long, requires = "id_token")]
    pub nonce: Option<String>,
    /// The servers' --signing-alg: the algorithm of access tokens.
    #[arg(long, env = "AUTH_SIGNING_ALG", default_value = "ES256", value_parser = parse_alg, hide = true)]
    pub signing_alg: SigningAlgorithm,
    /// The servers' --issuer: the token's `iss`.
    #[arg(
        long,
        env = "AUTH_ISSUER",
        default_value = "http://127.0.0.1:8080",
        hide = true
    )]
    pub issuer: String,
    /// The servers' --default-audience.
    #[arg(
        long,
        env = "AUTH_DEFAULT_AUDIENCE",
        default_value = "resource-api",
        hide = true
    )]
    pub default_audience: String,
}

/// `NAME=JSON` of `token mint --claim`: a name the token does not set itself, and a JSON value.
fn parse_claim(text: &str) -> Result<(String, serde_json::Value), String> {
    let (name, json) = text
        .split_once('=')
        .ok_or_else(|| "expected NAME=JSON".to_owned())?;
    if name.is_empty() {
        return Err("the claim has no name".into());
    }
    if RESERVED_CLAIMS.contains(&name) {
        return Err(format!(
            "{name} is set by the token itself (reserved: {})",
            RESERVED_CLAIMS.join(" ")
        ));
    }
    let value = serde_json::from_str(json)
        .map_err(|error| format!("the value of {name} is not JSON: {error}"))?;
    Ok((name.to_owned(), value))
}

/// Client management.
#[derive(Debug, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per process from the command line"
)]
pub enum ClientCommand {
    /// Register a client; prints {"client_id", "client_secret"} once.
    Create(ClientCreate),
    /// Print every client as a JSON array (never a secret or its digest).
    List,
    /// Print one client as JSON.
    Show {
        /// The client id.
        client_id: String,
    },
    /// Delete a client: every token it holds becomes inactive, even if the id is registered again.
    Delete {
        /// The client id.
        client_id: String,
    },
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
    /// Grants it may use (repeatable; none for a client that only introspects).
    #[arg(long = "grant-type", value_parser = ["authorization_code", "client_credentials", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"])]
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
    /// May call /introspect (a resource server's client; needs no --grant-type).
    #[arg(long)]
    pub introspection: bool,
    /// Where RP-initiated logout may send the browser afterwards (repeatable; exact match).
    #[arg(long = "post-logout-redirect-uri")]
    pub post_logout_redirect_uris: Vec<String>,
    /// Its token requests must carry a DPoP proof, so its access tokens are always DPoP-bound (RFC 9449).
    #[arg(long)]
    pub require_dpop: bool,
    /// Authenticates with private_key_jwt (RFC 7523) by the public keys of this JWK set file; no secret.
    #[arg(long, conflicts_with_all = ["jwks_uri", "public", "secret_stdin"])]
    pub jwks_file: Option<std::path::PathBuf>,
    /// Authenticates with private_key_jwt by the JWK set at this URL (fetched with a 64 KiB cap, a 5 s
    /// timeout and a 300 s cache); no secret.
    #[arg(long, conflicts_with_all = ["public", "secret_stdin"])]
    pub jwks_uri: Option<String>,
    /// Its authorization requests must be pushed to /par first (RFC 9126 §6).
    #[arg(long)]
    pub require_par: bool,
    /// What its ID tokens are signed with (default RS256, what OpenID clients expect).
    #[arg(long, value_parser = ["RS256", "PS256", "ES256", "EdDSA"])]
    pub id_token_signed_response_alg: Option<String>,
    /// The name shown on the login and consent pages (the client id is shown when absent).
    #[arg(long)]
    pub name: Option<String>,
    /// Where it is told that a session ended (OpenID Connect Back-Channel Logout 1.0): https, or http on
    /// a loopback host.
    #[arg(long)]
    pub backchannel_logout_uri: Option<String>,
    /// May exchange access tokens for tokens to other audiences (RFC 8693); needs --exchange-audience.
    #[arg(long, conflicts_with = "public")]
    pub token_exchange: bool,
    /// An audience its token exchanges may ask for (repeatable).
    #[arg(long = "exchange-audience", requires = "token_exchange")]
    pub exchange_audiences: Vec<String>,
}

/// User management.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Register a user; the password is read from stdin.
    Create(UserCreate),
    /// Print every user as a JSON array (never a password hash).
    List,
    /// Delete a user with its sessions, consent and grants.
    Delete {
        /// The login name.
        username: String,
    },
    /// Set a new password (read from stdin); ends the user's sessions and revokes its grants.
    SetPassword {
        /// The login name.
        username: String,
        /// Read the password from stdin (required: passwords never go on a command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// The shortest password accepted (NIST SP 800-63B: at least 8; no composition rules).
        #[arg(long, default_value_t = crate::users::DEFAULT_MIN_PASSWORD_LENGTH, value_parser = clap::value_parser!(u8).range(8..=64))]
        min_password_length: u8,
    },
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
    /// E-mail address (OpenID Connect `email`, scope `email`).
    #[arg(long)]
    pub email: Option<String>,
    /// The address is known to belong to the user (`email_verified: true`).
    #[arg(long, requires = "email")]
    pub email_verified: bool,
    /// Full name (OpenID Connect `name`, scope `profile`).
    #[arg(long)]
    pub name: Option<String>,
    /// The shortest password accepted (NIST SP 800-63B: at least 8; no composition rules).
    #[arg(long, default_value_t = crate::users::DEFAULT_MIN_PASSWORD_LENGTH, value_parser = clap::value_parser!(u8).range(8..=64))]
    pub min_password_length: u8,
}

/// Remembered consent.
#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// Forget a user's consent to a client and revoke the grants it made (their refresh tokens and the
    /// access tokens minted from them).
    Revoke(ConsentRevoke),
}

/// `consent revoke`.
#[derive(Debug, Clone, Args)]
pub struct ConsentRevoke {
    /// The user's login name.
    #[arg(long)]
    pub user: String,
    /// The client id.
    #[arg(long)]
    pub client: String,
}

/// Key management.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key: published at once, signing after --activate-after seconds.
    Rotate(KeysRotate),
    /// Print a new key-encryption key (one line, nothing else) for AUTH_KEY_ENCRYPTION_KEY.
    GenerateKek,
    /// Encrypt every signing key stored in the clear with the key-encryption key.
    Seal,
}

/// `keys rotate`.
#[derive(Debug, Clone, Args)]
pub struct KeysRotate {
    /// Seconds until the new keys sign (0 for an emergency).
    #[arg(long, default_value_t = JWKS_MAX_AGE_SECONDS)]
    pub activate_after: u64,
    /// Rotate only this algorithm's key (default: every algorithm in use).
    #[arg(long, value_parser = parse_any_alg)]
    pub alg: Option<SigningAlgorithm>,
    /// The servers' --signing-alg, one of the algorithms in use.
    #[arg(long, env = "AUTH_SIGNING_ALG", default_value = "ES256", value_parser = parse_alg, hide = true)]
    pub signing_alg: SigningAlgorithm,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_with_no_flags_is_the_default_and_the_default_is_a_working_server() {
        let cli = parse_without_environment(["auth-server", "serve"]).unwrap();
        assert_eq!(cli.database_url, "sqlite://auth-server.db");
        assert_eq!(cli.log_format, LogFormat::Pretty);
        assert!(cli.key_encryption_key.is_none());
        let Command::Serve(serve) = cli.command else {
            panic!("serve expected")
        };
        assert_eq!(serve, ServeConfig::default());
        assert_eq!(serve.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(serve.issuer, None);
        assert_eq!(serve.issuer_for(serve.listen), "http://127.0.0.1:8080");
        assert_eq!(serve.signing_alg, SigningAlgorithm::Es256);
        assert_eq!(serve.access_token_ttl, 900);
        assert_eq!(serve.refresh_token_ttl, 1_209_600);
        assert_eq!(serve.auth_code_ttl, 60);
        assert_eq!(serve.default_audience, "resource-api");
        assert_eq!(serve.max_connections, 4096);
        assert_eq!(serve.max_connections_per_source, 64);
        assert_eq!(serve.ipv6_source_prefix, 64);
        assert_eq!(serve.refresh_family_max_age, 2_592_000);
        assert_eq!(serve.idle_timeout_ms, 60_000);
        assert_eq!(serve.header_read_timeout_ms, 10_000);
        assert!((1..=4).contains(&serve.max_password_checks));
        assert!(serve.trusted_proxies.is_empty());
    }

    #[test]
    fn scope_descriptions_repeat_as_flags_and_split_on_lines_in_the_variable() {
        let cli = parse_without_environment([
            "auth-server",
            "serve",
            "--scope-description",
            "billing=See your invoices\nread=Read your invoices",
            "--scope-description",
            "write = Change your invoices",
        ])
        .unwrap();
        let Command::Serve(serve) = cli.command else {
            panic!("serve expected")
        };
        assert_eq!(
            serve.scope_descriptions,
            [
                ("billing".to_owned(), "See your invoices".to_owned()),
                ("read".to_owned(), "Read your invoices".to_owned()),
                ("write".to_owned(), "Change your invoices".to_owned()),
            ]
        );
        assert!(
            parse_without_environment(["auth-server", "serve", "--scope-description", "nothing"])
                .is_err()
        );
    }

    #[test]
    fn trusted_proxies_repeat_as_flags_and_split_on_commas_in_the_variable() {
        let cli = parse_without_environment([
            "auth-server",
            "serve",
            "--trusted-proxy",
            "10.0.0.0/8",
            "--trusted-proxy",
            "192.0.2.7",
        ])
        .unwrap();
        let Command::Serve(serve) = cli.command else {
            panic!("serve expected")
        };
        assert_eq!(serve.trusted_proxies.len(), 2);
        // AUTH_TRUSTED_PROXIES holds a comma-separated list; the flag splits the same way.
        let cli = parse_without_environment([
            "auth-server",
            "serve",
            "--trusted-proxy",
            "10.0.0.0/8,::1",
        ])
        .unwrap();
        let Command::Serve(serve) = cli.command else {
            panic!("serve expected")
        };
        assert_eq!(serve.trusted_proxies.len(), 2);
        assert!(
            parse_without_environment(["auth-server", "serve", "--trusted-proxy", "10.0.0.0/33"])
                .is_err()
        );
    }

    #[test]
    fn the_issuer_follows_the_bound_address_unless_given() {
        let serve = ServeConfig::default();
        let bound: SocketAddr = "127.0.0.1:41234".parse().unwrap();
        assert_eq!(serve.issuer_for(bound), "http://127.0.0.1:41234");
        let wildcard: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(serve.issuer_for(wildcard), "http://127.0.0.1:8080");
        let wildcard6: SocketAddr = "[::]:8080".parse().unwrap();
        assert_eq!(serve.issuer_for(wildcard6), "http://127.0.0.1:8080");
        let given = ServeConfig {
            issuer: Some("https://id.example".into()),
            ..ServeConfig::default()
        };
        assert_eq!(given.issuer_for(wildcard), "https://id.example");
    }

    #[test]
    fn database_url_is_global_and_alg_is_checked() {
        let cli = parse_without_environment([
            "auth-server",
            "migrate",
            "--database-url",
            "postgres://x/y",
        ])
        .unwrap();
        assert_eq!(cli.database_url, "postgres://x/y");
        assert!(
            parse_without_environment(["auth-server", "serve", "--signing-alg", "HS256"]).is_err()
        );
        assert!(
            parse_without_environment(["auth-server", "serve", "--signing-alg", "none"]).is_err()
        );
        assert!(
            parse_without_environment(["auth-server", "serve", "--access-token-ttl", "0"]).is_err()
        );
    }

    #[test]
    fn client_create_takes_repeated_flags() {
        let cli = parse_without_environment([
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
            parse_without_environment([
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
            let cli = parse_without_environment(args).unwrap();
            assert_eq!(
                cli.key_encryption_key.as_ref().map(Secret::expose),
                Some(KEY),
                "{args:?}"
            );
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let cli = parse_without_environment([
            "auth-server",
            "--key-encryption-key",
            "c2VjcmV0",
            "migrate",
        ])
        .unwrap();
        assert!(!format!("{cli:?}").contains("c2VjcmV0"));
    }
}
