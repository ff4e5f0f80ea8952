//! The OAuth 2.0 authorization server and OpenID Provider: JWT access tokens (RFC 9068), authorization code
//! with PKCE, client credentials, refresh-token rotation, revocation, introspection, OpenID Connect, DPoP,
//! private_key_jwt and pushed authorization requests, on SQLite or PostgreSQL.
//!
//! | room | what it decides |
//! |---|---|
//! | [`authorize`] | the authorization endpoint: the request and its two validation steps ([`authorize::request`]), the next step and approval ([`authorize::decision`]), typed outcomes ([`authorize::outcome`]), sign-in and sessions ([`authorize::login`]), pushed requests ([`authorize::par`]), RP-initiated logout ([`authorize::logout`]), CSRF tokens ([`authorize::csrf`]), the consent page's words ([`authorize::scope_descriptions`]) |
//! | [`tokens`] | the token endpoint: one module per grant ([`tokens::grants`]), the one issuing path ([`tokens::issue`]), scope and audience rules ([`tokens::rules`]), OpenID Connect claims ([`tokens::openid`]), our tokens read back ([`tokens::access`]), introspection, revocation, UserInfo, DPoP and the `jti` ledger ([`tokens::replay`]) |
//! | [`users`] | the rules of a valid user (username, name, e-mail, password length) |
//! | [`clients`] | registration rules ([`clients::registration`]), self-registration (RFC 7591/7592: [`clients::dynamic`] reads a registration, [`clients::registrar`] decides who may), the client cache, client authentication, `private_key_jwt` keys |
//! | [`protection`] | failed-login counters ([`protection::throttle`]) and the argon2 gate ([`protection::password_checks`]) |
//! | [`keys`] | signing keys in memory ([`keys::keyring`]) and the replicas' shared secrets ([`keys::server_secrets`]) |
//! | [`http`] | HTTP in and out: handlers, pages, cookies, the source address; no decisions |
//! | [`store`] | SQL on SQLite and PostgreSQL behind traits, one per role; no HTTP, no domain |
//! | [`error`], [`params`] | the domain's errors; request parameters read strictly |
//! | [`declared`] | configuration as code: a TOML file of settings, clients and users, checked with the clients' and users' rule sets and applied in one transaction |
//! | [`config`], [`startup`], [`state`], [`commands`] | the command line, the running server, its shared state, the one-shot subcommands |

pub mod authorize;
pub mod backchannel;
pub mod clients;
pub mod commands;
pub mod config;
pub mod declared;
pub mod error;
pub mod http;
pub mod keys;
pub mod params;
pub mod protection;
pub mod startup;
pub mod state;
pub mod store;
pub mod tokens;
pub mod users;

use anyhow::{Context, Result};
use auth_core::keys::KeyEncryptionKey;

use crate::config::{
    Cli, ClientCommand, Command, ConfigCommand, ConsentCommand, KeysCommand, RegistrationCommand,
    RegistrationTokenCommand, TokenCommand, UserCommand,
};
use crate::declared::Declaration;
use crate::startup::{Application, ApplicationConfig};
use crate::store::sql::SqlStore;

/// Runs a parsed command line with its `--config` file, read and checked.
pub async fn run(cli: Cli, declaration: Option<Declaration>) -> Result<()> {
    if let Some(declaration) = &declaration {
        for warning in &declaration.warnings {
            tracing::warn!("{warning}");
        }
    }
    match cli.command {
        // Needs no database and no configured key (a malformed one may be the very key being replaced).
        Command::Keys(KeysCommand::GenerateKek) => commands::keys_generate_kek(),
        // Needs no database: the file alone.
        Command::Config(ConfigCommand::Check { file }) => commands::config_check(&file),
        command => {
            let kek = match &cli.key_encryption_key {
                Some(text) => Some(
                    KeyEncryptionKey::from_base64(text.expose())
                        .context("--key-encryption-key (AUTH_KEY_ENCRYPTION_KEY)")?,
                ),
                None => None,
            };
            run_with_database(command, cli.database_url, kek, declaration).await
        }
    }
}

/// `{"issuer": …, "listen": "ADDRESS", "ready": true}`, and `"metrics"` with `--metrics-listen`.
fn ready_line(
    listen: std::net::SocketAddr,
    issuer: &str,
    metrics: Option<std::net::SocketAddr>,
) -> String {
    let mut line = serde_json::json!({
        "issuer": issuer,
        "listen": listen.to_string(),
        "ready": true,
    });
    if let Some(metrics) = metrics {
        line["metrics"] = metrics.to_string().into();
    }
    line.to_string()
}

async fn run_with_database(
    command: Command,
    database_url: String,
    kek: Option<KeyEncryptionKey>,
    declaration: Option<Declaration>,
) -> Result<()> {
    // An in-memory database lives inside one process: a one-shot command would change a database nobody
    // else can see, and lose it when it exits.
    if store::sql::is_in_memory(&database_url) && !matches!(command, Command::Serve(_)) {
        anyhow::bail!("{database_url} is a database inside one process: only `serve` can use it");
    }
    let connect = || async {
        SqlStore::connect(&database_url, 1)
            .await
            .context("connecting to the database")
    };
    match command {
        Command::Serve(serve) => {
            let application = Application::build(ApplicationConfig {
                serve,
                database_url: database_url.clone(),
                key_encryption_key: kek,
                clock: std::sync::Arc::new(auth_core::clock::SystemClock),
                listener: None,
                declaration,
            })
            .await?;
            // Handlers first: whoever reads the line below may stop the server at once.
            let stop = service_kit::shutdown_signal();
            // The one line on stdout, once migrated and listening: whoever started the server learns the
            // port of `--listen …:0` and the issuer from it, with no polling and no port race.
            println!(
                "{}",
                ready_line(
                    application.local_addr()?,
                    &application.state().settings.issuer,
                    application.metrics_addr()
                )
            );
            application.run_until(stop).await
        }
        Command::Migrate => {
            connect().await?.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::Client(ClientCommand::Create(create)) => {
            commands::client_create(&connect().await?, &create, kek.as_ref()).await
        }
        Command::Client(ClientCommand::List) => commands::client_list(&connect().await?).await,
        Command::Client(ClientCommand::Show { client_id }) => {
            commands::client_show(&connect().await?, &client_id).await
        }
        Command::Client(ClientCommand::Delete { client_id }) => {
            commands::client_delete(&connect().await?, &client_id).await
        }
        Command::User(UserCommand::Create(create)) => {
            commands::user_create(&connect().await?, &create).await
        }
        Command::User(UserCommand::List) => commands::user_list(&connect().await?).await,
        Command::User(UserCommand::Delete { username }) => {
            commands::user_delete(&connect().await?, &username).await
        }
        Command::User(UserCommand::SetPassword {
            username,
            min_password_length,
            ..
        }) => commands::user_set_password(&connect().await?, &username, min_password_length).await,
        Command::Keys(KeysCommand::Rotate(rotate)) => {
            commands::keys_rotate(&connect().await?, &rotate, kek.as_ref()).await
        }
        Command::Keys(KeysCommand::Seal) => {
            let kek = kek.context(
                "keys seal needs the key-encryption key: --key-encryption-key or AUTH_KEY_ENCRYPTION_KEY",
            )?;
            commands::keys_seal(&connect().await?, &kek).await
        }
        Command::Keys(KeysCommand::GenerateKek) => commands::keys_generate_kek(),
        Command::Consent(ConsentCommand::Revoke(revoke)) => {
            commands::consent_revoke(&connect().await?, &revoke).await
        }
        Command::Registration(RegistrationCommand::Token(RegistrationTokenCommand::Create {
            ttl,
            max_uses,
        })) => commands::registration_token_create(&connect().await?, ttl, max_uses).await,
        Command::Config(ConfigCommand::Check { file }) => commands::config_check(&file),
        Command::Config(ConfigCommand::Apply { file }) => {
            commands::config_apply(&connect().await?, &file, kek.as_ref()).await
        }
        Command::Config(ConfigCommand::Export) => commands::config_export(&connect().await?).await,
        Command::Token(TokenCommand::Mint(mint)) => {
            commands::token_mint(&connect().await?, &mint, kek.as_ref()).await
        }
    }
}
