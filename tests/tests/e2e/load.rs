//! The load tester against the real stack: every scenario runs a few iterations with zero
//! errors and writes both reports, so a broken scenario cannot go unnoticed. No timing is asserted.

use auth_core::wire::GrantType;
use goose::config::GooseConfiguration;
use loadtest::{ScenarioKind, TargetArgs};
use testkit::balancer::start_round_robin;
use testkit::database::TempDir;
use testkit::{Backend, ClientSpec, TestApi, TestIssuer};

const REDIRECT_URI: &str = "http://127.0.0.1:8082/callback";
const PASSWORD: &str = "load-test-password";

/// An issuer with the clients and user the scenarios need, and the target arguments that name them.
async fn seeded_issuer() -> (TestIssuer, String, TargetArgs) {
    seed(TestIssuer::spawn(Backend::Sqlite).await).await
}

async fn seed(issuer: TestIssuer) -> (TestIssuer, String, TargetArgs) {
    let secret = issuer
        .register(
            ClientSpec::confidential("load")
                .grants([GrantType::ClientCredentials])
                .scope("read write")
                .exchange_audience("https://downstream.example/"),
        )
        .await
        .secret
        .unwrap();
    let introspection_secret = issuer
        .register(ClientSpec::resource_server("api-introspection"))
        .await
        .secret
        .unwrap();
    issuer
        .register(
            ClientSpec::public("load-spa")
                .grants([GrantType::AuthorizationCode, GrantType::RefreshToken])
                .redirect_uri(REDIRECT_URI)
                .scope("openid read write"),
        )
        .await;
    issuer.user_with_password("load-user", PASSWORD).await;
    let target = TargetArgs {
        issuer: issuer.issuer().to_owned(),
        api: String::new(),
        protected_path: "/protected".into(),
        client_id: "load".into(),
        client_secret: secret,
        introspection_client_id: Some("api-introspection".into()),
        introspection_secret: introspection_secret.clone(),
        scope: None,
        resource: None,
        public_client_id: "load-spa".into(),
        redirect_uri: REDIRECT_URI.into(),
        user_scope: "read".into(),
        exchange_audience: "https://downstream.example/".into(),
        username: "load-user".into(),
        password: PASSWORD.into(),
    };
    (issuer, introspection_secret, target)
}

fn bounded(dir: &TempDir, name: &str) -> GooseConfiguration {
    let mut goose = GooseConfiguration::default();
    goose.users = Some(2);
    goose.iterations = Some(3);
    goose.increase_rate = Some("2".into());
    goose.report_file = vec![
        dir.path()
            .join(format!("{name}.html"))
            .display()
            .to_string(),
        dir.path()
            .join(format!("{name}.json"))
            .display()
            .to_string(),
    ];
    goose.no_print_metrics = true;
    goose.quiet = 1;
    goose
}

/// The request names each scenario must have measured.
fn expected_requests(kind: ScenarioKind) -> &'static [&'static str] {
    match kind {
        ScenarioKind::Issue => &["token: client_credentials"],
        ScenarioKind::Validate => &["api: protected", "token: client_credentials"],
        ScenarioKind::IssueDpop => &["token: client_credentials (DPoP)"],
        ScenarioKind::ValidateDpop => {
            &["api: protected (DPoP)", "token: client_credentials (DPoP)"]
        }
        ScenarioKind::Introspect => &["introspect"],
        ScenarioKind::Refresh => &["token: refresh_token", "token: authorization_code"],
        // The consent page shows only until the user's consent is remembered (the first sign-in).
        ScenarioKind::Authcode => &[
            "authorize: login form",
            "authorize: sign in",
            "token: authorization_code",
        ],
        // The JWKS is fetched by the pre-flight check, then only for an unknown kid.
        ScenarioKind::Openid => &[
            "authorize: login form",
            "authorize: sign in",
            "token: authorization_code",
        ],
        ScenarioKind::Exchange => &["token: client_credentials", "token: token-exchange"],
        ScenarioKind::Mixed => &["api: protected", "token: client_credentials"],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_without_errors_and_writes_both_reports() {
    let (issuer, introspection_secret, mut target) = seeded_issuer().await;
    let api = TestApi::start(
        issuer.issuer(),
        Some(("api-introspection", &introspection_secret)),
        5_000,
    )
    .await;
    api.wait_ready().await;
    target.api = api.base.clone();
    // Goose runs one attack at a time per process: the scenarios run one after another.
    for kind in ScenarioKind::ALL {
        let dir = TempDir::new();
        let summary = loadtest::run(target.clone(), kind, bounded(&dir, kind.name()))
            .await
            .unwrap_or_else(|error| panic!("{}: {error:#}", kind.name()));
        let table = summary.render();
        assert_eq!(summary.failures(), 0, "{table}");
        // 2 users × 3 iterations, at least one measured request each.
        assert!(summary.requests() >= 6, "{table}");
        for name in expected_requests(kind) {
            assert!(
                summary
                    .rows
                    .iter()
                    .any(|row| row.name.ends_with(name) && row.requests > 0),
                "{}: no {name:?} requests\n{table}",
                kind.name()
            );
        }
        let html =
            std::fs::read_to_string(dir.path().join(format!("{}.html", kind.name()))).unwrap();
        assert!(
            html.contains("<html") && html.contains("token"),
            "{}",
            kind.name()
        );
        let json: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join(format!("{}.json", kind.name()))).unwrap(),
        )
        .unwrap();
        assert!(json.is_object(), "{}: {json}", kind.name());
    }
}

#[tokio::test]
async fn wrong_credentials_stop_the_run_with_a_clear_message() {
    let (_issuer, _, target) = seeded_issuer().await;
    let dir = TempDir::new();

    let wrong_secret = TargetArgs {
        client_secret: "not-the-secret".into(),
        ..target.clone()
    };
    let error = loadtest::run(wrong_secret, ScenarioKind::Issue, bounded(&dir, "a"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("client \"load\" cannot get a token"),
        "{error}"
    );
    assert!(error.contains("invalid_client"), "{error}");

    let wrong_password = TargetArgs {
        password: "not-the-password".into(),
        ..target.clone()
    };
    let error = loadtest::run(wrong_password, ScenarioKind::Authcode, bounded(&dir, "b"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("could not sign in"), "{error}");

    // Port 1 (tcpmux) is privileged and never served: the connection is refused.
    let nobody = TargetArgs {
        issuer: "http://127.0.0.1:1".into(),
        ..target
    };
    let error = loadtest::run(nobody, ScenarioKind::Issue, bounded(&dir, "c"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("does not answer"), "{error}");
    // Nothing was measured, so no report was written.
    for name in ["a", "b", "c"] {
        for extension in ["html", "json"] {
            let report = dir.path().join(format!("{name}.{extension}"));
            assert!(!report.exists(), "{}", report.display());
        }
    }
}

/// Two replicas on one database behind a balancer that alternates per request: every step of every flow
/// (metadata, login form, sign-in, consent, code exchange, each refresh, each introspection) lands on the
/// other replica from the one before. `mixed` must still run without a single error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_runs_clean_across_two_replicas_behind_a_per_request_balancer() {
    // The balancer's port first: it is the issuer the replicas name.
    let balancer_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer_url = format!("http://{}", balancer_listener.local_addr().unwrap());
    let a = TestIssuer::spawn_with(Backend::Sqlite, |serve| {
        serve.issuer = Some(issuer_url.clone())
    })
    .await;
    let b = a.replica().await;
    let balancer = start_round_robin(balancer_listener, vec![a.address, b.address]).await;
    let (a, introspection_secret, mut target) = seed(a).await;
    let api = TestApi::start(
        &issuer_url,
        Some(("api-introspection", &introspection_secret)),
        5_000,
    )
    .await;
    api.wait_ready().await;
    target.api = api.base.clone();
    let dir = TempDir::new();
    let mut goose = bounded(&dir, "replicas");
    goose.users = Some(4);
    goose.increase_rate = Some("4".into());
    goose.iterations = Some(20);
    let summary = loadtest::run(target, ScenarioKind::Mixed, goose)
        .await
        .unwrap();
    let table = summary.render();
    assert_eq!(summary.failures(), 0, "{table}");
    for name in [
        "token: refresh_token",
        "introspect",
        // A form served by one replica, posted to the other (the CSRF key is shared).
        "authorize: sign in",
        "api: protected",
    ] {
        assert!(
            summary
                .rows
                .iter()
                .any(|row| row.name.ends_with(name) && row.requests > 0),
            "no {name:?} requests\n{table}"
        );
    }
    let counts = balancer.counts();
    assert!(
        counts.iter().all(|count| *count > 50),
        "both replicas served: {counts:?}"
    );
    drop((a, b));
}

/// The `loadtest` binary beside this test's own (cargo xtask test builds every binary before the tests run).
fn loadtest_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test's path");
    let binary = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/debug")
        .join("loadtest");
    assert!(
        binary.is_file(),
        "{} is missing: build the binaries first (`cargo build --bins`; cargo xtask test does)",
        binary.display()
    );
    binary
}

/// Outbound https trusts `SSL_CERT_FILE` alone when it is set: the load tester reaches an https issuer with
/// the issuer's CA there, and refuses it with another CA's file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_tester_reaches_an_https_issuer_trusting_ssl_cert_file() {
    let (issuer, _, target) = seed(TestIssuer::spawn_tls(Backend::Sqlite).await).await;
    assert!(
        issuer.issuer().starts_with("https://"),
        "{}",
        issuer.issuer()
    );
    let check = |ca: std::path::PathBuf| {
        tokio::process::Command::new(loadtest_binary())
            .args(["--check", "--scenario", "issue", "--issuer", &target.issuer])
            .args(["--client-id", &target.client_id])
            .env("LOADTEST_CLIENT_SECRET", &target.client_secret)
            .env("SSL_CERT_FILE", ca)
            .env("RUST_LOG", "warn")
            .output()
    };
    let trusted = check(testkit::tls::ca().ca_path.clone()).await.unwrap();
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    assert!(String::from_utf8_lossy(&trusted.stdout).contains("issue can run"));
    let dir = TempDir::new();
    let other = testkit::tls::TestCa::create(dir.path().join("ca"));
    let refused = check(other.ca_path.clone()).await.unwrap();
    assert!(
        !refused.status.success(),
        "another CA's file alone must not trust the issuer"
    );
}
