//! Running `cargo test` while counting what ran on each back-end: libtest's `test <path> ... ok` lines
//! are echoed as they come and tallied by the `sqlite` / `postgres` module in their path.

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Tests that passed, by back-end.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub sqlite: usize,
    pub postgres: usize,
    /// Tests that need no database, or run on SQLite only outside a `sqlite` module.
    pub other: usize,
}

impl Counts {
    /// Tallies one line of libtest output.
    pub fn add_line(&mut self, line: &str) {
        let Some(name) = line
            .strip_prefix("test ")
            .and_then(|rest| rest.strip_suffix(" ... ok"))
        else {
            return;
        };
        if name.contains("::postgres::") {
            self.postgres += 1;
        } else if name.contains("::sqlite::") {
            self.sqlite += 1;
        } else {
            self.other += 1;
        }
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tests passed: {} on SQLite, {} on PostgreSQL, {} needing no particular back-end",
            self.sqlite, self.postgres, self.other
        )
    }
}

/// `cargo <args>` with `envs`, its stdout echoed and counted.
pub fn cargo_test(args: &[&str], envs: &[(&str, &str)]) -> Result<Counts> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("xtask: $ cargo {}", args.join(" "));
    let mut child = Command::new(&cargo)
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cargo}"))?;
    let stdout = child.stdout.take().context("the test output")?;
    let mut counts = Counts::default();
    let mut echo = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading the test output")?;
        counts.add_line(&line);
        let _ = writeln!(echo, "{line}");
    }
    let status = child.wait().context("waiting for cargo test")?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passed_tests_are_counted_by_back_end() {
        let mut counts = Counts::default();
        for line in [
            "test cli::postgres::a_key ... ok",
            "test cli::sqlite::a_key ... ok",
            "test faults::postgres::outage_is_503 ... ok",
            "test keys::tests::x ... ok",
            "test cli::postgres::broken ... FAILED",
            "test result: ok. 3 passed",
            "running 12 tests",
        ] {
            counts.add_line(line);
        }
        assert_eq!(
            counts,
            Counts {
                sqlite: 1,
                postgres: 2,
                other: 1
            }
        );
    }
}
