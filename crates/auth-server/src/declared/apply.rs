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

/// How many times an apply whose password checks went stale (another replica applied in between) is
/// checked and tried again. Each retry follows a commit by someone else, so a handful always suffices.
const ATTEMPTS: usize = 5;

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
    let mut attempt = 0;
    let applied = loop {
        attempt += 1;
        let declared = plan(store, declaration, hasher, kek, now).await?;
        match store.apply_declared(&declared, now).await {
            Ok(applied) => break applied,
            Err(StoreError::Stale) if attempt < ATTEMPTS => {}
            // Another process changed the database between the checks and the transaction.
            Err(StoreError::Declared(reason)) => {
                return Err(
                    Problems(vec![format!("{}: {reason}", declaration.path.display())]).into(),
                );
            }
            Err(error) => return Err(error).context("applying the configuration"),
        }
    };
    audit(declaration, &applied);
    Ok(applied)
}

/// Each change as the CLI's command would audit it, then the totals.
fn audit(declaration: &Declaration, applied: &Applied) {
    for client_id in &applied.pruned_clients {
        tracing::info!(target: "audit", event = "client_deleted", client_id = %client_id, outcome = "pruned", "client deleted: not in the configuration file");
    }
    for username in &applied.pruned_users {
        tracing::info!(target: "audit", event = "user_deleted", username = %username, outcome = "pruned", "user deleted: not in the configuration file");
    }
    for username in &applied.passwords_changed {
        tracing::info!(target: "audit", event = "password_changed", username = %username, outcome = "changed", "password set from the configuration file");
    }
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
}

/// What the transaction is to do, from the stored state now: the entries that keep a secret nobody stored
/// are the file's lines; each password given in clear is checked against the stored hash (kept when it
/// verifies, so applying twice changes nothing and keeps the user's sessions) or hashed anew.
async fn plan<S>(
    store: &S,
    declaration: &Declaration,
    hasher: &PasswordHasher,
    kek: Option<&KeyEncryptionKey>,
    now: i64,
) -> Result<Declared>
where
    S: ClientStore + UserStore + KeyStore,
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
            (PasswordSource::Hash(hash), _) => DeclaredPassword::Hash(hash.clone()),
            (PasswordSource::Plain(password), stored) => {
                let hasher = hasher.clone();
                let password = password.clone();
                let checked_against = stored.map(|stored| stored.password_hash.clone());
                tokio::task::spawn_blocking(move || {
                    let hash = match &checked_against {
                        Some(stored) if hasher.verify(&password, stored).unwrap_or(false) => {
                            stored.clone()
                        }
                        _ => hasher.hash(&password)?,
                    };
                    Ok::<_, auth_core::secret::SecretError>(DeclaredPassword::Checked {
                        hash,
                        checked_against,
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
    let mut missing = Vec::new();
    for client in &declaration.clients {
        if let Some(alg) = client.record.id_token_signed_response_alg
            && !stored_algs.contains(&alg)
            && !missing.contains(&alg)
        {
            missing.push(alg);
        }
    }
    let mut keys = Vec::new();
    for alg in missing {
        crate::keys::refuse_unsealed(store, kek, "the first key of an ID-token algorithm").await?;
        // An RSA key takes tens of milliseconds: not on the runtime's threads.
        let key = tokio::task::spawn_blocking(move || SigningKey::generate(alg))
            .await
            .context("making a signing key")?
            .context("making a signing key")?;
        keys.push(crate::keys::keyring::stored_form(&key, kek, now, now)?);
    }
    Ok(Declared {
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
    })
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
