//! A database per test: a fresh SQLite file, or a PostgreSQL database created from `DATABASE_URL` and
//! dropped at the end.

use std::path::{Path, PathBuf};

/// Which database a test runs on.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    /// PostgreSQL from `DATABASE_URL`. Tests on PostgreSQL live in modules named `postgres`; `cargo xtask
    /// test` skips those modules (`--skip ::postgres::`) when it has no PostgreSQL, and fails in CI. So a
    /// test that runs here without PostgreSQL fails: it never passes without having run.
    pub fn postgres() -> Self {
        match std::env::var("DATABASE_URL") {
            Ok(url) if url.starts_with("postgres") => Self::Postgres(url),
            _ => panic!(
                "this test needs PostgreSQL: set DATABASE_URL=postgres://…, or skip the PostgreSQL half with \
                 `cargo xtask test` (which says so) or `cargo test -- --skip ::postgres::`"
            ),
        }
    }
}

/// Writes each behaviour test as `async fn name(backend: Backend)` once, and runs it on both back-ends,
/// as `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::Backend::postgres()).await
                }
            )+
        }
    };
}

/// A temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("auth-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    pub backend: Backend,
    dir: Option<TempDir>,
    drop_postgres: Option<(String, String)>,
}

impl TestDatabase {
    pub async fn create(backend: &Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = TempDir::new();
                let url = format!("sqlite://{}", dir.path().join("auth.db").display());
                Self {
                    url,
                    backend: backend.clone(),
                    dir: Some(dir),
                    drop_postgres: None,
                }
            }
            Backend::Postgres(admin_url) => {
                use sqlx::Connection;
                let name = format!("auth_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = sqlx::PgConnection::connect(admin_url)
                    .await
                    .expect("connect to PostgreSQL (DATABASE_URL)");
                sqlx::Executor::execute(
                    &mut admin,
                    sqlx::AssertSqlSafe(format!("create database {name}")),
                )
                .await
                .expect("create test database");
                let _ = admin.close().await;
                let mut url = url::Url::parse(admin_url).expect("DATABASE_URL is a URL");
                url.set_path(&format!("/{name}"));
                Self {
                    url: url.to_string(),
                    backend: backend.clone(),
                    dir: None,
                    drop_postgres: Some((admin_url.clone(), name)),
                }
            }
        }
    }

    /// The SQLite file (SQLite only).
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.path().join("auth.db"))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.drop_postgres.take() else {
            return;
        };
        // Drop runs outside async: a thread with its own runtime, waited for.
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(async move {
                use sqlx::Connection;
                let mut admin = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .map_err(|error| error.to_string())?;
                sqlx::Executor::execute(
                    &mut admin,
                    sqlx::AssertSqlSafe(format!("drop database if exists {name} with (force)")),
                )
                .await
                .map_err(|error| format!("drop database {name}: {error}"))?;
                Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            // A leaked database is worth a line, never a panic inside Drop.
            Ok(Err(error)) => eprintln!("testkit: test database left behind: {error}"),
            Err(_) => eprintln!("testkit: dropping a test database panicked"),
        }
    }
}
