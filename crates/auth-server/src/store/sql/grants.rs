//! `GrantStore` in SQL: codes, refresh-token families, revocations, purging.
//!
//! A use of a code or a refresh token is one atomic step, conditional on the family being live:
//! - PostgreSQL (READ COMMITTED): one statement. Its first part takes a FOR SHARE lock on the family row,
//!   which a revocation's UPDATE of that row must wait for (and which waits for a revocation in progress);
//!   when it had to wait, PostgreSQL re-reads the row as committed and re-checks `revoked_at is null`
//!   (EvalPlanQual), so a use that lost the race finds no live family and consumes nothing. The
//!   compare-and-set on `used_at is null` decides between concurrent uses the same way, and the new refresh
//!   token is inserted from the UPDATE's RETURNING, in the same statement.
//! - SQLite: a transaction whose first statement is the conditional UPDATE, so it takes the one write lock
//!   before it reads: no revocation and no other use can come between its check and its write.

use auth_core::id::{ClientId, FamilyId, Jkt, UnixTime, UserId};
use auth_core::secret::SecretDigest;

use async_trait::async_trait;
use sqlx::Row;

use super::logout::record_session_client;
use super::{Backend, SqlStore};
use super::{PURGE_LEEWAY, PURGE_STATEMENTS, digest, scope};
use crate::store::StoreError;
use crate::store::{
    AccessTokenState, Authorization, AuthorizationCodeRecord, Consumption,
    DeviceAuthorizationRecord, GrantStore, Poll, RefreshTokenRecord, Rotation, RotationOutcome,
};

macro_rules! authorization_from_row {
    ($row:expr) => {{
        let row = $row;
        Authorization {
            family_id: FamilyId::from_trusted(row.try_get::<String, _>("family_id")?),
            client_id: ClientId::from_trusted(row.try_get::<String, _>("client_id")?),
            user_id: UserId::from_trusted(row.try_get::<String, _>("user_id")?),
            scope: scope(&row.try_get::<String, _>("scope")?, "grant scope")?,
            audience: row.try_get("audience")?,
            auth_time: UnixTime(row.try_get("auth_time")?),
            sid: row.try_get("sid")?,
        }
    }};
}

macro_rules! refresh_token_from_row {
    ($row:expr) => {{
        let row = $row;
        RefreshTokenRecord {
            token_digest: digest(&row.try_get::<String, _>("token_digest")?, "refresh token")?,
            authorization: authorization_from_row!(row),
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
            used_at: row.try_get("used_at")?,
            family_revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
            family_created_at: row.try_get("family_created_at")?,
            dpop_jkt: row
                .try_get::<Option<String>, _>("dpop_jkt")?
                .map(Jkt::from_trusted),
        }
    }};
}

/// A refresh token with its family's revocation state, by digest ($1).
const FIND_REFRESH_TOKEN: &str = "select r.token_digest, r.family_id, r.client_id, r.user_id, r.scope, r.audience, \
     r.auth_time, r.sid, r.created_at, r.expires_at, r.used_at, r.dpop_jkt, f.revoked_at, \
     f.created_at as family_created_at \
     from refresh_token r join token_family f on f.family_id = r.family_id where r.token_digest = $1";

/// PostgreSQL: a whole rotation in one statement. `old` reads the presented token ($1) and locks its
/// family's row FOR SHARE (ordering it against a revoking UPDATE, which then waits; or, if the revocation came
/// first, this waits and re-reads the row as committed). `used` marks it used if it is unused, unexpired
/// ($2 now), of the client ($3), its family live, its scope includes the one asked for ($4) and its audience
/// is the resource asked for ($5), its DPoP key the proof's ($8) and its family younger than its absolute
/// lifetime ($9); `new` inserts the successor ($6 digest, $7 expiry) from `used`. The result is the token as
/// found, and whether it rotated.
const ROTATE_POSTGRES: &str = "with old as (\
       select r.token_digest, r.family_id, r.client_id, r.user_id, r.scope, r.audience, r.auth_time, r.sid, \
       r.created_at, r.expires_at, r.used_at, r.dpop_jkt, f.revoked_at, f.created_at as family_created_at \
       from refresh_token r join token_family f on f.family_id = r.family_id where r.token_digest = $1 \
       for share of f), \
     used as (\
       update refresh_token r set used_at = $2 from old \
       where r.token_digest = $1 and r.used_at is null and r.expires_at > $2 and old.revoked_at is null \
       and old.client_id = $3 \
       and ($4::text is null or string_to_array($4::text, ' ') <@ string_to_array(old.scope, ' ')) \
       and ($5::text is null or old.audience = $5::text) \
       and (old.dpop_jkt is null or old.dpop_jkt = $8::text) \
       and old.family_created_at > $9 \
       returning r.family_id), \
     new as (\
       insert into refresh_token (token_digest, family_id, client_id, user_id, scope, audience, auth_time, sid, \
       created_at, expires_at, dpop_jkt) \
       select $6, old.family_id, old.client_id, old.user_id, old.scope, old.audience, old.auth_time, old.sid, $2, $7, \
       old.dpop_jkt \
       from old join used on used.family_id = old.family_id returning 1) \
     select old.*, exists (select 1 from new) as rotated from old";

/// The columns of a new refresh token, in the order `bind_refresh_token!` binds them.
const REFRESH_TOKEN_COLUMNS: &str = "token_digest, family_id, client_id, user_id, scope, audience, auth_time, sid, created_at, expires_at, dpop_jkt";

macro_rules! bind_refresh_token {
    ($query:expr, $record:expr) => {{
        let record: &RefreshTokenRecord = $record;
        let grant = &record.authorization;
        $query
            .bind(record.token_digest.to_hex())
            .bind(grant.family_id.as_str())
            .bind(grant.client_id.as_str())
            .bind(grant.user_id.as_str())
            .bind(grant.scope.to_string())
            .bind(&grant.audience)
            .bind(grant.auth_time.seconds())
            .bind(&grant.sid)
            .bind(record.created_at)
            .bind(record.expires_at)
            .bind(record.dpop_jkt.as_ref().map(Jkt::as_str))
    }};
}

/// PostgreSQL: the family row, locked against a concurrent revocation, if it is live ($1).
const LIVE_FAMILY: &str = "live as (select family_id from token_family where family_id = $1 and revoked_at is null for share)";

/// SQLite: the family ($1) is live.
const FAMILY_IS_LIVE: &str =
    "exists (select 1 from token_family where family_id = $1 and revoked_at is null)";

impl SqlStore {
    /// Runs `update` (`$1` the family, `$2` now, `$3` the code or token digest; `{live}` stands for the
    /// family condition) and, when it changed a row, inserts the new refresh token: one atomic step.
    pub(super) async fn consume(
        &self,
        update: &str,
        family_id: &FamilyId,
        now: i64,
        key: &SecretDigest,
        insert: Option<&RefreshTokenRecord>,
    ) -> Result<Consumption, StoreError> {
        let consumed = match &self.backend {
            Backend::Postgres(pool) => {
                let update = update.replace("{live}", "family_id in (select family_id from live)");
                let statement = match insert {
                    // The insert reads the UPDATE's RETURNING: no row changed, nothing inserted.
                    Some(_) => format!(
                        "with {LIVE_FAMILY}, used as ({update} returning 1) insert into refresh_token \
                         ({REFRESH_TOKEN_COLUMNS}) select $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14 from used"
                    ),
                    None => format!("with {LIVE_FAMILY} {update}"),
                };
                let query = sqlx::query(sqlx::AssertSqlSafe(statement))
                    .bind(family_id.as_str())
                    .bind(now)
                    .bind(key.to_hex());
                let query = match insert {
                    Some(record) => bind_refresh_token!(query, record),
                    None => query,
                };
                query.execute(pool).await?.rows_affected() == 1
            }
            Backend::Sqlite(pool) => {
                let update = update.replace("{live}", FAMILY_IS_LIVE);
                let mut tx = pool.begin().await?;
                // The first statement writes: it takes the write lock before it reads anything.
                let used = sqlx::query(sqlx::AssertSqlSafe(update))
                    .bind(family_id.as_str())
                    .bind(now)
                    .bind(key.to_hex())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if used && let Some(record) = insert {
                    let statement = format!(
                        "insert into refresh_token ({REFRESH_TOKEN_COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                    );
                    bind_refresh_token!(sqlx::query(sqlx::AssertSqlSafe(statement)), record)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                used
            }
        };
        Ok(if consumed {
            Consumption::Consumed
        } else {
            Consumption::Refused
        })
    }
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
                .bind(grant.family_id.as_str())
                .bind(grant.client_id.as_str())
                .bind(grant.user_id.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "insert into authorization_code (code_digest, family_id, client_id, user_id, redirect_uri, \
                 redirect_uri_given, scope, audience, code_challenge, auth_time, expires_at, nonce, sid, dpop_jkt) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(code.code_digest.to_hex())
            .bind(grant.family_id.as_str())
            .bind(grant.client_id.as_str())
            .bind(grant.user_id.as_str())
            .bind(&code.redirect_uri)
            .bind(code.redirect_uri_given)
            .bind(grant.scope.to_string())
            .bind(&grant.audience)
            .bind(&code.code_challenge)
            .bind(grant.auth_time.seconds())
            .bind(code.expires_at)
            .bind(&code.nonce)
            .bind(&grant.sid)
            .bind(code.dpop_jkt.as_ref().map(Jkt::as_str))
            .execute(&mut *tx)
            .await?;
            // OpenID Connect Back-Channel Logout: this client gets ID tokens in this session.
            if let Some(sid) = &grant.sid
                && grant.scope.contains("openid")
            {
                record_session_client!(tx, sid, grant.client_id.as_str(), now);
            }
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
                "select c.code_digest, c.family_id, c.client_id, c.user_id, c.redirect_uri, c.redirect_uri_given, \
                 c.scope, c.audience, c.code_challenge, c.auth_time, c.sid, c.nonce, c.dpop_jkt, c.expires_at, c.used_at, f.revoked_at \
                 from authorization_code c join token_family f on f.family_id = c.family_id where c.code_digest = $1",
            )
            .bind(code_digest.to_hex())
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                Some(row) => Some(AuthorizationCodeRecord {
                    code_digest: digest(&row.try_get::<String, _>("code_digest")?, "authorization code")?,
                    authorization: authorization_from_row!(&row),
                    redirect_uri: row.try_get("redirect_uri")?,
                    redirect_uri_given: row.try_get("redirect_uri_given")?,
                    code_challenge: row.try_get("code_challenge")?,
                    nonce: row.try_get("nonce")?,
                    dpop_jkt: row
                        .try_get::<Option<String>, _>("dpop_jkt")?
                        .map(Jkt::from_trusted),
                    expires_at: row.try_get("expires_at")?,
                    used_at: row.try_get("used_at")?,
                    family_revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
                }),
                None => None,
            })
        })
    }

    async fn exchange_code(
        &self,
        code: &AuthorizationCodeRecord,
        now: i64,
        refresh_token: Option<&RefreshTokenRecord>,
    ) -> Result<Consumption, StoreError> {
        self.consume(
            "update authorization_code set used_at = $2 where code_digest = $3 and used_at is null \
             and expires_at > $2 and {live}",
            &code.authorization.family_id,
            now,
            &code.code_digest,
            refresh_token,
        )
        .await
    }

    async fn create_device_authorization(
        &self,
        record: &DeviceAuthorizationRecord,
        max_unexpired: u64,
    ) -> Result<bool, StoreError> {
        self.insert_device_authorization(record, max_unexpired)
            .await
    }

    async fn find_device_authorization(
        &self,
        device_code: &SecretDigest,
    ) -> Result<Option<DeviceAuthorizationRecord>, StoreError> {
        self.select_device_authorization("device_code_digest", &device_code.to_hex())
            .await
    }

    async fn find_user_code(
        &self,
        user_code: &str,
    ) -> Result<Option<DeviceAuthorizationRecord>, StoreError> {
        self.select_device_authorization("user_code", user_code)
            .await
    }

    async fn approve_user_code(
        &self,
        user_code: &str,
        grant: &Authorization,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.approve_device(user_code, grant, now).await
    }

    async fn deny_user_code(&self, user_code: &str, now: i64) -> Result<bool, StoreError> {
        self.deny_device(user_code, now).await
    }

    async fn poll_device_code(
        &self,
        device_code: &SecretDigest,
        now: i64,
    ) -> Result<Poll, StoreError> {
        self.poll_device(device_code, now).await
    }

    async fn redeem_device_code(
        &self,
        record: &DeviceAuthorizationRecord,
        now: i64,
        refresh_token: Option<&RefreshTokenRecord>,
    ) -> Result<Consumption, StoreError> {
        self.redeem_device(record, now, refresh_token).await
    }

    async fn find_refresh_token(
        &self,
        token_digest: &SecretDigest,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        on_backend!(self, pool => {
            let row = sqlx::query(FIND_REFRESH_TOKEN)
                .bind(token_digest.to_hex())
                .fetch_optional(pool)
                .await?;
            Ok(match row {
                Some(row) => Some(refresh_token_from_row!(&row)),
                None => None,
            })
        })
    }

    async fn rotate_refresh_token(
        &self,
        rotation: &Rotation<'_>,
    ) -> Result<RotationOutcome, StoreError> {
        let scope = rotation
            .scope
            .filter(|scope| !scope.is_empty())
            .map(ToString::to_string);
        match &self.backend {
            Backend::Postgres(pool) => {
                let row = sqlx::query(ROTATE_POSTGRES)
                    .bind(rotation.presented.to_hex())
                    .bind(rotation.now)
                    .bind(rotation.client_id.as_str())
                    .bind(scope)
                    .bind(rotation.resource)
                    .bind(rotation.new_digest.to_hex())
                    .bind(rotation.new_expires_at)
                    .bind(rotation.jkt.map(Jkt::as_str))
                    .bind(rotation.family_created_after)
                    .fetch_optional(pool)
                    .await?;
                let Some(row) = row else {
                    return Ok(RotationOutcome::Refused(None));
                };
                let found = refresh_token_from_row!(&row);
                Ok(if row.try_get::<bool, _>("rotated")? {
                    RotationOutcome::Rotated(found.authorization)
                } else {
                    RotationOutcome::Refused(Some(found))
                })
            }
            Backend::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                // The first statement writes: it takes the one write lock before anything is read, so no
                // revocation and no other rotation can come between the checks and the writes.
                let used = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "update refresh_token set used_at = $2 where token_digest = $1 and used_at is null \
                     and expires_at > $2 and client_id = $3 and {} and exists (select 1 from token_family \
                     where family_id = refresh_token.family_id and created_at > $4)",
                    FAMILY_IS_LIVE.replace("$1", "refresh_token.family_id")
                )))
                .bind(rotation.presented.to_hex())
                .bind(rotation.now)
                .bind(rotation.client_id.as_str())
                .bind(rotation.family_created_after)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                let row = sqlx::query(FIND_REFRESH_TOKEN)
                    .bind(rotation.presented.to_hex())
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else {
                    return Ok(RotationOutcome::Refused(None));
                };
                let mut found = refresh_token_from_row!(&row);
                let grant = &found.authorization;
                let allowed = rotation
                    .scope
                    .is_none_or(|scope| scope.is_subset_of(&grant.scope))
                    && rotation
                        .resource
                        .is_none_or(|resource| resource == grant.audience)
                    && found
                        .dpop_jkt
                        .as_ref()
                        .is_none_or(|bound| Some(bound) == rotation.jkt);
                if !used || !allowed {
                    // Rolled back: the token is as it was.
                    tx.rollback().await?;
                    if used {
                        found.used_at = None;
                    }
                    return Ok(RotationOutcome::Refused(Some(found)));
                }
                let successor = RefreshTokenRecord {
                    token_digest: *rotation.new_digest,
                    authorization: found.authorization.clone(),
                    created_at: rotation.now,
                    expires_at: rotation.new_expires_at,
                    used_at: None,
                    family_revoked: false,
                    family_created_at: found.family_created_at,
                    dpop_jkt: found.dpop_jkt.clone(),
                };
                let statement = format!(
                    "insert into refresh_token ({REFRESH_TOKEN_COLUMNS}) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                );
                bind_refresh_token!(sqlx::query(sqlx::AssertSqlSafe(statement)), &successor)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(RotationOutcome::Rotated(found.authorization))
            }
        }
    }

    async fn revoke_family(&self, family_id: &FamilyId, now: i64) -> Result<(), StoreError> {
        on_backend!(self, pool => {
            sqlx::query("update token_family set revoked_at = $1 where family_id = $2 and revoked_at is null")
                .bind(now)
                .bind(family_id.as_str())
                .execute(pool)
                .await?;
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

    async fn access_token_state(
        &self,
        jti: &str,
        family_id: Option<&FamilyId>,
        client_id: &ClientId,
    ) -> Result<AccessTokenState, StoreError> {
        on_backend!(self, pool => {
            let row = sqlx::query(
                "select exists (select 1 from revoked_access_token where jti = $1) as denied, \
                 (select case when revoked_at is null then 1 else 0 end from token_family where family_id = $2) as family_live, \
                 (select created_at from client where client_id = $3) as client_created_at, \
                 (select deleted_at from deleted_client where client_id = $3) as client_deleted_at",
            )
            .bind(jti)
            .bind(family_id.map(FamilyId::as_str))
            .bind(client_id.as_str())
            .fetch_one(pool)
            .await?;
            Ok(AccessTokenState {
                denied: row.try_get("denied")?,
                family_live: row.try_get::<Option<i32>, _>("family_live")?.map(|live| live == 1),
                client_created_at: row.try_get("client_created_at")?,
                client_deleted_at: row.try_get("client_deleted_at")?,
            })
        })
    }

    async fn purge_expired(&self, now: i64, horizon: i64) -> Result<u64, StoreError> {
        let now = now.saturating_sub(PURGE_LEEWAY);
        let cutoff = now.saturating_sub(horizon);
        let mut purged = 0;
        for (statement, at_cutoff) in PURGE_STATEMENTS {
            let before = if at_cutoff { cutoff } else { now };
            purged += on_backend!(self, pool => {
                sqlx::query(statement).bind(before).execute(pool).await?.rows_affected()
            });
        }
        // A family goes (its codes and refresh tokens with it, on delete cascade) once no token of it can be
        // valid: every code ended, every refresh token expired, and every access token ever minted from it
        // (at a code's use, at most at its expiry, or at a refresh token's creation) is past `horizon`, the
        // longest an access token can live. So purging never makes a revoked token active again.
        purged += on_backend!(self, pool => {
            sqlx::query(
                "delete from token_family where created_at < $1 \
                 and not exists (select 1 from authorization_code c where c.family_id = token_family.family_id and c.expires_at >= $1) \
                 and not exists (select 1 from device_authorization d where d.family_id = token_family.family_id and d.expires_at >= $1) \
                 and not exists (select 1 from refresh_token r where r.family_id = token_family.family_id \
                     and (r.expires_at >= $2 or r.created_at >= $1))",
            )
            .bind(cutoff)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(purged)
    }
}
