//! A burst of concurrent login posts with made-up usernames against a running auth-server, from many
//! loopback source addresses, while another client asks for tokens: the server's resident memory (peak
//! included, from /proc), the answers, and the latency of both. `scripts/bench-login-burst.sh` runs it
//! against a server it starts; docs/benchmarks.md has the figures.
//!
//! Usage: login_burst ISSUER PID CLIENT_ID REDIRECT_URI PROBE_CLIENT_ID PROBE_SECRET [LOGINS] [SOURCES]

// A measuring tool: a failed step should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use testkit::Browser;
use testkit::issuer::{client_with, no_redirect_client};

fn resident_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1_000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [
        issuer,
        pid,
        client_id,
        redirect_uri,
        probe_id,
        probe_secret,
        rest @ ..,
    ] = args.as_slice()
    else {
        panic!(
            "usage: login_burst ISSUER PID CLIENT_ID REDIRECT_URI PROBE_CLIENT_ID PROBE_SECRET [LOGINS] [SOURCES]"
        );
    };
    let pid: u32 = pid.parse().unwrap();
    let logins: usize = rest.first().map_or(500, |n| n.parse().unwrap());
    let sources: usize = rest.get(1).map_or(25, |n| n.parse().unwrap());
    let challenge = auth_core::pkce::s256_challenge(&auth_core::pkce::generate_verifier());
    let authorize = format!(
        "{issuer}/authorize?response_type=code&client_id={client_id}&redirect_uri={}&state=s&code_challenge={challenge}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(redirect_uri.as_bytes()).collect::<String>()
    );
    let mut browser = Browser::new(
        no_redirect_client(),
        format!("{issuer}/authorize"),
        issuer.clone(),
    );
    let login = browser.open_login(&authorize).await;
    let cookies = browser.cookie_header().unwrap();
    let form = login.form();
    let before = resident_kib(pid, "VmRSS:");

    let over = Arc::new(AtomicBool::new(false));
    let probe = {
        let (issuer, id, secret, over) = (
            issuer.clone(),
            probe_id.clone(),
            probe_secret.clone(),
            over.clone(),
        );
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut latencies = Vec::new();
            let mut statuses = BTreeMap::new();
            while !over.load(Ordering::Relaxed) {
                let started = Instant::now();
                let response = http
                    .post(format!("{issuer}/token"))
                    .basic_auth(&id, Some(&secret))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await;
                latencies.push(started.elapsed());
                let status = response.map_or(0, |response| response.status().as_u16());
                *statuses.entry(status).or_insert(0usize) += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (latencies, statuses)
        })
    };
    let sampler = {
        let over = over.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while !over.load(Ordering::Relaxed) {
                peak = peak.max(resident_kib(pid, "VmRSS:"));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };
    let start = Arc::new(tokio::sync::Barrier::new(logins));
    let mut burst = tokio::task::JoinSet::new();
    let clients: Vec<reqwest::Client> = (0..sources)
        .map(|source| {
            let [_, _, high, low] = u32::try_from(source + 1).unwrap().to_be_bytes();
            client_with(
                Some(IpAddr::from([127, 0, 100 + high, low])),
                reqwest::header::HeaderMap::new(),
            )
        })
        .collect();
    let started = Instant::now();
    for attempt in 0..logins {
        let fields: Vec<(String, String)> = form
            .submission(&[
                ("username", &format!("nobody-{attempt}")),
                ("password", "guess"),
            ])
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        let (client, url, cookies, start) = (
            clients[attempt % sources].clone(),
            format!("{issuer}/authorize"),
            cookies.clone(),
            start.clone(),
        );
        burst.spawn(async move {
            start.wait().await;
            let sent = Instant::now();
            let response = client
                .post(&url)
                .header("cookie", cookies)
                .form(&fields)
                .send()
                .await;
            (
                sent.elapsed(),
                response.map_or(0, |response| response.status().as_u16()),
            )
        });
    }
    let mut latencies = Vec::new();
    let mut statuses = BTreeMap::new();
    while let Some(answer) = burst.join_next().await {
        let (latency, status) = answer.unwrap();
        latencies.push(latency);
        *statuses.entry(status).or_insert(0usize) += 1;
    }
    let burst_time = started.elapsed();
    over.store(true, Ordering::Relaxed);
    let (mut probe_latencies, probe_statuses) = probe.await.unwrap();
    let sampled_peak = sampler.await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = resident_kib(pid, "VmRSS:");
    let peak = resident_kib(pid, "VmHWM:").max(sampled_peak);
    latencies.sort();
    probe_latencies.sort();
    println!(
        "{}",
        serde_json::json!({
            "logins": logins,
            "sources": sources,
            "burst_seconds": burst_time.as_secs_f64(),
            "login_statuses": statuses,
            "login_ms": { "p50": percentile(&latencies, 0.5), "p99": percentile(&latencies, 0.99), "max": percentile(&latencies, 1.0) },
            "other_client_token_requests": probe_latencies.len(),
            "other_client_statuses": probe_statuses,
            "other_client_ms": { "p50": percentile(&probe_latencies, 0.5), "p99": percentile(&probe_latencies, 0.99), "max": percentile(&probe_latencies, 1.0) },
            "resident_kib": { "before": before, "peak": peak, "one_second_after": after },
        })
    );
}
