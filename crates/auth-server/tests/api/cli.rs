//! The real binary: subcommands, one-line errors, graceful shutdown.

use serde_json::Value;

use auth_core::keys::{KeyEncryptionKey, SigningKey};

use testkit::binary::{Run, ServedBinary};
use testkit::{Backend, TestDatabase, backend_tests};

backend_tests!(
    cli_creates_clients_users_and_keys_then_serves_and_stops_on_sigterm,
    a_key_encryption_key_starting_with_a_dash_works_in_every_form,
    plaintext_keys_are_sealed_at_start_or_by_keys_seal_and_warned_about_without_a_key,
    keys_rotate_without_the_key_encryption_key_refuses_beside_sealed_keys,
    passwords_shorter_than_the_minimum_are_refused_and_nothing_is_stored,
    a_database_that_cannot_be_opened_is_named_with_what_to_do,
    token_mint_signs_offline_what_the_server_would_issue_and_refuses_reserved_claims,
);

async fn keys_rotate_without_the_key_encryption_key_refuses_beside_sealed_keys(backend: Backend) {
    let kek = KeyEncryptionKey::generate_base64().unwrap();
    let db = TestDatabase::create(&backend).await;
    let with_key = [("AUTH_KEY_ENCRYPTION_KEY", kek.as_str())];
    assert!(run_with_env(&["keys", "rotate"], &with_key, &db.url, None).success);
    let before = stored_keys(&db.url).await;
    assert_eq!(
        before.len(),
        2,
        "one key per algorithm in use: ES256, RS256"
    );
    assert!(
        before.iter().all(|(_, sealed)| *sealed),
        "made with the key: sealed"
    );
    // Without the key: one line naming the variable, exit 1, and no key in the clear.
    let refused = run(&["keys", "rotate"], &db.url, None);
    assert!(!refused.success);
    assert_eq!(
        refused.stderr.trim().lines().count(),
        1,
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("AUTH_KEY_ENCRYPTION_KEY"),
        "{}",
        refused.stderr
    );
    assert_eq!(stored_keys(&db.url).await, before, "nothing was stored");
    // With it, the rotation goes ahead, sealed.
    assert!(run_with_env(&["keys", "rotate"], &with_key, &db.url, None).success);
    let after = stored_keys(&db.url).await;
    assert_eq!(after.len(), 4);
    assert!(after.iter().all(|(_, sealed)| *sealed));
    // A database with nothing sealed may still be used without a key, as before.
    let plain = TestDatabase::create(&backend).await;
    assert!(run(&["keys", "rotate"], &plain.url, None).success);
    assert!(run(&["keys", "rotate"], &plain.url, None).success);
}

async fn passwords_shorter_than_the_minimum_are_refused_and_nothing_is_stored(backend: Backend) {
    let db = TestDatabase::create(&backend).await;
    let create = |name: &'static str, password: &str, extra: &[&str]| {
        let mut args = vec!["user", "create", "--username", name, "--password-stdin"];
        args.extend(extra);
        run(&args, &db.url, Some(&format!("{password}\n")))
    };
    // NIST SP 800-63B §3.1.1.2: at least 8 characters by default, counted as characters, not bytes.
    let short = create("short", "1234567", &[]);
    assert!(!short.success);
    assert_eq!(short.stderr.trim().lines().count(), 1, "{}", short.stderr);
    assert!(short.stderr.contains("at least 8"), "{}", short.stderr);
    assert!(!create("one", "x", &[]).success);
    assert!(
        !create("accents", "ééééééé", &[]).success,
        "7 characters, 14 bytes"
    );
    assert!(create("eight", "ééééééééé", &[]).success);
    // No composition rules, and long passphrases (64 characters and more) are accepted.
    assert!(create("digits", "12345678", &[]).success);
    assert!(create("long", &"correct horse ".repeat(10), &[]).success);
    assert!(
        create("longest", &"é".repeat(1024), &[]).success,
        "1,024 characters"
    );
    assert!(!create("too-long", &"é".repeat(1025), &[]).success);
    // The minimum is the operator's to raise (up to 64), never to lower below 8.
    let raised = create("raised", "twelve chars", &["--min-password-length", "13"]);
    assert!(
        !raised.success && raised.stderr.contains("at least 13"),
        "{}",
        raised.stderr
    );
    assert!(create("raised", "thirteen char", &["--min-password-length", "13"]).success);
    for bad in ["7", "65", "0"] {
        assert!(
            !create(
                "bad",
                "a long enough password",
                &["--min-password-length", bad]
            )
            .success,
            "{bad}"
        );
    }
    // Nothing was stored for a refused password: the name is still free.
    assert!(create("short", "12345678", &[]).success);
    // set-password follows the same rule, and a refused one leaves the old password (and grants) alone.
    let refused = run(
        &["user", "set-password", "eight", "--password-stdin"],
        &db.url,
        Some("short\n"),
    );
    assert!(
        !refused.success && refused.stderr.contains("at least 8"),
        "{}",
        refused.stderr
    );
    let store = auth_server::store::sql::SqlStore::connect(&db.url, 1)
        .await
        .unwrap();
    let eight = auth_server::store::UserStore::find_user_by_username(&store, "eight")
        .await
        .unwrap()
        .unwrap();
    store.close().await;
    let hasher = auth_core::secret::PasswordHasher::new().unwrap();
    assert!(
        hasher.verify("ééééééééé", &eight.password_hash).unwrap(),
        "the old password still holds"
    );
    let raised = run(
        &[
            "user",
            "set-password",
            "eight",
            "--password-stdin",
            "--min-password-length",
            "20",
        ],
        &db.url,
        Some("only sixteen chr\n"),
    );
    assert!(
        !raised.success && raised.stderr.contains("at least 20"),
        "{}",
        raised.stderr
    );
}

async fn a_database_that_cannot_be_opened_is_named_with_what_to_do(backend: Backend) {
    let db = TestDatabase::create(&backend).await;
    let cases: Vec<(String, String)> = match backend {
        Backend::Sqlite => vec![(
            "sqlite:///nonexistent-directory-of-the-test/auth.db".into(),
            "the directory /nonexistent-directory-of-the-test of the SQLite database does not exist".into(),
        )],
        Backend::Postgres(_) => {
            let (server, _) = db.url.rsplit_once('/').unwrap();
            let missing = format!("missing_{}", std::process::id());
            let address = server.rsplit_once('@').map_or(server, |(_, address)| address);
            vec![
                (
                    format!("{server}/{missing}"),
                    format!("database \"{missing}\" does not exist at {address}: create it with `createdb"),
                ),
                (
                    format!("postgres://no_such_role_of_the_test@{address}/{missing}"),
                    format!("PostgreSQL at {address} refused user \"no_such_role_of_the_test\""),
                ),
            ]
        }
    };
    for (url, expected) in cases {
        let refused = run(&["client", "list"], &url, None);
        assert!(!refused.success);
        assert_eq!(
            refused.stderr.trim().lines().count(),
            1,
            "{}",
            refused.stderr
        );
        assert!(
            refused.stderr.contains(&expected),
            "{expected} not in {}",
            refused.stderr
        );
        assert!(!refused.stderr.contains("at line"), "{}", refused.stderr);
    }
}

/// Every stored signing key: (kid, sealed).
async fn stored_keys(database_url: &str) -> Vec<(String, bool)> {
    let store = auth_server::store::sql::SqlStore::connect(database_url, 1)
        .await
        .unwrap();
    let keys = auth_server::store::KeyStore::list_keys(&store)
        .await
        .unwrap();
    store.close().await;
    keys.into_iter()
        .map(|key| (key.kid, key.encrypted))
        .collect()
}

/// Every stored server secret (the CSRF key): (name, sealed).
async fn stored_secrets(database_url: &str) -> Vec<(String, bool)> {
    let store = auth_server::store::sql::SqlStore::connect(database_url, 1)
        .await
        .unwrap();
    let secrets = auth_server::store::KeyStore::list_server_secrets(&store)
        .await
        .unwrap();
    store.close().await;
    secrets
        .into_iter()
        .map(|secret| (secret.name, secret.encrypted))
        .collect()
}

async fn plaintext_keys_are_sealed_at_start_or_by_keys_seal_and_warned_about_without_a_key(
    backend: Backend,
) {
    let kek = KeyEncryptionKey::generate_base64().unwrap();
    // Keys made without a key-encryption key are in the clear; `keys seal` seals them.
    let db = TestDatabase::create(&backend).await;
    for _ in 0..2 {
        assert!(run(&["keys", "rotate", "--activate-after", "0"], &db.url, None).success);
    }
    assert!(stored_keys(&db.url).await.iter().all(|(_, sealed)| !sealed));
    let refused = run(&["keys", "seal"], &db.url, None);
    assert!(
        !refused.success && refused.stderr.contains("AUTH_KEY_ENCRYPTION_KEY"),
        "{}",
        refused.stderr
    );
    let sealed = run_with_env(
        &["keys", "seal"],
        &[("AUTH_KEY_ENCRYPTION_KEY", &kek)],
        &db.url,
        None,
    );
    assert_eq!(json(&sealed), serde_json::json!({ "sealed": 4 }));
    assert!(stored_keys(&db.url).await.iter().all(|(_, sealed)| *sealed));
    let again = run_with_env(
        &["keys", "seal"],
        &[("AUTH_KEY_ENCRYPTION_KEY", &kek)],
        &db.url,
        None,
    );
    assert_eq!(
        json(&again),
        serde_json::json!({ "sealed": 0 }),
        "nothing is sealed twice"
    );

    // A server started without a key warns, once; started with one, it seals what it finds and serves.
    let db = TestDatabase::create(&backend).await;
    let mut plain = ServedBinary::start(crate::binary(), &db.url, "warn", &[]);
    let stderr = plain.child.stderr.take().unwrap();
    assert!(plain.stop().await.success());
    let log = std::io::read_to_string(stderr).unwrap();
    assert_eq!(log.matches("no key-encryption key").count(), 1, "{log}");
    assert!(!log.contains("\u{1b}["), "no colour codes on a pipe: {log}");
    let keys = stored_keys(&db.url).await;
    assert_eq!(
        keys.len(),
        2,
        "ES256 for access tokens, RS256 for ID tokens"
    );
    assert!(keys.iter().all(|(_, sealed)| !sealed));
    assert_eq!(
        stored_secrets(&db.url).await,
        vec![("csrf".to_owned(), false)]
    );
    let sealing = ServedBinary::start(
        crate::binary(),
        &db.url,
        "warn",
        &["--key-encryption-key", &kek],
    );
    let jwks: Value = testkit::issuer::http_client()
        .get(format!("{}/jwks.json", sealing.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap())
        .collect();
    published.sort_unstable();
    let mut stored: Vec<&str> = keys.iter().map(|(kid, _)| kid.as_str()).collect();
    stored.sort_unstable();
    assert_eq!(published, stored, "the same keys, sealed, still sign");
    assert!(sealing.stop().await.success());
    assert!(
        stored_keys(&db.url)
            .await
            .iter()
            .all(|(kid, sealed)| *sealed && stored.contains(&kid.as_str()))
    );
    assert_eq!(
        stored_secrets(&db.url).await,
        vec![("csrf".to_owned(), true)],
        "the CSRF key is sealed like the signing keys"
    );
    // `keys seal` counts secrets too: a database whose server secret is in the clear.
    let db = TestDatabase::create(&backend).await;
    let plain = ServedBinary::start(crate::binary(), &db.url, "error", &[]);
    assert!(plain.stop().await.success());
    let sealed = run_with_env(
        &["keys", "seal"],
        &[("AUTH_KEY_ENCRYPTION_KEY", &kek)],
        &db.url,
        None,
    );
    assert_eq!(
        json(&sealed),
        serde_json::json!({ "sealed": 3 }),
        "the two signing keys and the CSRF key"
    );
    assert!(
        stored_secrets(&db.url)
            .await
            .iter()
            .all(|(_, sealed)| *sealed)
    );
}

/// A key-encryption key whose base64url text starts with '-' (first byte 0xF8), as one generated key in 64
/// did before `keys generate-kek` redrew them: fixed, so this test cannot pass or fail by chance.
const LEADING_DASH_KEK: &str = "-AECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

async fn a_key_encryption_key_starting_with_a_dash_works_in_every_form(backend: Backend) {
    let db = TestDatabase::create(&backend).await;
    let rotate = ["keys", "rotate", "--activate-after", "0"];
    let flag_equals = format!("--key-encryption-key={LEADING_DASH_KEK}");
    for (args, envs) in [
        (
            [&["--key-encryption-key", LEADING_DASH_KEK][..], &rotate].concat(),
            vec![],
        ),
        ([&[flag_equals.as_str()][..], &rotate].concat(), vec![]),
        (
            rotate.to_vec(),
            vec![("AUTH_KEY_ENCRYPTION_KEY", LEADING_DASH_KEK)],
        ),
    ] {
        let rotated = run_with_env(&args, &envs, &db.url, None);
        assert!(rotated.success, "{args:?} {envs:?}: {}", rotated.stderr);
        assert!(json(&rotated)[0]["kid"].is_string());
    }
    // Six keys (three rotations of ES256 and RS256), each sealed: it opens with that key-encryption key (bound to its kid), and with no other.
    let kek = KeyEncryptionKey::from_base64(LEADING_DASH_KEK).unwrap();
    let other =
        KeyEncryptionKey::from_base64(&KeyEncryptionKey::generate_base64().unwrap()).unwrap();
    let store = auth_server::store::sql::SqlStore::connect(&db.url, 1)
        .await
        .unwrap();
    let keys = auth_server::store::KeyStore::list_keys(&store)
        .await
        .unwrap();
    store.close().await;
    assert_eq!(keys.len(), 6);
    for key in &keys {
        assert!(key.encrypted, "{key:?}");
        let der = kek.open(&key.private_key, key.kid.as_bytes()).unwrap();
        assert_eq!(
            SigningKey::from_pkcs8(key.alg, &der).unwrap().kid(),
            key.kid
        );
        assert!(other.open(&key.private_key, key.kid.as_bytes()).is_err());
    }
    // Serving without the key is a one-line error naming the variable.
    let without = run(&["serve", "--listen", "127.0.0.1:0"], &db.url, None);
    assert!(!without.success);
    assert_eq!(
        without.stderr.trim().lines().count(),
        1,
        "{}",
        without.stderr
    );
    assert!(
        without.stderr.contains("AUTH_KEY_ENCRYPTION_KEY"),
        "{}",
        without.stderr
    );
    // With the key after its flag, the server loads the sealed keys and serves.
    let server = ServedBinary::start(
        crate::binary(),
        &db.url,
        "warn",
        &["--key-encryption-key", LEADING_DASH_KEK],
    );
    let jwks: Value = testkit::issuer::http_client()
        .get(format!("{}/jwks.json", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        6,
        "three rotations of two algorithms, the older ones still verifying"
    );
    assert!(server.stop().await.success());
}

#[test]
fn generate_kek_prints_one_key_and_needs_no_database_nor_a_valid_configured_key() {
    let generated = run_with_env(
        &["keys", "generate-kek"],
        &[("AUTH_KEY_ENCRYPTION_KEY", "malformed")],
        "postgres://nobody@127.0.0.1:1/none",
        None,
    );
    assert!(generated.success, "{}", generated.stderr);
    assert_eq!(generated.stdout.lines().count(), 1, "{}", generated.stdout);
    let key = generated.stdout.trim_end();
    assert_eq!(key.len(), 43, "{key}");
    assert!(!key.starts_with('-'));
    assert!(KeyEncryptionKey::from_base64(key).is_ok());
}

pub(crate) fn run(args: &[&str], database_url: &str, stdin: Option<&str>) -> Run {
    run_with_env(args, &[], database_url, stdin)
}

fn run_with_env(
    args: &[&str],
    envs: &[(&str, &str)],
    database_url: &str,
    stdin: Option<&str>,
) -> Run {
    testkit::binary::run(crate::binary(), args, envs, database_url, stdin, "warn")
}

/// The one JSON line a subcommand printed.
pub(crate) fn json(run: &Run) -> Value {
    assert!(run.success, "{}", run.stderr);
    serde_json::from_str(run.stdout.trim()).unwrap()
}

async fn cli_creates_clients_users_and_keys_then_serves_and_stops_on_sigterm(backend: Backend) {
    let db = TestDatabase::create(&backend).await;
    let migrated = run(&["migrate"], &db.url, None);
    assert!(migrated.success, "{}", migrated.stderr);
    assert!(migrated.stdout.contains("migrations applied"));
    let created = json(&run(
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
    ));
    assert_eq!(created["client_id"], "cli");
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43, "256 bits, base64url");
    let given_secret = "my-own-secret-of-at-least-32-characters";
    let given = json(&run(
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
        Some(&format!("{given_secret}\n")),
    ));
    assert_eq!(given["client_secret"], given_secret);
    let spa = json(&run(
        &[
            "client",
            "create",
            "--client-id",
            "spa",
            "--public",
            "--grant-type",
            "authorization_code",
            "--redirect-uri",
            testkit::REDIRECT_URI,
            "--scope",
            "read",
        ],
        &db.url,
        None,
    ));
    assert_eq!(
        spa["client_secret"],
        Value::Null,
        "a public client has no secret"
    );
    let taken = run(
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
    assert!(!taken.success);
    assert_eq!(
        taken.stderr.trim().lines().count(),
        1,
        "one line: {}",
        taken.stderr
    );
    assert!(taken.stderr.contains("already exists"));
    let fragment = run(
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
    assert!(
        !fragment.success && fragment.stderr.contains("fragment"),
        "{}",
        fragment.stderr
    );
    let alice = json(&run(
        &["user", "create", "--username", "alice", "--password-stdin"],
        &db.url,
        Some("hunter2 hunter2\n"),
    ));
    assert_eq!(alice["username"], "alice");
    assert!(alice["user_id"].is_string());
    // OpenID Connect claims (UserInfo reads them); a verified flag needs an address.
    let bob = json(&run(
        &[
            "user",
            "create",
            "--username",
            "bob",
            "--password-stdin",
            "--name",
            "Bob Dylan",
            "--email",
            "bob@example.org",
            "--email-verified",
        ],
        &db.url,
        Some("hunter2 hunter2\n"),
    ));
    let store = auth_server::store::sql::SqlStore::connect(&db.url, 1)
        .await
        .unwrap();
    let stored = auth_server::store::UserStore::find_user_by_username(&store, "bob")
        .await
        .unwrap()
        .unwrap();
    store.close().await;
    assert_eq!(stored.user_id, bob["user_id"].as_str().unwrap());
    assert_eq!(stored.name.as_deref(), Some("Bob Dylan"));
    assert_eq!(stored.email.as_deref(), Some("bob@example.org"));
    assert!(stored.email_verified);
    for bad in [
        vec!["--email-verified"],
        vec!["--email", "not-an-address"],
        vec!["--name", "new\nline"],
    ] {
        let mut args = vec!["user", "create", "--username", "carol", "--password-stdin"];
        args.extend(bad.iter().copied());
        let refused = run(&args, &db.url, Some("hunter2 hunter2\n"));
        assert!(!refused.success, "{bad:?}");
    }
    let rotated = json(&run(
        &["keys", "rotate", "--activate-after", "0"],
        &db.url,
        None,
    ));
    let algorithms: Vec<&str> = rotated
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["alg"].as_str().unwrap())
        .collect();
    assert_eq!(algorithms, ["ES256", "RS256"], "every algorithm in use");
    let kid = rotated[0]["kid"].as_str().unwrap().to_owned();
    let only = json(&run(
        &["keys", "rotate", "--alg", "PS256", "--activate-after", "0"],
        &db.url,
        None,
    ));
    assert_eq!(only[0]["alg"], "PS256");
    assert_eq!(only.as_array().unwrap().len(), 1);

    // serve: what the commands stored works, then it stops cleanly on SIGTERM.
    let server = ServedBinary::start(crate::binary(), &db.url, "warn", &[]);
    let http = testkit::issuer::http_client();
    for (id, secret) in [("cli", secret.as_str()), ("given", given_secret)] {
        let token = http
            .post(format!("{}/token", server.base))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(token.status(), 200, "{id}");
        let token: Value = token.json().await.unwrap();
        let access_token = token["access_token"].as_str().unwrap();
        assert_eq!(
            testkit::jwt::header(access_token)["kid"],
            kid.as_str(),
            "the rotated key signs"
        );
    }
    // The user signs in with the password given on stdin.
    let (_, challenge) = testkit::jwt::pkce();
    let mut browser = testkit::Browser::new(
        testkit::issuer::no_redirect_client(),
        format!("{}/authorize", server.base),
        server.base.clone(),
    );
    let login = browser
        .open_login(&format!(
            "{}/authorize?response_type=code&client_id=spa&redirect_uri={}&state=xyz-state&code_challenge={challenge}&code_challenge_method=S256",
            server.base,
            url::form_urlencoded::byte_serialize(testkit::REDIRECT_URI.as_bytes()).collect::<String>()
        ))
        .await;
    let consent = browser.sign_in(&login, "alice", "hunter2 hunter2").await;
    assert!(consent.is_consent_form(), "{}", consent.html);
    let exit = server.stop().await;
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
}

#[test]
fn bad_configuration_ends_with_one_line_and_no_panic() {
    for (args, url, expected) in [
        (
            &["migrate"][..],
            "postgres://nobody@127.0.0.1:1/none",
            "connection refused by 127.0.0.1:1: is PostgreSQL running there?",
        ),
        (
            &["serve", "--listen", "127.0.0.1:0"][..],
            "sqlite::memory:?mode=bogus",
            "the database URL is not valid",
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
        // What a key must look like, without repeating the (secret) value.
        (
            &["--key-encryption-key", "short", "migrate"][..],
            "sqlite::memory:",
            "32 bytes encoded as base64url",
        ),
    ] {
        let Run {
            success,
            stderr: err,
            ..
        } = run(args, url, None);
        assert!(!success, "{args:?} should fail");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.contains(expected), "{expected} not in {err}");
        assert!(
            !err.contains("short"),
            "the key's value is never echoed: {err}"
        );
    }
    let none = run(&["serve", "--signing-alg", "none"], "sqlite::memory:", None);
    assert!(
        !none.success && none.stderr.contains("none"),
        "{}",
        none.stderr
    );
}

/// Once migrated and listening, `serve` prints one line on stdout and nothing else: JSON naming the bound
/// address, the issuer and (with `--metrics-listen`) the metrics address, so a harness learns the port of
/// `--listen 127.0.0.1:0` without polling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_one_json_ready_line_naming_its_address_and_issuer() {
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let mut server = ServedBinary::start(
        crate::binary(),
        &db.url,
        "warn",
        &["--metrics-listen", "127.0.0.1:0"],
    );
    let listen = server.ready["listen"].as_str().unwrap().to_owned();
    let metrics = server.ready["metrics"].as_str().unwrap().to_owned();
    assert!(
        listen.starts_with("127.0.0.1:") && !listen.ends_with(":0"),
        "{listen}"
    );
    assert_eq!(server.ready["issuer"], format!("http://{listen}").as_str());
    assert_eq!(server.ready["ready"], true);
    assert_eq!(
        server.ready.as_object().unwrap().len(),
        4,
        "{}",
        server.ready
    );
    let http = testkit::issuer::http_client();
    let metadata: Value = http
        .get(format!("http://{listen}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["issuer"], server.ready["issuer"]);
    let text = http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("http_requests_total"), "{text}");
    // Nothing more on stdout: the line was the only one.
    let mut stdout = server.stdout.take().unwrap();
    assert!(server.stop().await.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "", "one line on stdout, and no other");
}

/// `--database-url sqlite::memory:`: `serve` runs on a database of its own process (migrated, keys made,
/// nothing on disk, no other process sees it); a one-shot command refuses it in one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_on_a_database_in_its_own_memory_and_one_shot_commands_refuse_it() {
    let kids = |jwks: &Value| -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|key| {
                format!(
                    "{}:{}",
                    key["alg"].as_str().unwrap(),
                    key["kid"].as_str().unwrap()
                )
            })
            .collect()
    };
    let http = testkit::issuer::http_client();
    let mut jwks = Vec::new();
    for _ in 0..2 {
        let server = ServedBinary::start(crate::binary(), "sqlite::memory:", "warn", &[]);
        let ready = http
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(ready.status(), reqwest::StatusCode::OK);
        let keys: Value = http
            .get(format!("{}/jwks.json", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = http
            .post(format!("{}/token", server.base))
            .basic_auth("nobody", Some("wrong"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(token.status(), reqwest::StatusCode::UNAUTHORIZED);
        jwks.push(kids(&keys));
        assert!(server.stop().await.success());
    }
    assert_eq!(
        jwks[0].len(),
        2,
        "ES256 for access tokens, RS256 for ID tokens: {:?}",
        jwks[0]
    );
    assert!(
        jwks[0].iter().all(|key| !jwks[1].contains(key)),
        "each process its own database: {jwks:?}"
    );
    for args in [
        &["client", "list"][..],
        &["migrate"],
        &["user", "create", "--username", "alice", "--password-stdin"],
    ] {
        let refused = run(args, "sqlite::memory:", Some("a long password\n"));
        assert_eq!(refused.code, Some(1), "{args:?}");
        assert_eq!(
            refused.stderr.trim().lines().count(),
            1,
            "{}",
            refused.stderr
        );
        assert!(
            refused.stderr.contains("only `serve` can use it"),
            "{}",
            refused.stderr
        );
    }
}

/// `serve --tls-cert --tls-key`: https only, the issuer https by default; a pair that cannot serve, or an
/// http issuer with TLS, is one line and exit 1; one flag without the other is clap's usage error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_speaks_https_with_a_certificate_and_refuses_what_cannot_serve_in_one_line() {
    let ca = testkit::tls::ca();
    let db = TestDatabase::create(&Backend::Sqlite).await;
    let (cert, key) = (
        ca.cert_path.to_str().unwrap(),
        ca.key_path.to_str().unwrap(),
    );
    let server = ServedBinary::start(
        crate::binary(),
        &db.url,
        "warn",
        &["--tls-cert", cert, "--tls-key", key],
    );
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );
    let metadata: Value = ca
        .client()
        .get(format!("{}/.well-known/openid-configuration", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["issuer"], server.base.as_str());
    assert!(
        metadata["token_endpoint"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    // Plaintext to the same port gets no HTTP answer.
    let plain = server.base.replacen("https://", "http://", 1);
    assert!(
        testkit::issuer::http_client()
            .get(format!("{plain}/healthz"))
            .send()
            .await
            .is_err()
    );
    assert!(server.stop().await.success());

    // What cannot serve: one line naming the file, exit 1.
    let dir = std::env::temp_dir().join(format!("cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let other_key = dir.join("other.key");
    std::fs::write(&other_key, ca.server_certificate().1).unwrap();
    let other_key = other_key.to_str().unwrap();
    for (args, expected) in [
        (
            vec!["--tls-cert", cert, "--tls-key", other_key],
            "does not match",
        ),
        (
            vec!["--tls-cert", key, "--tls-key", key],
            "holds no PEM certificate",
        ),
        (
            vec!["--tls-cert", "/nonexistent/cert.pem", "--tls-key", key],
            "cannot read --tls-cert /nonexistent/cert.pem",
        ),
        (
            vec![
                "--tls-cert",
                cert,
                "--tls-key",
                key,
                "--issuer",
                "http://127.0.0.1:8080",
            ],
            "must be https",
        ),
    ] {
        let mut serve = vec!["serve", "--listen", "127.0.0.1:0"];
        serve.extend(args.iter().copied());
        let refused = run(&serve, &db.url, None);
        assert_eq!(refused.code, Some(1), "{args:?}: {}", refused.stderr);
        assert_eq!(
            refused.stderr.trim().lines().count(),
            1,
            "{}",
            refused.stderr
        );
        assert!(
            refused.stderr.contains(expected),
            "{expected}: {}",
            refused.stderr
        );
    }
    let half = run(&["serve", "--tls-cert", cert], &db.url, None);
    assert_eq!(half.code, Some(2), "{}", half.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `token mint` for fixtures: an access token (or ID token) signed offline by the database's active key,
/// exactly what the server would issue, with extra claims beside; active at /introspect like any other,
/// revocable, audited; the token's own claims cannot be named, and a bad value or an unknown client is
/// refused.
async fn token_mint_signs_offline_what_the_server_would_issue_and_refuses_reserved_claims(
    backend: Backend,
) {
    let db = TestDatabase::create(&backend).await;
    let created = run(
        &[
            "client",
            "create",
            "--client-id",
            "svc",
            "--grant-type",
            "client_credentials",
            "--scope",
            "read write",
            "--introspection",
        ],
        &db.url,
        None,
    );
    assert!(created.success, "{}", created.stderr);
    let secret = json(&created)["client_secret"].as_str().unwrap().to_owned();
    let web = run(
        &[
            "client",
            "create",
            "--client-id",
            "web",
            "--grant-type",
            "authorization_code",
            "--redirect-uri",
            "http://127.0.0.1:9/cb",
            "--scope",
            "openid read",
        ],
        &db.url,
        None,
    );
    assert!(web.success, "{}", web.stderr);
    // The server makes its keys at its first start; the mint reads them.
    let server = ServedBinary::start(crate::binary(), &db.url, "warn", &[]);
    let issuer = server.base.clone();
    let mint = |args: &[&str]| {
        let mut all = vec!["token", "mint", "--issuer", issuer.as_str()];
        all.extend_from_slice(args);
        testkit::binary::run(crate::binary(), &all, &[], &db.url, None, "info")
    };
    let minted = mint(&[
        "--client-id",
        "svc",
        "--claim",
        r#"tenant="acme""#,
        "--claim",
        r#"roles=["admin"]"#,
    ]);
    assert!(minted.success, "{}", minted.stderr);
    let token = minted.stdout.trim().to_owned();
    assert_eq!(minted.stdout.lines().count(), 1, "{}", minted.stdout);
    assert!(
        minted.stderr.contains("token_minted"),
        "audited: {}",
        minted.stderr
    );
    let header = testkit::jwt::header(&token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let claims = testkit::jwt::claims(&token);
    assert_eq!(claims["iss"], issuer.as_str());
    assert_eq!(claims["sub"], "svc");
    assert_eq!(claims["client_id"], "svc");
    assert_eq!(claims["scope"], "read write");
    assert_eq!(claims["aud"], "resource-api");
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["roles"], serde_json::json!(["admin"]));
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );
    let http = testkit::issuer::http_client();
    let introspect = |token: String| {
        let http = http.clone();
        let (url, secret) = (format!("{issuer}/introspect"), secret.clone());
        async move {
            http.post(url)
                .basic_auth("svc", Some(secret))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let active = introspect(token.clone()).await;
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["sub"], "svc");
    // A part of the client's scope, another subject, a shorter life.
    let narrow = mint(&[
        "--client-id",
        "svc",
        "--scope",
        "read",
        "--sub",
        "alice",
        "--ttl",
        "60",
    ]);
    assert!(narrow.success, "{}", narrow.stderr);
    let claims = testkit::jwt::claims(narrow.stdout.trim());
    assert_eq!(
        (claims["scope"].as_str(), claims["sub"].as_str()),
        (Some("read"), Some("alice"))
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        60
    );
    // An ID token: for the client, RS256 (the client registered no other algorithm), with the nonce.
    let id = mint(&[
        "--client-id",
        "web",
        "--sub",
        "alice",
        "--id-token",
        "--nonce",
        "n-1",
    ]);
    assert!(id.success, "{}", id.stderr);
    let id_token = id.stdout.trim();
    assert_eq!(testkit::jwt::header(id_token)["alg"], "RS256");
    assert_eq!(testkit::jwt::header(id_token)["typ"], "JWT");
    let claims = testkit::jwt::claims(id_token);
    assert_eq!(
        (claims["aud"].as_str(), claims["nonce"].as_str()),
        (Some("web"), Some("n-1"))
    );
    // Revoked like any token: inactive at once.
    let revoked = http
        .post(format!("{issuer}/revoke"))
        .basic_auth("svc", Some(&secret))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), reqwest::StatusCode::OK);
    assert_eq!(introspect(token).await["active"], false);
    // Usage errors (exit 2): a claim the token sets itself, a value that is not JSON, a lifetime out of range.
    for args in [
        &["--client-id", "svc", "--claim", r#"sub="root""#][..],
        &["--client-id", "svc", "--claim", r#"scope="admin""#],
        &["--client-id", "svc", "--claim", "cnf={}"],
        &["--client-id", "svc", "--claim", "auth_time=1"],
        &["--client-id", "svc", "--claim", "tenant=acme"],
        &["--client-id", "svc", "--ttl", "0"],
        &["--client-id", "svc", "--ttl", "86401"],
    ] {
        let refused = mint(args);
        assert_eq!(refused.code, Some(2), "{args:?}: {}", refused.stderr);
        assert!(refused.stdout.is_empty());
    }
    // One line and exit 1: an unknown client, a scope it does not have, an in-memory database.
    for (args, url) in [
        (&["--client-id", "nobody"][..], db.url.as_str()),
        (
            &["--client-id", "svc", "--scope", "read admin"],
            db.url.as_str(),
        ),
        (&["--client-id", "svc"], "sqlite::memory:"),
    ] {
        let mut all = vec!["token", "mint"];
        all.extend_from_slice(args);
        let refused = testkit::binary::run(crate::binary(), &all, &[], url, None, "warn");
        assert_eq!(refused.code, Some(1), "{args:?}: {}", refused.stderr);
        assert_eq!(
            refused.stderr.trim().lines().count(),
            1,
            "{}",
            refused.stderr
        );
        assert!(refused.stdout.is_empty());
    }
    assert!(server.stop().await.success());
}
