//! `UserStore` in SQL: users and their login sessions.

use auth_core::clock::{Clock, SystemClock};
use auth_core::id::{UnixTime, UserId};
use auth_core::secret::SecretDigest;

use async_trait::async_trait;
use sqlx::Row;

use super::logout::queue_logouts;
use super::unique_violation;
use super::{Backend, SqlStore};
use crate::store::StoreError;
use crate::store::{StoredSession, UserRecord, UserStore};

/// The columns `user_from_row!` reads.
pub(super) const USER_COLUMNS: &str =
    "user_id, username, password_hash, name, email, email_verified";

macro_rules! user_from_row {
    ($row:expr) => {{
        let row = $row;
        UserRecord {
            user_id: UserId::from_trusted(row.try_get::<String, _>("user_id")?),
            username: row.try_get("username")?,
            password_hash: row.try_get("password_hash")?,
            name: row.try_get("name")?,
            email: row.try_get("email")?,
            email_verified: row.try_get("email_verified")?,
        }
    }};
}
pub(super) use user_from_row;

/// After a password change: the user's sessions end ($1 the user id).
pub(super) const END_USER_SESSIONS: &str = "delete from login_session where user_id = $1";

/// After a password change: the user's grants are revoked ($1 now, $2 the user id).
pub(super) const REVOKE_USER_FAMILIES: &str =
    "update token_family set revoked_at = $1 where user_id = $2 and revoked_at is null";

#[async_trait]
impl UserStore for SqlStore {
    async fn create_user(&self, user: &UserRecord, now: i64) -> Result<(), StoreError> {
        on_backend!(self, pool => {
            sqlx::query(
                "insert into app_user (user_id, username, password_hash, name, email, email_verified, created_at) \
                 values ($1, $2, $3, $4, $5, $6, $7)",
            )
                .bind(user.user_id.as_str())
                .bind(&user.username)
                .bind(&user.password_hash)
                .bind(&user.name)
                .bind(&user.email)
                .bind(user.email_verified)
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
            let row = sqlx::query(sqlx::AssertSqlSafe(format!("select {USER_COLUMNS} from app_user where username = $1")))
                .bind(username)
                .fetch_optional(pool)
                .await?;
            Ok(match row {
                Some(row) => Some(user_from_row!(&row)),
                None => None,
            })
        })
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        on_backend!(self, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("select {USER_COLUMNS} from app_user order by username")))
                .fetch_all(pool)
                .await?;
            let mut users = Vec::with_capacity(rows.len());
            for row in &rows {
                users.push(user_from_row!(row));
            }
            Ok(users)
        })
    }

    async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        // Sessions, consent and families (with their codes and refresh tokens) go with it (on delete
        // cascade); access tokens naming a family that no longer exists are inactive.
        let now = SystemClock.now();
        let max = self.backchannel_max_pending;
        let deleted = on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            let sessions: Vec<(String, String)> = sqlx::query_as(
                "select s.sid, s.user_id from login_session s join app_user u on u.user_id = s.user_id \
                 where u.username = $1 and s.sid is not null",
            )
            .bind(username)
            .fetch_all(&mut *tx)
            .await?;
            for (sid, user) in &sessions {
                queue_logouts!(tx, max, sid, user, None, now, true);
            }
            let deleted = sqlx::query("delete from app_user where username = $1")
                .bind(username)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            deleted
        });
        Ok(deleted > 0)
    }

    async fn set_password(
        &self,
        username: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<Option<u64>, StoreError> {
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            let user_id: Option<String> = sqlx::query_scalar(
                "update app_user set password_hash = $1 where username = $2 returning user_id",
            )
            .bind(password_hash)
            .bind(username)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(user_id) = user_id else {
                return Ok(None);
            };
            let sessions: Vec<(String, String)> = sqlx::query_as(
                "select sid, user_id from login_session where user_id = $1 and sid is not null",
            )
            .bind(&user_id)
            .fetch_all(&mut *tx)
            .await?;
            for (sid, user) in &sessions {
                queue_logouts!(tx, self.backchannel_max_pending, sid, user, None, now, true);
            }
            sqlx::query(END_USER_SESSIONS)
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
            let revoked = sqlx::query(REVOKE_USER_FAMILIES)
            .bind(now)
            .bind(&user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok(Some(revoked))
        })
    }

    async fn find_user(&self, user_id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        on_backend!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!("select {USER_COLUMNS} from app_user where user_id = $1")))
                .bind(user_id.as_str())
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
        session: &StoredSession,
        verified_hash: &str,
    ) -> Result<bool, StoreError> {
        let created = on_backend!(self, pool => {
            sqlx::query(
                "insert into login_session (session_digest, user_id, sid, auth_time, expires_at) \
                 select $1, $2, $3, $4, $5 \
                 where exists (select 1 from app_user where user_id = $2 and password_hash = $6)",
            )
            .bind(session.digest.to_hex())
            .bind(session.user_id.as_str())
            .bind(&session.sid)
            .bind(session.auth_time.seconds())
            .bind(session.expires_at)
            .bind(verified_hash)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(created > 0)
    }

    async fn find_session(
        &self,
        digest: &SecretDigest,
        now: i64,
    ) -> Result<Option<StoredSession>, StoreError> {
        on_backend!(self, pool => {
            let row = sqlx::query(
                "select user_id, sid, auth_time, expires_at from login_session \
                 where session_digest = $1 and expires_at > $2",
            )
            .bind(digest.to_hex())
            .bind(now)
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                Some(row) => Some(StoredSession {
                    digest: *digest,
                    user_id: UserId::from_trusted(row.try_get::<String, _>("user_id")?),
                    sid: row.try_get("sid")?,
                    auth_time: UnixTime(row.try_get("auth_time")?),
                    expires_at: row.try_get("expires_at")?,
                }),
                None => None,
            })
        })
    }

    async fn end_session(&self, digest: &SecretDigest) -> Result<bool, StoreError> {
        let now = SystemClock.now();
        Ok(on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            // The delete first: it locks the row, so of two logouts of one session one tells the clients.
            let ended: Option<(Option<String>, String)> = sqlx::query_as(
                "delete from login_session where session_digest = $1 returning sid, user_id",
            )
            .bind(digest.to_hex())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((Some(sid), user)) = &ended {
                queue_logouts!(tx, self.backchannel_max_pending, sid, user, None, now, true);
            }
            tx.commit().await?;
            ended.is_some()
        }))
    }

    async fn end_session_by_sid(&self, sid: &str, user_id: &UserId) -> Result<bool, StoreError> {
        let now = SystemClock.now();
        Ok(on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            let ended = sqlx::query("delete from login_session where sid = $1 and user_id = $2")
                .bind(sid)
                .bind(user_id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            if ended {
                queue_logouts!(tx, self.backchannel_max_pending, sid, user_id.as_str(), None, now, true);
            }
            tx.commit().await?;
            ended
        }))
    }
}
