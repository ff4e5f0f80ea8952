//! The signing keys in memory: parsed once, with the JWKS document rendered once per change.
//!
//! Lifecycle (`keys rotate`, docs/operations.md): a key is published in the JWKS from its creation, signs from its
//! `active_from`, and once a newer key signs it stays published for one access-token lifetime (+ 60 s of
//! verifier leeway), until every token it signed has expired.

use std::sync::{Arc, RwLock};

use auth_core::jwks::KeySet;
use auth_core::keys::{KeyEncryptionKey, SigningAlgorithm, SigningKey};

use crate::store::{KeyStore, StoreError, StoredKey};

/// Why keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Keys are encrypted and no key-encryption key is configured.
    #[error("signing keys in the database are encrypted; set AUTH_KEY_ENCRYPTION_KEY")]
    MissingEncryptionKey,
    /// A stored key does not decrypt or parse.
    #[error("signing key {kid} cannot be loaded: {reason}")]
    BadKey {
        /// The key.
        kid: String,
        /// Why.
        reason: String,
    },
}

/// A loaded key with its schedule.
#[derive(Debug, Clone)]
pub struct LoadedKey {
    pub key: Arc<SigningKey>,
    /// Published from.
    pub created_at: i64,
    /// Signs from.
    pub active_from: i64,
    /// Insertion order: among keys activating at the same second, the later one signs.
    pub sequence: i64,
}

/// One consistent view of the keys at a point in time.
#[derive(Debug)]
pub struct KeySnapshot {
    /// The key that signs now.
    pub signer: Option<Arc<SigningKey>>,
    /// Public keys that verify: what the JWKS publishes.
    pub published: KeySet,
    /// The JWKS document, rendered once.
    pub jwks_json: String,
}

/// Every loaded key and the current snapshot.
pub struct KeyRing {
    keys: RwLock<Vec<LoadedKey>>,
    snapshot: RwLock<Arc<KeySnapshot>>,
    access_token_ttl: i64,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("access_token_ttl", &self.access_token_ttl)
            .finish_non_exhaustive()
    }
}

/// Seals (or not) a fresh key for storage.
pub fn stored_form(
    key: &SigningKey,
    kek: Option<&KeyEncryptionKey>,
    created_at: i64,
    active_from: i64,
) -> Result<StoredKey, KeyRingError> {
    let (private_key, encrypted) = match kek {
        Some(kek) => (
            kek.seal(key.pkcs8_der(), key.kid().as_bytes())
                .map_err(|error| KeyRingError::BadKey {
                    kid: key.kid().into(),
                    reason: error.to_string(),
                })?,
            true,
        ),
        None => (key.pkcs8_der().to_vec(), false),
    };
    Ok(StoredKey {
        kid: key.kid().into(),
        alg: key.alg(),
        private_key,
        encrypted,
        created_at,
        active_from,
        sequence: 0,
    })
}

fn load(stored: &StoredKey, kek: Option<&KeyEncryptionKey>) -> Result<LoadedKey, KeyRingError> {
    let bad = |reason: String| KeyRingError::BadKey {
        kid: stored.kid.clone(),
        reason,
    };
    let key = if stored.encrypted {
        let kek = kek.ok_or(KeyRingError::MissingEncryptionKey)?;
        let der = kek
            .open(&stored.private_key, stored.kid.as_bytes())
            .map_err(|error| bad(error.to_string()))?;
        SigningKey::from_pkcs8(stored.alg, &der)
    } else {
        SigningKey::from_pkcs8(stored.alg, &stored.private_key)
    }
    .map_err(|error| bad(error.to_string()))?;
    if key.kid() != stored.kid {
        return Err(bad("stored kid is not the key's thumbprint".into()));
    }
    Ok(LoadedKey {
        key: Arc::new(key),
        created_at: stored.created_at,
        active_from: stored.active_from,
        sequence: stored.sequence,
    })
}

/// Seals every signing key stored in the clear with `kek` (`keys seal`, and `serve` at start when a
/// key-encryption key is configured); returns how many it sealed.
pub async fn seal_stored_keys(
    store: &dyn KeyStore,
    kek: &KeyEncryptionKey,
) -> Result<usize, KeyRingError> {
    let mut sealed = 0;
    for stored in store.list_keys().await? {
        if stored.encrypted {
            continue;
        }
        // Parsed first: a key that does not load is not sealed into something that will never load.
        let key = load(&stored, None)?;
        let form = stored_form(&key.key, Some(kek), stored.created_at, stored.active_from)?;
        if store.seal_key(&stored.kid, &form.private_key).await? {
            tracing::info!(target: "audit", event = "key_sealed", kid = %stored.kid, "signing key sealed with the key-encryption key");
            sealed += 1;
        }
    }
    Ok(sealed)
}

impl KeyRing {
    /// Loads every stored key. When no key signs yet, or the signing key is not of `preferred_alg` (the
    /// configured algorithm changed), generates a key of `preferred_alg` that signs at once.
    pub async fn load(
        store: &dyn KeyStore,
        kek: Option<&KeyEncryptionKey>,
        preferred_alg: SigningAlgorithm,
        access_token_ttl: i64,
        now: i64,
    ) -> Result<Self, KeyRingError> {
        // Keys at rest (docs/security.md): with a key-encryption key, nothing stays in the clear.
        if let Some(kek) = kek {
            seal_stored_keys(store, kek).await?;
        }
        let ring = Self {
            keys: RwLock::new(Vec::new()),
            snapshot: RwLock::new(Arc::new(KeySnapshot {
                signer: None,
                published: KeySet::default(),
                jwks_json: "{\"keys\":[]}".into(),
            })),
            access_token_ttl,
        };
        ring.reload(store, kek, now).await?;
        let signs_preferred = ring
            .snapshot()
            .signer
            .as_ref()
            .is_some_and(|signer| signer.alg() == preferred_alg);
        if !signs_preferred {
            let key =
                SigningKey::generate(preferred_alg).map_err(|error| KeyRingError::BadKey {
                    kid: "new".into(),
                    reason: error.to_string(),
                })?;
            store.insert_key(&stored_form(&key, kek, now, now)?).await?;
            tracing::info!(target: "audit", event = "key_created", kid = key.kid(), alg = %preferred_alg, "signing key generated");
            ring.reload(store, kek, now).await?;
        }
        if kek.is_none() && store.list_keys().await?.iter().any(|key| !key.encrypted) {
            tracing::warn!(
                "no key-encryption key: signing keys are stored unencrypted; set AUTH_KEY_ENCRYPTION_KEY \
                 (`auth-server keys generate-kek` makes one) and they are sealed at the next start"
            );
        }
        Ok(ring)
    }

    /// Re-reads the stored keys (after a change at any replica) and refreshes the snapshot.
    pub async fn reload(
        &self,
        store: &dyn KeyStore,
        kek: Option<&KeyEncryptionKey>,
        now: i64,
    ) -> Result<(), KeyRingError> {
        let stored = store.list_keys().await?;
        let known: Vec<LoadedKey> = self
            .keys
            .read()
            .map(|keys| keys.clone())
            .unwrap_or_default();
        let mut loaded = Vec::with_capacity(stored.len());
        for record in &stored {
            // Keys already parsed are kept, not re-parsed.
            match known
                .iter()
                .find(|existing| existing.key.kid() == record.kid)
            {
                Some(existing) => loaded.push(LoadedKey {
                    active_from: record.active_from,
                    created_at: record.created_at,
                    sequence: record.sequence,
                    ..existing.clone()
                }),
                None => loaded.push(load(record, kek)?),
            }
        }
        // Activation order; insertion order breaks ties (an emergency rotation in the same second).
        loaded.sort_by_key(|loaded| (loaded.active_from, loaded.sequence));
        if let Ok(mut keys) = self.keys.write() {
            *keys = loaded;
        }
        self.refresh(now);
        Ok(())
    }

    /// Recomputes which key signs and which are published at `now` (keys activate and retire with time).
    pub fn refresh(&self, now: i64) {
        let keys = self
            .keys
            .read()
            .map(|keys| keys.clone())
            .unwrap_or_default();
        let snapshot = compute_snapshot(&keys, self.access_token_ttl, now);
        if let Ok(mut current) = self.snapshot.write() {
            *current = Arc::new(snapshot);
        }
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<KeySnapshot> {
        self.snapshot
            .read()
            .map(|snapshot| snapshot.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }
}

/// Verifiers accept tokens up to 60 s past `exp`; a retired key stays published that much longer.
const VERIFIER_LEEWAY: i64 = 60;

fn compute_snapshot(keys: &[LoadedKey], access_token_ttl: i64, now: i64) -> KeySnapshot {
    // Keys are sorted by activation: the signer is the newest active key, whatever its algorithm (a
    // rotation to another algorithm is the operator's decision).
    let signer = keys
        .iter()
        .rev()
        .find(|loaded| loaded.active_from <= now)
        .map(|loaded| loaded.key.clone());
    let published: Vec<&SigningKey> = keys
        .iter()
        .enumerate()
        .filter(|(index, _)| {
            // The time this key stopped signing: when the next key became active, if one has.
            let superseded_at = keys[index + 1..]
                .iter()
                .map(|later| later.active_from)
                .find(|&from| from <= now);
            superseded_at.is_none_or(|at| now < at + access_token_ttl + VERIFIER_LEEWAY)
        })
        .map(|(_, loaded)| loaded.key.as_ref())
        .collect();
    let published = KeySet::from_signing_keys(published);
    let jwks_json =
        serde_json::to_string(&published.to_document()).unwrap_or_else(|_| "{\"keys\":[]}".into());
    KeySnapshot {
        signer,
        published,
        jwks_json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(alg: SigningAlgorithm, active_from: i64) -> LoadedKey {
        LoadedKey {
            key: Arc::new(SigningKey::generate(alg).unwrap()),
            created_at: active_from - 300,
            active_from,
            sequence: active_from,
        }
    }

    #[test]
    fn a_rotated_key_is_published_before_it_signs_and_the_old_one_until_its_tokens_expire() {
        let old = loaded(SigningAlgorithm::Es256, 1_000);
        let new = loaded(SigningAlgorithm::Es256, 2_000);
        let keys = vec![old.clone(), new.clone()];
        let ttl = 900;

        let before = compute_snapshot(&keys, ttl, 1_500);
        assert_eq!(before.signer.as_ref().unwrap().kid(), old.key.kid());
        assert_eq!(
            before.published.len(),
            2,
            "the new key is published before it signs"
        );

        let after = compute_snapshot(&keys, ttl, 2_000);
        assert_eq!(after.signer.as_ref().unwrap().kid(), new.key.kid());
        assert!(after.published.contains(old.key.kid()));

        let last_moment = compute_snapshot(&keys, ttl, 2_000 + ttl + VERIFIER_LEEWAY - 1);
        assert!(
            last_moment.published.contains(old.key.kid()),
            "old tokens may still be valid"
        );
        let retired = compute_snapshot(&keys, ttl, 2_000 + ttl + VERIFIER_LEEWAY);
        assert!(!retired.published.contains(old.key.kid()));
        assert!(retired.published.contains(new.key.kid()));
        assert!(!retired.jwks_json.contains(old.key.kid()));
    }

    #[test]
    fn the_newest_active_key_signs_whatever_its_algorithm() {
        let es = loaded(SigningAlgorithm::Es256, 500);
        let ed = loaded(SigningAlgorithm::EdDsa, 1_000);
        let snapshot = compute_snapshot(&[es.clone(), ed.clone()], 900, 1_200);
        assert_eq!(snapshot.signer.unwrap().kid(), ed.key.kid());
        let before_activation = compute_snapshot(&[es.clone(), ed.clone()], 900, 800);
        assert_eq!(before_activation.signer.unwrap().kid(), es.key.kid());
        assert!(compute_snapshot(&[], 900, 800).signer.is_none());
    }

    #[test]
    fn stored_keys_round_trip_sealed_and_refuse_a_missing_kek() {
        let key = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
        let kek =
            KeyEncryptionKey::from_base64(&KeyEncryptionKey::generate_base64().unwrap()).unwrap();
        let sealed = stored_form(&key, Some(&kek), 1, 1).unwrap();
        assert!(sealed.encrypted);
        assert_ne!(sealed.private_key, key.pkcs8_der());
        assert_eq!(load(&sealed, Some(&kek)).unwrap().key.kid(), key.kid());
        assert!(matches!(
            load(&sealed, None),
            Err(KeyRingError::MissingEncryptionKey)
        ));
        let plain = stored_form(&key, None, 1, 1).unwrap();
        assert_eq!(load(&plain, None).unwrap().key.kid(), key.kid());
    }
}
