//! `cargo xtask load`: release-build, start auth-server + resource-api on a fresh SQLite database (or a given
//! PostgreSQL), seed clients and a user, run the Goose scenarios with the loadtest binary, and leave per
//! scenario an HTML report whose charts are drawn here (no network needed to read it), Goose's JSON report and
//! a summary under target/loadtest/. Only loopback is loaded, for a bounded time.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::stack::{Binaries, Output, fresh_sqlite, seed, start_servers};
use crate::unix_seconds;

pub const USAGE: &str = "\
usage: cargo xtask load [--scenario NAME]... [--users N] [--run-time 30s | --iterations N]
                        [--database-url URL] [--compare --other-issuer URL --other-client-id ID
                        [--other-client-secret SECRET] [--other-name NAME] [--other-scope S] [--other-resource R]]
                        [--out DIR] [--bin-dir DIR] [-- extra loadtest/Goose options]
  --scenario     issue | validate | issue-dpop | validate-dpop | refresh | introspect | authcode | openid |
                 exchange | mixed | all
                 (default mixed; repeatable)
  --users        concurrent Goose users, 1 to 512                                     (default 8)
  --run-time     how long each scenario runs: 20s, 2m, 1m30s; at most 1h             (default 30s)
  --iterations   instead of --run-time: iterations per user, at most 100000
  --database-url auth-server's database (default: a fresh SQLite file in target/loadtest/)
  --compare      also run each scenario (issue, issue-dpop or introspect) against another OAuth server on
                 loopback (its RFC 8414 or OpenID metadata at --other-issuer), with a client registered there
                 (secret: --other-client-secret or COMPARE_CLIENT_SECRET); both servers are checked before
                 either is loaded; writes a side-by-side table and an SVG chart to
                 target/loadtest/compare-<scenario>.{md,svg} and prints the table
  --out          where the reports and server logs go                              (default target/loadtest)
  --bin-dir      run the auth-server, resource-api and loadtest binaries found there (no release build)";

const SCENARIOS: [&str; 10] = [
    "issue",
    "validate",
    "issue-dpop",
    "validate-dpop",
    "refresh",
    "introspect",
    "authcode",
    "openid",
    "exchange",
    "mixed",
];
const MAX_USERS: usize = 512;
const MAX_SECONDS: u64 = 3_600;
const MAX_ITERATIONS: usize = 100_000;

/// How long, or how many times, each scenario runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    RunTime(String),
    Iterations(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadArgs {
    pub scenarios: Vec<String>,
    pub users: usize,
    pub bound: Bound,
    pub database_url: Option<String>,
    /// Passed to the loadtest binary as they are (after `--`).
    pub extra: Vec<String>,
    /// `--compare`: the other server.
    pub compare: Option<crate::compare::Other>,
    pub out: Option<PathBuf>,
    pub bin_dir: Option<PathBuf>,
}

/// Seconds in a Goose duration: a bare number of seconds, or `1h30m10s`-style parts.
pub fn parse_duration(text: &str) -> Option<u64> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(seconds);
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        let value: u64 = digits.parse().ok()?;
        total = total.checked_add(value.checked_mul(unit)?)?;
        digits.clear();
    }
    (digits.is_empty() && !text.is_empty()).then_some(total)
}

impl LoadArgs {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut scenarios = Vec::new();
        let mut users = 8;
        let mut run_time = None;
        let mut iterations = None;
        let mut database_url = None;
        let mut out = None;
        let mut bin_dir = None;
        let mut extra = Vec::new();
        let mut compare = false;
        let mut other = crate::compare::Other {
            name: "other".into(),
            ..Default::default()
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
                _ => (arg.as_str(), None),
            };
            if flag == "--" {
                extra.extend(args.by_ref().cloned());
                break;
            }
            if flag == "--compare" {
                compare = true;
                continue;
            }
            let mut value = || -> Result<String> {
                match inline.clone() {
                    Some(value) => Ok(value),
                    None => args
                        .next()
                        .cloned()
                        .with_context(|| format!("{flag} needs a value\n{USAGE}")),
                }
            };
            match flag {
                "--scenario" => {
                    let name = value()?;
                    if name == "all" {
                        scenarios.extend(SCENARIOS.iter().map(|s| s.to_string()));
                    } else if SCENARIOS.contains(&name.as_str()) {
                        scenarios.push(name);
                    } else {
                        bail!("unknown scenario {name:?}\n{USAGE}");
                    }
                }
                "--users" => {
                    let text = value()?;
                    users = text
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_USERS).contains(n))
                        .with_context(|| format!("--users {text:?}: give 1 to {MAX_USERS}"))?;
                }
                "--run-time" => {
                    let text = value()?;
                    match parse_duration(&text) {
                        Some(seconds) if (1..=MAX_SECONDS).contains(&seconds) => {
                            run_time = Some(text)
                        }
                        _ => bail!("--run-time {text:?}: give 1s to 1h, e.g. 30s, 2m, 1m30s"),
                    }
                }
                "--iterations" => {
                    let text = value()?;
                    iterations = Some(
                        text.parse()
                            .ok()
                            .filter(|n| (1..=MAX_ITERATIONS).contains(n))
                            .with_context(|| {
                                format!("--iterations {text:?}: give 1 to {MAX_ITERATIONS}")
                            })?,
                    );
                }
                "--database-url" => database_url = Some(value()?),
                "--out" => out = Some(PathBuf::from(value()?)),
                "--bin-dir" => bin_dir = Some(PathBuf::from(value()?)),
                "--other-issuer" => other.issuer = value()?,
                "--other-client-id" => other.client_id = value()?,
                "--other-client-secret" => other.client_secret = value()?,
                "--other-name" => other.name = value()?,
                "--other-scope" => other.scope = Some(value()?),
                "--other-resource" => other.resource = Some(value()?),
                other => bail!("unknown option {other:?}\n{USAGE}"),
            }
        }
        let bound = match (run_time, iterations) {
            (Some(_), Some(_)) => bail!("give --run-time or --iterations, not both"),
            (_, Some(iterations)) => Bound::Iterations(iterations),
            (Some(run_time), None) => Bound::RunTime(run_time),
            (None, None) => Bound::RunTime("30s".into()),
        };
        if scenarios.is_empty() {
            scenarios.push("mixed".into());
        }
        scenarios.dedup();
        let compare = if compare {
            crate::compare::check_scenarios(&scenarios)?;
            if other.client_secret.is_empty() {
                other.client_secret = std::env::var("COMPARE_CLIENT_SECRET").unwrap_or_default();
            }
            if other.issuer.is_empty()
                || other.client_id.is_empty()
                || other.client_secret.is_empty()
            {
                bail!(
                    "--compare needs --other-issuer, --other-client-id and a secret (--other-client-secret or COMPARE_CLIENT_SECRET)\n{USAGE}"
                );
            }
            if !is_loopback_url(&other.issuer) {
                bail!(
                    "--other-issuer {:?}: load goes to loopback only (127.0.0.0/8, ::1, localhost)",
                    other.issuer
                );
            }
            Some(other)
        } else {
            None
        };
        Ok(Self {
            scenarios,
            users,
            bound,
            database_url,
            extra,
            compare,
            out,
            bin_dir,
        })
    }

    /// How long each scenario runs, in words.
    fn bound_text(&self) -> String {
        match &self.bound {
            Bound::RunTime(run_time) => run_time.clone(),
            Bound::Iterations(n) => format!("{n} iterations per user"),
        }
    }

    /// The loadtest binary's arguments for one scenario, reports under `out`.
    pub fn loadtest_args(&self, scenario: &str, out: &Path) -> Vec<String> {
        self.loadtest_args_as(scenario, scenario, out)
    }

    /// The same, with the report files named after `stem`.
    pub fn loadtest_args_as(&self, scenario: &str, stem: &str, out: &Path) -> Vec<String> {
        let report = |ext: &str| out.join(format!("{stem}.{ext}")).display().to_string();
        let mut args = vec![
            "--scenario".to_owned(),
            scenario.to_owned(),
            "--users".to_owned(),
            self.users.to_string(),
            // Start every user at once: the measured part is the steady state, not a ramp.
            "--increase-rate".to_owned(),
            self.users.to_string(),
            // Goose's HTML report loads its charts from a CDN: the HTML report is ours, drawn from this
            // JSON report's per-second data.
            "--report-file".to_owned(),
            report("json"),
            "--report-graph-data".to_owned(),
            "--summary-file".to_owned(),
            out.join(format!("{stem}-summary.json"))
                .display()
                .to_string(),
            "--no-print-metrics".to_owned(),
        ];
        match &self.bound {
            Bound::RunTime(run_time) => args.extend(["--run-time".to_owned(), run_time.clone()]),
            Bound::Iterations(n) => args.extend(["--iterations".to_owned(), n.to_string()]),
        }
        args.extend(self.extra.iter().cloned());
        args
    }
}

pub fn load(args: &[String]) -> Result<()> {
    let args = LoadArgs::parse(args)?;
    let binaries = Binaries::prebuilt_or_release(
        args.bin_dir.as_deref(),
        &["auth-server", "resource-api", "loadtest"],
    )?;
    binaries.check(&["auth-server", "resource-api", "loadtest"])?;
    let out = match &args.out {
        Some(out) => out.clone(),
        None => crate::target_dir()?.join("loadtest"),
    };
    // The logs and reports go there whatever the database (a fresh clone has no such folder yet).
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let out = out.as_path();
    // The other server first: a wrong URL or client there is found before our side runs (or even starts).
    if let Some(other) = &args.compare {
        for scenario in &args.scenarios {
            check(&binaries, scenario, &other.loadtest_env()).map_err(|reason| {
                anyhow::anyhow!(
                    "the other server ({} at {}) cannot run {scenario}: {reason}. Is it running, and do \
                     --other-client-id and the secret name a client registered there for client_credentials? \
                     Nothing was loaded.",
                    other.name,
                    other.issuer
                )
            })?;
        }
    }
    let database_url = match &args.database_url {
        // Someone's database keeps its rows; the example's clients and user are made to match the file.
        Some(url) => url.clone(),
        None => fresh_sqlite(out)?,
    };
    let auth_server = binaries.path("auth-server");
    let password = format!("load-{}", unix_seconds());
    let seeded = seed(
        &auth_server,
        &database_url,
        &password,
        crate::stack::EXAMPLE_APP,
        out,
    )?;

    let stack = start_servers(
        &binaries,
        "127.0.0.1:0",
        "127.0.0.1:0",
        None,
        &database_url,
        &seeded,
        &Output::LogsIn(out),
        None,
    )?;
    let (issuer, api) = (&stack.issuer, &stack.api);
    eprintln!(
        "xtask: auth-server {issuer} ({}), resource-api {api}; logs in {}",
        if args.database_url.is_some() {
            "given database"
        } else {
            "SQLite"
        },
        out.display()
    );

    let ours: Vec<(&str, String)> = vec![
        ("LOADTEST_ISSUER", issuer.clone()),
        ("LOADTEST_API", api.clone()),
        ("LOADTEST_CLIENT_ID", seeded.client_id.clone()),
        ("LOADTEST_CLIENT_SECRET", seeded.client_secret.clone()),
        (
            "LOADTEST_INTROSPECTION_CLIENT_ID",
            seeded.introspection_client_id.clone(),
        ),
        (
            "LOADTEST_INTROSPECTION_SECRET",
            seeded.introspection_secret.clone(),
        ),
        ("LOADTEST_PUBLIC_CLIENT_ID", seeded.public_client_id.clone()),
        ("LOADTEST_REDIRECT_URI", seeded.redirect_uri.clone()),
        ("LOADTEST_USERNAME", seeded.username.clone()),
        ("LOADTEST_PASSWORD", seeded.password.clone()),
    ];
    if args.compare.is_some() {
        for scenario in &args.scenarios {
            check(&binaries, scenario, &ours).map_err(|reason| {
                anyhow::anyhow!(
                    "our stack cannot run {scenario}: {reason}. Its logs are in {}. Nothing was loaded.",
                    out.display()
                )
            })?;
        }
    }
    let bound = args.bound_text();
    for scenario in &args.scenarios {
        let Some(other) = &args.compare else {
            eprintln!("xtask: load scenario {scenario}");
            run_loadtest(
                &binaries,
                &args.loadtest_args(scenario, out),
                &ours,
                scenario,
            )?;
            let report = write_report(out, scenario, scenario, &bound, args.users)?;
            eprintln!(
                "xtask: reports: {} {1}/{scenario}.json {1}/{scenario}-summary.json",
                report.display(),
                out.display()
            );
            continue;
        };
        eprintln!("xtask: load scenario {scenario} against ours");
        let ours_stem = format!("{scenario}-ours");
        run_loadtest(
            &binaries,
            &args.loadtest_args_as(scenario, &ours_stem, out),
            &ours,
            scenario,
        )?;
        eprintln!(
            "xtask: load scenario {scenario} against {} ({})",
            other.name, other.issuer
        );
        let theirs_stem = format!("{scenario}-other");
        run_loadtest(
            &binaries,
            &args.loadtest_args_as(scenario, &theirs_stem, out),
            &other.loadtest_env(),
            scenario,
        )?;
        let read = |stem: &str| {
            crate::report::Run::read(
                &out.join(format!("{stem}-summary.json")),
                &out.join(format!("{stem}.json")),
            )
        };
        let (ours_run, theirs_run) = (read(&ours_stem)?, read(&theirs_stem)?);
        for stem in [&ours_stem, &theirs_stem] {
            write_report(out, scenario, stem, &bound, args.users)?;
        }
        let table = crate::compare::table(
            scenario,
            args.users,
            &bound,
            &other.name,
            &ours_run,
            &theirs_run,
        );
        let chart = crate::report::compare_svg(scenario, &other.name, &ours_run, &theirs_run)?;
        let (md, svg) = (
            out.join(format!("compare-{scenario}.md")),
            out.join(format!("compare-{scenario}.svg")),
        );
        std::fs::write(
            &md,
            format!("{table}\n![throughput and latency](compare-{scenario}.svg)\n"),
        )
        .with_context(|| format!("writing {}", md.display()))?;
        std::fs::write(&svg, chart).with_context(|| format!("writing {}", svg.display()))?;
        println!("{table}");
        eprintln!("xtask: compare report: {} {}", md.display(), svg.display());
    }
    drop(stack);
    Ok(())
}

/// Draws `<stem>.html` from the run's summary and JSON report; returns its path.
fn write_report(
    out: &Path,
    scenario: &str,
    stem: &str,
    bound: &str,
    users: usize,
) -> Result<PathBuf> {
    let run = crate::report::Run::read(
        &out.join(format!("{stem}-summary.json")),
        &out.join(format!("{stem}.json")),
    )?;
    let path = out.join(format!("{stem}.html"));
    std::fs::write(
        &path,
        crate::report::scenario_html(scenario, bound, users, &run)?,
    )
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Whether `scenario` can run with `env` (`loadtest --check`: discovery and one of each request, no load);
/// the error is loadtest's own line.
fn check(binaries: &Binaries, scenario: &str, env: &[(&str, String)]) -> Result<(), String> {
    let output = Command::new(binaries.path("loadtest"))
        .args(["--check", "--scenario", scenario])
        .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
        .output()
        .map_err(|error| format!("running loadtest: {error}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(stderr
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("loadtest failed")
        .trim_start_matches("loadtest: ")
        .to_owned())
}

/// Runs the loadtest binary with `args` and `env`.
fn run_loadtest(
    binaries: &Binaries,
    args: &[String],
    env: &[(&str, String)],
    scenario: &str,
) -> Result<()> {
    let status = Command::new(binaries.path("loadtest"))
        .args(args)
        .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
        .status()
        .context("running loadtest")?;
    if !status.success() {
        bail!("loadtest {scenario} failed ({status})");
    }
    Ok(())
}

/// Whether `url` names a loopback host (the only place xtask sends load).
fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<LoadArgs> {
        LoadArgs::parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_to_thirty_seconds_of_mixed_with_eight_users() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.scenarios, ["mixed"]);
        assert_eq!(args.users, 8);
        assert_eq!(args.bound, Bound::RunTime("30s".into()));
        assert_eq!(args.database_url, None);
    }

    #[test]
    fn reads_every_option_both_ways() {
        let args = parse(&[
            "--scenario",
            "issue",
            "--scenario=validate",
            "--users=16",
            "--run-time",
            "1m30s",
            "--database-url",
            "postgres://localhost/load",
            "--",
            "--co-mitigation",
            "average",
        ])
        .unwrap();
        assert_eq!(args.scenarios, ["issue", "validate"]);
        assert_eq!(args.users, 16);
        assert_eq!(args.bound, Bound::RunTime("1m30s".into()));
        assert_eq!(
            args.database_url.as_deref(),
            Some("postgres://localhost/load")
        );
        assert_eq!(args.extra, ["--co-mitigation", "average"]);
        assert_eq!(parse(&["--scenario", "all"]).unwrap().scenarios, SCENARIOS);
        assert_eq!(
            parse(&["--iterations", "5"]).unwrap().bound,
            Bound::Iterations(5)
        );
    }

    #[test]
    fn refuses_unbounded_or_unknown_input() {
        for bad in [
            &["--scenario", "flood"][..],
            &["--users", "0"],
            &["--users", "100000"],
            &["--run-time", "2h"],
            &["--run-time", "0"],
            &["--run-time", "ten"],
            &["--iterations", "0"],
            &["--run-time", "10s", "--iterations", "3"],
            &["--users"],
            &["--host", "http://example.com"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn compare_needs_a_loopback_server_and_its_client() {
        let args = parse(&[
            "--compare",
            "--scenario",
            "issue",
            "--other-issuer",
            "http://127.0.0.1:3000",
            "--other-client-id",
            "bench",
            "--other-client-secret",
            "s3cret",
            "--other-name",
            "node-oidc-provider",
        ])
        .unwrap();
        let other = args.compare.unwrap();
        assert_eq!(other.name, "node-oidc-provider");
        assert!(
            other
                .loadtest_env()
                .contains(&("LOADTEST_ISSUER", "http://127.0.0.1:3000".into()))
        );
        for bad in [
            &["--compare", "--scenario", "issue"][..],
            &[
                "--compare",
                "--scenario",
                "issue",
                "--other-issuer",
                "http://example.com",
                "--other-client-id",
                "a",
                "--other-client-secret",
                "b",
            ],
            &[
                "--compare",
                "--scenario",
                "authcode",
                "--other-issuer",
                "http://127.0.0.1:3000",
                "--other-client-id",
                "a",
                "--other-client-secret",
                "b",
            ],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(is_loopback_url("http://localhost:3000/oidc"));
        assert!(is_loopback_url("http://127.0.0.2:8080"));
        assert!(is_loopback_url("http://[::1]:8080/"));
        assert!(!is_loopback_url("http://127.0.0.1.example.com/"));
        assert!(!is_loopback_url("http://10.0.0.1/"));
    }

    /// `--compare` checks the other server before either side is loaded (or ours even started), and blames it.
    #[test]
    fn compare_checks_the_other_server_first_and_blames_it() {
        let bin = crate::test_support::debug_binaries();
        let out = crate::test_support::Folder::new("compare");
        // A loopback port nobody listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let issuer = format!("http://{closed}");
        let run = Command::new(bin.join("xtask"))
            .args([
                "load",
                "--compare",
                "--scenario",
                "issue",
                "--iterations",
                "1",
            ])
            .args(["--other-issuer", &issuer, "--other-name", "their-server"])
            .args(["--other-client-id", "bench", "--other-client-secret", "s"])
            .args(["--bin-dir", bin.to_str().unwrap()])
            .args(["--out", out.0.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success());
        assert!(
            stderr.contains(&format!(
                "the other server (their-server at {issuer}) cannot run issue"
            )),
            "{stderr}"
        );
        assert!(stderr.contains("Nothing was loaded"), "{stderr}");
        assert!(
            !stderr.contains("against ours"),
            "our side ran first: {stderr}"
        );
        let written: Vec<_> = std::fs::read_dir(&out.0)
            .unwrap()
            .flatten()
            .map(|entry| entry.file_name())
            .collect();
        assert!(
            written.is_empty(),
            "nothing started, nothing written: {written:?}"
        );
    }

    #[test]
    fn reads_goose_durations() {
        assert_eq!(parse_duration("45"), Some(45));
        assert_eq!(parse_duration("20s"), Some(20));
        assert_eq!(parse_duration("2m"), Some(120));
        assert_eq!(parse_duration("1h1m1s"), Some(3_661));
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("10x"), None);
        assert_eq!(parse_duration("10s5"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn passes_reports_and_bounds_to_the_load_tester() {
        let args = parse(&["--scenario", "issue", "--iterations", "3", "--users", "2"]).unwrap();
        let line = args
            .loadtest_args("issue", Path::new("target/loadtest"))
            .join(" ");
        assert!(line.contains("--scenario issue --users 2 --increase-rate 2"));
        assert!(
            !line.contains(".html"),
            "Goose's HTML report needs a CDN: ours is drawn here"
        );
        assert!(line.contains("--report-file target/loadtest/issue.json --report-graph-data"));
        assert!(line.contains("--summary-file target/loadtest/issue-summary.json"));
        assert!(line.ends_with("--iterations 3"));
        assert!(!line.contains("--run-time"));
    }
}
