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
        now: i64,
        max_unexpired: u64,
    ) -> Result<bool, StoreError> {
        let max_unexpired = i64::try_from(max_unexpired).unwrap_or(i64::MAX);
        let stored = on_backend!(self, pool => {
            sqlx::query("delete from pushed_request where expires_at < $1")
                .bind(now)
                .execute(pool)
                .await?;
            // The count and the insert are one statement: concurrent pushes near the cap may each see room
            // and pass it by a few, never by an unbounded number (each insert is one row).
            sqlx::query(
                "insert into pushed_request (digest, client_id, params, expires_at) select $1, $2, $3, $4 \
                 where (select count(*) from pushed_request where expires_at >= $5) < $6",
            )
            .bind(digest.to_hex())
            .bind(request.client_id.as_str())
            .bind(&request.params)
            .bind(request.expires_at)
            .bind(now)
            .bind(max_unexpired)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(stored == 1)
    }

    async fn bind_pushed_request(
        &self,
        digest: &SecretDigest,
        browser: &SecretDigest,
        now: i64,
        bound_until: i64,
    ) -> Result<bool, StoreError> {
        let bound = on_backend!(self, pool => {
            sqlx::query(
                "update pushed_request set browser_digest = $2, \
                 expires_at = case when browser_digest is null then $4 else expires_at end \
                 where digest = $1 and consumed_at is null and expires_at > $3 \
                 and (browser_digest is null or browser_digest = $2)",
            )
            .bind(digest.to_hex())
            .bind(browser.to_hex())
            .bind(now)
            .bind(bound_until)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(bound == 1)
    }

    async fn find_pushed_request(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<PushedRequest>, StoreError> {
        on_backend!(self, pool => {
            let row = sqlx::query(
                "select client_id, params, expires_at, consumed_at, browser_digest from pushed_request where digest = $1",
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
                    browser: row
                        .try_get::<Option<String>, _>("browser_digest")?
                        .map(|hex| super::digest(&hex, "pushed request browser"))
                        .transpose()?,
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
