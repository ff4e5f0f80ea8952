//! The signing keys in memory: parsed once, with the JWKS document rendered once per change.
//!
//! One active key per algorithm in use: the access tokens' (`--signing-alg`), RS256 (the ID tokens of every
//! client that registered no other algorithm: OpenID Connect Discovery §3 requires it), and each algorithm
//! a client registered as its `id_token_signed_response_alg`.
//!
//! Lifecycle (`keys rotate`, docs/operations.md): a key is published in the JWKS from its creation, signs from its
//! `active_from`, and once a newer key of its algorithm signs it stays published for one access-token
//! lifetime (+ 60 s of verifier leeway), until every token it signed has expired. A key of an algorithm no
//! longer in use (`--signing-alg` changed) retires the same way once any newer key signs.

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
    /// The key that signs now, per algorithm in use.
    pub signers: Vec<Arc<SigningKey>>,
    /// Public keys that verify: what the JWKS publishes.
    pub published: KeySet,
    /// The JWKS document, rendered once.
    pub jwks_json: String,
}

impl KeySnapshot {
    /// The key of `alg` that signs now.
    pub fn signer(&self, alg: SigningAlgorithm) -> Option<&Arc<SigningKey>> {
        self.signers.iter().find(|key| key.alg() == alg)
    }
}

/// The algorithms in use: the access tokens', RS256, and those clients registered for their ID tokens.
pub fn algorithms_in_use(
    access: SigningAlgorithm,
    clients: &[SigningAlgorithm],
) -> Vec<SigningAlgorithm> {
    SigningAlgorithm::ALL
        .into_iter()
        .filter(|alg| *alg == access || *alg == SigningAlgorithm::Rs256 || clients.contains(alg))
        .collect()
}

/// Every loaded key and the current snapshot.
pub struct KeyRing {
    keys: RwLock<Vec<LoadedKey>>,
    snapshot: RwLock<Arc<KeySnapshot>>,
    access_token_ttl: i64,
    /// `--signing-alg`: what access tokens are signed with.
    access_alg: SigningAlgorithm,
    in_use: RwLock<Vec<SigningAlgorithm>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("access_token_ttl", &self.access_token_ttl)
            .field("access_alg", &self.access_alg)
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
    /// Loads every stored key. For each algorithm in use (`access_alg`, RS256, `client_algs`) that has no
    /// key signing yet, generates one that signs at once.
    pub async fn load(
        store: &dyn KeyStore,
        kek: Option<&KeyEncryptionKey>,
        access_alg: SigningAlgorithm,
        client_algs: &[SigningAlgorithm],
        access_token_ttl: i64,
        now: i64,
        fresh: FreshKeys,
    ) -> Result<Self, KeyRingError> {
        // Keys at rest (docs/security.md): with a key-encryption key, nothing stays in the clear.
        if let Some(kek) = kek {
            seal_stored_keys(store, kek).await?;
        }
        let ring = Self::read(store, kek, access_alg, client_algs, access_token_ttl, now).await?;
        let missing: Vec<SigningAlgorithm> = ring
            .in_use()
            .into_iter()
            .filter(|alg| ring.snapshot().signer(*alg).is_none())
            .collect();
        // Generated side by side on blocking threads (an RSA key takes tens of milliseconds), or taken
        // from those started before the database was open.
        let mut fresh = fresh;
        let generating: Vec<_> = missing.iter().map(|alg| fresh.take(*alg)).collect();
        for (alg, generated) in missing.iter().zip(generating) {
            let key = generated
                .await
                .map_err(|error| KeyRingError::BadKey {
                    kid: "new".into(),
                    reason: error.to_string(),
                })?
                .map_err(|error| KeyRingError::BadKey {
                    kid: "new".into(),
                    reason: error.to_string(),
                })?;
            store.insert_key(&stored_form(&key, kek, now, now)?).await?;
            tracing::info!(target: "audit", event = "key_created", kid = key.kid(), alg = %alg, "signing key generated");
        }
        if !missing.is_empty() {
            ring.reload(store, kek, client_algs, now).await?;
        }
        if kek.is_none() && store.list_keys().await?.iter().any(|key| !key.encrypted) {
            tracing::warn!(
                "no key-encryption key: signing keys are stored unencrypted; set AUTH_KEY_ENCRYPTION_KEY \
                 (`auth-server keys generate-kek` makes one) and they are sealed at the next start"
            );
        }
        Ok(ring)
    }

    /// Reads the stored keys as they are: nothing generated, nothing sealed, nothing written (a one-shot
    /// command that signs offline).
    pub async fn read(
        store: &dyn KeyStore,
        kek: Option<&KeyEncryptionKey>,
        access_alg: SigningAlgorithm,
        client_algs: &[SigningAlgorithm],
        access_token_ttl: i64,
        now: i64,
    ) -> Result<Self, KeyRingError> {
        let ring = Self {
            keys: RwLock::new(Vec::new()),
            snapshot: RwLock::new(Arc::new(KeySnapshot {
                signers: Vec::new(),
                published: KeySet::default(),
                jwks_json: "{\"keys\":[]}".into(),
            })),
            access_token_ttl,
            access_alg,
            in_use: RwLock::new(algorithms_in_use(access_alg, client_algs)),
        };
        ring.reload(store, kek, client_algs, now).await?;
        Ok(ring)
    }

    /// The algorithms in use now.
    pub fn in_use(&self) -> Vec<SigningAlgorithm> {
        self.in_use
            .read()
            .map(|algs| algs.clone())
            .unwrap_or_default()
    }

    /// What access tokens are signed with.
    pub fn access_alg(&self) -> SigningAlgorithm {
        self.access_alg
    }

    /// Re-reads the stored keys (after a change at any replica, `client_algs` the clients' ID-token
    /// algorithms now) and refreshes the snapshot.
    pub async fn reload(
        &self,
        store: &dyn KeyStore,
        kek: Option<&KeyEncryptionKey>,
        client_algs: &[SigningAlgorithm],
        now: i64,
    ) -> Result<(), KeyRingError> {
        if let Ok(mut in_use) = self.in_use.write() {
            *in_use = algorithms_in_use(self.access_alg, client_algs);
        }
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

    /// Recomputes which keys sign and which are published at `now` (keys activate and retire with time).
    pub fn refresh(&self, now: i64) {
        let keys = self
            .keys
            .read()
            .map(|keys| keys.clone())
            .unwrap_or_default();
        let snapshot = compute_snapshot(&keys, &self.in_use(), self.access_token_ttl, now);
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

fn compute_snapshot(
    keys: &[LoadedKey],
    in_use: &[SigningAlgorithm],
    access_token_ttl: i64,
    now: i64,
) -> KeySnapshot {
    // Keys are sorted by activation: each algorithm's signer is its newest active key.
    let signers = in_use
        .iter()
        .filter_map(|alg| {
            keys.iter()
                .rev()
                .find(|loaded| loaded.key.alg() == *alg && loaded.active_from <= now)
                .map(|loaded| loaded.key.clone())
        })
        .collect();
    let published: Vec<&SigningKey> = keys
        .iter()
        .enumerate()
        .filter(|(index, loaded)| {
            let alg = loaded.key.alg();
            let retiring = !in_use.contains(&alg);
            // The time this key stopped signing: when the next key of its algorithm became active (or any
            // next key, for an algorithm no longer in use).
            let superseded_at = keys[index + 1..]
                .iter()
                .filter(|later| retiring || later.key.alg() == alg)
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
        signers,
        published,
        jwks_json,
    }
}

/// Keys being generated before the store says whether it needs them: a database that starts empty (in
/// memory) surely lacks them, and an RSA key takes 20–100 ms, so its generation overlaps opening the database
/// and applying a configuration file instead of following them. A key nobody takes is dropped unused.
#[derive(Default)]
pub struct FreshKeys(
    Vec<(
        SigningAlgorithm,
        tokio::task::JoinHandle<Result<SigningKey, auth_core::keys::KeyError>>,
    )>,
);

impl FreshKeys {
    /// Starts generating a key of each algorithm, each on a blocking thread.
    pub fn start(algorithms: &[SigningAlgorithm]) -> Self {
        Self(
            algorithms
                .iter()
                .map(|alg| {
                    let alg = *alg;
                    (
                        alg,
                        tokio::task::spawn_blocking(move || SigningKey::generate(alg)),
                    )
                })
                .collect(),
        )
    }

    /// The generation of a key of `alg`: one started before, or a new one.
    fn take(
        &mut self,
        alg: SigningAlgorithm,
    ) -> tokio::task::JoinHandle<Result<SigningKey, auth_core::keys::KeyError>> {
        match self.0.iter().position(|(started, _)| *started == alg) {
            Some(index) => self.0.swap_remove(index).1,
            None => tokio::task::spawn_blocking(move || SigningKey::generate(alg)),
        }
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

    const ES_ONLY: [SigningAlgorithm; 1] = [SigningAlgorithm::Es256];

    #[test]
    fn a_rotated_key_is_published_before_it_signs_and_the_old_one_until_its_tokens_expire() {
        let old = loaded(SigningAlgorithm::Es256, 1_000);
        let new = loaded(SigningAlgorithm::Es256, 2_000);
        let keys = vec![old.clone(), new.clone()];
        let ttl = 900;
        let es = SigningAlgorithm::Es256;

        let before = compute_snapshot(&keys, &ES_ONLY, ttl, 1_500);
        assert_eq!(before.signer(es).unwrap().kid(), old.key.kid());
        assert_eq!(
            before.published.len(),
            2,
            "the new key is published before it signs"
        );

        let after = compute_snapshot(&keys, &ES_ONLY, ttl, 2_000);
        assert_eq!(after.signer(es).unwrap().kid(), new.key.kid());
        assert!(after.published.contains(old.key.kid()));

        let last_moment = compute_snapshot(&keys, &ES_ONLY, ttl, 2_000 + ttl + VERIFIER_LEEWAY - 1);
        assert!(
            last_moment.published.contains(old.key.kid()),
            "old tokens may still be valid"
        );
        let retired = compute_snapshot(&keys, &ES_ONLY, ttl, 2_000 + ttl + VERIFIER_LEEWAY);
        assert!(!retired.published.contains(old.key.kid()));
        assert!(retired.published.contains(new.key.kid()));
        assert!(!retired.jwks_json.contains(old.key.kid()));
    }

    #[test]
    fn each_algorithm_in_use_has_its_signer_and_rotates_on_its_own() {
        let (es, rs) = (SigningAlgorithm::Es256, SigningAlgorithm::Rs256);
        let es_key = loaded(es, 500);
        let rs_old = loaded(rs, 600);
        let rs_new = loaded(rs, 1_000);
        let keys = vec![es_key.clone(), rs_old.clone(), rs_new.clone()];
        let in_use = [es, rs];
        let ttl = 900;
        let now = 1_200;
        let snapshot = compute_snapshot(&keys, &in_use, ttl, now);
        assert_eq!(snapshot.signer(es).unwrap().kid(), es_key.key.kid());
        assert_eq!(snapshot.signer(rs).unwrap().kid(), rs_new.key.kid());
        assert!(snapshot.signer(SigningAlgorithm::EdDsa).is_none());
        // A newer RS256 key never retires the ES256 one.
        let later = compute_snapshot(&keys, &in_use, ttl, 1_000 + ttl + VERIFIER_LEEWAY);
        assert!(later.published.contains(es_key.key.kid()));
        assert!(!later.published.contains(rs_old.key.kid()));
        assert_eq!(later.published.algorithms(), vec![es, rs]);
    }

    #[test]
    fn a_key_of_an_algorithm_no_longer_in_use_retires_once_a_newer_key_signs() {
        // --signing-alg changed from ES256 to EdDSA: the ES256 key stays published for its tokens' lifetime.
        let es = loaded(SigningAlgorithm::Es256, 500);
        let ed = loaded(SigningAlgorithm::EdDsa, 1_000);
        let in_use = [SigningAlgorithm::EdDsa];
        let keys = [es.clone(), ed.clone()];
        let snapshot = compute_snapshot(&keys, &in_use, 900, 1_200);
        assert_eq!(
            snapshot.signer(SigningAlgorithm::EdDsa).unwrap().kid(),
            ed.key.kid()
        );
        assert!(snapshot.signer(SigningAlgorithm::Es256).is_none());
        assert!(snapshot.published.contains(es.key.kid()));
        let retired = compute_snapshot(&keys, &in_use, 900, 1_000 + 900 + VERIFIER_LEEWAY);
        assert!(!retired.published.contains(es.key.kid()));
        assert!(compute_snapshot(&[], &in_use, 900, 800).signers.is_empty());
    }

    #[test]
    fn rs256_is_always_in_use_and_clients_add_theirs() {
        use SigningAlgorithm::*;
        assert_eq!(algorithms_in_use(Es256, &[]), vec![Es256, Rs256]);
        assert_eq!(
            algorithms_in_use(Rs256, &[Ps256, EdDsa]),
            vec![EdDsa, Rs256, Ps256]
        );
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
