//! The resource-api binary's own tests: what the real process logs. (Behaviour over HTTP is tested with the
//! whole platform in `tests/`.)

// This whole crate is test code: a failed expectation should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use auth_core::clock::Clock;
use auth_core::wire::GrantType;
use serde_json::Value;
use testkit::dpop::ProofKey;
use testkit::{Backend, ClientSpec, TestIssuer};

/// The real binary at TRACE, every dependency included: no access token, DPoP proof or introspection secret
/// in what it logs, and a caller's request id only when it is plain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_proof_or_secret_reaches_the_logs_even_at_trace() {
    let issuer = TestIssuer::spawn(Backend::Sqlite).await;
    let machine = issuer
        .register(
            ClientSpec::confidential("machine")
                .grants([GrantType::ClientCredentials])
                .scope("read write"),
        )
        .await;
    let introspector = issuer
        .register(ClientSpec::resource_server("resource-api"))
        .await;
    let introspection_secret = introspector.secret.clone().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_resource-api"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--issuer",
            issuer.issuer(),
            "--log-format",
            "json",
            "--introspection-client-id",
            "resource-api",
        ])
        .env("RUST_LOG", "trace")
        .env("RESOURCE_API_INTROSPECTION_SECRET", &introspection_secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start resource-api");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .strip_prefix("resource-api listening on ")
        .map(str::trim)
        .unwrap_or_else(|| panic!("no ready line: {line:?}"))
        .to_owned();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let base = format!("http://{address}");
    let http = testkit::issuer::http_client();
    for _ in 0..100 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let token = issuer.access_token(&machine).await;
    let plain = http
        .get(format!("{base}/protected"))
        .bearer_auth(&token)
        .header("x-request-id", "a\" outcome=\"success")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    let echoed = plain.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(!echoed.contains('"'), "{echoed}");
    // A DELETE introspects with the client's secret.
    let deleted = http
        .delete(format!("{base}/items/1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 404);
    // A DPoP-bound token with its proof, and the same proof again (refused, logged as such).
    let key = ProofKey::generate("ES256");
    let bound: Value = http
        .post(issuer.url("/token"))
        .basic_auth(&machine.id, machine.secret.as_deref())
        .header(
            "DPoP",
            key.proof("POST", &issuer.url("/token"), issuer.clock.now(), None),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bound = bound["access_token"].as_str().unwrap().to_owned();
    let proof = key.proof(
        "GET",
        &format!("{base}/protected"),
        issuer.clock.now(),
        Some(&bound),
    );
    for expected in [200, 401] {
        let response = http
            .get(format!("{base}/protected"))
            .header("Authorization", format!("DPoP {bound}"))
            .header("DPoP", &proof)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.wait().unwrap().success());
    let log = reader.join().unwrap();
    assert!(
        log.contains("\"target\":\"tower_http::trace::on_request\""),
        "the log is real: {log}"
    );
    for (what, secret) in [
        ("access token", token.as_str()),
        ("bound access token", bound.as_str()),
        ("DPoP proof", proof.as_str()),
        ("introspection secret", introspection_secret.as_str()),
    ] {
        // A JWT is found by its signature, unique to it.
        let needle = secret.rsplit('.').next().unwrap_or(secret);
        assert!(needle.len() >= 16);
        assert!(!log.contains(needle), "the {what} appears in the logs");
    }
    assert!(
        !log.contains("outcome=\\\"success"),
        "a caller's request id forged a field: {log}"
    );
}

/// A readiness probe answered 503 while the issuer cannot be reached is the probe doing its job, not an error:
/// no ERROR line. And `--metrics-listen` moves /metrics to a listener of its own, named on stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_readiness_answer_is_no_error_and_metrics_can_listen_apart() {
    // A loopback port nobody listens on: the issuer stays unreachable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_resource-api"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(["--issuer", &format!("http://{closed}")])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start resource-api");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut lines = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        lines.push(line.trim().to_owned());
    }
    let address = lines[0]
        .strip_prefix("resource-api listening on ")
        .unwrap_or_else(|| panic!("no ready line: {lines:?}"))
        .to_owned();
    let metrics = lines[1]
        .strip_prefix("resource-api metrics on ")
        .unwrap_or_else(|| panic!("no metrics line: {lines:?}"))
        .to_owned();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let http = testkit::issuer::http_client();
    for _ in 0..3 {
        let ready = http
            .get(format!("http://{address}/readyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), 503);
    }
    let public = http
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        public.status(),
        404,
        "/metrics is not on the public listener"
    );
    let exposed = http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(exposed.status(), 200);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.wait().unwrap().success());
    let log = reader.join().unwrap();
    assert!(
        log.contains("resource-api stopped"),
        "the log is real: {log}"
    );
    assert!(
        !log.lines().any(|line| line.contains(" ERROR ")),
        "a 503 from /readyz is logged as an error: {log}"
    );
}

/// Over https: the API serves its own certificate, and reaches an https issuer trusting `SSL_CERT_FILE`
/// (that file alone, as rustls-native-certs reads it); without it, the issuer's private CA is not trusted
/// and the API stays unready. DPoP proofs name the https URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_it_trusts_ssl_cert_file_and_serves_its_own_certificate() {
    let ca = testkit::tls::ca();
    let issuer = TestIssuer::spawn_tls(Backend::Sqlite).await;
    let machine = issuer
        .register(
            ClientSpec::confidential("machine")
                .grants([GrantType::ClientCredentials])
                .scope("read write"),
        )
        .await;
    let start = |trust: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_resource-api"));
        command
            .args(["--listen", "127.0.0.1:0", "--issuer", issuer.issuer()])
            .args(["--tls-cert", ca.cert_path.to_str().unwrap()])
            .args(["--tls-key", ca.key_path.to_str().unwrap()])
            .args(["--jwks-cooldown-ms", "100"])
            .env("RUST_LOG", "error")
            .env_remove("SSL_CERT_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if trust {
            command.env("SSL_CERT_FILE", &ca.ca_path);
        } else {
            command.env_remove("SSL_CERT_FILE");
        }
        let mut child = command.spawn().expect("start resource-api");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let address = line
            .strip_prefix("resource-api listening on ")
            .map(str::trim)
            .unwrap_or_else(|| panic!("no ready line: {line:?}"))
            .to_owned();
        (child, format!("https://{address}"))
    };
    let http = ca.client();
    let ready = async |base: &str| {
        for _ in 0..60 {
            if http
                .get(format!("{base}/readyz"))
                .send()
                .await
                .is_ok_and(|response| response.status().is_success())
            {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    };
    let (mut untrusting, base) = start(false);
    assert!(
        !ready(&base).await,
        "the issuer's private CA is trusted without SSL_CERT_FILE"
    );
    let _ = untrusting.kill();
    let _ = untrusting.wait();

    let (mut child, base) = start(true);
    assert!(ready(&base).await, "not ready with SSL_CERT_FILE");
    let token = issuer.access_token(&machine).await;
    let protected = http
        .get(format!("{base}/protected"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(protected.status(), 200);
    let key = ProofKey::generate("ES256");
    let bound: Value = issuer
        .http
        .post(issuer.url("/token"))
        .basic_auth(&machine.id, machine.secret.as_deref())
        .header(
            "DPoP",
            key.proof("POST", &issuer.url("/token"), issuer.clock.now(), None),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bound = bound["access_token"].as_str().unwrap();
    let url = format!("{base}/protected");
    let with_proof = |htu: &str| key.proof("GET", htu, issuer.clock.now(), Some(bound));
    let answered = http
        .get(&url)
        .header("Authorization", format!("DPoP {bound}"))
        .header("DPoP", with_proof(&url))
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), 200, "htu names the https URL");
    let plain_htu = url.replacen("https://", "http://", 1);
    let refused = http
        .get(&url)
        .header("Authorization", format!("DPoP {bound}"))
        .header("DPoP", with_proof(&plain_htu))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "an http htu for an https request");
    let _ = child.kill();
    let _ = child.wait();
}
