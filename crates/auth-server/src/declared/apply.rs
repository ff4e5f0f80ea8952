//! Making the database match a [`Declaration`]: what can only be known with the database (an entry that
//! keeps a secret nobody stored) is checked first and said as the file's lines; passwords are verified
//! against the stored hashes (a password that still verifies keeps its hash, so applying twice changes
//! nothing and keeps the user's sessions); then one transaction ([`DeclaredStore::apply_declared`]).

use anyhow::{Context, Result};
use auth_core::id::UserId;
use auth_core::keys::{KeyEncryptionKey, SigningKey};
use auth_core::secret::PasswordHasher;

use super::{Declaration, PasswordSource, Problems, SecretSource};
use crate::store::{
    Applied, AppliedCounts, ClientStore, Declared, DeclaredClient, DeclaredPassword, DeclaredStore,
    DeclaredUser, KeyStore, StoreError, UserStore,
};

/// Applies `declaration`, hashing and verifying with `hasher` the passwords given in clear. A refusal that
/// names entries is a [`Problems`] error.
pub async fn apply<S>(
    store: &S,
    declaration: &Declaration,
    hasher: &PasswordHasher,
    kek: Option<&KeyEncryptionKey>,
    now: i64,
) -> Result<Applied>
where
    S: DeclaredStore + ClientStore + UserStore + KeyStore,
{
    let stored_clients = store.list_clients().await.context("reading the clients")?;
    let stored_users = store.list_users().await.context("reading the users")?;
    let mut problems = Vec::new();
    for client in &declaration.clients {
        let stored = stored_clients
            .iter()
            .find(|stored| stored.client_id == client.record.client_id);
        if client.secret == SecretSource::Keep
            && stored.is_none_or(|stored| stored.secret_digest.is_none())
        {
            problems.push(declaration.line(
                client.line,
                "client_id",
                "no secret is stored for this client: give secret_env, secret_file or secret",
            ));
        }
    }
    let mut users = Vec::with_capacity(declaration.users.len());
    for user in &declaration.users {
        let stored = stored_users
            .iter()
            .find(|stored| stored.username == user.username);
        let password = match (&user.password, stored) {
            (PasswordSource::Keep, Some(_)) => DeclaredPassword::Keep,
            (PasswordSource::Keep, None) => {
                problems.push(declaration.line(
                    user.line,
                    "username",
                    "a new user needs password_env, password_file or password_hash",
                ));
                continue;
            }
            (PasswordSource::Hash(hash), _) => DeclaredPassword::Set {
                hash: hash.clone(),
                equivalent: None,
            },
            (PasswordSource::Plain(password), stored) => {
                let hasher = hasher.clone();
                let password = password.clone();
                let stored_hash = stored.map(|stored| stored.password_hash.clone());
                tokio::task::spawn_blocking(move || {
                    // A password that still verifies keeps its hash: nothing changes, no session ends.
                    if let Some(stored_hash) = stored_hash
                        && hasher.verify(&password, &stored_hash).unwrap_or(false)
                    {
                        return Ok(DeclaredPassword::Set {
                            hash: stored_hash.clone(),
                            equivalent: Some(stored_hash),
                        });
                    }
                    hasher.hash(&password).map(|hash| DeclaredPassword::Set {
                        hash,
                        equivalent: None,
                    })
                })
                .await
                .context("hashing a password")?
                .context("hashing a password")?
            }
        };
        users.push(DeclaredUser {
            new_id: UserId::generate(),
            username: user.username.clone(),
            name: user.name.clone(),
            email: user.email.clone(),
            email_verified: user.email_verified,
            password,
        });
    }
    if !problems.is_empty() {
        return Err(Problems(problems).into());
    }
    // A client signing its ID tokens with an algorithm no key has yet brings that algorithm's first key,
    // as `client create` does.
    let stored_algs: Vec<_> = store
        .list_keys()
        .await
        .context("reading the signing keys")?
        .iter()
        .map(|key| key.alg)
        .collect();
    let mut keys = Vec::new();
    for client in &declaration.clients {
        if let Some(alg) = client.record.id_token_signed_response_alg
            && !stored_algs.contains(&alg)
            && !keys
                .iter()
                .any(|key: &crate::store::StoredKey| key.alg == alg)
        {
            crate::keys::refuse_unsealed(store, kek, "the first key of an ID-token algorithm")
                .await?;
            let key = SigningKey::generate(alg).context("making a signing key")?;
            keys.push(crate::keys::keyring::stored_form(&key, kek, now, now)?);
        }
    }
    let declared = Declared {
        clients: declaration
            .clients
            .iter()
            .map(|client| DeclaredClient {
                record: client.record.clone(),
                keep_secret: client.secret == SecretSource::Keep,
            })
            .collect(),
        users,
        prune: declaration.prune,
        keys,
    };
    let applied = match store.apply_declared(&declared, now).await {
        Ok(applied) => applied,
        // Another process changed the database between the checks above and the transaction.
        Err(StoreError::Declared(reason)) => {
            return Err(Problems(vec![format!("{}: {reason}", declaration.path.display())]).into());
        }
        Err(error) => return Err(error).context("applying the configuration"),
    };
    tracing::info!(
        target: "audit",
        event = "config_applied",
        file = %declaration.path.display(),
        clients_created = applied.clients.created,
        clients_updated = applied.clients.updated,
        clients_unchanged = applied.clients.unchanged,
        clients_pruned = applied.clients.pruned,
        users_created = applied.users.created,
        users_updated = applied.users.updated,
        users_unchanged = applied.users.unchanged,
        users_pruned = applied.users.pruned,
        outcome = "applied",
        "configuration applied"
    );
    Ok(applied)
}

fn counts_json(counts: &AppliedCounts) -> serde_json::Value {
    serde_json::json!({
        "created": counts.created,
        "updated": counts.updated,
        "unchanged": counts.unchanged,
        "pruned": counts.pruned,
    })
}

/// What `config apply` prints: `{"clients": {"created", "updated", "unchanged", "pruned"}, "users": {…}}`.
pub fn applied_json(applied: &Applied) -> serde_json::Value {
    serde_json::json!({
        "clients": counts_json(&applied.clients),
        "users": counts_json(&applied.users),
    })
}
