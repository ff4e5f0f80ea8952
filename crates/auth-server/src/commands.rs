//! The one-shot subcommands: `migrate`, `client create|list|show|delete`, `user create|list|delete|set-password`,
//! `keys rotate`, `keys seal`, `keys generate-kek`, `consent revoke`. Each prints JSON on stdout; an unknown
//! id is an error (one line, exit 1).

use std::io::Read;

use anyhow::{Context, Result, bail};
use auth_core::keys::{KeyEncryptionKey, SigningKey};
use auth_core::scope::ScopeSet;
use auth_core::secret::{OpaqueToken, PasswordHasher, SecretDigest};
use auth_core::wire::GrantType;

use crate::config::{ClientCreate, ConsentRevoke, KeysRotate, UserCreate};
use crate::keyring::stored_form;
use crate::store::{
    ClientRecord, ClientStore, GrantStore, KeyStore, SqlStore, UserRecord, UserStore,
};

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

/// The argon2id hash of the password on stdin (passwords never go on a command line).
async fn password_hash_from_stdin() -> Result<String> {
    let password = read_stdin_line("password")?;
    let hasher = PasswordHasher::new().context("initialising argon2")?;
    tokio::task::spawn_blocking(move || hasher.hash(&password))
        .await
        .context("hashing")?
        .context("hashing the password")
}

/// Redirect URIs are stored as URL parsing serializes them (`http://h:9` → `http://h:9/`) and may not
/// carry a fragment (RFC 6749 §3.1.2).
pub fn normalize_redirect_uri(text: &str) -> Result<String> {
    let url = url::Url::parse(text)
        .with_context(|| format!("redirect URI {text:?} is not an absolute URI"))?;
    if url.fragment().is_some() {
        bail!("redirect URI {text:?} must not contain a fragment");
    }
    if url.cannot_be_a_base() {
        bail!("redirect URI {text:?} is not a hierarchical URI");
    }
    // Schemes that run or read something in the browser instead of reaching an application.
    if matches!(
        url.scheme(),
        "javascript" | "data" | "file" | "vbscript" | "blob"
    ) {
        bail!(
            "redirect URI {text:?} must not use the {} scheme",
            url.scheme()
        );
    }
    Ok(url.to_string())
}

/// The shortest client secret `client create --secret-stdin` accepts.
pub const MIN_GIVEN_SECRET_CHARS: usize = 32;

/// Builds the record of `client create` and the secret to show once (`None` for public clients).
pub fn client_record(
    create: &ClientCreate,
    stdin_secret: Option<String>,
) -> Result<(ClientRecord, Option<String>)> {
    let grant_types = create
        .grant_types
        .iter()
        .map(|grant| {
            grant
                .parse::<GrantType>()
                .map_err(|_| anyhow::anyhow!("unknown grant type {grant:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    if grant_types.is_empty() && !create.introspection {
        bail!("a client needs at least one --grant-type, or --introspection");
    }
    if create.public && create.introspection {
        bail!("a public client cannot introspect: it cannot prove who it is (RFC 7662 §2.1)");
    }
    if create.public && grant_types.contains(&GrantType::ClientCredentials) {
        bail!("a public client cannot use client_credentials (RFC 6749 §4.4)");
    }
    if create.public && create.secret_stdin {
        bail!("a public client has no secret");
    }
    if grant_types.contains(&GrantType::AuthorizationCode) && create.redirect_uris.is_empty() {
        bail!("authorization_code needs at least one --redirect-uri");
    }
    let redirect_uris = create
        .redirect_uris
        .iter()
        .map(|uri| normalize_redirect_uri(uri))
        .collect::<Result<Vec<_>>>()?;
    // RP-Initiated Logout 1.0 §3: compared as exact strings, stored as URL parsing serializes them.
    let post_logout_redirect_uris = create
        .post_logout_redirect_uris
        .iter()
        .map(|uri| {
            normalize_redirect_uri(uri)
                .map_err(|error| anyhow::anyhow!("--post-logout-redirect-uri: {error}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let scope =
        ScopeSet::parse(&create.scope).map_err(|error| anyhow::anyhow!("--scope: {error}"))?;
    if create.name.as_ref().is_some_and(|name| {
        name.trim().is_empty() || name.len() > 100 || name.chars().any(char::is_control)
    }) {
        bail!("--name must be 1 to 100 bytes of text without control characters");
    }
    if !crate::clients::is_possible_client_id(&create.client_id)
        || create.client_id.contains([' ', ':'])
    {
        bail!(
            "--client-id must be 1 to {} bytes without spaces, colons or control characters",
            crate::clients::MAX_CLIENT_ID_BYTES
        );
    }
    if create
        .audiences
        .iter()
        .any(|audience| audience.is_empty() || audience.contains(' '))
    {
        bail!("--audience values must be non-empty without spaces");
    }
    let jwks = match &create.jwks_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--jwks-file {}", path.display()))?;
            let keys = crate::client_keys::parse_jwks(text.as_bytes())
                .map_err(|error| anyhow::anyhow!("--jwks-file {}: {error}", path.display()))?;
            if keys.is_empty() {
                bail!(
                    "--jwks-file {}: no usable public signing key (EC P-256, OKP Ed25519 or RSA ≥ 2048 bits)",
                    path.display()
                );
            }
            Some(text)
        }
        None => None,
    };
    if let Some(uri) = &create.jwks_uri {
        let parsed =
            url::Url::parse(uri).map_err(|error| anyhow::anyhow!("--jwks-uri: {error}"))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            bail!("--jwks-uri must be an http(s) URL");
        }
    }
    let private_key_jwt = jwks.is_some() || create.jwks_uri.is_some();
    let secret = match (create.public, stdin_secret) {
        (true, _) => None,
        // RFC 7523 §2.2: the client proves itself with its key; a secret would be a second, weaker way.
        (false, _) if private_key_jwt => None,
        // A secret is the client's only proof, and nothing throttles guesses at it: it must be long.
        (false, Some(secret)) if secret.chars().count() < MIN_GIVEN_SECRET_CHARS => bail!(
            "a client secret given on stdin must be at least {MIN_GIVEN_SECRET_CHARS} characters (a generated one is 256 bits)"
        ),
        (false, Some(secret)) => Some(secret),
        (false, None) => Some(OpaqueToken::generate().into_string()),
    };
    let record = ClientRecord {
        client_id: create.client_id.clone(),
        secret_digest: secret.as_deref().map(SecretDigest::of),
        is_public: create.public,
        grant_types,
        redirect_uris,
        scope,
        audiences: create.audiences.clone(),
        skip_consent: create.skip_consent,
        introspection: create.introspection,
        post_logout_redirect_uris,
        require_dpop: create.require_dpop,
        jwks,
        jwks_uri: create.jwks_uri.clone(),
        require_par: create.require_par,
        name: create.name.clone(),
    };
    Ok((record, secret))
}

/// `client create`: prints `{"client_id", "client_secret"}`; the secret is shown this once.
pub async fn client_create(store: &SqlStore, create: &ClientCreate) -> Result<()> {
    let stdin_secret = if create.secret_stdin {
        Some(read_stdin_line("client secret")?)
    } else {
        None
    };
    let (record, secret) = client_record(create, stdin_secret)?;
    store
        .create_client(&record, now())
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
    })
}

/// `client list`: a JSON array of what `client show` prints, by client id.
pub async fn client_list(store: &SqlStore) -> Result<()> {
    let clients = store.list_clients().await.context("listing the clients")?;
    let listed: Vec<_> = clients.iter().map(client_json).collect();
    println!("{}", serde_json::Value::Array(listed));
    Ok(())
}

/// `client show ID`.
pub async fn client_show(store: &SqlStore, client_id: &str) -> Result<()> {
    let client = store
        .find_client(client_id)
        .await
        .context("looking the client up")?
        .with_context(|| format!("no client {client_id:?}"))?;
    println!("{}", client_json(&client));
    Ok(())
}

/// `client delete ID`: the client and everything it owns go; its tokens are inactive from now on (running
/// servers forget it within `--config-poll-ms`). Prints `{"client_id": …, "deleted": true}`.
pub async fn client_delete(store: &SqlStore, client_id: &str) -> Result<()> {
    if !store
        .delete_client(client_id, now())
        .await
        .context("deleting the client")?
    {
        bail!("no client {client_id:?}");
    }
    tracing::info!(target: "audit", event = "client_deleted", client_id = %client_id, outcome = "deleted", "client deleted");
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
pub async fn user_list(store: &SqlStore) -> Result<()> {
    let users = store.list_users().await.context("listing the users")?;
    let listed: Vec<_> = users.iter().map(user_json).collect();
    println!("{}", serde_json::Value::Array(listed));
    Ok(())
}

/// `user delete NAME`: the user, its sessions, consent and grants go. Prints `{"username": …, "deleted": true}`.
pub async fn user_delete(store: &SqlStore, username: &str) -> Result<()> {
    if !store
        .delete_user(username)
        .await
        .context("deleting the user")?
    {
        bail!("no user named {username:?}");
    }
    tracing::info!(target: "audit", event = "user_deleted", username = %username, outcome = "deleted", "user deleted");
    println!(
        "{}",
        serde_json::json!({ "username": username, "deleted": true })
    );
    Ok(())
}

/// `user set-password NAME --password-stdin`: a new password; the user's sessions end and its grants are
/// revoked (whoever knew the old password may hold them). Prints `{"username": …, "grants_revoked": N}`.
pub async fn user_set_password(store: &SqlStore, username: &str) -> Result<()> {
    if store
        .find_user_by_username(username)
        .await
        .context("looking the user up")?
        .is_none()
    {
        bail!("no user named {username:?}");
    }
    let password_hash = password_hash_from_stdin().await?;
    let revoked = store
        .set_password(username, &password_hash, now())
        .await
        .context("storing the password")?
        .with_context(|| format!("no user named {username:?}"))?;
    tracing::info!(target: "audit", event = "password_changed", username = %username, grants_revoked = revoked, outcome = "changed", "password set");
    println!(
        "{}",
        serde_json::json!({ "username": username, "grants_revoked": revoked })
    );
    Ok(())
}

/// `user create`: the password comes from stdin, never the command line.
pub async fn user_create(store: &SqlStore, create: &UserCreate) -> Result<()> {
    if !crate::login::is_possible_username(&create.username) {
        bail!(
            "--username must be 1 to {} bytes without control characters",
            crate::login::MAX_USERNAME_BYTES
        );
    }
    if let Some(email) = &create.email
        && (email.is_empty()
            || email.len() > 254
            || email.chars().any(char::is_control)
            || !email.contains('@'))
    {
        bail!("--email must be an address (user@host) of at most 254 bytes");
    }
    if create.name.as_ref().is_some_and(|name| {
        name.is_empty() || name.len() > 255 || name.chars().any(char::is_control)
    }) {
        bail!("--name must be 1 to 255 bytes without control characters");
    }
    let password_hash = password_hash_from_stdin().await?;
    let user = UserRecord {
        user_id: uuid::Uuid::new_v4().to_string(),
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
pub async fn consent_revoke(store: &SqlStore, revoke: &ConsentRevoke) -> Result<()> {
    let user = store
        .find_user_by_username(&revoke.user)
        .await
        .context("looking the user up")?
        .with_context(|| format!("no user named {:?}", revoke.user))?;
    store
        .find_client(&revoke.client)
        .await
        .context("looking the client up")?
        .with_context(|| format!("no client {:?}", revoke.client))?;
    let (removed, revoked) = store
        .withdraw_consent(&user.user_id, &revoke.client, now())
        .await
        .context("withdrawing the consent")?;
    tracing::info!(target: "audit", event = "consent_revoked", user = %user.user_id, client_id = %revoke.client, grants_revoked = revoked, outcome = "revoked", "consent withdrawn");
    println!(
        "{}",
        serde_json::json!({ "user": revoke.user, "client_id": revoke.client, "consent_removed": removed, "grants_revoked": revoked })
    );
    Ok(())
}

/// `keys rotate`: the new key is published at once and signs after `activate_after` seconds.
pub async fn keys_rotate(
    store: &SqlStore,
    rotate: &KeysRotate,
    kek: Option<&KeyEncryptionKey>,
) -> Result<()> {
    let created_at = now();
    let active_from = created_at
        + i64::try_from(rotate.activate_after).context("--activate-after is too large")?;
    let key = SigningKey::generate(rotate.signing_alg).context("generating the key")?;
    store
        .insert_key(&stored_form(&key, kek, created_at, active_from)?)
        .await
        .context("storing the key")?;
    tracing::info!(target: "audit", event = "key_rotation", kid = key.kid(), alg = %rotate.signing_alg, active_from, outcome = "created", "signing key rotated");
    println!(
        "{}",
        serde_json::json!({ "kid": key.kid(), "alg": rotate.signing_alg.as_str(), "active_from": active_from })
    );
    Ok(())
}

/// `keys seal`: every signing key and server secret stored in the clear is sealed; prints `{"sealed": N}`.
pub async fn keys_seal(store: &SqlStore, kek: &KeyEncryptionKey) -> Result<()> {
    let keys = crate::keyring::seal_stored_keys(store, kek)
        .await
        .context("sealing the signing keys")?;
    let secrets = crate::server_secrets::seal_stored_secrets(store, kek)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn create(grants: &[&str], uris: &[&str], public: bool) -> ClientCreate {
        ClientCreate {
            client_id: "app".into(),
            public,
            secret_stdin: false,
            grant_types: grants.iter().map(|g| g.to_string()).collect(),
            redirect_uris: uris.iter().map(|u| u.to_string()).collect(),
            scope: "read write".into(),
            audiences: vec![],
            skip_consent: false,
            introspection: false,
            post_logout_redirect_uris: vec![],
            require_dpop: false,
            jwks_file: None,
            jwks_uri: None,
            require_par: false,
            name: None,
        }
    }

    #[test]
    fn a_jwks_file_with_private_members_is_refused_and_a_public_one_makes_no_secret() {
        let dir = std::env::temp_dir().join(format!("jwks-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = SigningKey::generate(auth_core::keys::SigningAlgorithm::Es256).unwrap();
        let public = serde_json::json!({ "keys": [key.public_jwk()] });
        let mut private = public.clone();
        private["keys"][0]["d"] = serde_json::json!("AAAA");
        let write = |name: &str, value: &serde_json::Value| {
            let path = dir.join(name);
            std::fs::write(&path, value.to_string()).unwrap();
            path
        };
        let mut client = create(&["client_credentials"], &[], false);
        client.jwks_file = Some(write("private.json", &private));
        let refused = client_record(&client, None).unwrap_err().to_string();
        assert!(refused.contains("private members"), "{refused}");
        client.jwks_file = Some(write("public.json", &public));
        let (record, secret) = client_record(&client, None).unwrap();
        assert!(secret.is_none() && record.secret_digest.is_none());
        assert!(record.uses_private_key_jwt() && !record.is_public);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn redirect_uris_are_stored_as_url_parsing_serializes_them() {
        assert_eq!(normalize_redirect_uri("http://h:9").unwrap(), "http://h:9/");
        assert_eq!(
            normalize_redirect_uri("HTTP://Example.COM/cb?x=1").unwrap(),
            "http://example.com/cb?x=1"
        );
        assert!(normalize_redirect_uri("http://h/cb#frag").is_err());
        assert!(normalize_redirect_uri("/relative").is_err());
        assert!(normalize_redirect_uri("mailto:a@b").is_err());
        for scheme in [
            "javascript://x/%0aalert(1)",
            "data://x/text",
            "file:///etc/passwd",
            "blob://x/y",
            "vbscript://x/y",
        ] {
            assert!(normalize_redirect_uri(scheme).is_err(), "{scheme}");
        }
        assert!(normalize_redirect_uri("com.example.app:/oauth2redirect").is_ok());
    }

    #[test]
    fn introspection_is_for_confidential_clients_and_needs_no_grant() {
        let resource_server = ClientCreate {
            introspection: true,
            ..create(&[], &[], false)
        };
        let (record, secret) = client_record(&resource_server, None).unwrap();
        assert!(record.introspection && record.grant_types.is_empty());
        assert!(secret.is_some());
        let nothing = client_record(&create(&[], &[], false), None).unwrap_err();
        assert!(nothing.to_string().contains("--introspection"), "{nothing}");
        let public = ClientCreate {
            introspection: true,
            ..create(&["authorization_code"], &["http://h/cb"], true)
        };
        assert!(client_record(&public, None).is_err());
        let (ordinary, _) =
            client_record(&create(&["client_credentials"], &[], false), None).unwrap();
        assert!(!ordinary.introspection, "not by default");
    }

    #[test]
    fn generated_secrets_are_256_bits_and_stored_as_digests() {
        let (record, secret) =
            client_record(&create(&["client_credentials"], &[], false), None).unwrap();
        let secret = secret.unwrap();
        assert_eq!(secret.len(), 43);
        assert!(record.secret_digest.unwrap().matches(&secret));
    }

    #[test]
    fn a_given_secret_must_be_at_least_32_characters() {
        let machine = create(&["client_credentials"], &[], false);
        let short = client_record(&machine, Some("x".repeat(31)));
        assert!(short.unwrap_err().to_string().contains("at least 32"));
        let (record, secret) = client_record(&machine, Some("é".repeat(32))).unwrap();
        assert!(record.secret_digest.unwrap().matches(&secret.unwrap()));
    }

    #[test]
    fn ids_that_could_not_be_looked_up_are_refused() {
        for id in ["", "a b", "a:b", "nul\0", &"x".repeat(256)] {
            let mut spec = create(&["client_credentials"], &[], false);
            spec.client_id = id.into();
            assert!(client_record(&spec, None).is_err(), "{id:?}");
        }
    }

    #[test]
    fn inconsistent_clients_are_refused() {
        assert!(
            client_record(&create(&["client_credentials"], &[], true), None).is_err(),
            "public + client_credentials"
        );
        assert!(
            client_record(&create(&["authorization_code"], &[], false), None).is_err(),
            "code without redirect URI"
        );
        let (public, secret) = client_record(
            &create(&["authorization_code"], &["http://a/cb"], true),
            None,
        )
        .unwrap();
        assert!(public.secret_digest.is_none() && secret.is_none());
    }
}
