//! Back-channel logout in SQL (OpenID Connect Back-Channel Logout 1.0): the logouts a transaction that ends
//! sessions queues for the clients that got ID tokens in them, bounded in all and per client; and the queue
//! as the delivering replicas see it, each row claimed by one of them.

use async_trait::async_trait;
use auth_core::id::{ClientId, UserId};
use sqlx::Row;

use super::{Backend, SqlStore};
use crate::store::{LogoutStore, QueuedLogout, StoreError};

/// Logouts waiting per client at most (beyond, new ones are dropped and audited). Self-registered clients
/// together may fill at most half of the queue, so strangers cannot crowd out the operator's clients.
pub const MAX_PENDING_PER_CLIENT: i64 = 100;

/// In a transaction: the clients with a back-channel URI that got an ID token in session `$sid` (of
/// `$user`), only `$only` when it is `Some`, are queued a logout each, as far as the bounds allow; then, when
/// `$ending`, the session's traces in grants are dropped (a refresh after the logout returns an ID token
/// without `sid`, BCL §2.7) and its client list with it. Evaluates to how many were queued.
macro_rules! queue_logouts {
    ($tx:expr, $max:expr, $sid:expr, $user:expr, $only:expr, $now:expr, $ending:expr) => {{
        let sid: &str = $sid;
        let user: &str = $user;
        let only: Option<&str> = $only;
        let clients: Vec<String> = match only {
            Some(client_id) => sqlx::query_scalar(
                "select sc.client_id from session_client sc join client c on c.client_id = sc.client_id \
                 where sc.sid = $1 and sc.client_id = $2 and c.backchannel_logout_uri is not null",
            )
            .bind(sid)
            .bind(client_id)
            .fetch_all(&mut *$tx)
            .await?,
            None => sqlx::query_scalar(
                "select sc.client_id from session_client sc join client c on c.client_id = sc.client_id \
                 where sc.sid = $1 and c.backchannel_logout_uri is not null order by sc.client_id",
            )
            .bind(sid)
            .fetch_all(&mut *$tx)
            .await?,
        };
        let mut queued = 0u64;
        for client_id in &clients {
            let inserted = sqlx::query(
                "insert into backchannel_logout (client_id, user_id, sid, created_at, next_attempt_at) \
                 select $1, $2, $3, $4, 0 \
                 where (select count(*) from backchannel_logout) < $5 \
                 and (select count(*) from backchannel_logout where client_id = $1) < $6 \
                 and ((select registered from client where client_id = $1) = 'operator' \
                      or (select count(*) from backchannel_logout b join client c on c.client_id = b.client_id \
                          where c.registered <> 'operator') < $5 / 2)",
            )
            .bind(client_id)
            .bind(user)
            .bind(sid)
            .bind($now)
            .bind($max)
            .bind($crate::store::sql::logout::MAX_PENDING_PER_CLIENT)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                queued += 1;
            } else {
                tracing::warn!(target: "audit", event = "backchannel_logout", client_id = client_id.as_str(), outcome = "dropped", "back-channel logout dropped: too many waiting");
            }
        }
        if $ending {
            for statement in [
                "update refresh_token set sid = null where sid = $1",
                "update authorization_code set sid = null where sid = $1",
                "update device_authorization set sid = null where sid = $1",
                "delete from session_client where sid = $1",
            ] {
                sqlx::query(statement).bind(sid).execute(&mut *$tx).await?;
            }
        }
        queued
    }};
}
pub(super) use queue_logouts;

/// In a transaction: records that `$client` gets ID tokens in session `$sid` (for as long as it lives).
macro_rules! record_session_client {
    ($tx:expr, $sid:expr, $client:expr, $now:expr) => {{
        sqlx::query(
            "insert into session_client (sid, client_id, created_at) values ($1, $2, $3) \
             on conflict (sid, client_id) do nothing",
        )
        .bind($sid)
        .bind($client)
        .bind($now)
        .execute(&mut *$tx)
        .await?;
    }};
}
pub(super) use record_session_client;

/// Claims due rows not claimed by another replica, for 30 s (a try takes at most 5 s; a replica that died
/// mid-try leaves the row to another after that): at most `$2` rows, and for no client more than two at
/// once in all (counting those in flight anywhere). `{lock}` is PostgreSQL's `for update skip locked`.
const CLAIM: &str = "update backchannel_logout set claimed_until = $1 + 30, attempts = attempts + 1 \
    where (claimed_until is null or claimed_until <= $1) and id in (\
      select id from backchannel_logout where id in (\
        select id from (\
          select id, client_id, row_number() over (partition by client_id order by id) as n \
          from backchannel_logout where next_attempt_at <= $1 and (claimed_until is null or claimed_until <= $1)\
        ) due \
        where n + (select count(*) from backchannel_logout busy where busy.client_id = due.client_id \
                   and busy.claimed_until > $1) <= 2\
      ) order by id limit $2 {lock}) \
    returning id, client_id, user_id, sid, attempts, logout_token";

#[async_trait]
impl LogoutStore for SqlStore {
    async fn claim_logouts(&self, now: i64, limit: i64) -> Result<Vec<QueuedLogout>, StoreError> {
        let rows = match &self.backend {
            Backend::Postgres(pool) => sqlx::query(sqlx::AssertSqlSafe(
                CLAIM.replace("{lock}", "for update skip locked"),
            ))
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|row| queued_from_row(&row))
            .collect::<Result<Vec<_>, _>>()?,
            Backend::Sqlite(pool) => sqlx::query(sqlx::AssertSqlSafe(CLAIM.replace("{lock}", "")))
                .bind(now)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(|row| queued_from_row(&row))
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(rows)
    }

    async fn keep_logout_token(&self, id: i64, token: &str) -> Result<(), StoreError> {
        on_backend!(self, pool => {
            sqlx::query("update backchannel_logout set logout_token = $2 where id = $1 and logout_token is null")
                .bind(id)
                .bind(token)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn logout_done(&self, id: i64) -> Result<(), StoreError> {
        on_backend!(self, pool => {
            sqlx::query("delete from backchannel_logout where id = $1")
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    async fn logout_retry(&self, id: i64, at: i64) -> Result<(), StoreError> {
        on_backend!(self, pool => {
            sqlx::query(
                "update backchannel_logout set claimed_until = null, next_attempt_at = $2 where id = $1",
            )
            .bind(id)
            .bind(at)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn pending_logouts(&self) -> Result<i64, StoreError> {
        Ok(on_backend!(self, pool => {
            sqlx::query_scalar::<_, i64>("select count(*) from backchannel_logout")
                .fetch_one(pool)
                .await?
        }))
    }
}

fn queued_from_row<R: Row>(row: &R) -> Result<QueuedLogout, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(QueuedLogout {
        id: row.try_get("id")?,
        client_id: ClientId::from_trusted(row.try_get::<String, _>("client_id")?),
        user_id: UserId::from_trusted(row.try_get::<String, _>("user_id")?),
        sid: row.try_get("sid")?,
        attempts: row.try_get("attempts")?,
        logout_token: row.try_get("logout_token")?,
    })
}
