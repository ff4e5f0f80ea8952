//! The server's own keys and secrets: the signing keys in memory with their schedule, and the secrets every
//! replica shares (the CSRF MAC key, the DPoP nonce key), both sealed at rest when a key-encryption key is
//! configured.

use anyhow::Context;
use auth_core::keys::KeyEncryptionKey;

pub mod keyring;
pub mod server_secrets;

/// A one-shot command that would store `what` (a private key or a server secret) must not store it in the
/// clear beside sealed ones: without the key-encryption key, refuse when the database holds anything sealed.
pub async fn refuse_unsealed(
    store: &dyn crate::store::KeyStore,
    kek: Option<&KeyEncryptionKey>,
    what: &str,
) -> anyhow::Result<()> {
    if kek.is_some() {
        return Ok(());
    }
    let sealed_keys = store
        .list_keys()
        .await
        .context("reading the signing keys")?
        .iter()
        .any(|key| key.encrypted);
    let sealed_secrets = store
        .list_server_secrets()
        .await
        .context("reading the server secrets")?
        .iter()
        .any(|secret| secret.encrypted);
    if sealed_keys || sealed_secrets {
        anyhow::bail!(
            "this database's keys are sealed, and {what} would be stored unsealed: set AUTH_KEY_ENCRYPTION_KEY (or --key-encryption-key) to the key the servers use"
        );
    }
    Ok(())
}
