//! `ConsentStore` in SQL: remembered consent per (user, client, audience).

use async_trait::async_trait;
use auth_core::id::{ClientId, UserId};
use auth_core::scope::ScopeSet;

use super::logout::queue_logouts;
use super::{Backend, SqlStore, scope};
use crate::store::{ConsentStore, StoreError};

#[async_trait]
impl ConsentStore for SqlStore {
    async fn find_consent(
        &self,
        user_id: &UserId,
        client_id: &ClientId,
        audience: &str,
    ) -> Result<Option<ScopeSet>, StoreError> {
        let text: Option<String> = on_backend!(self, pool => {
            sqlx::query_scalar("select scope from consent where user_id = $1 and client_id = $2 and audience = $3")
                .bind(user_id.as_str())
                .bind(client_id.as_str())
                .bind(audience)
                .fetch_optional(pool)
                .await?
        });
        text.map(|text| scope(&text, "consent scope")).transpose()
    }

    async fn remember_consent(
        &self,
        user_id: &UserId,
        client_id: &ClientId,
        audience: &str,
        granted: &ScopeSet,
        now: i64,
    ) -> Result<(), StoreError> {
        // What was remembered, plus what was just approved. Two approvals racing may lose a union: then
        // the consent page is shown once more, nothing worse.
        let mut all: Vec<String> = granted.iter().map(str::to_owned).collect();
        if let Some(before) = self.find_consent(user_id, client_id, audience).await? {
            all.extend(before.iter().map(str::to_owned));
        }
        let union = ScopeSet::from_tokens(all).map_err(|_| StoreError::Corrupt("consent scope"))?;
        on_backend!(self, pool => {
            sqlx::query(
                "insert into consent (user_id, client_id, audience, scope, granted_at) values ($1, $2, $5, $3, $4) \
                 on conflict (user_id, client_id, audience) do update set scope = excluded.scope, granted_at = excluded.granted_at",
            )
            .bind(user_id.as_str())
            .bind(client_id.as_str())
            .bind(union.to_string())
            .bind(now)
            .bind(audience)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    async fn withdraw_consent(
        &self,
        user_id: &UserId,
        client_id: &ClientId,
        now: i64,
    ) -> Result<(bool, u64), StoreError> {
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            let forgotten = sqlx::query("delete from consent where user_id = $1 and client_id = $2")
                .bind(user_id.as_str())
                .bind(client_id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            let revoked = sqlx::query(
                "update token_family set revoked_at = $3 where user_id = $1 and client_id = $2 and revoked_at is null",
            )
            .bind(user_id.as_str())
            .bind(client_id.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            // Back-channel logout for this client in each of the user's sessions (the sessions go on).
            let sessions: Vec<String> = sqlx::query_scalar(
                "select sid from login_session where user_id = $1 and sid is not null",
            )
            .bind(user_id.as_str())
            .fetch_all(&mut *tx)
            .await?;
            for sid in &sessions {
                queue_logouts!(
                    tx,
                    self.backchannel_max_pending,
                    sid,
                    user_id.as_str(),
                    Some(client_id.as_str()),
                    now,
                    false
                );
            }
            tx.commit().await?;
            Ok((forgotten, revoked))
        })
    }
}
