//! `ClientStore` in SQL.

use std::str::FromStr;

use auth_core::wire::GrantType;

use async_trait::async_trait;
use auth_core::id::ClientId;
use sqlx::Row;

use super::{BUMP_CONFIG_VERSION, LOCK_CONFIG_VERSION, digest, scope, unique_violation, words};
use super::{Backend, SqlStore};
use crate::store::StoreError;
use auth_core::scope::ScopeSet;

use crate::store::{ClientRecord, ClientStore, StoredKey};

/// The columns `client_from_row!` reads.
pub(super) const CLIENT_COLUMNS: &str = "client_id, secret_digest, is_public, grant_types, redirect_uris, scope, audiences, \
    skip_consent, introspection, post_logout_redirect_uris, require_dpop, jwks, jwks_uri, require_par, name, \
    id_token_signed_response_alg, registered, exchange_audiences, backchannel_logout_uri";

/// Stores a new client of the operator: `bind_client!` binds $1–$19.
pub(super) const INSERT_CLIENT: &str = "insert into client (client_id, secret_digest, is_public, grant_types, \
    redirect_uris, scope, audiences, skip_consent, introspection, post_logout_redirect_uris, require_dpop, jwks, \
    jwks_uri, require_par, name, id_token_signed_response_alg, exchange_audiences, backchannel_logout_uri, \
    created_at, updated_at) \
    values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $19)";

/// Stores a new dynamic client: `bind_client!` binds $1–$19, then its registration token digest, metadata and
/// source ($20–$22).
pub(super) const INSERT_DYNAMIC_CLIENT: &str = "insert into client (client_id, secret_digest, is_public, grant_types, \
    redirect_uris, scope, audiences, skip_consent, introspection, post_logout_redirect_uris, require_dpop, jwks, \
    jwks_uri, require_par, name, id_token_signed_response_alg, exchange_audiences, backchannel_logout_uri, \
    created_at, updated_at, registered, registration_token_digest, registration_metadata, registration_source) \
    values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $19, \
    'dynamic', $20, $21, $22)";

/// Stores a document's client, or replaces it when it is a document's client (`bind_client!` binds $1–$19).
pub(super) const UPSERT_DOCUMENT_CLIENT: &str = "insert into client (client_id, secret_digest, is_public, \
    grant_types, redirect_uris, scope, audiences, skip_consent, introspection, post_logout_redirect_uris, \
    require_dpop, jwks, jwks_uri, require_par, name, id_token_signed_response_alg, exchange_audiences, \
    backchannel_logout_uri, created_at, updated_at, registered) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
    $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $19, 'document') on conflict (client_id) do update set secret_digest = excluded.secret_digest, \
    is_public = excluded.is_public, grant_types = excluded.grant_types, redirect_uris = excluded.redirect_uris, \
    scope = excluded.scope, audiences = excluded.audiences, post_logout_redirect_uris = \
    excluded.post_logout_redirect_uris, require_dpop = excluded.require_dpop, jwks = excluded.jwks, \
    jwks_uri = excluded.jwks_uri, name = excluded.name, id_token_signed_response_alg = \
    excluded.id_token_signed_response_alg, exchange_audiences = excluded.exchange_audiences, \
    backchannel_logout_uri = excluded.backchannel_logout_uri, updated_at = excluded.updated_at \
    where client.registered = 'document'";

/// Changes a client in place (its tokens stay valid): `bind_client!` binds $1–$19. The operator's file
/// declares it, so it is the operator's from now on, whoever registered the id first (a metadata document
/// can then never refresh it).
pub(super) const UPDATE_CLIENT: &str = "update client set secret_digest = $2, is_public = $3, grant_types = $4, \
    redirect_uris = $5, scope = $6, audiences = $7, skip_consent = $8, introspection = $9, \
    post_logout_redirect_uris = $10, require_dpop = $11, jwks = $12, jwks_uri = $13, require_par = $14, \
    name = $15, id_token_signed_response_alg = $16, exchange_audiences = $17, backchannel_logout_uri = $18, \
    updated_at = $19, registered = 'operator', \
    registration_token_digest = null, registration_metadata = null, registration_source = null \
    where client_id = $1";

/// The first key of its algorithm, unless one exists: `bind_first_key!` binds $1–$5.
pub(super) const INSERT_FIRST_KEY: &str = "insert into signing_key (kid, alg, private_key, encrypted, created_at, \
    active_from) select $1, $2, $3, $4, $5, $5 where not exists (select 1 from signing_key where alg = $2)";

/// Deletes a client ($1); families, codes, refresh tokens, consent and pushed requests go with it (on delete
/// cascade).
pub(super) const DELETE_CLIENT: &str = "delete from client where client_id = $1";

/// Remembers when a client id was deleted ($1, at $2): tokens issued before stay inactive even if the id is
/// registered again.
pub(super) const RECORD_DELETED_CLIENT: &str = "insert into deleted_client (client_id, deleted_at) values ($1, $2) \
    on conflict (client_id) do update set deleted_at = excluded.deleted_at";

/// Binds a client's columns in the order of [`INSERT_CLIENT`] and [`UPDATE_CLIENT`], then `now`.
macro_rules! bind_client {
    ($query:expr, $client:expr, $now:expr) => {{
        let client: &ClientRecord = $client;
        $query
            .bind(client.client_id.as_str())
            .bind(client.secret_digest.map(|digest| digest.to_hex()))
            .bind(client.is_public)
            .bind(
                client
                    .grant_types
                    .iter()
                    .map(|grant| grant.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            )
            .bind(client.redirect_uris.join(" "))
            .bind(client.scope.to_string())
            .bind(client.audiences.join(" "))
            .bind(client.skip_consent)
            .bind(client.introspection)
            .bind(client.post_logout_redirect_uris.join(" "))
            .bind(client.require_dpop)
            .bind(client.jwks.clone())
            .bind(client.jwks_uri.clone())
            .bind(client.require_par)
            .bind(client.name.clone())
            .bind(client.id_token_signed_response_alg.map(|alg| alg.as_str()))
            .bind(client.exchange_audiences.join(" "))
            .bind(client.backchannel_logout_uri.clone())
            .bind($now)
    }};
}
pub(super) use bind_client;

/// Binds a key in the order of [`INSERT_FIRST_KEY`].
macro_rules! bind_first_key {
    ($query:expr, $key:expr) => {{
        let key: &StoredKey = $key;
        $query
            .bind(key.kid.clone())
            .bind(key.alg.as_str())
            .bind(key.private_key.clone())
            .bind(key.encrypted)
            .bind(key.created_at)
    }};
}
pub(super) use bind_first_key;

macro_rules! client_from_row {
    ($row:expr) => {{
        let row = $row;
        let secret: Option<String> = row.try_get("secret_digest")?;
        let grant_types: String = row.try_get("grant_types")?;
        ClientRecord {
            client_id: ClientId::from_trusted(row.try_get::<String, _>("client_id")?),
            secret_digest: secret
                .map(|text| digest(&text, "client secret"))
                .transpose()?,
            is_public: row.try_get("is_public")?,
            grant_types: words(&grant_types)
                .iter()
                .map(|grant| {
                    GrantType::from_str(grant)
                        .map_err(|_| StoreError::Corrupt("client grant types"))
                })
                .collect::<Result<_, _>>()?,
            redirect_uris: words(&row.try_get::<String, _>("redirect_uris")?),
            scope: scope(&row.try_get::<String, _>("scope")?, "client scope")?,
            audiences: words(&row.try_get::<String, _>("audiences")?),
            skip_consent: row.try_get("skip_consent")?,
            introspection: row.try_get("introspection")?,
            post_logout_redirect_uris: words(
                &row.try_get::<String, _>("post_logout_redirect_uris")?,
            ),
            require_dpop: row.try_get("require_dpop")?,
            jwks: row.try_get("jwks")?,
            jwks_uri: row.try_get("jwks_uri")?,
            require_par: row.try_get("require_par")?,
            name: row.try_get("name")?,
            id_token_signed_response_alg: row
                .try_get::<Option<String>, _>("id_token_signed_response_alg")?
                .map(|alg| {
                    alg.parse()
                        .map_err(|_| StoreError::Corrupt("client id_token_signed_response_alg"))
                })
                .transpose()?,
            registered: crate::store::Registered::parse(&row.try_get::<String, _>("registered")?)
                .ok_or(StoreError::Corrupt("client registered"))?,
            exchange_audiences: words(&row.try_get::<String, _>("exchange_audiences")?),
            backchannel_logout_uri: row.try_get("backchannel_logout_uri")?,
        }
    }};
}
pub(super) use client_from_row;

#[async_trait]
impl ClientStore for SqlStore {
    async fn create_client(
        &self,
        client: &ClientRecord,
        key: Option<&StoredKey>,
        now: i64,
    ) -> Result<(), StoreError> {
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            // The configuration row first, as every transaction changing clients takes it.
            sqlx::query(BUMP_CONFIG_VERSION).execute(&mut *tx).await?;
            bind_client!(sqlx::query(INSERT_CLIENT), client, now)
            .execute(&mut *tx)
            .await
            .map_err(|error| unique_violation(error, "client"))?;
            if let Some(key) = key {
                // The first key of its algorithm, unless one exists: the client's ID tokens can be signed
                // from its first sign-in, at every replica once it reloads.
                bind_first_key!(sqlx::query(INSERT_FIRST_KEY), key)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    async fn id_token_algorithms(
        &self,
    ) -> Result<Vec<auth_core::keys::SigningAlgorithm>, StoreError> {
        let rows: Vec<String> = on_backend!(self, pool => {
            sqlx::query_scalar(
                "select distinct id_token_signed_response_alg from client \
                 where id_token_signed_response_alg is not null",
            )
            .fetch_all(pool)
            .await?
        });
        rows.iter()
            .map(|alg| {
                alg.parse()
                    .map_err(|_| StoreError::Corrupt("client id_token_signed_response_alg"))
            })
            .collect()
    }

    async fn registered_scopes(&self) -> Result<ScopeSet, StoreError> {
        let rows: Vec<String> = on_backend!(self, pool => {
            sqlx::query_scalar("select scope from client").fetch_all(pool).await?
        });
        let mut all: Vec<String> = Vec::new();
        for text in rows {
            all.extend(scope(&text, "client scope")?.iter().map(str::to_owned));
        }
        ScopeSet::from_tokens(all).map_err(|_| StoreError::Corrupt("client scope"))
    }

    async fn find_client(&self, client_id: &ClientId) -> Result<Option<ClientRecord>, StoreError> {
        on_backend!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "select {CLIENT_COLUMNS} from client where client_id = $1"
            )))
            .bind(client_id.as_str())
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                Some(row) => Some(client_from_row!(&row)),
                None => None,
            })
        })
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError> {
        on_backend!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "select {CLIENT_COLUMNS} from client order by client_id"
            )))
            .fetch_all(pool)
            .await?;
            let mut clients = Vec::with_capacity(rows.len());
            for row in &rows {
                clients.push(client_from_row!(row));
            }
            Ok(clients)
        })
    }

    async fn delete_client(&self, client_id: &ClientId, now: i64) -> Result<bool, StoreError> {
        self.delete_client_by(DELETE_CLIENT, client_id, None, now)
            .await
    }
}

impl SqlStore {
    /// The one way a client is deleted (`client delete`, RFC 7592 DELETE): under the configuration lock,
    /// `statement` deletes it ($1 the id, $2 `condition` when given); when it did, the id is remembered as
    /// deleted (its earlier tokens stay inactive) and the replicas drop their caches.
    pub(super) async fn delete_client_by(
        &self,
        statement: &'static str,
        client_id: &ClientId,
        condition: Option<String>,
        now: i64,
    ) -> Result<bool, StoreError> {
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(LOCK_CONFIG_VERSION).execute(&mut *tx).await?;
            // Families, codes, refresh tokens, consent and pushed requests go with it (on delete cascade).
            let mut delete = sqlx::query(statement).bind(client_id.as_str());
            if let Some(condition) = condition {
                delete = delete.bind(condition);
            }
            let deleted = delete.execute(&mut *tx).await?.rows_affected() > 0;
            if deleted {
                sqlx::query(RECORD_DELETED_CLIENT)
                    .bind(client_id.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(BUMP_CONFIG_VERSION).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(deleted)
        })
    }
}
