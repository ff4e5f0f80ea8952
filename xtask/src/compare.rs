//! `cargo xtask load --compare`: the same scenario, Goose users and duration against our stack and against
//! another OAuth 2.0 server (any that publishes RFC 8414 or OpenID metadata), then one report: a side-by-side
//! table (req/s, p50, p99, errors and the ratio per request) printed at the end and written as Markdown, and
//! an SVG chart of throughput and latency over time, drawn here from the per-second data of Goose's JSON
//! reports (no JavaScript, no CDN).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

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

/// One request name of one run, from loadtest's summary file.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub requests: u64,
    pub failures: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// One run: its rows and its per-second series (requests, and the average latency in ms).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Run {
    pub rows: Vec<Row>,
    pub requests_per_second: Vec<f64>,
    pub latency_ms: Vec<Option<f64>>,
}

impl Run {
    /// Reads loadtest's `--summary-file` and Goose's JSON report (written with `--report-graph-data`).
    pub fn read(summary: &Path, report: &Path) -> Result<Self> {
        let read = |path: &Path| -> Result<Value> {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
        };
        Self::from_json(&read(summary)?, &read(report)?)
    }

    pub fn from_json(summary: &Value, report: &Value) -> Result<Self> {
        let rows = summary["rows"]
            .as_array()
            .context("the summary has no rows")?
            .iter()
            .map(|row| Row {
                name: row["name"].as_str().unwrap_or_default().to_owned(),
                requests: row["requests"].as_u64().unwrap_or_default(),
                failures: row["failures"].as_u64().unwrap_or_default(),
                per_second: row["per_second"].as_f64().unwrap_or_default(),
                p50_ms: row["p50_ms"].as_f64().unwrap_or_default(),
                p99_ms: row["p99_ms"].as_f64().unwrap_or_default(),
            })
            .collect();
        let graphs = &report["graphs"];
        // Per second, summed over request names (throughput) and weighted by count (latency).
        let mut requests_per_second: Vec<f64> = Vec::new();
        for series in graphs["requests_per_second"]
            .as_object()
            .into_iter()
            .flat_map(|names| names.values())
        {
            let origin = series["origin"].as_u64().unwrap_or_default() as usize;
            for (i, count) in series["data"].as_array().into_iter().flatten().enumerate() {
                let second = origin + i;
                if requests_per_second.len() <= second {
                    requests_per_second.resize(second + 1, 0.0);
                }
                requests_per_second[second] += count.as_f64().unwrap_or_default();
            }
        }
        let mut weighted: Vec<(f64, f64)> = Vec::new();
        for series in graphs["average_response_time"]
            .as_object()
            .into_iter()
            .flat_map(|names| names.values())
        {
            let origin = series["origin"].as_u64().unwrap_or_default() as usize;
            for (i, point) in series["data"].as_array().into_iter().flatten().enumerate() {
                let second = origin + i;
                if weighted.len() <= second {
                    weighted.resize(second + 1, (0.0, 0.0));
                }
                // Goose writes a moving average as `[count, average]`.
                let (count, average) = match point {
                    Value::Array(pair) => (
                        pair.first().and_then(Value::as_f64).unwrap_or_default(),
                        pair.get(1).and_then(Value::as_f64).unwrap_or_default(),
                    ),
                    _ => (
                        point["count"].as_f64().unwrap_or_default(),
                        point["average"].as_f64().unwrap_or_default(),
                    ),
                };
                weighted[second].0 += count * average;
                weighted[second].1 += count;
            }
        }
        let latency_ms = weighted
            .into_iter()
            .map(|(sum, count)| (count > 0.0).then(|| sum / count))
            .collect();
        Ok(Self {
            rows,
            requests_per_second,
            latency_ms,
        })
    }

    fn total_per_second(&self) -> f64 {
        self.rows.iter().map(|row| row.per_second).sum()
    }

    fn total_failures(&self) -> u64 {
        self.rows.iter().map(|row| row.failures).sum()
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

/// Escapes text for SVG.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line chart panel at (x, y) of the given size: each series a polyline over seconds.
fn panel(
    svg: &mut String,
    (x, y, width, height): (f64, f64, f64, f64),
    title: &str,
    unit: &str,
    series: &[(&str, &str, Vec<Option<f64>>)],
) {
    let seconds = series
        .iter()
        .map(|(_, _, points)| points.len())
        .max()
        .unwrap_or(0)
        .max(2);
    let top = series
        .iter()
        .flat_map(|(_, _, points)| points.iter().flatten())
        .fold(0.0_f64, |max, value| max.max(*value))
        .max(1e-9)
        * 1.1;
    let _ = writeln!(
        svg,
        r##"<text x="{x}" y="{}" font-size="14" font-weight="600">{}</text>"##,
        y - 8.0,
        xml(title)
    );
    let _ = writeln!(
        svg,
        r##"<rect x="{x}" y="{y}" width="{width}" height="{height}" fill="none" stroke="#c8c8c8"/>"##
    );
    for step in 0..=4 {
        let value = top * f64::from(step) / 4.0;
        let line_y = y + height - height * f64::from(step) / 4.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{x}" y1="{line_y:.1}" x2="{:.1}" y2="{line_y:.1}" stroke="#eeeeee"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{} {}</text>"##,
            x + width,
            x - 6.0,
            line_y + 4.0,
            if top >= 100.0 {
                format!("{value:.0}")
            } else {
                format!("{value:.2}")
            },
            xml(unit)
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">seconds (0 to {})</text>"##,
        x + width / 2.0,
        y + height + 18.0,
        seconds - 1
    );
    for (name, colour, points) in series {
        let mut path = String::new();
        for (second, value) in points.iter().enumerate() {
            if let Some(value) = value {
                let px = x + width * second as f64 / (seconds - 1) as f64;
                let py = y + height - height * value / top;
                let _ = write!(path, "{px:.1},{py:.1} ");
            }
        }
        let _ = writeln!(
            svg,
            r##"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"><title>{}</title></polyline>"##,
            path.trim_end(),
            xml(name)
        );
    }
}

/// Throughput and latency over time, ours and theirs, as one SVG.
pub fn chart(scenario: &str, other: &str, ours: &Run, theirs: &Run) -> String {
    let (width, height) = (900.0, 560.0);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif"><rect width="100%" height="100%" fill="#ffffff"/>"##
    );
    let _ = writeln!(
        svg,
        r##"<text x="20" y="26" font-size="16" font-weight="700">{}</text>"##,
        xml(&format!(
            "Scenario {scenario}: ours (blue) vs {other} (orange)"
        ))
    );
    let (blue, orange) = ("#1a56db", "#e8710a");
    let throughput = |run: &Run| run.requests_per_second.iter().map(|v| Some(*v)).collect();
    panel(
        &mut svg,
        (90.0, 70.0, 780.0, 180.0),
        "Throughput (requests per second)",
        "",
        &[
            ("ours", blue, throughput(ours)),
            (other, orange, throughput(theirs)),
        ],
    );
    panel(
        &mut svg,
        (90.0, 330.0, 780.0, 180.0),
        "Average latency per second",
        "ms",
        &[
            ("ours", blue, ours.latency_ms.clone()),
            (other, orange, theirs.latency_ms.clone()),
        ],
    );
    svg.push_str("</svg>\n");
    svg
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
        assert_eq!(ours.requests_per_second, [1_900.0, 2_100.0]);
        assert_eq!(ours.latency_ms, [Some(1.5), Some(1.5)]);
    }

    #[test]
    fn the_chart_draws_both_series_in_both_panels_and_escapes_names() {
        let ours = run(2_000.0, 1.5, 0, &[1_900, 2_100, 2_000]);
        let theirs = run(500.0, 6.0, 0, &[480, 520, 500]);
        let svg = chart("issue", "<other>", &ours, &theirs);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert!(svg.contains("&lt;other&gt;") && !svg.contains("<other>"));
    }

    #[test]
    fn only_machine_to_machine_scenarios_are_compared() {
        assert!(
            check_scenarios(&["issue".into(), "issue-dpop".into(), "introspect".into()]).is_ok()
        );
        assert!(check_scenarios(&["authcode".into()]).is_err());
    }
}
