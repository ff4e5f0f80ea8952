//! The real binary: subcommands, one-line errors, graceful shutdown.

use serde_json::Value;

use crate::backend_tests;
use crate::helpers::{Backend, ServedBinary, TestDatabase, run_cli};

backend_tests!(
    cli_creates_clients_users_and_keys_then_serves_and_stops_on_sigterm,
    encrypted_keys_need_the_key_encryption_key
);

async fn encrypted_keys_need_the_key_encryption_key(backend: Backend) {
    let db = TestDatabase::create(&backend).await;
    let kek = auth_core::keys::KeyEncryptionKey::generate_base64().unwrap();
    let (ok, _, err) = run(
        &[
            "--key-encryption-key",
            &kek,
            "keys",
            "rotate",
            "--activate-after",
            "0",
        ],
        &db.url,
        None,
    );
    assert!(ok, "{err}");
    // The private key is sealed in the database: no PKCS#8 header in the clear.
    let store = auth_server::store::SqlStore::connect(&db.url, 1)
        .await
        .unwrap();
    let keys = auth_server::store::KeyStore::list_keys(&store)
        .await
        .unwrap();
    assert!(
        keys.iter()
            .all(|key| key.encrypted && !key.private_key.starts_with(&[0x30]))
    );
    store.close().await;
    // Serving without the key is a one-line error.
    let (ok, _, err) = run(&["serve", "--listen", "127.0.0.1:0"], &db.url, None);
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("AUTH_KEY_ENCRYPTION_KEY"), "{err}");
}

fn run(args: &[&str], database_url: &str, stdin: Option<&str>) -> (bool, String, String) {
    run_cli(args, database_url, stdin, "warn")
}

async fn cli_creates_clients_users_and_keys_then_serves_and_stops_on_sigterm(backend: Backend) {
    let db = TestDatabase::create(&backend).await;
    let (ok, out, err) = run(&["migrate"], &db.url, None);
    assert!(ok, "{err}");
    assert!(out.contains("migrations applied"));
    let (ok, out, err) = run(
        &[
            "client",
            "create",
            "--client-id",
            "cli",
            "--grant-type",
            "client_credentials",
            "--scope",
            "read",
        ],
        &db.url,
        None,
    );
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(created["client_id"], "cli");
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43, "256 bits, base64url");
    let (ok, out, _) = run(
        &[
            "client",
            "create",
            "--client-id",
            "given",
            "--secret-stdin",
            "--grant-type",
            "client_credentials",
        ],
        &db.url,
        Some("my-own-secret\n"),
    );
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(out.trim()).unwrap()["client_secret"],
        "my-own-secret"
    );
    let (ok, _, err) = run(
        &[
            "client",
            "create",
            "--client-id",
            "cli",
            "--grant-type",
            "client_credentials",
        ],
        &db.url,
        None,
    );
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("already exists"));
    let (ok, _, err) = run(
        &[
            "client",
            "create",
            "--client-id",
            "frag",
            "--grant-type",
            "authorization_code",
            "--redirect-uri",
            "http://a/cb#x",
        ],
        &db.url,
        None,
    );
    assert!(!ok && err.contains("fragment"), "{err}");
    let (ok, out, err) = run(
        &["user", "create", "--username", "alice", "--password-stdin"],
        &db.url,
        Some("hunter2 hunter2\n"),
    );
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(out.trim()).unwrap()["username"],
        "alice"
    );
    let (ok, out, err) = run(&["keys", "rotate", "--activate-after", "0"], &db.url, None);
    assert!(ok, "{err}");
    assert!(serde_json::from_str::<Value>(out.trim()).unwrap()["kid"].is_string());

    // serve: answers, then stops cleanly on SIGTERM.
    let server = ServedBinary::start(&db.url, "warn", &[]).await;
    let token = reqwest::Client::new()
        .post(format!("{}/token", server.base))
        .basic_auth("cli", Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    let exit = server.stop().await;
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
}

#[test]
fn bad_configuration_ends_with_one_line_and_no_panic() {
    for (args, url, expected) in [
        (
            &["migrate"][..],
            "postgres://nobody@127.0.0.1:1/none",
            "connecting to the database",
        ),
        (&["migrate"][..], "mysql://x/y", "sqlite: or postgres://"),
        (
            &["serve", "--issuer", "ftp://x", "--listen", "127.0.0.1:0"][..],
            "sqlite::memory:",
            "--issuer",
        ),
        (
            &["--key-encryption-key", "short", "migrate"][..],
            "sqlite::memory:",
            "AUTH_KEY_ENCRYPTION_KEY",
        ),
    ] {
        let (ok, _, err) = run(args, url, None);
        assert!(!ok, "{args:?} should fail");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(expected), "{expected} not in {err}");
    }
    let (ok, _, err) = run(&["serve", "--signing-alg", "none"], "sqlite::memory:", None);
    assert!(!ok && err.contains("none"), "{err}");
}
