//! Where the PostgreSQL half of `cargo xtask test` runs: DATABASE_URL when it is a postgres URL;
//! otherwise a throwaway PostgreSQL container when a Docker engine answers; otherwise nowhere, said loudly.

use std::env;
use std::time::Duration;

use anyhow::{Context, Result};
use testcontainers_modules::postgres::Postgres;
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt};

/// Starting the container includes pulling the image the first time.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// A running container and the runtime that removes it.
pub struct Container {
    url: String,
    container: Option<ContainerAsync<Postgres>>,
    runtime: tokio::runtime::Runtime,
}

/// The PostgreSQL the tests use; a container is removed when this is dropped.
pub enum TestPostgres {
    FromEnv,
    Container(Box<Container>),
    Skipped,
}

impl TestPostgres {
    /// `DATABASE_URL` for the test processes, when it must be set for them.
    pub fn url_for_children(&self) -> Option<&str> {
        match self {
            Self::Container(container) => Some(&container.url),
            Self::FromEnv | Self::Skipped => None,
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if let Self::Container(running) = self
            && let Some(container) = running.container.take()
            && let Err(error) = running.runtime.block_on(container.rm())
        {
            eprintln!("xtask: removing the PostgreSQL container: {error}");
        }
    }
}

/// Decides, and says in one line, where the PostgreSQL tests run.
pub fn for_tests() -> Result<TestPostgres> {
    if env::var("DATABASE_URL").is_ok_and(|url| url.starts_with("postgres")) {
        eprintln!("xtask: PostgreSQL tests run against DATABASE_URL");
        return Ok(TestPostgres::FromEnv);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime for testcontainers")?;
    let started: Result<(ContainerAsync<Postgres>, u16), String> = runtime.block_on(async {
        let start = Postgres::default().with_tag("17-alpine").start();
        let container = match tokio::time::timeout(START_TIMEOUT, start).await {
            Ok(Ok(container)) => container,
            Ok(Err(error)) => return Err(error.to_string()),
            Err(_) => return Err(format!("no container after {START_TIMEOUT:?}")),
        };
        let port = container
            .get_host_port_ipv4(5432)
            .await
            .map_err(|error| error.to_string())?;
        Ok((container, port))
    });
    match started {
        Ok((container, port)) => {
            let url = format!("postgres://postgres:postgres@127.0.0.1:{port}/postgres");
            eprintln!(
                "xtask: PostgreSQL tests run in a testcontainers PostgreSQL 17 at 127.0.0.1:{port}"
            );
            Ok(TestPostgres::Container(Box::new(Container {
                url,
                container: Some(container),
                runtime,
            })))
        }
        Err(reason) => {
            eprintln!(
                "xtask: no PostgreSQL for the tests: no DATABASE_URL, and no Docker engine answered ({})",
                one_line(&reason)
            );
            Ok(TestPostgres::Skipped)
        }
    }
}

fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(160).collect()
}
