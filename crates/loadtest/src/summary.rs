//! The summary table of a run: per request name, how many, how many failed, the rate and two percentiles.

use std::fmt::Write as _;

use goose::metrics::GooseMetrics;
use serde::Serialize;

/// One request name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub name: String,
    pub requests: usize,
    pub failures: usize,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub users: usize,
    pub seconds: usize,
    pub rows: Vec<Row>,
    /// Iterations that ended in an error, whether or not a request failed on the way.
    pub transaction_failures: usize,
}

fn milliseconds(microseconds: u64) -> f64 {
    microseconds as f64 / 1000.0
}

impl Summary {
    /// Reads Goose's metrics. Rates are over the whole run (at least one second).
    pub fn from_metrics(scenario: &str, metrics: &GooseMetrics) -> Self {
        let seconds = metrics.duration.max(1);
        let mut rows: Vec<Row> = metrics
            .requests
            .iter()
            .map(|(name, aggregate)| {
                let requests = aggregate.success_count + aggregate.fail_count;
                Row {
                    name: name.clone(),
                    requests,
                    failures: aggregate.fail_count,
                    per_second: requests as f64 / seconds as f64,
                    p50_ms: milliseconds(aggregate.raw_data.percentile_us(0.5)),
                    p99_ms: milliseconds(aggregate.raw_data.percentile_us(0.99)),
                }
            })
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        let transaction_failures = metrics
            .transactions
            .iter()
            .flatten()
            .map(|transaction| transaction.fail_count)
            .sum();
        Self {
            scenario: scenario.to_owned(),
            users: metrics.maximum_users,
            seconds: metrics.duration,
            rows,
            transaction_failures,
        }
    }

    /// Failed requests plus failed iterations.
    pub fn failures(&self) -> usize {
        self.rows.iter().map(|row| row.failures).sum::<usize>() + self.transaction_failures
    }

    pub fn requests(&self) -> usize {
        self.rows.iter().map(|row| row.requests).sum()
    }

    /// A fixed-width table for a terminal.
    pub fn render(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|row| row.name.len())
            .chain([7])
            .max()
            .unwrap_or(7);
        let mut out = format!(
            "scenario {}: {} users, {} s\n{:<width$}  {:>9}  {:>8}  {:>9}  {:>8}  {:>8}\n",
            self.scenario,
            self.users,
            self.seconds,
            "request",
            "requests",
            "errors",
            "req/s",
            "p50 ms",
            "p99 ms"
        );
        for row in &self.rows {
            let _ = writeln!(
                out,
                "{:<width$}  {:>9}  {:>8}  {:>9.1}  {:>8.2}  {:>8.2}",
                row.name, row.requests, row.failures, row.per_second, row.p50_ms, row.p99_ms
            );
        }
        let total = self.requests();
        let _ = writeln!(
            out,
            "{:<width$}  {:>9}  {:>8}  {:>9.1}",
            "total",
            total,
            self.rows.iter().map(|row| row.failures).sum::<usize>(),
            total as f64 / self.seconds.max(1) as f64
        );
        if self.transaction_failures > 0 {
            let _ = writeln!(out, "failed iterations: {}", self.transaction_failures);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_line_per_request_and_a_total() {
        let summary = Summary {
            scenario: "mixed".into(),
            users: 4,
            seconds: 10,
            rows: vec![
                Row {
                    name: "POST token: client_credentials".into(),
                    requests: 1_000,
                    failures: 2,
                    per_second: 100.0,
                    p50_ms: 1.234,
                    p99_ms: 9.5,
                },
                Row {
                    name: "GET api: protected".into(),
                    requests: 3_000,
                    failures: 0,
                    per_second: 300.0,
                    p50_ms: 0.5,
                    p99_ms: 2.0,
                },
            ],
            transaction_failures: 1,
        };
        let table = summary.render();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "scenario mixed: 4 users, 10 s");
        assert!(lines[1].starts_with("request "));
        assert!(lines[2].starts_with("POST token: client_credentials"));
        assert!(lines[2].ends_with("1000         2      100.0      1.23      9.50"));
        assert!(lines[4].starts_with("total"));
        assert!(lines[4].ends_with("4000         2      400.0"));
        assert_eq!(lines[5], "failed iterations: 1");
        assert_eq!(summary.failures(), 3);
        assert_eq!(summary.requests(), 4_000);
    }
}
