//! The SQL store on SQLite and PostgreSQL.
//!
//! Each query is written once, in SQL both back-ends accept (`$n` placeholders, `on conflict`, lowercase
//! keywords), and [`on_backend!`] expands the code around it once per back-end, so each back-end gets its
//! own type-checked implementation with its own pool type, without generic bounds on every column type.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use auth_core::keys::SigningAlgorithm;
use auth_core::scope::ScopeSet;
use auth_core::secret::SecretDigest;
use auth_core::wire::GrantType;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, SqlStr};

use super::{
    Authorization, AuthorizationCodeRecord, ClientRecord, ClientStore, CodeExchange, GrantStore,
    HealthStore, IssuedAccessToken, KeyStore, RefreshTokenRecord, Rotation, StoreError, StoredKey,
    UserRecord, UserStore,
};

/// Migrations embedded in the binary, per back-end.
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "init",
    include_str!("../../migrations/postgres/0001_init.sql"),
)];
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "init",
    include_str!("../../migrations/sqlite/0001_init.sql"),
)];

fn migrator(migrations: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    false,
                )
            })
            .collect(),
    )
}

#[derive(Clone, Debug)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Which database a URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// `sqlite:` URLs.
    Sqlite,
    /// `postgres:` / `postgresql:` URLs.
    Postgres,
}

impl BackendKind {
    /// The back-end a database URL names, if any.
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// The store: a pool on one back-end.
#[derive(Clone, Debug)]
pub struct SqlStore {
    backend: Backend,
}

/// Runs `$body` with `$pool` bound to the back-end's own pool type.
macro_rules! on_backend {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

fn words(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect()
}

fn digest(text: &str, what: &'static str) -> Result<SecretDigest, StoreError> {
    SecretDigest::from_hex(text).ok_or(StoreError::Corrupt(what))
}

fn scope(text: &str, what: &'static str) -> Result<ScopeSet, StoreError> {
    ScopeSet::parse(text).map_err(|_| StoreError::Corrupt(what))
}

fn unique_violation(error: sqlx::Error, what: &'static str) -> StoreError {
    match &error {
        sqlx::Error::Database(database) if database.is_unique_violation() => {
            StoreError::AlreadyExists(what)
        }
        _ => StoreError::Database(error),
    }
}

macro_rules! client_from_row {
    ($row:expr) => {{
        let row = $row;
        let secret: Option<String> = row.try_get("secret_digest")?;
        let grant_types: String = row.try_get("grant_types")?;
        ClientRecord {
            client_id: row.try_get("client_id")?,
            secret_digest: secret
                .map(|text| digest(&text, "client secret"))
                .transpose()?,
            is_public: row.try_get("is_public")?,
            grant_types: words(&grant_types)
                .iter()
                .map(|grant| {
                    GrantType::from_str(grant)
                        .map_err(|_| StoreError::Corrupt("client grant types"))
                })
                .collect::<Result<_, _>>()?,
            redirect_uris: words(&row.try_get::<String, _>("redirect_uris")?),
            scope: scope(&row.try_get::<String, _>("scope")?, "client scope")?,
            audiences: words(&row.try_get::<String, _>("audiences")?),
            skip_consent: row.try_get("skip_consent")?,
        }
    }};
}

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

macro_rules! authorization_from_row {
    ($row:expr) => {{
        let row = $row;
        Authorization {
            family_id: row.try_get("family_id")?,
            client_id: row.try_get("client_id")?,
            user_id: row.try_get("user_id")?,
            scope: scope(&row.try_get::<String, _>("scope")?, "grant scope")?,
            audience: row.try_get("audience")?,
            auth_time: row.try_get("auth_time")?,
        }
    }};
}

macro_rules! insert_refresh_token {
    ($executor:expr, $record:expr) => {{
        let record: &RefreshTokenRecord = $record;
        let grant = &record.authorization;
        sqlx::query(
            "insert into refresh_token (token_digest, family_id, client_id, user_id, scope, audience, auth_time, \
             created_at, expires_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(record.token_digest.to_hex())
        .bind(&grant.family_id)
        .bind(&grant.client_id)
        .bind(&grant.user_id)
        .bind(grant.scope.to_string())
        .bind(&grant.audience)
        .bind(grant.auth_time)
        .bind(record.created_at)
        .bind(record.expires_at)
        .execute($executor)
        .await?;
    }};
}

/// Run in the transaction of every change to clients or keys, so replicas notice and drop their caches.
const BUMP_CONFIG_VERSION: &str =
    "update config_version set version = version + 1 where config_version_id = 1";

const PURGE_STATEMENTS: [&str; 5] = [
    "delete from authorization_code where expires_at < $1",
    "delete from login_session where expires_at < $1",
    "delete from revoked_access_token where expires_at < $1",
    "delete from issued_access_token where expires_at < $1",
    "delete from refresh_token where expires_at < $1",
];

impl SqlStore {
    /// Connects to `url` (`sqlite:…` or `postgres://…`) and applies migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let store = Self::connect_without_migrating(url, max_connections).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without applying migrations.
    pub async fn connect_without_migrating(
        url: &str,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let backend = match BackendKind::of_url(url) {
            Some(BackendKind::Sqlite) => {
                let options = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    // WAL lets readers run beside the single writer; NORMAL sync is durable in WAL mode
                    // except for the last transactions on power loss.
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true);
                let pool = SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(options)
                    .await?;
                Backend::Sqlite(pool)
            }
            Some(BackendKind::Postgres) => {
                let options = PgConnectOptions::from_str(url)?;
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(options)
                    .await?;
                Backend::Postgres(pool)
            }
            None => {
                return Err(StoreError::Database(sqlx::Error::Configuration(
                    "the database URL must start with sqlite: or postgres://".into(),
                )));
            }
        };
        Ok(Self { backend })
    }

    /// Applies the embedded migrations of the back-end.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(pool) => migrator(SQLITE_MIGRATIONS).run(pool).await?,
            Backend::Postgres(pool) => migrator(POSTGRES_MIGRATIONS).run(pool).await?,
        }
        Ok(())
    }

    /// Which back-end this is.
    pub fn kind(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite(_) => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        on_backend!(self, pool => pool.close().await)
    }
}

#[async_trait]
impl ClientStore for SqlStore {
    async fn create_client(&self, client: &ClientRecord, now: i64) -> Result<(), StoreError> {
        let grant_types = client
            .grant_types
            .iter()
            .map(|grant| grant.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "insert into client (client_id, secret_digest, is_public, grant_types, redirect_uris, scope, audiences, \
                 skip_consent, created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
            )
            .bind(&client.client_id)
            .bind(client.secret_digest.map(|digest| digest.to_hex()))
            .bind(client.is_public)
            .bind(&grant_types)
            .bind(client.redirect_uris.join(" "))
            .bind(client.scope.to_string())
            .bind(client.audiences.join(" "))
            .bind(client.skip_consent)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|error| unique_violation(error, "client"))?;
            sqlx::query(BUMP_CONFIG_VERSION).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    async fn find_client(&self, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
        on_backend!(self, pool => {
            let row = sqlx::query(
                "select client_id, secret_digest, is_public, grant_types, redirect_uris, scope, audiences, skip_consent \
                 from client where client_id = $1",
            )
            .bind(client_id)
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                Some(row) => Some(client_from_row!(&row)),
                None => None,
            })
        })
    }
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
                .bind(&grant.family_id)
                .bind(&grant.client_id)
                .bind(&grant.user_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "insert into authorization_code (code_digest, family_id, client_id, user_id, redirect_uri, scope, audience, \
                 code_challenge, auth_time, expires_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(code.code_digest.to_hex())
            .bind(&grant.family_id)
            .bind(&grant.client_id)
            .bind(&grant.user_id)
            .bind(&code.redirect_uri)
            .bind(grant.scope.to_string())
            .bind(&grant.audience)
            .bind(&code.code_challenge)
            .bind(grant.auth_time)
            .bind(code.expires_at)
            .execute(&mut *tx)
            .await?;
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
                "select code_digest, family_id, client_id, user_id, redirect_uri, scope, audience, code_challenge, auth_time, \
                 expires_at, used_at from authorization_code where code_digest = $1",
            )
            .bind(code_digest.to_hex())
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                Some(row) => Some(AuthorizationCodeRecord {
                    code_digest: digest(&row.try_get::<String, _>("code_digest")?, "authorization code")?,
                    authorization: authorization_from_row!(&row),
                    redirect_uri: row.try_get("redirect_uri")?,
                    code_challenge: row.try_get("code_challenge")?,
                    expires_at: row.try_get("expires_at")?,
                    used_at: row.try_get("used_at")?,
                }),
                None => None,
            })
        })
    }

    async fn exchange_code(
        &self,
        code_digest: &SecretDigest,
        family_id: &str,
        now: i64,
        access_token: &IssuedAccessToken,
        refresh_token: Option<&RefreshTokenRecord>,
    ) -> Result<CodeExchange, StoreError> {
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            // Compare-and-set: only one exchange can flip used_at from null.
            let consumed = sqlx::query("update authorization_code set used_at = $1 where code_digest = $2 and used_at is null")
                .bind(now)
                .bind(code_digest.to_hex())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if consumed != 1 {
                tx.rollback().await?;
                return Ok(CodeExchange::AlreadyUsed);
            }
            sqlx::query("insert into issued_access_token (jti, family_id, expires_at) values ($1, $2, $3)")
                .bind(&access_token.jti)
                .bind(family_id)
                .bind(access_token.expires_at)
                .execute(&mut *tx)
                .await?;
            if let Some(refresh) = refresh_token {
                insert_refresh_token!(&mut *tx, refresh);
            }
            tx.commit().await?;
            Ok(CodeExchange::Exchanged)
        })
    }

    async fn find_refresh_token(
        &self,
        token_digest: &SecretDigest,
    ) -> Result<Option<RefreshTokenRecord>, StoreError> {
        on_backend!(self, pool => {
            let row = sqlx::query(
                "select r.token_digest, r.family_id, r.client_id, r.user_id, r.scope, r.audience, r.auth_time, r.created_at, \
                 r.expires_at, r.used_at, f.revoked_at from refresh_token r join token_family f on f.family_id = r.family_id \
                 where r.token_digest = $1",
            )
            .bind(token_digest.to_hex())
            .fetch_optional(pool)
            .await?;
            Ok(match row {
                Some(row) => Some(RefreshTokenRecord {
                    token_digest: digest(&row.try_get::<String, _>("token_digest")?, "refresh token")?,
                    authorization: authorization_from_row!(&row),
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                    used_at: row.try_get("used_at")?,
                    family_revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
                }),
                None => None,
            })
        })
    }

    async fn rotate_refresh_token(
        &self,
        old: &SecretDigest,
        now: i64,
        access_token: &IssuedAccessToken,
        new: &RefreshTokenRecord,
    ) -> Result<Rotation, StoreError> {
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            // Compare-and-set on used_at: of concurrent rotations of one token, exactly one matches a row.
            let rotated = sqlx::query("update refresh_token set used_at = $1 where token_digest = $2 and used_at is null")
                .bind(now)
                .bind(old.to_hex())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if rotated != 1 {
                tx.rollback().await?;
                return Ok(Rotation::AlreadyUsed);
            }
            insert_refresh_token!(&mut *tx, new);
            sqlx::query("insert into issued_access_token (jti, family_id, expires_at) values ($1, $2, $3)")
                .bind(&access_token.jti)
                .bind(&new.authorization.family_id)
                .bind(access_token.expires_at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Rotation::Rotated)
        })
    }

    async fn revoke_family(&self, family_id: &str, now: i64) -> Result<(), StoreError> {
        on_backend!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("update token_family set revoked_at = $1 where family_id = $2 and revoked_at is null")
                .bind(now)
                .bind(family_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "insert into revoked_access_token (jti, expires_at) select jti, expires_at from issued_access_token \
                 where family_id = $1 and expires_at >= $2 on conflict (jti) do nothing",
            )
            .bind(family_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
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

    async fn is_access_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        on_backend!(self, pool => {
            let row = sqlx::query("select 1 as hit from revoked_access_token where jti = $1")
                .bind(jti)
                .fetch_optional(pool)
                .await?;
            Ok(row.is_some())
        })
    }

    async fn purge_expired(&self, now: i64) -> Result<u64, StoreError> {
        let mut purged = 0;
        for statement in PURGE_STATEMENTS {
            purged += on_backend!(self, pool => {
                sqlx::query(statement).bind(now).execute(pool).await?.rows_affected()
            });
        }
        Ok(purged)
    }
}

#[async_trait]
impl HealthStore for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        on_backend!(self, pool => {
            sqlx::query("select 1").execute(pool).await?;
        });
        Ok(())
    }

    async fn config_version(&self) -> Result<i64, StoreError> {
        on_backend!(self, pool => {
            let row = sqlx::query("select version from config_version where config_version_id = 1")
                .fetch_one(pool)
                .await?;
            Ok(row.try_get("version")?)
        })
    }
}
