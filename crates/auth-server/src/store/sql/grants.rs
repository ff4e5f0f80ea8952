//! `GrantStore` in SQL: codes, refresh-token families, revocations, purging.

use auth_core::secret::SecretDigest;

use async_trait::async_trait;
use sqlx::Row;

use super::{Backend, SqlStore};
use super::{PURGE_STATEMENTS, digest, scope};
use crate::store::StoreError;
use crate::store::{
    Authorization, AuthorizationCodeRecord, CodeExchange, GrantStore, IssuedAccessToken,
    RefreshTokenRecord, Rotation,
};

macro_rules! authorization_from_row {
    ($row:expr) => {{
        let row = $row;
        Authorization {
            family_id: row.try_get("family_id")?,
            client_id: row.try_get("client_id")?,
            user_id: row.try_get("user_id")?,
            scope: scope(&row.try_get::<String, _>("scope")?, "grant scope")?,
            audience: row.try_get("audience")?,
            auth_time: row.try_get("auth_time")?,
        }
    }};
}

macro_rules! insert_refresh_token {
    ($executor:expr, $record:expr) => {{
        let record: &RefreshTokenRecord = $record;
        let grant = &record.authorization;
        sqlx::query(
            "insert into refresh_token (token_digest, family_id, client_id, user_id, scope, audience, auth_time, \
             created_at, expires_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(record.token_digest.to_hex())
        .bind(&grant.family_id)
        .bind(&grant.client_id)
        .bind(&grant.user_id)
        .bind(grant.scope.to_string())
        .bind(&grant.audience)
        .bind(grant.auth_time)
        .bind(record.created_at)
        .bind(record.expires_at)
        .execute($executor)
        .await?;
    }};
}

#[async_trait]
impl GrantStore for SqlStore {
    async fn create_code(
        &self,
        code: &AuthorizationCodeRecord,
        now: i64,
    ) -> Result<(), StoreError> {
        let grant = &code.authorization;
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("insert into token_family (family_id, client_id, user_id, created_at) values ($1, $2, $3, $4)")
                .bind(&grant.family_id)
                .bind(&grant.client_id)
                .bind(&grant.user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "insert into authorization_code (code_digest, family_id, client_id, user_id, redirect_uri, scope, audience, \
                 code_challenge, auth_time, expires_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(code.code_digest.to_hex())
            .bind(&grant.family_id)
            .bind(&grant.client_id)
            .bind(&grant.user_id)
            .bind(&code.redirect_uri)
            .bind(grant.scope.to_string())
            .bind(&grant.audience)
            .bind(&code.code_challenge)
            .bind(grant.auth_time)
            .bind(code.expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    async fn find_code(
        &self,
        code_digest: &SecretDigest,
    ) -> Result<Option<AuthorizationCodeRecord>, StoreError> {
        on_backend!(self, pool => {
            let row = sqlx::query(
                "select code_digest, family_id, client_id, user_id, redirect_uri, scope, audience, code_challenge, auth_time, \
                 expires_at, used_at from authorization_code where code_digest = $1",
            )
            .bind(code_digest.to_hex())
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                Some(row) => Some(AuthorizationCodeRecord {
                    code_digest: digest(&row.try_get::<String, _>("code_digest")?, "authorization code")?,
                    authorization: authorization_from_row!(&row),
                    redirect_uri: row.try_get("redirect_uri")?,
                    code_challenge: row.try_get("code_challenge")?,
                    expires_at: row.try_get("expires_at")?,
                    used_at: row.try_get("used_at")?,
                }),
                None => None,
            })
        })
    }

    async fn exchange_code(
        &self,
        code_digest: &SecretDigest,
        family_id: &str,
        now: i64,
        access_token: &IssuedAccessToken,
        refresh_token: Option<&RefreshTokenRecord>,
    ) -> Result<CodeExchange, StoreError> {
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            // Compare-and-set: only one exchange can flip used_at from null.
            let consumed = sqlx::query("update authorization_code set used_at = $1 where code_digest = $2 and used_at is null")
                .bind(now)
                .bind(code_digest.to_hex())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if consumed != 1 {
                tx.rollback().await?;
                return Ok(CodeExchange::AlreadyUsed);
            }
            sqlx::query("insert into issued_access_token (jti, family_id, expires_at) values ($1, $2, $3)")
                .bind(&access_token.jti)
                .bind(family_id)
                .bind(access_token.expires_at)
                .execute(&mut *tx)
                .await?;
            if let Some(refresh) = refresh_token {
                insert_refresh_token!(&mut *tx, refresh);
            }
            tx.commit().await?;
            Ok(CodeExchange::Exchanged)
        })
    }

    async fn find_refresh_token(
        &self,
        token_digest: &SecretDigest,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        on_backend!(self, pool => {
            let row = sqlx::query(
                "select r.token_digest, r.family_id, r.client_id, r.user_id, r.scope, r.audience, r.auth_time, r.created_at, \
                 r.expires_at, r.used_at, f.revoked_at from refresh_token r join token_family f on f.family_id = r.family_id \
                 where r.token_digest = $1",
            )
            .bind(token_digest.to_hex())
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                Some(row) => Some(RefreshTokenRecord {
                    token_digest: digest(&row.try_get::<String, _>("token_digest")?, "refresh token")?,
                    authorization: authorization_from_row!(&row),
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                    used_at: row.try_get("used_at")?,
                    family_revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
                }),
                None => None,
            })
        })
    }

    async fn rotate_refresh_token(
        &self,
        old: &SecretDigest,
        now: i64,
        access_token: &IssuedAccessToken,
        new: &RefreshTokenRecord,
    ) -> Result<Rotation, StoreError> {
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            // Compare-and-set on used_at: of concurrent rotations of one token, exactly one matches a row.
            let rotated = sqlx::query("update refresh_token set used_at = $1 where token_digest = $2 and used_at is null")
                .bind(now)
                .bind(old.to_hex())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if rotated != 1 {
                tx.rollback().await?;
                return Ok(Rotation::AlreadyUsed);
            }
            insert_refresh_token!(&mut *tx, new);
            sqlx::query("insert into issued_access_token (jti, family_id, expires_at) values ($1, $2, $3)")
                .bind(&access_token.jti)
                .bind(&new.authorization.family_id)
                .bind(access_token.expires_at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Rotation::Rotated)
        })
    }

    async fn revoke_family(&self, family_id: &str, now: i64) -> Result<(), StoreError> {
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("update token_family set revoked_at = $1 where family_id = $2 and revoked_at is null")
                .bind(now)
                .bind(family_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "insert into revoked_access_token (jti, expires_at) select jti, expires_at from issued_access_token \
                 where family_id = $1 and expires_at >= $2 on conflict (jti) do nothing",
            )
            .bind(family_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError> {
        on_backend!(self, pool => {
            sqlx::query("insert into revoked_access_token (jti, expires_at) values ($1, $2) on conflict (jti) do nothing")
                .bind(jti)
                .bind(expires_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        on_backend!(self, pool => {
            let row = sqlx::query("select 1 as hit from revoked_access_token where jti = $1")
                .bind(jti)
                .fetch_optional(pool)
                .await?;
            Ok(row.is_some())
        })
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let mut purged = 0;
        for statement in PURGE_STATEMENTS {
            purged += on_backend!(self, pool => {
                sqlx::query(statement).bind(now).execute(pool).await?.rows_affected()
            });
        }
        Ok(purged)
    }
}
