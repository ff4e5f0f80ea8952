//! `cargo xtask load --compare`: the same scenario, Goose users and duration against our stack and against
//! another OAuth 2.0 server (any that publishes RFC 8414 or OpenID metadata), then one report: a side-by-side
//! table (req/s, p50, p99, errors and the ratio per request) printed at the end and written as Markdown, and
//! an SVG chart of throughput and latency over time ([`crate::report::compare_svg`], from the per-second
//! data of Goose's JSON reports: no JavaScript, no CDN).

use std::fmt::Write as _;

use anyhow::{Result, bail};

use crate::report::Run;

/// Scenarios that need nothing but a client registered at the other server: machine-to-machine ones.
pub const COMPARABLE: [&str; 3] = ["issue", "issue-dpop", "introspect"];

/// The other server and the client the load tester uses there.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Other {
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    pub scope: Option<String>,
    pub resource: Option<String>,
}

impl Other {
    /// The loadtest environment for the other server: the same client introspects (RFC 7662 §2.1).
    pub fn loadtest_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("LOADTEST_ISSUER", self.issuer.clone()),
            ("LOADTEST_CLIENT_ID", self.client_id.clone()),
            ("LOADTEST_CLIENT_SECRET", self.client_secret.clone()),
            ("LOADTEST_INTROSPECTION_CLIENT_ID", self.client_id.clone()),
            ("LOADTEST_INTROSPECTION_SECRET", self.client_secret.clone()),
        ];
        if let Some(scope) = &self.scope {
            env.push(("LOADTEST_SCOPE", scope.clone()));
        }
        if let Some(resource) = &self.resource {
            env.push(("LOADTEST_RESOURCE", resource.clone()));
        }
        env
    }
}

fn ratio(ours: f64, theirs: f64) -> String {
    if theirs > 0.0 {
        format!("{:.2}×", ours / theirs)
    } else {
        "–".into()
    }
}

/// The side-by-side table, Markdown (readable as it is in a terminal).
pub fn table(
    scenario: &str,
    users: usize,
    bound: &str,
    other: &str,
    ours: &Run,
    theirs: &Run,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Scenario `{scenario}`, {users} Goose users, {bound}, on this machine: ours vs {other}.\n"
    );
    let _ = writeln!(
        out,
        "| request | ours req/s | {other} req/s | ratio | ours p50 ms | {other} p50 ms | ours p99 ms | {other} p99 ms | ours errors | {other} errors |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut names: Vec<&str> = ours.rows.iter().map(|row| row.name.as_str()).collect();
    for row in &theirs.rows {
        if !names.contains(&row.name.as_str()) {
            names.push(&row.name);
        }
    }
    let cell = |value: Option<f64>, digits: usize| {
        value.map_or_else(|| "–".to_owned(), |value| format!("{value:.digits$}"))
    };
    for name in names {
        let a = ours.rows.iter().find(|row| row.name == name);
        let b = theirs.rows.iter().find(|row| row.name == name);
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(a.map(|row| row.per_second), 1),
            cell(b.map(|row| row.per_second), 1),
            ratio(
                a.map_or(0.0, |row| row.per_second),
                b.map_or(0.0, |row| row.per_second)
            ),
            cell(a.map(|row| row.p50_ms), 2),
            cell(b.map(|row| row.p50_ms), 2),
            cell(a.map(|row| row.p99_ms), 2),
            cell(b.map(|row| row.p99_ms), 2),
            a.map_or("–".into(), |row| row.failures.to_string()),
            b.map_or("–".into(), |row| row.failures.to_string()),
        );
    }
    let _ = writeln!(
        out,
        "| **all requests** | {:.1} | {:.1} | {} |  |  |  |  | {} | {} |",
        ours.total_per_second(),
        theirs.total_per_second(),
        ratio(ours.total_per_second(), theirs.total_per_second()),
        ours.total_failures(),
        theirs.total_failures(),
    );
    out
}

/// Refuses scenarios the other server cannot run.
pub fn check_scenarios(scenarios: &[String]) -> Result<()> {
    for scenario in scenarios {
        if !COMPARABLE.contains(&scenario.as_str()) {
            bail!(
                "--compare runs {} (they need only a client at the other server); {scenario:?} needs our seeded users and API",
                COMPARABLE.join(", ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(per_second: f64, p50: f64, failures: u64, series: &[u32]) -> Run {
        Run::from_json(
            &json!({ "rows": [{ "name": "POST /token", "requests": 100, "failures": failures,
                     "per_second": per_second, "p50_ms": p50, "p99_ms": p50 * 3.0 }] }),
            &json!({ "graphs": {
                "requests_per_second": { "POST /token": { "origin": 0, "data": series } },
                "average_response_time": { "POST /token": { "origin": 0,
                    "data": series.iter().map(|n| json!([n, p50])).collect::<Vec<_>>() } }
            } }),
        )
        .unwrap()
    }

    #[test]
    fn the_table_puts_both_servers_side_by_side_with_the_ratio() {
        let ours = run(2_000.0, 1.5, 0, &[1_900, 2_100]);
        let theirs = run(500.0, 6.0, 3, &[480, 520]);
        let table = table("issue", 8, "20s", "node-oidc-provider", &ours, &theirs);
        assert!(
            table.contains(
                "| POST /token | 2000.0 | 500.0 | 4.00× | 1.50 | 6.00 | 4.50 | 18.00 | 0 | 3 |"
            ),
            "{table}"
        );
        assert!(
            table.contains("| **all requests** | 2000.0 | 500.0 | 4.00× |"),
            "{table}"
        );
        assert_eq!(ours.throughput().points, [1_900.0, 2_100.0]);
        assert_eq!(ours.latency_ms(), [(0, 1.5), (1, 1.5)]);
    }

    #[test]
    fn only_machine_to_machine_scenarios_are_compared() {
        assert!(
            check_scenarios(&["issue".into(), "issue-dpop".into(), "introspect".into()]).is_ok()
        );
        assert!(check_scenarios(&["authcode".into()]).is_err());
    }
}
