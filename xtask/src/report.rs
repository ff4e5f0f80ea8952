//! The reports of `cargo xtask load`, drawn here with plotters to SVG inside plain HTML, so they show their
//! charts with no network (Goose's own HTML report loads its charting script from a CDN): per scenario,
//! throughput, average latency and errors over time per request, and the p50 and p99 latency per request;
//! for `--compare`, both servers' throughput and latency over time in one SVG.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde_json::Value;

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

/// Values per second of the run: `points[i]` is second `origin + i`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Seconds {
    pub origin: usize,
    pub points: Vec<f64>,
}

impl Seconds {
    fn read(series: &Value, value: impl Fn(&Value) -> Option<f64>) -> Self {
        Self {
            origin: series["origin"].as_u64().unwrap_or_default() as usize,
            points: series["data"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|point| value(point).unwrap_or_default())
                .collect(),
        }
    }

    /// `(second, value)` pairs within `window` (the seconds the run was under load, see [`Run::window`]), so
    /// no line drops to 0 while the users start or after they stop. With `fill`, a second without a value is
    /// a 0 (a count); without, it is left out (an average of nothing).
    pub fn within(&self, window: (usize, usize), fill: bool) -> Vec<(i64, f64)> {
        (window.0..=window.1)
            .filter_map(|second| {
                let value = second
                    .checked_sub(self.origin)
                    .and_then(|at| self.points.get(at))
                    .copied();
                match value {
                    Some(value) => Some((second as i64, value)),
                    None if fill => Some((second as i64, 0.0)),
                    None => None,
                }
            })
            .collect()
    }

    /// The sum of several series over the seconds any of them measured.
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a Seconds>) -> Self {
        let all: Vec<&Seconds> = all.into_iter().collect();
        let (Some(start), Some(end)) = (
            all.iter().map(|series| series.origin).min(),
            all.iter()
                .map(|series| series.origin + series.points.len())
                .max(),
        ) else {
            return Self::default();
        };
        let mut points = vec![0.0; end - start];
        for series in all {
            for (i, value) in series.points.iter().enumerate() {
                points[series.origin + i - start] += value;
            }
        }
        Self {
            origin: start,
            points,
        }
    }
}

/// One request name's series.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestSeries {
    pub name: String,
    pub requests: Seconds,
    pub errors: Seconds,
    /// Average latency in ms, per second.
    pub latency_ms: Seconds,
}

/// One run: its rows and its per-second series.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Run {
    pub rows: Vec<Row>,
    pub series: Vec<RequestSeries>,
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
        let named = |graph: &str| -> Vec<(String, &Value)> {
            graphs[graph]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, series)| (name.clone(), series))
                .collect()
        };
        let mut series: Vec<RequestSeries> = Vec::new();
        let mut entry = |name: &str| -> usize {
            match series.iter().position(|known| known.name == name) {
                Some(index) => index,
                None => {
                    series.push(RequestSeries {
                        name: name.to_owned(),
                        ..Default::default()
                    });
                    series.len() - 1
                }
            }
        };
        let mut requests = Vec::new();
        for (name, data) in named("requests_per_second") {
            requests.push((entry(&name), Seconds::read(data, Value::as_f64)));
        }
        let mut errors = Vec::new();
        for (name, data) in named("errors_per_second") {
            errors.push((entry(&name), Seconds::read(data, Value::as_f64)));
        }
        let mut latency = Vec::new();
        for (name, data) in named("average_response_time") {
            // Goose writes a moving average as `[count, average]` (or `{count, average}`).
            let average = |point: &Value| match point {
                Value::Array(pair) => pair.get(1).and_then(Value::as_f64),
                other => other["average"].as_f64(),
            };
            latency.push((entry(&name), Seconds::read(data, average)));
        }
        for (index, data) in requests {
            series[index].requests = data;
        }
        for (index, data) in errors {
            series[index].errors = data;
        }
        for (index, data) in latency {
            series[index].latency_ms = data;
        }
        Ok(Self { rows, series })
    }

    /// Requests per second over every request name.
    pub fn throughput(&self) -> Seconds {
        Seconds::sum(self.series.iter().map(|series| &series.requests))
    }

    /// The seconds of the run under load: from the first to the last second with requests, without those
    /// two when there are more (the users start and stop partway through them, so they count a fraction of
    /// a second's requests and every line would drop towards 0 at both ends).
    pub fn window(&self) -> (usize, usize) {
        let throughput = self.throughput();
        let busy: Vec<usize> = throughput
            .points
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0.0)
            .map(|(i, _)| throughput.origin + i)
            .collect();
        match (busy.first(), busy.last()) {
            (Some(first), Some(last)) if last - first >= 3 => (first + 1, last - 1),
            (Some(first), Some(last)) => (*first, *last),
            _ => (0, 0),
        }
    }

    /// Average latency per second over every request name, weighted by each name's requests that second,
    /// within [`Run::window`].
    pub fn latency_ms(&self) -> Vec<(i64, f64)> {
        let window = self.window();
        let mut weighted: std::collections::BTreeMap<i64, (f64, f64)> = Default::default();
        for series in &self.series {
            let counts: std::collections::BTreeMap<i64, f64> =
                series.requests.within(window, true).into_iter().collect();
            for (second, average) in series.latency_ms.within(window, false) {
                let count = counts.get(&second).copied().unwrap_or_default();
                let slot = weighted.entry(second).or_default();
                slot.0 += average * count;
                slot.1 += count;
            }
        }
        weighted
            .into_iter()
            .filter(|(_, (_, count))| *count > 0.0)
            .map(|(second, (sum, count))| (second, sum / count))
            .collect()
    }

    pub fn total_per_second(&self) -> f64 {
        self.rows.iter().map(|row| row.per_second).sum()
    }

    pub fn total_failures(&self) -> u64 {
        self.rows.iter().map(|row| row.failures).sum()
    }
}

/// Colours of the series, in order (the tableau palette: distinct on screen and in print).
const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// One line of a chart.
pub struct Line<'a> {
    pub name: &'a str,
    /// `(second, value)`.
    pub points: Vec<(i64, f64)>,
}

/// A line chart over seconds as SVG: axes with rounded ticks, seconds on x, a legend.
pub fn line_chart(
    title: &str,
    y_label: &str,
    lines: &[Line<'_>],
    size: (u32, u32),
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        draw_lines(&root, title, y_label, lines)?;
        root.present().context("drawing the chart")?;
    }
    Ok(svg)
}

fn draw_lines<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    lines: &[Line<'_>],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE).map_err(drawing)?;
    let points = || lines.iter().flat_map(|line| line.points.iter());
    let first_second = points().map(|(x, _)| *x).min().unwrap_or(0);
    let last_second = points()
        .map(|(x, _)| *x)
        .max()
        .unwrap_or(0)
        .max(first_second + 1);
    let top = points().map(|(_, y)| *y).fold(0.0_f64, f64::max);
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(first_second..last_second, 0.0..top)
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the start")
        .y_desc(y_label)
        .x_labels(12)
        .y_label_formatter(&|value| number(*value))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()
        .map_err(drawing)?;
    for (i, line) in lines.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(drawing)?
            .label(line.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
            });
    }
    if !lines.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .draw()
            .map_err(drawing)?;
    }
    Ok(())
}

/// p50 and p99 latency per request name as horizontal bars, each pair under its request's name.
pub fn percentile_chart(rows: &[Row], width: u32) -> Result<String> {
    let count = rows.len().max(1);
    let height = 90 + 56 * count as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let top = rows
            .iter()
            .map(|row| row.p99_ms.max(row.p50_ms))
            .fold(0.0_f64, f64::max);
        let top = if top > 0.0 { top * 1.2 } else { 1.0 };
        let mut chart = ChartBuilder::on(&root)
            .caption("Latency percentiles per request", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(20)
            .build_cartesian_2d(0.0..top, 0.0..count as f64)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .disable_y_axis()
            .x_desc("milliseconds")
            .x_label_formatter(&|value| number(*value))
            .light_line_style(RGBColor(238, 238, 238))
            .draw()
            .map_err(drawing)?;
        // The first row at the top.
        let slot = |i: usize| (count - 1 - i) as f64;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, row)| {
                Text::new(row.name.clone(), (0.0, slot(i) + 0.97), ("sans-serif", 13))
            }))
            .map_err(drawing)?;
        for (label, colour, low, value) in [
            (
                "p50",
                COLOURS[0],
                0.38,
                (|row: &Row| row.p50_ms) as fn(&Row) -> f64,
            ),
            ("p99", COLOURS[1], 0.08, |row: &Row| row.p99_ms),
        ] {
            chart
                .draw_series(rows.iter().enumerate().map(|(i, row)| {
                    let y = slot(i) + low;
                    Rectangle::new([(0.0, y), (value(row), y + 0.26)], colour.filled())
                }))
                .map_err(drawing)?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
            chart
                .draw_series(rows.iter().enumerate().map(|(i, row)| {
                    Text::new(
                        format!("{label} {} ms", number(value(row))),
                        (value(row) + top * 0.01, slot(i) + low + 0.24),
                        ("sans-serif", 11),
                    )
                }))
                .map_err(drawing)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .draw()
            .map_err(drawing)?;
        root.present().context("drawing the chart")?;
    }
    Ok(svg)
}

/// A tick label: whole numbers from 100 up, two significant decimals below.
fn number(value: f64) -> String {
    if value.abs() >= 100.0 || value == 0.0 {
        format!("{value:.0}")
    } else if value.abs() >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn drawing<E: std::error::Error + Send + Sync + 'static>(error: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the chart: {error}")
}

/// Escapes text for HTML.
fn html(text: &str) -> String {
    crate::callback::html(text)
}

/// One scenario's report: the summary table and four charts, in one HTML file with nothing to fetch.
pub fn scenario_html(scenario: &str, bound: &str, users: usize, run: &Run) -> Result<String> {
    let size = (900, 320);
    let window = run.window();
    let mut lines = vec![Line {
        name: "all requests",
        points: run.throughput().within(window, true),
    }];
    if run.series.len() > 1 {
        lines.extend(run.series.iter().map(|series| Line {
            name: &series.name,
            points: series.requests.within(window, true),
        }));
    }
    let throughput = line_chart("Throughput", "requests per second", &lines, size)?;
    let latency_lines: Vec<Line<'_>> = run
        .series
        .iter()
        .map(|series| Line {
            name: &series.name,
            points: series.latency_ms.within(window, false),
        })
        .collect();
    let latency = line_chart("Average latency", "milliseconds", &latency_lines, size)?;
    // A request name without errors has no error series: a flat 0 over the run says so.
    let error_lines: Vec<Line<'_>> = run
        .series
        .iter()
        .map(|series| Line {
            name: &series.name,
            points: series.errors.within(window, true),
        })
        .collect();
    let errors = line_chart("Errors", "failed requests per second", &error_lines, size)?;
    let percentiles = percentile_chart(&run.rows, size.0)?;
    let mut table = String::from(
        "<table><tr><th>request</th><th>requests</th><th>errors</th><th>req/s</th><th>p50 ms</th><th>p99 ms</th></tr>",
    );
    for row in &run.rows {
        let _ = write!(
            table,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.2}</td><td>{:.2}</td></tr>",
            html(&row.name),
            row.requests,
            row.failures,
            row.per_second,
            row.p50_ms,
            row.p99_ms
        );
    }
    table.push_str("</table>");
    Ok(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Load: {title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:960px;margin:2rem auto;padding:0 1rem}}\
         table{{border-collapse:collapse;margin:1rem 0}}td,th{{border:1px solid #ddd;padding:.3rem .6rem;\
         text-align:right}}td:first-child,th:first-child{{text-align:left}}figure{{margin:1.5rem 0}}</style>\
         </head><body><h1>Scenario {title}</h1><p>{users} Goose users, {bound}.</p>{table}\
         <figure>{throughput}</figure><figure>{latency}</figure><figure>{errors}</figure>\
         <figure>{percentiles}</figure></body></html>\n",
        title = html(scenario),
        bound = html(bound),
    ))
}

/// Throughput and latency over time, ours and theirs, as one SVG.
pub fn compare_svg(scenario: &str, other: &str, ours: &Run, theirs: &Run) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 640)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let (top, bottom) = root.split_vertically(320);
        draw_lines(
            &top,
            &format!("Scenario {scenario}: throughput"),
            "requests per second",
            &[
                Line {
                    name: "ours",
                    points: ours.throughput().within(ours.window(), true),
                },
                Line {
                    name: other,
                    points: theirs.throughput().within(theirs.window(), true),
                },
            ],
        )?;
        draw_lines(
            &bottom,
            &format!("Scenario {scenario}: average latency"),
            "milliseconds",
            &[
                Line {
                    name: "ours",
                    points: ours.latency_ms(),
                },
                Line {
                    name: other,
                    points: theirs.latency_ms(),
                },
            ],
        )?;
        root.present().context("drawing the chart")?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A run as loadtest and Goose write it: two request names, the second starting a second later.
    fn run() -> Run {
        Run::from_json(
            &json!({ "rows": [
                { "name": "POST /token", "requests": 6200, "failures": 3, "per_second": 2066.7,
                  "p50_ms": 1.5, "p99_ms": 4.5 },
                { "name": "GET /protected", "requests": 16670, "failures": 0, "per_second": 5556.7,
                  "p50_ms": 0.4, "p99_ms": 2.1 } ] }),
            &json!({ "graphs": {
                "requests_per_second": {
                    "POST /token": { "origin": 0, "data": [0, 1900, 2100, 2200, 0] },
                    "GET /protected": { "origin": 2, "data": [5000, 6000, 5670, 0] } },
                "errors_per_second": { "POST /token": { "origin": 1, "data": [0, 3, 0] } },
                "average_response_time": {
                    "POST /token": { "origin": 0,
                        "data": [[0, 0.0], [1900, 1.4], [2100, 1.6], [2200, 1.5], [0, 0.0]] },
                    "GET /protected": { "origin": 2,
                        "data": [[5000, 0.4], [6000, 0.5], [5670, 0.4], [0, 0.0]] } }
            } }),
        )
        .unwrap()
    }

    #[test]
    fn series_cover_only_the_seconds_measured() {
        let run = run();
        let throughput = run.throughput();
        assert_eq!(throughput.origin, 0);
        assert_eq!(
            throughput.points,
            [0.0, 1900.0, 7100.0, 8200.0, 5670.0, 0.0]
        );
        // Requests in seconds 1 to 4; the users start in 1 and stop in 4: partial seconds, left out.
        assert_eq!(run.window(), (2, 3));
        assert_eq!(
            throughput.within(run.window(), true),
            [(2, 7100.0), (3, 8200.0)]
        );
        let protected = &run
            .series
            .iter()
            .find(|s| s.name == "GET /protected")
            .unwrap();
        assert_eq!(
            protected.requests.within((1, 4), true)[0],
            (1, 0.0),
            "0 before it starts"
        );
        assert_eq!(
            protected.latency_ms.within((1, 4), false)[0].0,
            2,
            "no latency without requests"
        );
        let latency = run.latency_ms();
        assert_eq!(latency.len(), 2, "{latency:?}");
        assert!((latency[0].1 - (2100.0 * 1.6 + 5000.0 * 0.4) / 7100.0).abs() < 1e-9);
    }

    #[test]
    fn the_scenario_report_is_one_html_file_with_its_charts_inline_and_nothing_to_fetch() {
        let page = scenario_html("mixed", "30s", 8, &run()).unwrap();
        assert_eq!(
            page.matches("<svg").count(),
            4,
            "throughput, latency, errors, percentiles"
        );
        for fetch in ["<script", "src=", "href=", "@import", "url("] {
            assert!(
                !page.contains(fetch),
                "the report fetches something ({fetch})"
            );
        }
        assert!(
            page.contains("<td>POST /token</td><td>6200</td><td>3</td>"),
            "{page}"
        );
        assert!(page.contains("seconds since the start"));
        assert!(page.contains("POST /token") && page.contains("GET /protected"));
        // Plotters picks round ticks: no tick label like 16670 or 12503.
        assert!(
            !page.contains(">8200<") && !page.contains(">9020<"),
            "unrounded ticks"
        );
    }

    #[test]
    fn the_comparison_chart_draws_both_servers_and_escapes_names() {
        let svg = compare_svg("issue", "<other>", &run(), &run()).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("&lt;other&gt;") && !svg.contains("<other>"));
        assert!(svg.contains("ours"));
        assert!(
            svg.matches("<polyline").count() >= 4,
            "two lines in each panel"
        );
    }
}
