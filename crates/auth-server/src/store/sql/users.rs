//! `UserStore` in SQL: users and their login sessions.

use auth_core::secret::SecretDigest;

use async_trait::async_trait;
use sqlx::Row;

use super::unique_violation;
use super::{Backend, SqlStore};
use crate::store::StoreError;
use crate::store::{UserRecord, UserStore};

macro_rules! user_from_row {
    ($row:expr) => {{
        let row = $row;
        UserRecord {
            user_id: row.try_get("user_id")?,
            username: row.try_get("username")?,
            password_hash: row.try_get("password_hash")?,
        }
    }};
}

#[async_trait]
impl UserStore for SqlStore {
    async fn create_user(&self, user: &UserRecord, now: i64) -> Result<(), StoreError> {
        on_backend!(self, pool => {
            sqlx::query("insert into app_user (user_id, username, password_hash, created_at) values ($1, $2, $3, $4)")
                .bind(&user.user_id)
                .bind(&user.username)
                .bind(&user.password_hash)
                .bind(now)
                .execute(pool)
                .await
                .map_err(|error| unique_violation(error, "user"))?;
        });
        Ok(())
    }

    async fn find_user_by_username(
        &self,
        username: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        on_backend!(self, pool => {
            let row = sqlx::query("select user_id, username, password_hash from app_user where username = $1")
                .bind(username)
                .fetch_optional(pool)
                .await?;
            Ok(match row {
                Some(row) => Some(user_from_row!(&row)),
                None => None,
            })
        })
    }

    async fn find_user(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError> {
        on_backend!(self, pool => {
            let row = sqlx::query("select user_id, username, password_hash from app_user where user_id = $1")
                .bind(user_id)
                .fetch_optional(pool)
                .await?;
            Ok(match row {
                Some(row) => Some(user_from_row!(&row)),
                None => None,
            })
        })
    }

    async fn create_session(
        &self,
        digest: &SecretDigest,
        user_id: &str,
        auth_time: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        on_backend!(self, pool => {
            sqlx::query("insert into login_session (session_digest, user_id, auth_time, expires_at) values ($1, $2, $3, $4)")
                .bind(digest.to_hex())
                .bind(user_id)
                .bind(auth_time)
                .bind(expires_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn find_session(
        &self,
        digest: &SecretDigest,
        now: i64,
    ) -> Result<Option<(String, i64)>, StoreError> {
        on_backend!(self, pool => {
            let row = sqlx::query("select user_id, auth_time from login_session where session_digest = $1 and expires_at > $2")
                .bind(digest.to_hex())
                .bind(now)
                .fetch_optional(pool)
                .await?;
            Ok(match row {
                Some(row) => Some((row.try_get("user_id")?, row.try_get("auth_time")?)),
                None => None,
            })
        })
    }
}
