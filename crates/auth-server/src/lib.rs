//! The OAuth 2.0 authorization server (SPEC §2, §3, §5): JWT access tokens (RFC 9068), authorization code
//! with PKCE, client credentials, refresh-token rotation, revocation, introspection, on SQLite or PostgreSQL.

pub mod commands;
pub mod config;
pub mod grants;
pub mod http;
pub mod keyring;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;

use anyhow::{Context, Result};
use auth_core::keys::KeyEncryptionKey;

use crate::config::{Cli, ClientCommand, Command, KeysCommand, UserCommand};
use crate::startup::{Application, ApplicationConfig};
use crate::store::SqlStore;

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let kek = match &cli.key_encryption_key {
        Some(text) => {
            Some(KeyEncryptionKey::from_base64(text.expose()).context("AUTH_KEY_ENCRYPTION_KEY")?)
        }
        None => None,
    };
    match cli.command {
        Command::Serve(serve) => {
            let application = Application::build(ApplicationConfig {
                serve,
                database_url: cli.database_url,
                key_encryption_key: kek,
                clock: std::sync::Arc::new(auth_core::clock::SystemClock),
            })
            .await?;
            application.run_until_stopped().await
        }
        Command::Migrate => {
            let store = SqlStore::connect(&cli.database_url, 1)
                .await
                .context("connecting to the database")?;
            store.close().await;
            println!("migrations applied");
            Ok(())
        }
        Command::Client(ClientCommand::Create(create)) => {
            let store = SqlStore::connect(&cli.database_url, 1)
                .await
                .context("connecting to the database")?;
            commands::client_create(&store, &create).await
        }
        Command::User(UserCommand::Create(create)) => {
            let store = SqlStore::connect(&cli.database_url, 1)
                .await
                .context("connecting to the database")?;
            commands::user_create(&store, &create).await
        }
        Command::Keys(KeysCommand::Rotate(rotate)) => {
            let store = SqlStore::connect(&cli.database_url, 1)
                .await
                .context("connecting to the database")?;
            commands::keys_rotate(&store, &rotate, kek.as_ref()).await
        }
    }
}
