//! The server's own secrets, kept in the database so that every replica has the same: the key of the CSRF
//! tokens' MAC. The first replica to start makes them; they are sealed with the key-encryption key like
//! signing keys (at start, or by `keys seal`).

use auth_core::keys::KeyEncryptionKey;
use auth_core::secret::{Mac, fill_random};
use zeroize::Zeroizing;

use crate::keys::keyring::KeyRingError;
use crate::store::{KeyStore, StoredSecret};

/// The name of the CSRF MAC key.
pub const CSRF: &str = "csrf";

/// The secrets, ready to use.
#[derive(Debug, Clone)]
pub struct ServerSecrets {
    pub csrf: Mac,
}

impl ServerSecrets {
    /// The DPoP nonces of this deployment: keyed by a MAC derived from the shared secret (for its own purpose
    /// only), so every replica issues and accepts the same nonces.
    pub fn dpop_nonce_source(&self) -> auth_core::dpop::NonceSource {
        auth_core::dpop::NonceSource::new(self.csrf.tag(&[b"dpop-nonce-key"]).as_bytes())
    }
}

/// What a sealed secret is bound to, so that one cannot be swapped for another.
fn context(name: &str) -> Vec<u8> {
    format!("server_secret:{name}").into_bytes()
}

fn bad(name: &str, reason: impl ToString) -> KeyRingError {
    KeyRingError::BadKey {
        kid: format!("server secret {name}"),
        reason: reason.to_string(),
    }
}

/// Reads (or, on a fresh database, makes) the server's secrets, sealing them when a key-encryption key is
/// configured.
pub async fn load(
    store: &dyn KeyStore,
    kek: Option<&KeyEncryptionKey>,
    now: i64,
) -> Result<ServerSecrets, KeyRingError> {
    let mut fresh = Zeroizing::new([0u8; 32]);
    fill_random(fresh.as_mut()).map_err(|error| bad(CSRF, error))?;
    let candidate = StoredSecret {
        name: CSRF.to_owned(),
        secret: match kek {
            Some(kek) => kek
                .seal(fresh.as_ref(), &context(CSRF))
                .map_err(|error| bad(CSRF, error))?,
            None => fresh.to_vec(),
        },
        encrypted: kek.is_some(),
        created_at: now,
    };
    let stored = store.server_secret(&candidate).await?;
    let key = open(&stored, kek)?;
    if let Some(kek) = kek
        && !stored.encrypted
    {
        seal(store, &stored, kek).await?;
    }
    Ok(ServerSecrets {
        csrf: Mac::new(&key),
    })
}

fn open(
    stored: &StoredSecret,
    kek: Option<&KeyEncryptionKey>,
) -> Result<Zeroizing<Vec<u8>>, KeyRingError> {
    if !stored.encrypted {
        return Ok(Zeroizing::new(stored.secret.clone()));
    }
    let kek = kek.ok_or(KeyRingError::MissingEncryptionKey)?;
    kek.open(&stored.secret, &context(&stored.name))
        .map_err(|error| bad(&stored.name, error))
}

async fn seal(
    store: &dyn KeyStore,
    stored: &StoredSecret,
    kek: &KeyEncryptionKey,
) -> Result<bool, KeyRingError> {
    let sealed = kek
        .seal(&stored.secret, &context(&stored.name))
        .map_err(|error| bad(&stored.name, error))?;
    let done = store.seal_server_secret(&stored.name, &sealed).await?;
    if done {
        tracing::info!(target: "audit", event = "secret_sealed", name = %stored.name, "server secret sealed with the key-encryption key");
    }
    Ok(done)
}

/// Seals every server secret stored in the clear (`keys seal`); returns how many it sealed.
pub async fn seal_stored_secrets(
    store: &dyn KeyStore,
    kek: &KeyEncryptionKey,
) -> Result<usize, KeyRingError> {
    let mut sealed = 0;
    for stored in store.list_server_secrets().await? {
        if !stored.encrypted && seal(store, &stored, kek).await? {
            sealed += 1;
        }
    }
    Ok(sealed)
}
