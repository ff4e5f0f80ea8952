//! `RegistrationStore` in SQL: dynamic clients (RFC 7591, RFC 7592) and initial access tokens.

use std::str::FromStr;

use async_trait::async_trait;
use auth_core::id::ClientId;
use auth_core::secret::SecretDigest;
use auth_core::wire::GrantType;
use sqlx::Row;

use super::clients::{
    CLIENT_COLUMNS, INSERT_DYNAMIC_CLIENT, RECORD_DELETED_CLIENT, UPSERT_DOCUMENT_CLIENT,
    bind_client, client_from_row,
};
use super::{BUMP_CONFIG_VERSION, Backend, LOCK_CONFIG_VERSION, SqlStore, digest, scope, words};
use crate::store::{
    ClientRecord, DynamicRegistration, RegistrationRefused, RegistrationStore, StoreError,
};

/// The seconds in which a source's registrations count against its daily share.
const DAY_SECONDS: i64 = 86_400;

#[async_trait]
impl RegistrationStore for SqlStore {
    async fn create_initial_token(
        &self,
        token: &SecretDigest,
        expires_at: i64,
        max_uses: u32,
        now: i64,
    ) -> Result<(), StoreError> {
        on_backend!(self, pool => {
            sqlx::query(
                "insert into initial_access_token (token_digest, expires_at, max_uses, uses, created_at) \
                 values ($1, $2, $3, 0, $4)",
            )
            .bind(token.to_hex())
            .bind(expires_at)
            .bind(i64::from(max_uses))
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn initial_token_usable(
        &self,
        token: &SecretDigest,
        now: i64,
    ) -> Result<bool, StoreError> {
        let found: i64 = on_backend!(self, pool => {
            sqlx::query_scalar(
                "select count(*) from initial_access_token where token_digest = $1 and expires_at > $2 \
                 and uses < max_uses",
            )
            .bind(token.to_hex())
            .bind(now)
            .fetch_one(pool)
            .await?
        });
        Ok(found > 0)
    }

    async fn register_client(
        &self,
        client: &ClientRecord,
        registration: &DynamicRegistration,
        initial_token: Option<&SecretDigest>,
        max_clients: u64,
        source_daily: Option<u64>,
        now: i64,
    ) -> Result<Result<(), RegistrationRefused>, StoreError> {
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            // Registrations queue here: the caps below are counted with nobody inserting meanwhile.
            sqlx::query(LOCK_CONFIG_VERSION).execute(&mut *tx).await?;
            if let Some(token) = initial_token {
                // The use is spent in the transaction that stores the client: only a 201 spends one, and
                // of concurrent registrations with the last use exactly one gets it.
                let spent = sqlx::query(
                    "update initial_access_token set uses = uses + 1 \
                     where token_digest = $1 and expires_at > $2 and uses < max_uses",
                )
                .bind(token.to_hex())
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if spent == 0 {
                    return Ok(Err(RegistrationRefused::InitialToken));
                }
            }
            let dynamic: i64 = sqlx::query_scalar("select count(*) from client where registered = 'dynamic'")
                .fetch_one(&mut *tx)
                .await?;
            if u64::try_from(dynamic).unwrap_or(0) >= max_clients {
                return Ok(Err(RegistrationRefused::Full));
            }
            if let Some(share) = source_daily {
                let by_source: i64 = sqlx::query_scalar(
                    "select count(*) from client where registered = 'dynamic' and registration_source = $1 \
                     and created_at > $2",
                )
                .bind(&registration.source)
                .bind(now - DAY_SECONDS)
                .fetch_one(&mut *tx)
                .await?;
                if u64::try_from(by_source).unwrap_or(0) >= share {
                    return Ok(Err(RegistrationRefused::SourceShare));
                }
            }
            bind_client!(sqlx::query(INSERT_DYNAMIC_CLIENT), client, now)
                .bind(registration.token_digest.to_hex())
                .bind(&registration.metadata)
                .bind(&registration.source)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        Ok(Ok(()))
    }

    async fn find_registration(
        &self,
        client_id: &ClientId,
    ) -> Result<Option<(ClientRecord, DynamicRegistration)>, StoreError> {
        on_backend!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "select {CLIENT_COLUMNS}, registration_token_digest, registration_metadata, registration_source \
                 from client where client_id = $1 and registered = 'dynamic'"
            )))
            .bind(client_id.as_str())
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let client = client_from_row!(&row);
            let token: Option<String> = row.try_get("registration_token_digest")?;
            let registration = DynamicRegistration {
                token_digest: digest(
                    token.as_deref().unwrap_or_default(),
                    "registration access token",
                )?,
                metadata: row
                    .try_get::<Option<String>, _>("registration_metadata")?
                    .unwrap_or_else(|| "{}".into()),
                source: row
                    .try_get::<Option<String>, _>("registration_source")?
                    .unwrap_or_default(),
            };
            Ok(Some((client, registration)))
        })
    }

    async fn update_registration(
        &self,
        client: &ClientRecord,
        registration: &DynamicRegistration,
        expected: &SecretDigest,
        now: i64,
    ) -> Result<bool, StoreError> {
        let grant_types = client
            .grant_types
            .iter()
            .map(|grant| grant.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(LOCK_CONFIG_VERSION).execute(&mut *tx).await?;
            let updated = sqlx::query(
                "update client set secret_digest = $2, grant_types = $3, redirect_uris = $4, scope = $5, \
                 post_logout_redirect_uris = $6, require_dpop = $7, jwks = $8, jwks_uri = $9, name = $10, \
                 id_token_signed_response_alg = $11, registration_token_digest = $12, registration_metadata = $13, \
                 updated_at = $14, exchange_audiences = $16, backchannel_logout_uri = $17 \
                 where client_id = $1 and registered = 'dynamic' and registration_token_digest = $15",
            )
            .bind(client.client_id.as_str())
            .bind(client.secret_digest.map(|digest| digest.to_hex()))
            .bind(&grant_types)
            .bind(client.redirect_uris.join(" "))
            .bind(client.scope.to_string())
            .bind(client.post_logout_redirect_uris.join(" "))
            .bind(client.require_dpop)
            .bind(&client.jwks)
            .bind(&client.jwks_uri)
            .bind(&client.name)
            .bind(client.id_token_signed_response_alg.map(|alg| alg.as_str()))
            .bind(registration.token_digest.to_hex())
            .bind(&registration.metadata)
            .bind(now)
            .bind(expected.to_hex())
            .bind(client.exchange_audiences.join(" "))
            .bind(&client.backchannel_logout_uri)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if updated {
                // Replicas drop their cached record of it.
                sqlx::query(BUMP_CONFIG_VERSION).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(updated)
        })
    }

    async fn delete_registration(
        &self,
        client_id: &ClientId,
        expected: &SecretDigest,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.delete_client_by(
            "delete from client where client_id = $1 and registered = 'dynamic' \
             and registration_token_digest = $2",
            client_id,
            Some(expected.to_hex()),
            now,
        )
        .await
    }

    async fn upsert_document_client(
        &self,
        client: &ClientRecord,
        refuse_for: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            // The lock first, as `client delete` takes it: a deletion is either seen here or waits for this.
            sqlx::query(LOCK_CONFIG_VERSION).execute(&mut *tx).await?;
            let deleted_at: Option<i64> =
                sqlx::query_scalar("select deleted_at from deleted_client where client_id = $1")
                    .bind(client.client_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            if deleted_at.is_some_and(|at| now - at < refuse_for) {
                let exists: i64 = sqlx::query_scalar("select count(*) from client where client_id = $1")
                    .bind(client.client_id.as_str())
                    .fetch_one(&mut *tx)
                    .await?;
                if exists == 0 {
                    return Ok(false);
                }
            }
            bind_client!(sqlx::query(UPSERT_DOCUMENT_CLIENT), client, now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    async fn record_dynamic_issuance(
        &self,
        client_id: &ClientId,
        now: i64,
    ) -> Result<(), StoreError> {
        on_backend!(self, pool => {
            sqlx::query(
                "update client set last_issued_at = $2 where client_id = $1 \
                 and registered in ('dynamic', 'document')",
            )
            .bind(client_id.as_str())
            .bind(now)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    async fn delete_idle_clients(
        &self,
        before: i64,
        limit: u32,
        now: i64,
    ) -> Result<Vec<ClientId>, StoreError> {
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(LOCK_CONFIG_VERSION).execute(&mut *tx).await?;
            // The condition is on the deleting statement itself, so a row that an issuance updated meanwhile
            // is re-checked (PostgreSQL re-evaluates it on the new row version) and kept.
            let deleted: Vec<(String, String)> = sqlx::query_as(
                "delete from client where registered in ('dynamic', 'document') \
                 and coalesce(last_issued_at, created_at) < $1 \
                 and client_id in (select client_id from client where registered in ('dynamic', 'document') \
                 and coalesce(last_issued_at, created_at) < $1 order by client_id limit $2) \
                 returning client_id, registered",
            )
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
            // A document's client is not remembered as deleted: its document may register it again at once.
            for (client_id, registered) in &deleted {
                if registered == "dynamic" {
                    sqlx::query(RECORD_DELETED_CLIENT)
                        .bind(client_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            if !deleted.is_empty() {
                sqlx::query(BUMP_CONFIG_VERSION).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(deleted
                .into_iter()
                .map(|(client_id, _)| ClientId::from_trusted(client_id))
                .collect())
        })
    }
}
