//! `JtiStore` in SQL: the ledger of single-use values, written in batches.

use async_trait::async_trait;
use auth_core::secret::SecretDigest;

use super::{Backend, SqlStore};
use crate::store::{JtiStore, StoreError};

#[async_trait]
impl JtiStore for SqlStore {
    async fn first_uses(&self, items: &[(SecretDigest, i64)]) -> Result<Vec<bool>, StoreError> {
        // The primary key decides: of concurrent inserts at any replica exactly one adds the row. One
        // statement (PostgreSQL) or one transaction (SQLite) for the batch: one commit for all of them.
        let digests: Vec<String> = items.iter().map(|(digest, _)| digest.to_hex()).collect();
        let expiries: Vec<i64> = items.iter().map(|(_, expires_at)| *expires_at).collect();
        let added: std::collections::HashSet<String> = match &self.backend {
            Backend::Postgres(pool) => sqlx::query_scalar::<_, String>(
                "insert into used_jti (digest, expires_at) \
                 select * from unnest($1::text[], $2::bigint[]) on conflict (digest) do nothing returning digest",
            )
            .bind(&digests)
            .bind(&expiries)
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect(),
            Backend::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let mut added = std::collections::HashSet::new();
                for (digest, expires_at) in digests.iter().zip(&expiries) {
                    let rows = sqlx::query(
                        "insert into used_jti (digest, expires_at) values ($1, $2) on conflict (digest) do nothing",
                    )
                    .bind(digest)
                    .bind(expires_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if rows == 1 {
                        added.insert(digest.clone());
                    }
                }
                tx.commit().await?;
                added
            }
        };
        // A digest twice in one batch was added once: only its first occurrence is a first use.
        let mut seen = std::collections::HashSet::new();
        Ok(digests
            .into_iter()
            .map(|digest| added.contains(&digest) && seen.insert(digest))
            .collect())
    }
}
