//! The SQL store on SQLite and PostgreSQL, one file per store trait it implements.
//!
//! Each query is written once, in SQL both back-ends accept (`$n` placeholders, `on conflict`, lowercase
//! keywords), and [`on_backend!`] expands the code around it once per back-end, so each back-end gets its
//! own type-checked implementation with its own pool type, without generic bounds on every column type.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use auth_core::scope::ScopeSet;
use auth_core::secret::SecretDigest;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, SqlStr};

use super::StoreError;

/// Migrations embedded in the binary, per back-end.
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "revocation by family",
        include_str!("../../../migrations/postgres/0002_revocation_by_family.sql"),
    ),
    (
        3,
        "openid connect",
        include_str!("../../../migrations/postgres/0003_openid_connect.sql"),
    ),
    (
        4,
        "dpop",
        include_str!("../../../migrations/postgres/0004_dpop.sql"),
    ),
    (
        5,
        "private_key_jwt",
        include_str!("../../../migrations/postgres/0005_private_key_jwt.sql"),
    ),
    (
        6,
        "pushed authorization requests",
        include_str!("../../../migrations/postgres/0006_par.sql"),
    ),
    (
        7,
        "dpop-bound codes",
        include_str!("../../../migrations/postgres/0007_dpop_bound_codes.sql"),
    ),
    (
        8,
        "operator tools",
        include_str!("../../../migrations/postgres/0008_operator_tools.sql"),
    ),
    (
        9,
        "per-source bounds",
        include_str!("../../../migrations/postgres/0009_per_source_bounds.sql"),
    ),
    (
        10,
        "id token algorithms",
        include_str!("../../../migrations/postgres/0010_id_token_algorithms.sql"),
    ),
    (
        11,
        "dynamic registration",
        include_str!("../../../migrations/postgres/0011_dynamic_registration.sql"),
    ),
    (
        12,
        "idle dynamic clients",
        include_str!("../../../migrations/postgres/0012_idle_dynamic_clients.sql"),
    ),
    (
        13,
        "exchange_and_logout",
        include_str!("../../../migrations/postgres/0013_exchange_and_logout.sql"),
    ),
    (
        14,
        "device_authorization",
        include_str!("../../../migrations/postgres/0014_device_authorization.sql"),
    ),
    (
        15,
        "backchannel_logout",
        include_str!("../../../migrations/postgres/0015_backchannel_logout.sql"),
    ),
];
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "revocation by family",
        include_str!("../../../migrations/sqlite/0002_revocation_by_family.sql"),
    ),
    (
        3,
        "openid connect",
        include_str!("../../../migrations/sqlite/0003_openid_connect.sql"),
    ),
    (
        4,
        "dpop",
        include_str!("../../../migrations/sqlite/0004_dpop.sql"),
    ),
    (
        5,
        "private_key_jwt",
        include_str!("../../../migrations/sqlite/0005_private_key_jwt.sql"),
    ),
    (
        6,
        "pushed authorization requests",
        include_str!("../../../migrations/sqlite/0006_par.sql"),
    ),
    (
        7,
        "dpop-bound codes",
        include_str!("../../../migrations/sqlite/0007_dpop_bound_codes.sql"),
    ),
    (
        8,
        "operator tools",
        include_str!("../../../migrations/sqlite/0008_operator_tools.sql"),
    ),
    (
        9,
        "per-source bounds",
        include_str!("../../../migrations/sqlite/0009_per_source_bounds.sql"),
    ),
    (
        10,
        "id token algorithms",
        include_str!("../../../migrations/sqlite/0010_id_token_algorithms.sql"),
    ),
    (
        11,
        "dynamic registration",
        include_str!("../../../migrations/sqlite/0011_dynamic_registration.sql"),
    ),
    (
        12,
        "idle dynamic clients",
        include_str!("../../../migrations/sqlite/0012_idle_dynamic_clients.sql"),
    ),
    (
        13,
        "exchange_and_logout",
        include_str!("../../../migrations/sqlite/0013_exchange_and_logout.sql"),
    ),
    (
        14,
        "device_authorization",
        include_str!("../../../migrations/sqlite/0014_device_authorization.sql"),
    ),
    (
        15,
        "backchannel_logout",
        include_str!("../../../migrations/sqlite/0015_backchannel_logout.sql"),
    ),
];

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
    /// The most back-channel logouts waiting in all (`--backchannel-max-pending`).
    backchannel_max_pending: i64,
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

/// Run in the transaction of every change to clients or keys, so replicas notice and drop their caches.
/// Takes the configuration row's lock without changing it: on PostgreSQL a row lock, on SQLite the
/// database's write lock, each held until the transaction ends. Every transaction that changes clients
/// takes it first (or bumps first), so that two of them never wait on each other's rows in turn.
const LOCK_CONFIG_VERSION: &str =
    "update config_version set version = version where config_version_id = 1";

const BUMP_CONFIG_VERSION: &str =
    "update config_version set version = version + 1 where config_version_id = 1";

/// Expired rows: each statement with its `$1`, now minus `PURGE_LEEWAY` (`false`) or minus the longest
/// access-token lifetime as well (`true`). A code stays until no access token minted with it can still be
/// valid, so that its family is not purged early; a refresh token likewise. The leeway covers the clock skew
/// between replicas and a token signed a moment after the database write.
const PURGE_STATEMENTS: [(&str, bool); 9] = [
    ("delete from authorization_code where expires_at < $1", true),
    ("delete from login_session where expires_at < $1", false),
    (
        "delete from revoked_access_token where expires_at < $1",
        false,
    ),
    ("delete from refresh_token where expires_at < $1", true),
    ("delete from used_jti where expires_at < $1", false),
    ("delete from pushed_request where expires_at < $1", false),
    // RFC 8628: a denied or expired device code keeps its answer for 600 s after its expiry.
    (
        "delete from device_authorization where expires_at + 300 < $1",
        false,
    ),
    // A session's clients are kept while the session lives (its logout tells them).
    (
        "delete from session_client where created_at < $1 \
         and not exists (select 1 from login_session s where s.sid = session_client.sid)",
        false,
    ),
    // Once no token of a deleted client can be unexpired, the record has nothing left to refuse.
    ("delete from deleted_client where deleted_at < $1", true),
];

/// How long the first connection to PostgreSQL may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A database URL that does not parse.
fn invalid_url(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::Configuration(reason) => {
            StoreError::Connect(format!("the database URL is not valid: {reason}"))
        }
        other => StoreError::Database(other),
    }
}

/// Where a PostgreSQL URL points: `HOST:PORT`, or the socket directory.
fn postgres_address(options: &PgConnectOptions) -> String {
    match options.get_socket() {
        Some(socket) => format!("{} (port {})", socket.display(), options.get_port()),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    }
}

/// What an operator reads when PostgreSQL refuses the first connection: what happened and, where it is
/// plain, what to do, in one line (PostgreSQL's SQLSTATE codes, Appendix A of its manual).
fn postgres_connect_error(options: &PgConnectOptions, error: sqlx::Error) -> StoreError {
    let address = postgres_address(options);
    let user = options.get_username();
    let database = options.get_database().unwrap_or(user);
    let message = match &error {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused by {address}: is PostgreSQL running there?")
        }
        sqlx::Error::Io(io) => format!("cannot reach PostgreSQL at {address}: {io}"),
        sqlx::Error::Database(refused) => match refused.code().as_deref() {
            Some("3D000") => format!(
                "database \"{database}\" does not exist at {address}: create it with `createdb -h {} -p {} -U {user} {database}` (or CREATE DATABASE)",
                options.get_host(),
                options.get_port()
            ),
            Some("28000" | "28P01") => format!(
                "PostgreSQL at {address} refused user \"{user}\": {}",
                refused.message()
            ),
            _ => format!(
                "PostgreSQL at {address} refused the connection: {}",
                refused.message()
            ),
        },
        sqlx::Error::Tls(tls) => format!("TLS to PostgreSQL at {address} failed: {tls}"),
        _ => return StoreError::Database(error),
    };
    StoreError::Connect(message)
}

/// The default bound on back-channel logouts waiting in all.
pub const DEFAULT_BACKCHANNEL_MAX_PENDING: i64 = 10_000;

/// Seconds every purge waits beyond an expiry (see `PURGE_STATEMENTS`).
pub const PURGE_LEEWAY: i64 = 300;
/// Whether a database URL names an in-memory SQLite database (`sqlite::memory:`, or a `mode=memory` URI):
/// nothing on disk, gone with the process.
pub fn is_in_memory(url: &str) -> bool {
    let Some(rest) = url.trim().strip_prefix("sqlite:") else {
        return false;
    };
    let database = rest.strip_prefix("//").unwrap_or(rest);
    database.starts_with(":memory:") || database.contains("mode=memory")
}

impl SqlStore {
    /// This store with at most `max` back-channel logouts waiting (beyond, new ones are dropped and audited).
    pub fn with_backchannel_max_pending(mut self, max: i64) -> Self {
        self.backchannel_max_pending = max.max(1);
        self
    }

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
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(invalid_url)?
                    .create_if_missing(true)
                    // WAL lets readers run beside the single writer; NORMAL sync is durable in WAL mode
                    // except for the last transactions on power loss.
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true);
                let directory = options
                    .get_filename()
                    .parent()
                    .filter(|directory| !directory.as_os_str().is_empty());
                if let Some(directory) = directory
                    && !directory.is_dir()
                {
                    return Err(StoreError::Connect(format!(
                        "the directory {} of the SQLite database does not exist: create it, or point DATABASE_URL elsewhere",
                        directory.display()
                    )));
                }
                // `sqlite::memory:`: one database per process, alive as long as its one connection (a pool
                // of in-memory connections would each see an empty database of their own).
                let in_memory = is_in_memory(url);
                let pool = SqlitePoolOptions::new()
                    .max_connections(if in_memory { 1 } else { max_connections })
                    .min_connections(u32::from(in_memory))
                    .idle_timeout(if in_memory {
                        None
                    } else {
                        Some(Duration::from_secs(600))
                    })
                    .max_lifetime(if in_memory {
                        None
                    } else {
                        Some(Duration::from_secs(1800))
                    })
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(options.clone())
                    .await
                    .map_err(|error| match error {
                        sqlx::Error::Database(database) => StoreError::Connect(format!(
                            "cannot open the SQLite database {}: {}",
                            options.get_filename().display(),
                            database.message()
                        )),
                        other => StoreError::Database(other),
                    })?;
                Backend::Sqlite(pool)
            }
            Some(BackendKind::Postgres) => {
                let options = PgConnectOptions::from_str(url).map_err(invalid_url)?;
                // One connection first: a pool that cannot connect reports only that it timed out, and
                // the operator needs the reason.
                match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
                    .await
                {
                    Ok(Ok(connection)) => {
                        let _ = connection.close().await;
                    }
                    Ok(Err(error)) => return Err(postgres_connect_error(&options, error)),
                    Err(_) => {
                        return Err(StoreError::Connect(format!(
                            "no answer from PostgreSQL at {} within {} s",
                            postgres_address(&options),
                            CONNECT_TIMEOUT.as_secs()
                        )));
                    }
                }
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(options)
                    .await?;
                Backend::Postgres(pool)
            }
            None => {
                return Err(StoreError::Connect(
                    "the database URL must start with sqlite: or postgres://".into(),
                ));
            }
        };
        Ok(Self {
            backend,
            backchannel_max_pending: DEFAULT_BACKCHANNEL_MAX_PENDING,
        })
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

mod clients;
mod consent;
mod declared;
mod device;
mod grants;
mod health;
mod jtis;
mod keys;
mod logout;
mod pushed;
mod registration;
mod users;

#[cfg(test)]
mod tests {
    use super::is_in_memory;

    #[test]
    fn every_spelling_of_an_in_memory_sqlite_database_is_one() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite::memory:?cache=shared",
            "sqlite://file:fixtures?mode=memory&cache=shared",
        ] {
            assert!(is_in_memory(url), "{url}");
        }
        for url in [
            "sqlite://auth.db",
            "sqlite:///var/lib/auth/memory.db",
            "postgres://postgres@127.0.0.1/memory",
        ] {
            assert!(!is_in_memory(url), "{url}");
        }
    }
}
