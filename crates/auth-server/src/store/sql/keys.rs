//! `KeyStore` in SQL: signing keys.

use std::str::FromStr;

use auth_core::keys::SigningAlgorithm;

use async_trait::async_trait;
use sqlx::Row;

use super::{BUMP_CONFIG_VERSION, unique_violation};
use super::{Backend, SqlStore};
use crate::store::StoreError;
use crate::store::{KeyStore, StoredKey, StoredSecret};

fn secret_from_row<R: Row>(row: &R) -> Result<StoredSecret, sqlx::Error>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(StoredSecret {
        name: row.try_get("name")?,
        secret: row.try_get("secret")?,
        encrypted: row.try_get("encrypted")?,
        created_at: row.try_get("created_at")?,
    })
}

#[async_trait]
impl KeyStore for SqlStore {
    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "insert into signing_key (kid, alg, private_key, encrypted, created_at, active_from) \
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&key.kid)
            .bind(key.alg.as_str())
            .bind(&key.private_key)
            .bind(key.encrypted)
            .bind(key.created_at)
            .bind(key.active_from)
            .execute(&mut *tx)
            .await
            .map_err(|error| unique_violation(error, "signing key"))?;
            sqlx::query(BUMP_CONFIG_VERSION).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    async fn seal_key(&self, kid: &str, sealed: &[u8]) -> Result<bool, StoreError> {
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            // Only a row still in the clear: a replica that sealed it first wins, and nothing is sealed twice.
            let sealed = sqlx::query(
                "update signing_key set private_key = $1, encrypted = $2 where kid = $3 and encrypted = $4",
            )
            .bind(sealed)
            .bind(true)
            .bind(kid)
            .bind(false)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if sealed {
                sqlx::query(BUMP_CONFIG_VERSION).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(sealed)
        })
    }

    async fn server_secret(&self, candidate: &StoredSecret) -> Result<StoredSecret, StoreError> {
        on_backend!(self, pool => {
            sqlx::query(
                "insert into server_secret (name, secret, encrypted, created_at) values ($1, $2, $3, $4) \
                 on conflict (name) do nothing",
            )
            .bind(&candidate.name)
            .bind(&candidate.secret)
            .bind(candidate.encrypted)
            .bind(candidate.created_at)
            .execute(pool)
            .await?;
            let row = sqlx::query("select name, secret, encrypted, created_at from server_secret where name = $1")
                .bind(&candidate.name)
                .fetch_one(pool)
                .await?;
            Ok(secret_from_row(&row)?)
        })
    }

    async fn list_server_secrets(&self) -> Result<Vec<StoredSecret>, StoreError> {
        on_backend!(self, pool => {
            let rows = sqlx::query("select name, secret, encrypted, created_at from server_secret order by name")
                .fetch_all(pool)
                .await?;
            let mut secrets = Vec::with_capacity(rows.len());
            for row in &rows {
                secrets.push(secret_from_row(row)?);
            }
            Ok(secrets)
        })
    }

    async fn seal_server_secret(&self, name: &str, sealed: &[u8]) -> Result<bool, StoreError> {
        on_backend!(self, pool => {
            Ok(sqlx::query("update server_secret set secret = $1, encrypted = $2 where name = $3 and encrypted = $4")
                .bind(sealed)
                .bind(true)
                .bind(name)
                .bind(false)
                .execute(pool)
                .await?
                .rows_affected()
                == 1)
        })
    }

    async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        on_backend!(self, pool => {
            let rows = sqlx::query(
                "select signing_key_id, kid, alg, private_key, encrypted, created_at, active_from from signing_key \
                 order by active_from, signing_key_id",
            )
            .fetch_all(pool)
            .await?;
            let mut keys = Vec::with_capacity(rows.len());
            for row in rows {
                let alg: String = row.try_get("alg")?;
                keys.push(StoredKey {
                    kid: row.try_get("kid")?,
                    alg: SigningAlgorithm::from_str(&alg).map_err(|_| StoreError::Corrupt("signing key algorithm"))?,
                    private_key: row.try_get("private_key")?,
                    encrypted: row.try_get("encrypted")?,
                    created_at: row.try_get("created_at")?,
                    active_from: row.try_get("active_from")?,
                    sequence: row.try_get("signing_key_id")?,
                });
            }
            Ok(keys)
        })
    }
}
