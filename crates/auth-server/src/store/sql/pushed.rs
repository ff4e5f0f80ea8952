//! `PushedRequestStore` in SQL: pushed authorization requests (RFC 9126), stored under the digest of their
//! `request_uri`.

use async_trait::async_trait;
use auth_core::id::ClientId;
use auth_core::secret::SecretDigest;
use sqlx::Row;

use super::{Backend, SqlStore};
use crate::store::{PushedRequest, PushedRequestStore, StoreError};

#[async_trait]
impl PushedRequestStore for SqlStore {
    async fn push_request(
        &self,
        digest: &SecretDigest,
        request: &PushedRequest,
        purge_before: i64,
    ) -> Result<(), StoreError> {
        on_backend!(self, pool => {
            sqlx::query("delete from pushed_request where expires_at < $1")
                .bind(purge_before)
                .execute(pool)
                .await?;
            sqlx::query("insert into pushed_request (digest, client_id, params, expires_at) values ($1, $2, $3, $4)")
                .bind(digest.to_hex())
                .bind(request.client_id.as_str())
                .bind(&request.params)
                .bind(request.expires_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn find_pushed_request(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<PushedRequest>, StoreError> {
        on_backend!(self, pool => {
            let row = sqlx::query(
                "select client_id, params, expires_at, consumed_at from pushed_request where digest = $1",
            )
            .bind(digest.to_hex())
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                Some(row) => Some(PushedRequest {
                    client_id: ClientId::from_trusted(row.try_get::<String, _>("client_id")?),
                    params: row.try_get("params")?,
                    expires_at: row.try_get("expires_at")?,
                    consumed_at: row.try_get("consumed_at")?,
                }),
                None => None,
            })
        })
    }

    async fn consume_pushed_request(
        &self,
        digest: &SecretDigest,
        now: i64,
    ) -> Result<bool, StoreError> {
        let consumed = on_backend!(self, pool => {
            sqlx::query(
                "update pushed_request set consumed_at = $2 where digest = $1 and consumed_at is null and expires_at > $2",
            )
            .bind(digest.to_hex())
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(consumed == 1)
    }
}
