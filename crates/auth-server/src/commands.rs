//! The one-shot subcommands: `migrate`, `client create|list|show|delete`, `user create|list|delete|set-password`,
//! `keys rotate`, `keys seal`, `keys generate-kek`, `consent revoke`. Each prints JSON on stdout; an unknown
//! id is an error (one line, exit 1).

use std::io::Read;

use anyhow::{Context, Result, bail};
use auth_core::id::{ClientId, UserId};
use auth_core::keys::{KeyEncryptionKey, SigningKey};
use auth_core::secret::PasswordHasher;
use service_kit::telemetry::untrusted;

use crate::clients::registration::{self, ClientError, ClientMetadata, Field};
use crate::config::{ClientCreate, ConsentRevoke, KeysRotate, TokenMint, UserCreate};
use crate::keys::keyring::stored_form;
use crate::store::{ClientRecord, ClientStore, ConsentStore, KeyStore, UserRecord, UserStore};

/// A client id typed on the command line: one that could never be registered names no client.
fn operator_client_id(text: &str) -> Result<ClientId> {
    ClientId::parse(text).map_err(|_| anyhow::anyhow!("no client {text:?}"))
}

fn now() -> i64 {
    auth_core::clock::Clock::now(&auth_core::clock::SystemClock)
}

fn read_stdin_line(what: &str) -> Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .with_context(|| format!("reading the {what} from stdin"))?;
    let text = text.trim_end_matches(['\r', '\n']).to_owned();
    if text.is_empty() {
        bail!("the {what} on stdin is empty");
    }
    Ok(text)
}

/// The argon2id hash of the password on stdin (passwords never go on a command line), once it passes the
/// password rules.
async fn password_hash_from_stdin(min_length: u8) -> Result<String> {
    let password = read_stdin_line("password")?;
    crate::users::validate_password(&password, min_length)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let hasher = PasswordHasher::new().context("initialising argon2")?;
    tokio::task::spawn_blocking(move || hasher.hash(&password))
        .await
        .context("hashing")?
        .context("hashing the password")
}

/// The registration `client create` describes: the flags, the secret from stdin, the JWK set file read.
pub fn client_metadata(
    create: &ClientCreate,
    stdin_secret: Option<String>,
) -> Result<ClientMetadata> {
    let jwks = match &create.jwks_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("--jwks-file {}", path.display()))?,
        ),
        None => None,
    };
    Ok(ClientMetadata {
        client_id: create.client_id.clone(),
        public: create.public,
        secret: stdin_secret,
        grant_types: create.grant_types.clone(),
        redirect_uris: create.redirect_uris.clone(),
        scope: create.scope.clone(),
        audiences: create.audiences.clone(),
        skip_consent: create.skip_consent,
        introspection: create.introspection,
        post_logout_redirect_uris: create.post_logout_redirect_uris.clone(),
        require_dpop: create.require_dpop,
        jwks,
        jwks_uri: create.jwks_uri.clone(),
        require_par: create.require_par,
        name: create.name.clone(),
        id_token_signed_response_alg: create.id_token_signed_response_alg.clone(),
        token_exchange: create.token_exchange,
        exchange_audiences: create.exchange_audiences.clone(),
        backchannel_logout_uri: create.backchannel_logout_uri.clone(),
    })
}

/// A refused registration as the command line says it: the flag, then why.
fn refused(create: &ClientCreate, error: ClientError) -> anyhow::Error {
    match (error.field, &create.jwks_file) {
        (Field::Jwks, Some(path)) => {
            anyhow::anyhow!("--jwks-file {}: {}", path.display(), error.reason)
        }
        (field, _) => anyhow::anyhow!("{}: {}", field.flag(), error.reason),
    }
}

/// `client create`: prints `{"client_id", "client_secret"}`; the secret is shown this once. A client that
/// registers an ID-token algorithm no key has yet brings that algorithm's first key, stored with it.
pub async fn client_create<S>(
    store: &S,
    create: &ClientCreate,
    kek: Option<&KeyEncryptionKey>,
) -> Result<()>
where
    S: ClientStore + KeyStore,
{
    let stdin_secret = if create.secret_stdin {
        Some(read_stdin_line("client secret")?)
    } else {
        None
    };
    let (record, secret) = registration::validate(&client_metadata(create, stdin_secret)?)
        .map_err(|error| refused(create, error))?;
    let secret = secret.map(|shown| shown.0);
    let now = now();
    let key = match record.id_token_signed_response_alg {
        Some(alg) if !store.list_keys().await?.iter().any(|key| key.alg == alg) => {
            crate::keys::refuse_unsealed(store, kek, "the first key of its ID-token algorithm")
                .await?;
            let key = SigningKey::generate(alg).context("making a signing key")?;
            Some(crate::keys::keyring::stored_form(&key, kek, now, now)?)
        }
        _ => None,
    };
    store
        .create_client(&record, key.as_ref(), now)
        .await
        .context("storing the client")?;
    let printed = if record.uses_private_key_jwt() {
        serde_json::json!({ "client_id": record.client_id })
    } else {
        serde_json::json!({ "client_id": record.client_id, "client_secret": secret })
    };
    println!("{printed}");
    Ok(())
}

/// What `client show` and `client list` print for a client: its registration, never its secret or digest.
pub fn client_json(client: &ClientRecord) -> serde_json::Value {
    let auth_method = if client.is_public {
        "none"
    } else if client.uses_private_key_jwt() {
        "private_key_jwt"
    } else {
        "client_secret_basic"
    };
    let jwks = client
        .jwks
        .as_deref()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok());
    serde_json::json!({
        "client_id": client.client_id,
        "name": client.name,
        "public": client.is_public,
        "token_endpoint_auth_method": auth_method,
        "grant_types": client.grant_types.iter().map(|grant| grant.as_str()).collect::<Vec<_>>(),
        "redirect_uris": client.redirect_uris,
        "scope": client.scope.to_string(),
        "audiences": client.audiences,
        "skip_consent": client.skip_consent,
        "introspection": client.introspection,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "require_dpop": client.require_dpop,
        "require_par": client.require_par,
        "jwks": jwks,
        "jwks_uri": client.jwks_uri,
        "id_token_signed_response_alg": client
            .id_token_signed_response_alg
            .unwrap_or(auth_core::keys::SigningAlgorithm::Rs256)
            .as_str(),
        "registered": client.registered.as_str(),
        "token_exchange": client.allows(auth_core::wire::GrantType::TokenExchange),
        "exchange_audiences": client.exchange_audiences,
        "backchannel_logout_uri": client.backchannel_logout_uri,
    })
}

/// `client list`: a JSON array of what `client show` prints, by client id.
pub async fn client_list(store: &dyn ClientStore) -> Result<()> {
    let clients = store.list_clients().await.context("listing the clients")?;
    let listed: Vec<_> = clients.iter().map(client_json).collect();
    println!("{}", serde_json::Value::Array(listed));
    Ok(())
}

/// `client show ID`.
pub async fn client_show(store: &dyn ClientStore, client_id: &str) -> Result<()> {
    let client = store
        .find_client(&operator_client_id(client_id)?)
        .await
        .context("looking the client up")?
        .with_context(|| format!("no client {client_id:?}"))?;
    println!("{}", client_json(&client));
    Ok(())
}

/// `client delete ID`: the client and everything it owns go; its tokens are inactive from now on (running
/// servers forget it within `--config-poll-ms`). Prints `{"client_id": …, "deleted": true}`.
pub async fn client_delete(store: &dyn ClientStore, client_id: &str) -> Result<()> {
    if !store
        .delete_client(&operator_client_id(client_id)?, now())
        .await
        .context("deleting the client")?
    {
        bail!("no client {client_id:?}");
    }
    tracing::info!(target: "audit", event = "client_deleted", client_id = &*untrusted(client_id), outcome = "deleted", "client deleted");
    println!(
        "{}",
        serde_json::json!({ "client_id": client_id, "deleted": true })
    );
    Ok(())
}

/// What `user list` prints for a user: never the password hash.
fn user_json(user: &UserRecord) -> serde_json::Value {
    serde_json::json!({
        "user_id": user.user_id,
        "username": user.username,
        "name": user.name,
        "email": user.email,
        "email_verified": user.email_verified,
    })
}

/// `user list`: a JSON array, by username.
pub async fn user_list(store: &dyn UserStore) -> Result<()> {
    let users = store.list_users().await.context("listing the users")?;
    let listed: Vec<_> = users.iter().map(user_json).collect();
    println!("{}", serde_json::Value::Array(listed));
    Ok(())
}

/// `user delete NAME`: the user, its sessions, consent and grants go. Prints `{"username": …, "deleted": true}`.
pub async fn user_delete(store: &dyn UserStore, username: &str) -> Result<()> {
    if !store
        .delete_user(username)
        .await
        .context("deleting the user")?
    {
        bail!("no user named {username:?}");
    }
    tracing::info!(target: "audit", event = "user_deleted", username = &*untrusted(username), outcome = "deleted", "user deleted");
    println!(
        "{}",
        serde_json::json!({ "username": username, "deleted": true })
    );
    Ok(())
}

/// `user set-password NAME --password-stdin`: a new password; the user's sessions end and its grants are
/// revoked (whoever knew the old password may hold them). Prints `{"username": …, "grants_revoked": N}`.
pub async fn user_set_password(
    store: &dyn UserStore,
    username: &str,
    min_password_length: u8,
) -> Result<()> {
    if store
        .find_user_by_username(username)
        .await
        .context("looking the user up")?
        .is_none()
    {
        bail!("no user named {username:?}");
    }
    let password_hash = password_hash_from_stdin(min_password_length).await?;
    let revoked = store
        .set_password(username, &password_hash, now())
        .await
        .context("storing the password")?
        .with_context(|| format!("no user named {username:?}"))?;
    tracing::info!(target: "audit", event = "password_changed", username = &*untrusted(username), grants_revoked = revoked, outcome = "changed", "password set");
    println!(
        "{}",
        serde_json::json!({ "username": username, "grants_revoked": revoked })
    );
    Ok(())
}

/// `user create`: the password comes from stdin, never the command line.
pub async fn user_create(store: &dyn UserStore, create: &UserCreate) -> Result<()> {
    crate::users::validate_profile(
        &create.username,
        create.name.as_deref(),
        create.email.as_deref(),
    )
    .map_err(|error| anyhow::anyhow!("{}: {error}", error.field.flag()))?;
    let password_hash = password_hash_from_stdin(create.min_password_length).await?;
    let user = UserRecord {
        user_id: UserId::generate(),
        username: create.username.clone(),
        password_hash,
        name: create.name.clone(),
        email: create.email.clone(),
        email_verified: create.email_verified,
    };
    store
        .create_user(&user, now())
        .await
        .context("storing the user")?;
    println!(
        "{}",
        serde_json::json!({ "user_id": user.user_id, "username": user.username })
    );
    Ok(())
}

/// `consent revoke`: forgets the user's consent to the client and revokes every grant (token family) it
/// made, so its refresh tokens fail and its access tokens are inactive at /introspect; prints
/// `{"user": …, "client_id": …, "consent_removed": bool, "grants_revoked": N}`.
pub async fn consent_revoke<S>(store: &S, revoke: &ConsentRevoke) -> Result<()>
where
    S: UserStore + ClientStore + ConsentStore + ?Sized,
{
    let user = store
        .find_user_by_username(&revoke.user)
        .await
        .context("looking the user up")?
        .with_context(|| format!("no user named {:?}", revoke.user))?;
    let client_id = operator_client_id(&revoke.client)?;
    store
        .find_client(&client_id)
        .await
        .context("looking the client up")?
        .with_context(|| format!("no client {:?}", revoke.client))?;
    let (removed, revoked) = store
        .withdraw_consent(&user.user_id, &client_id, now())
        .await
        .context("withdrawing the consent")?;
    let outcome = if removed || revoked > 0 {
        "revoked"
    } else {
        "nothing_to_revoke"
    };
    tracing::info!(target: "audit", event = "consent_revoked", user = user.user_id.as_str(), client_id = &*untrusted(&revoke.client), grants_revoked = revoked, outcome, "consent withdrawn");
    println!(
        "{}",
        serde_json::json!({ "user": revoke.user, "client_id": revoke.client, "consent_removed": removed, "grants_revoked": revoked })
    );
    Ok(())
}

/// `keys rotate`: a new key for every algorithm in use (`--signing-alg`'s, RS256, the clients' ID-token
/// algorithms), or for `--alg` alone; each is published at once and signs after `activate_after` seconds.
/// Prints a JSON array of `{"kid", "alg", "active_from"}`.
pub async fn keys_rotate<S>(
    store: &S,
    rotate: &KeysRotate,
    kek: Option<&KeyEncryptionKey>,
) -> Result<()>
where
    S: KeyStore + ClientStore,
{
    crate::keys::refuse_unsealed(store, kek, "a new signing key").await?;
    let created_at = now();
    let active_from = created_at
        + i64::try_from(rotate.activate_after).context("--activate-after is too large")?;
    let algorithms = match rotate.alg {
        Some(alg) => vec![alg],
        None => crate::keys::keyring::algorithms_in_use(
            rotate.signing_alg,
            &store
                .id_token_algorithms()
                .await
                .context("reading the clients' ID-token algorithms")?,
        ),
    };
    let mut rotated = Vec::new();
    for alg in algorithms {
        let key = SigningKey::generate(alg).context("generating the key")?;
        store
            .insert_key(&stored_form(&key, kek, created_at, active_from)?)
            .await
            .context("storing the key")?;
        tracing::info!(target: "audit", event = "key_rotation", kid = key.kid(), alg = %alg, active_from, outcome = "created", "signing key rotated");
        rotated.push(serde_json::json!({ "kid": key.kid(), "alg": alg.as_str(), "active_from": active_from }));
    }
    println!("{}", serde_json::Value::Array(rotated));
    Ok(())
}

/// `registration token create`: a new initial access token (256 bits) for `--registration token`, printed
/// once as `{"initial_access_token", "expires_in", "max_uses"}` and stored as its digest.
pub async fn registration_token_create(
    store: &dyn crate::store::RegistrationStore,
    ttl: u64,
    max_uses: u32,
) -> Result<()> {
    let token = auth_core::secret::OpaqueToken::generate();
    let now = now();
    let ttl_seconds = i64::try_from(ttl).context("--ttl is too large")?;
    store
        .create_initial_token(&token.digest(), now + ttl_seconds, max_uses, now)
        .await
        .context("storing the token")?;
    tracing::info!(target: "audit", event = "initial_access_token_created", expires_at = now + ttl_seconds, max_uses, outcome = "created", "initial access token created");
    println!(
        "{}",
        serde_json::json!({ "initial_access_token": token.as_str(), "expires_in": ttl, "max_uses": max_uses })
    );
    Ok(())
}

/// `config check FILE`: nothing on success; the file's lines (`FILE:LINE: KEY: reason`) otherwise.
pub fn config_check(file: &std::path::Path) -> Result<()> {
    let declaration = crate::declared::read(file, &|name| std::env::var(name).ok())?;
    for warning in &declaration.warnings {
        tracing::warn!("{warning}");
    }
    Ok(())
}

/// `config apply FILE`: the database's clients and users made to match the file in one transaction;
/// prints `{"clients": {"created", "updated", "unchanged", "pruned"}, "users": {…}}`.
pub async fn config_apply<S>(
    store: &S,
    file: &std::path::Path,
    kek: Option<&KeyEncryptionKey>,
) -> Result<()>
where
    S: crate::store::DeclaredStore + ClientStore + UserStore + KeyStore,
{
    let declaration = crate::declared::read(file, &|name| std::env::var(name).ok())?;
    for warning in &declaration.warnings {
        tracing::warn!("{warning}");
    }
    // Hashing and verifying need no dummy hash: none is made.
    let hasher = PasswordHasher::deferred();
    let applied = crate::declared::apply::apply(store, &declaration, &hasher, kek, now()).await?;
    println!("{}", crate::declared::apply::applied_json(&applied));
    Ok(())
}

/// `config export`: the operator's clients and users as TOML on stdout, without secrets or hashes.
pub async fn config_export<S>(store: &S) -> Result<()>
where
    S: ClientStore + UserStore,
{
    let clients = store.list_clients().await.context("listing the clients")?;
    let users = store.list_users().await.context("listing the users")?;
    let file = crate::declared::export::export(&clients, &users).context("writing TOML")?;
    print!("{file}");
    Ok(())
}

/// `keys seal`: every signing key and server secret stored in the clear is sealed; prints `{"sealed": N}`.
pub async fn keys_seal(store: &dyn KeyStore, kek: &KeyEncryptionKey) -> Result<()> {
    let keys = crate::keys::keyring::seal_stored_keys(store, kek)
        .await
        .context("sealing the signing keys")?;
    let secrets = crate::keys::server_secrets::seal_stored_secrets(store, kek)
        .await
        .context("sealing the server secrets")?;
    println!("{}", serde_json::json!({ "sealed": keys + secrets }));
    Ok(())
}

/// `keys generate-kek`: a new key-encryption key on one line, nothing else (so `$(…)` captures it).
pub fn keys_generate_kek() -> Result<()> {
    println!(
        "{}",
        KeyEncryptionKey::generate_base64().context("generating a key-encryption key")?
    );
    Ok(())
}

/// `token mint`: one JWT signed offline by the database's active key, printed alone on stdout. An access
/// token is what /token would issue the client (RFC 9068: `sub` the client unless given, the client's
/// scopes or a part of them, its audience), with `--claim`s beside; with `--id-token`, an ID token for the
/// client signed with its ID-token algorithm. Nothing is written: like any access token, it is active at
/// /introspect while unexpired, unrevoked and its client exists. Audited (`token_minted`).
pub async fn token_mint<S>(
    store: &S,
    mint: &TokenMint,
    kek: Option<&KeyEncryptionKey>,
) -> Result<()>
where
    S: KeyStore + ClientStore,
{
    use auth_core::jws::sign_with_extra_claims;
    use auth_core::keys::SigningAlgorithm;
    use auth_core::scope::ScopeSet;
    use auth_core::token::{AccessTokenClaims, Audience};
    use auth_core::typ::JwtType;

    let client = store
        .find_client(&operator_client_id(&mint.client_id)?)
        .await
        .context("looking the client up")?
        .with_context(|| format!("no client {:?}", mint.client_id))?;
    let now = now();
    let ttl = i64::try_from(mint.ttl).context("--ttl is too large")?;
    let client_algs = store
        .id_token_algorithms()
        .await
        .context("reading the clients' ID-token algorithms")?;
    let ring =
        crate::keys::keyring::KeyRing::read(store, kek, mint.signing_alg, &client_algs, ttl, now)
            .await
            .context("reading the signing keys")?;
    let alg = if mint.id_token {
        client
            .id_token_signed_response_alg
            .unwrap_or(SigningAlgorithm::Rs256)
    } else {
        mint.signing_alg
    };
    let snapshot = ring.snapshot();
    let key = snapshot.signer(alg).with_context(|| {
        format!("no active {alg} key: start the server once (it makes its keys) or run `keys rotate --alg {alg}`")
    })?;
    let sub = mint
        .sub
        .clone()
        .unwrap_or_else(|| client.client_id.as_str().to_owned());
    let extra: serde_json::Map<String, serde_json::Value> = mint.claims.iter().cloned().collect();
    let jti = uuid::Uuid::new_v4().to_string();
    let token = if mint.id_token {
        let claims = serde_json::json!({
            "iss": mint.issuer,
            "sub": sub,
            "aud": client.client_id.as_str(),
            "exp": now + ttl,
            "iat": now,
            "jti": jti,
            "nonce": mint.nonce,
        });
        let serde_json::Value::Object(mut claims) = claims else {
            unreachable!("a JSON object")
        };
        claims.retain(|_, value| !value.is_null());
        sign_with_extra_claims(JwtType::Id, &claims, &extra, key)
    } else {
        let scope = match &mint.scope {
            Some(text) => {
                let scope =
                    ScopeSet::parse(text).map_err(|error| anyhow::anyhow!("--scope: {error}"))?;
                if !scope.is_subset_of(&client.scope) {
                    bail!("--scope: the client is not registered for all of {text:?}");
                }
                scope
            }
            None => client.scope.clone(),
        };
        let audience = crate::tokens::rules::resolve_audience(
            &client,
            mint.audience.as_deref(),
            &mint.default_audience,
        )
        .map_err(|error| anyhow::anyhow!("--audience: {error}"))?;
        let claims = AccessTokenClaims {
            iss: mint.issuer.clone(),
            sub: sub.clone(),
            aud: Audience::One(audience),
            client_id: client.client_id.as_str().to_owned(),
            scope,
            iat: now,
            exp: now + ttl,
            nbf: None,
            jti: jti.clone(),
            auth_time: None,
            fam: None,
            cnf: None,
            act: None,
            may_act: None,
        };
        sign_with_extra_claims(JwtType::Access, &claims, &extra, key)
    }
    .context("signing the token")?;
    tracing::info!(target: "audit", event = "token_minted", client_id = &*untrusted(client.client_id.as_str()), sub = &*untrusted(&sub), jti = %jti, id_token = mint.id_token, "token minted");
    println!("{token}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_create_reads_its_jwks_file_and_names_the_flag_of_a_refusal() {
        let dir = std::env::temp_dir().join(format!("jwks-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("private.json");
        std::fs::write(
            &path,
            r#"{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"c"}]}"#,
        )
        .unwrap();
        let create = ClientCreate {
            client_id: "app".into(),
            public: false,
            secret_stdin: false,
            grant_types: vec!["client_credentials".into()],
            redirect_uris: vec![],
            scope: "read".into(),
            audiences: vec![],
            skip_consent: false,
            introspection: false,
            post_logout_redirect_uris: vec![],
            require_dpop: false,
            jwks_file: Some(path.clone()),
            jwks_uri: None,
            require_par: false,
            name: None,
            id_token_signed_response_alg: None,
            backchannel_logout_uri: None,
            token_exchange: false,
            exchange_audiences: vec![],
        };
        let metadata = client_metadata(&create, None).unwrap();
        let error = registration::validate(&metadata).unwrap_err();
        let line = refused(&create, error).to_string();
        assert!(
            line.starts_with("--jwks-file ") && line.contains("private members"),
            "{line}"
        );
        let uri = ClientCreate {
            jwks_file: None,
            redirect_uris: vec!["http://h/cb#f".into()],
            grant_types: vec!["authorization_code".into()],
            ..create
        };
        let line = refused(
            &uri,
            registration::validate(&client_metadata(&uri, None).unwrap()).unwrap_err(),
        )
        .to_string();
        assert!(
            line.starts_with("--redirect-uri: ") && line.contains("fragment"),
            "{line}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
