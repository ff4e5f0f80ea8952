//! `cargo xtask`: project automation (up, test, load, bench, ci). It runs cargo and our binaries and links
//! none of our crates.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

mod callback;
mod compare;
mod counting;
mod cycles;
mod load;
mod postgres;
mod report;
mod stack;
#[cfg(test)]
mod test_support;
mod tls;
mod up;

const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  up       build and start auth-server + resource-api on SQLite, seed demo clients and a user, print curl commands
           and serve the demo client's callback page (`up --help`)
  test     fmt check, clippy -D warnings, every test of the workspace (PostgreSQL: DATABASE_URL, else a
           testcontainers PostgreSQL when Docker answers, else skipped with a notice; `--require-postgres`,
           `ci` and a set CI variable make that a failure); prints how many tests ran on each back-end
  load     release build, start the stack, run Goose scenarios, reports in target/loadtest/ (`load --help`)
  fuzz     the fuzz targets (verifier, scope parser, /token, /introspect, /revoke, /authorize) for longer:
           `cargo xtask fuzz [CASES]` (default 20000 cases per target; CI runs 256-512)
  cycles   fail if a module of ours imports a module that imports it back (directly or through others)
  ci       what CI runs: test --require-postgres, then the benches compiled and run once each in test mode
  bench    Criterion benches of auth-core (extra args go to Criterion, e.g. `cargo xtask bench token/ES256`)
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let root = project_root()?;
    env::set_current_dir(&root).with_context(|| format!("entering {}", root.display()))?;
    match task.as_deref() {
        Some("up") if rest.iter().any(|a| a == "--help" || a == "-h") => {
            println!("{}", up::USAGE);
            Ok(())
        }
        Some("up") => up::up(&rest),
        Some("load") if rest.iter().any(|a| a == "--help" || a == "-h") => {
            println!("{}", load::USAGE);
            Ok(())
        }
        Some("load") => load::load(&rest),
        Some("fuzz") => fuzz(&rest),
        Some("test") => test(&rest, false),
        Some("ci") => ci(),
        Some("cycles") => cycles::check(&root),
        Some("bench") => bench(&rest),
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task {other:?}\n{USAGE}"),
    }
}

/// The workspace root: the parent of this crate's manifest directory.
pub fn project_root() -> Result<PathBuf> {
    let manifest_dir = env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .context("xtask must live one directory below the workspace root")
}

/// Cargo's target directory for this workspace (`CARGO_TARGET_DIR`, a config's `build.target-dir`, or
/// `target/`), as cargo itself reports it.
pub fn target_dir() -> Result<PathBuf> {
    target_dir_with(&[])
}

/// [`target_dir`] with extra environment variables for cargo.
pub fn target_dir_with(envs: &[(&str, &str)]) -> Result<PathBuf> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .envs(envs.iter().copied())
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {cargo} metadata"))?;
    if !output.status.success() {
        bail!("`cargo metadata` failed ({})", output.status);
    }
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("reading `cargo metadata`")?;
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("`cargo metadata` names no target directory")
}

/// Runs `cargo <args>` with the cargo that runs us (the `CARGO` env var).
fn cargo(args: &[&str]) -> Result<()> {
    cargo_with_env(args, &[])
}

/// Runs `cargo <args>` with extra environment variables for it and its children.
fn cargo_with_env(args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("xtask: $ cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .envs(envs.iter().copied())
        .status()
        .with_context(|| format!("running {cargo}"))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Whether an executable named `name` is on `PATH`.
fn on_path(name: &str) -> bool {
    env::var_os("PATH")
        .is_some_and(|path| env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

/// Seconds since the Unix epoch (unique-enough suffixes for seeded ids).
pub fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default()
}

/// The debug build of every binary of the workspace, with the features the tests use: the tests of xtask run
/// `xtask up` and `xtask load` with them (`--bin-dir`), and cargo builds a binary for a test only when its own
/// package has integration tests.
pub const BUILD_BINARIES: &[&str] = &["build", "--workspace", "--all-features", "--bins"];

/// `cargo xtask test [--require-postgres]`: everything; `ci` and a set `CI` variable require PostgreSQL.
fn test(args: &[String], mut require_postgres: bool) -> Result<()> {
    match args {
        [] => {}
        [flag] if flag == "--require-postgres" => require_postgres = true,
        _ => bail!("usage: cargo xtask test [--require-postgres]"),
    }
    require_postgres |= env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false");
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ])?;
    cycles::check(&project_root()?)?;
    let postgres = postgres::for_tests()?;
    let skipped = matches!(postgres, postgres::TestPostgres::Skipped);
    if skipped && require_postgres {
        bail!(
            "the PostgreSQL half of the tests cannot run (no DATABASE_URL, no Docker engine) and is required \
             here (CI, ci or --require-postgres): set DATABASE_URL=postgres://…"
        );
    }
    // The real-browser tests need headless Chromium and chromedriver: required where PostgreSQL is (CI),
    // skipped loudly by the tests themselves elsewhere.
    let browser = on_path("chromedriver")
        && ["chromium", "chromium-browser", "google-chrome"]
            .iter()
            .any(|name| on_path(name));
    if !browser && require_postgres {
        bail!(
            "the browser tests cannot run (no chromium or chromedriver on PATH) and are required here (CI, ci or \
             --require-postgres): apt-get install chromium chromium-driver"
        );
    }
    mcp_client()?;
    let mut envs: Vec<(&str, &str)> = postgres
        .url_for_children()
        .map(|url| ("DATABASE_URL", url))
        .into_iter()
        .collect();
    if require_postgres {
        envs.push(("REQUIRE_BROWSER", "1"));
    }
    // Every PostgreSQL test lives in a module named `postgres`: without PostgreSQL they are filtered
    // out (and counted as not run below), never run to pass without a database.
    let mut test_args = vec![
        "test",
        "--workspace",
        "--all-features",
        "--lib",
        "--bins",
        "--tests",
        "--examples",
    ];
    if skipped {
        test_args.extend(["--", "--skip", "::postgres::"]);
    }
    cargo(BUILD_BINARIES)?;
    let counts = counting::cargo_test(&test_args, &envs)?;
    cargo_with_env(&["test", "--workspace", "--all-features", "--doc"], &envs)?;
    eprintln!("xtask: {counts}");
    if !browser {
        eprintln!(
            "xtask: NOTICE: the browser tests were SKIPPED (apt-get install chromium chromium-driver)"
        );
    }
    if skipped {
        eprintln!(
            "xtask: NOTICE: the PostgreSQL half of the tests was SKIPPED (no DATABASE_URL, no Docker)"
        );
    } else if counts.postgres == 0 {
        bail!("no PostgreSQL test ran although PostgreSQL was there: {counts}");
    }
    Ok(())
}

/// The official MCP TypeScript SDK that the end-to-end test drives (`tests/mcp`): installed from its lock
/// file when missing or older than the lock file (`npm ci`: exactly the pinned versions, checked against the
/// lock file's hashes).
fn mcp_client() -> Result<()> {
    let folder = project_root()?.join("tests/mcp");
    if !on_path("node") || !on_path("npm") {
        bail!("the MCP client test needs node and npm on PATH: apt-get install nodejs npm");
    }
    let installed = folder.join("node_modules/.package-lock.json");
    let modified = |path: &Path| {
        std::fs::metadata(path)
            .and_then(|meta| meta.modified())
            .ok()
    };
    let current = match (
        modified(&installed),
        modified(&folder.join("package-lock.json")),
    ) {
        (Some(installed), Some(locked)) => installed >= locked,
        _ => false,
    };
    if !current {
        eprintln!("xtask: installing the MCP SDK (npm ci in tests/mcp)");
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel", "error"])
            .current_dir(&folder)
            .status()
            .context("running npm ci")?;
        if !status.success() {
            bail!("npm ci in {} failed", folder.display());
        }
    }
    Ok(())
}

/// The proptest-driven fuzz targets (every test named `fuzz_…`) with many more cases than CI gives them.
fn fuzz(args: &[String]) -> Result<()> {
    let cases = match args {
        [] => 20_000,
        [cases] => cases
            .parse::<u32>()
            .ok()
            .filter(|cases| (1..=10_000_000).contains(cases))
            .with_context(|| format!("cargo xtask fuzz [CASES]: {cases:?} is not 1 to 10000000"))?,
        _ => bail!("usage: cargo xtask fuzz [CASES]"),
    };
    let cases = cases.to_string();
    eprintln!("xtask: fuzz targets with {cases} cases each");
    cargo_with_env(
        &[
            "test",
            "--workspace",
            "--all-features",
            "--lib",
            "--tests",
            "fuzz_",
        ],
        &[("PROPTEST_CASES", &cases)],
    )
}

fn ci() -> Result<()> {
    test(&[], true)?;
    // Criterion benches run each function once in test mode: a broken bench fails CI, and no timing is taken.
    cargo(&["test", "--workspace", "--all-features", "--benches"])
}

fn bench(extra: &[String]) -> Result<()> {
    // `cargo xtask bench -- --warm-up-time 1` and `cargo xtask bench --warm-up-time 1` mean the same.
    let extra = extra.strip_prefix(&["--".to_owned()]).unwrap_or(extra);
    let mut args = vec![
        "bench",
        "--package",
        "auth-core",
        "--all-features",
        "--bench",
        "auth_core",
    ];
    if !extra.is_empty() {
        args.push("--");
        args.extend(extra.iter().map(String::as_str));
    }
    cargo(&args)
}
