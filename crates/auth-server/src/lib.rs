//! The OAuth 2.0 authorization server: JWT access tokens (RFC 9068), authorization code with PKCE, client
//! credentials, refresh-token rotation, revocation, introspection, on SQLite or PostgreSQL.
//!
//! | room | what it decides |
//! |---|---|
//! | [`authorization`] | the authorization endpoint: request validation, the next step, approval (codes) |
//! | [`login`] | sign-in with a password and its rules, browser sessions |
//! | [`password_checks`] | at most `--max-password-checks` argon2 checks at once, half per source |
//! | [`clients`] | client authentication and the client cache |
//! | [`grants`] | the token endpoint, one module per grant |
//! | [`tokens`] | minting access tokens, introspection, revocation |
//! | [`throttle`] | failed-login counters |
//! | [`csrf`] | the CSRF tokens of the login and consent forms |
//! | [`server_secrets`] | the server's own secrets, shared by every replica |
//! | [`http`] | HTTP in and out: handlers, pages, cookies; no decisions |
//! | [`store`] | SQL on SQLite and PostgreSQL behind traits; no HTTP |
//! | [`keyring`] | signing keys in memory and their schedule |
//! | [`config`], [`startup`], [`commands`] | the command line, the running server, the one-shot subcommands |

pub mod authorization;
pub mod client_keys;
pub mod clients;
pub mod commands;
pub mod config;
pub mod csrf;
pub mod dpop;
pub mod error;
pub mod grants;
pub mod http;
pub mod keyring;
pub mod login;
pub mod logout;
pub mod openid;
pub mod par;
pub mod params;
pub mod password_checks;
pub mod replay;
pub mod scope_descriptions;
pub mod server_secrets;
pub mod startup;
pub mod state;
pub mod store;
pub mod throttle;
pub mod tokens;

use anyhow::{Context, Result};
use auth_core::keys::KeyEncryptionKey;

use crate::config::{Cli, ClientCommand, Command, ConsentCommand, KeysCommand, UserCommand};
use crate::startup::{Application, ApplicationConfig};
use crate::store::SqlStore;

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        // Needs no database and no configured key (a malformed one may be the very key being replaced).
        Command::Keys(KeysCommand::GenerateKek) => commands::keys_generate_kek(),
        command => {
            let kek = match &cli.key_encryption_key {
                Some(text) => Some(
                    KeyEncryptionKey::from_base64(text.expose())
                        .context("--key-encryption-key (AUTH_KEY_ENCRYPTION_KEY)")?,
                ),
                None => None,
            };
            run_with_database(command, cli.database_url, kek).await
        }
    }
}

async fn run_with_database(
    command: Command,
    database_url: String,
    kek: Option<KeyEncryptionKey>,
) -> Result<()> {
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
            })
            .await?;
            // Handlers first: whoever reads the line below may stop the server at once.
            let stop = service_kit::shutdown_signal();
            // One line on stdout, so whoever started the server learns the port of `--listen …:0`.
            println!(
                "auth-server listening on {} (issuer {})",
                application.local_addr()?,
                application.state().settings.issuer
            );
            application.run_until(stop).await
        }
        Command::Migrate => {
            connect().await?.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::Client(ClientCommand::Create(create)) => {
            commands::client_create(&connect().await?, &create).await
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
        Command::User(UserCommand::SetPassword { username, .. }) => {
            commands::user_set_password(&connect().await?, &username).await
        }
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
    }
}
