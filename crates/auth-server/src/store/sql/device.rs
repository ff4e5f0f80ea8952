//! Device authorizations (RFC 8628) in SQL: created pending, approved or denied once, polled, redeemed
//! once. Approval creates the grant's family in the same transaction; redemption is the same atomic,
//! family-conditional step as a code's (`grants.rs`).

use auth_core::id::{ClientId, FamilyId, UnixTime, UserId};
use auth_core::secret::SecretDigest;
use sqlx::Row;

use super::logout::record_session_client;
use super::{Backend, SqlStore, digest, scope};
use crate::store::{
    Authorization, Consumption, DeviceAuthorizationRecord, Poll, RefreshTokenRecord, StoreError,
};

const COLUMNS: &str = "device_code_digest, user_code, client_id, scope, audience, created_at, expires_at, \
    poll_interval, family_id, user_id, auth_time, sid, denied_at, used_at";

macro_rules! device_from_row {
    ($row:expr) => {{
        let row = $row;
        let client_id = ClientId::from_trusted(row.try_get::<String, _>("client_id")?);
        let scope = scope(&row.try_get::<String, _>("scope")?, "device scope")?;
        let audience: String = row.try_get("audience")?;
        let approved = match (
            row.try_get::<Option<String>, _>("family_id")?,
            row.try_get::<Option<String>, _>("user_id")?,
            row.try_get::<Option<i64>, _>("auth_time")?,
        ) {
            (Some(family_id), Some(user_id), Some(auth_time)) => Some(Authorization {
                family_id: FamilyId::from_trusted(family_id),
                client_id: client_id.clone(),
                user_id: UserId::from_trusted(user_id),
                scope: scope.clone(),
                audience: audience.clone(),
                auth_time: UnixTime(auth_time),
                sid: row.try_get("sid")?,
            }),
            _ => None,
        };
        DeviceAuthorizationRecord {
            device_code_digest: digest(
                &row.try_get::<String, _>("device_code_digest")?,
                "device code",
            )?,
            user_code: row.try_get("user_code")?,
            client_id,
            scope,
            audience,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            interval: row.try_get("poll_interval")?,
            approved,
            denied: row.try_get::<Option<i64>, _>("denied_at")?.is_some(),
            used: row.try_get::<Option<i64>, _>("used_at")?.is_some(),
        }
    }};
}

/// Pending: neither approved nor denied, and unexpired at `$2`.
const PENDING: &str = "family_id is null and denied_at is null and expires_at > $2";

impl SqlStore {
    pub(super) async fn insert_device_authorization(
        &self,
        record: &DeviceAuthorizationRecord,
        max_unexpired: u64,
    ) -> Result<bool, StoreError> {
        let max_unexpired = i64::try_from(max_unexpired).unwrap_or(i64::MAX);
        // The count and the insert are one statement: concurrent requests near the bound may each see room
        // and pass it by a few, never by an unbounded number (each inserts one row).
        let result = on_backend!(self, pool => {
            sqlx::query(
                "insert into device_authorization (device_code_digest, user_code, client_id, scope, audience, \
                 created_at, expires_at, poll_interval) select $1, $2, $3, $4, $5, $6, $7, $8 \
                 where (select count(*) from device_authorization where expires_at > $6) < $9 \
                 on conflict (user_code) do nothing",
            )
            .bind(record.device_code_digest.to_hex())
            .bind(&record.user_code)
            .bind(record.client_id.as_str())
            .bind(record.scope.to_string())
            .bind(&record.audience)
            .bind(record.created_at)
            .bind(record.expires_at)
            .bind(record.interval)
            .bind(max_unexpired)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(result == 1)
    }

    pub(super) async fn select_device_authorization(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<DeviceAuthorizationRecord>, StoreError> {
        let statement = format!("select {COLUMNS} from device_authorization where {column} = $1");
        on_backend!(self, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(statement))
                .bind(value)
                .fetch_optional(pool)
                .await?;
            Ok(match row {
                Some(row) => Some(device_from_row!(&row)),
                None => None,
            })
        })
    }

    pub(super) async fn approve_device(
        &self,
        user_code: &str,
        grant: &Authorization,
        now: i64,
    ) -> Result<bool, StoreError> {
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            // Of two approvals (or an approval and a denial) the conditional update decides: on PostgreSQL it
            // locks the row and re-checks it, on SQLite the family insert before it took the write lock.
            let statement = format!(
                "update device_authorization set family_id = $3, user_id = $4, auth_time = $5, sid = $6 \
                 where user_code = $1 and {PENDING}"
            );
            // The family row must exist before the reference to it: insert it first, in the same transaction,
            // and roll back when the code was not pending.
            sqlx::query("insert into token_family (family_id, client_id, user_id, created_at) values ($1, $2, $3, $4)")
                .bind(grant.family_id.as_str())
                .bind(grant.client_id.as_str())
                .bind(grant.user_id.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let approved = sqlx::query(sqlx::AssertSqlSafe(statement))
                .bind(user_code)
                .bind(now)
                .bind(grant.family_id.as_str())
                .bind(grant.user_id.as_str())
                .bind(grant.auth_time.seconds())
                .bind(&grant.sid)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if approved {
                if let Some(sid) = &grant.sid
                    && grant.scope.contains("openid")
                {
                    record_session_client!(tx, sid, grant.client_id.as_str(), now);
                }
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            Ok(approved)
        })
    }

    pub(super) async fn deny_device(&self, user_code: &str, now: i64) -> Result<bool, StoreError> {
        let statement = format!(
            "update device_authorization set denied_at = $2 where user_code = $1 and {PENDING}"
        );
        let result = on_backend!(self, pool => {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .bind(user_code)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(result == 1)
    }

    pub(super) async fn poll_device(
        &self,
        device_code: &SecretDigest,
        now: i64,
    ) -> Result<Poll, StoreError> {
        // RFC 8628 §3.5: a poll more than a second sooner than the interval after the last one is too soon,
        // and the interval grows by 5 seconds for good.
        let too_soon = format!(
            "update device_authorization set poll_interval = poll_interval + 5, last_polled_at = $2 \
             where device_code_digest = $1 and {PENDING} and last_polled_at is not null \
             and $2 < last_polled_at + poll_interval - 1"
        );
        let in_time = format!(
            "update device_authorization set last_polled_at = $2 where device_code_digest = $1 and {PENDING}"
        );
        on_backend!(self, pool => {
            let slowed = sqlx::query(sqlx::AssertSqlSafe(too_soon))
                .bind(device_code.to_hex())
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
                == 1;
            if slowed {
                return Ok(Poll::SlowDown);
            }
            let noted = sqlx::query(sqlx::AssertSqlSafe(in_time))
                .bind(device_code.to_hex())
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
                == 1;
            Ok(if noted { Poll::Pending } else { Poll::Decided })
        })
    }

    pub(super) async fn redeem_device(
        &self,
        record: &DeviceAuthorizationRecord,
        now: i64,
        refresh_token: Option<&RefreshTokenRecord>,
    ) -> Result<Consumption, StoreError> {
        let Some(grant) = &record.approved else {
            return Ok(Consumption::Refused);
        };
        self.consume(
            "update device_authorization set used_at = $2 where device_code_digest = $3 and used_at is null \
             and expires_at > $2 and family_id = $1 and {live}",
            &grant.family_id,
            now,
            &record.device_code_digest,
            refresh_token,
        )
        .await
    }
}
