//! Configuration as code through the real binary: every kind of client and user declared in a file and
//! working, applying twice changes nothing, bad entries are one line each and nothing is applied, `prune`,
//! `config export` taken back unchanged, command line > environment > file, and replicas applying one file
//! at once ending with one copy of everything.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::{Value, json};

use auth_core::client_assertion::ASSERTION_TYPE;
use auth_core::clock::{Clock, ManualClock, SystemClock};
use testkit::binary::{Run, ServedBinary};
use testkit::dpop::ProofKey;
use testkit::{
    Backend, PASSWORD, REDIRECT_URI, TestClient, TestDatabase, TestIssuer, backend_tests,
};

use crate::cli::json;

backend_tests!(
    every_kind_of_client_and_user_declared_in_a_file_works_and_applying_again_changes_nothing,
    a_bad_entry_is_one_line_naming_file_line_and_key_and_nothing_is_applied,
    prune_deletes_what_the_file_no_longer_names_and_its_tokens_die,
    two_servers_applying_one_file_at_once_end_with_one_copy_of_everything,
);

const MACHINE_SECRET: &str = "machine-secret-from-a-file-0123456789";
const INTROSPECTOR_SECRET: &str = "introspector-secret-from-a-variable-0123";
const DPOP_SECRET: &str = "dpop-client-secret-from-a-variable-0123";

/// A directory of its own for a test's files, removed at the end.
struct Folder(PathBuf);

impl Folder {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "declared-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const ENVS: [(&str, &str); 3] = [
    ("INTROSPECTOR_SECRET", INTROSPECTOR_SECRET),
    ("DPOP_SECRET", DPOP_SECRET),
    ("ALICE_PASSWORD", PASSWORD),
];

fn run(args: &[&str], database_url: &str) -> Run {
    testkit::binary::run(crate::binary(), args, &ENVS, database_url, None, "warn")
}

/// [`run`] with the user's password changed.
fn run_with_new_password(args: &[&str], database_url: &str) -> Run {
    let mut envs = ENVS;
    envs[2] = ("ALICE_PASSWORD", "a brand new password for alice");
    testkit::binary::run(crate::binary(), args, &envs, database_url, None, "warn")
}

fn counts(applied: &Value, kind: &str) -> [u64; 4] {
    ["created", "updated", "unchanged", "pruned"].map(|what| applied[kind][what].as_u64().unwrap())
}

/// Every kind of client of the platform and an OpenID user, as an operator would write them.
fn platform_file(folder: &Folder, service_jwk: &Value) -> String {
    folder.write("machine.secret", &format!("{MACHINE_SECRET}\n"));
    folder.write(
        "service.jwks",
        &json!({ "keys": [service_jwk] }).to_string(),
    );
    folder.write(
        "platform.toml",
        &format!(
            r#"# Every kind of client, and a user with an e-mail address.
[[clients]]
client_id = "machine"
secret_file = "machine.secret"
grant_types = ["client_credentials"]
scope = "read write"

[[clients]]
client_id = "spa"
name = "The single-page app"
public = true
grant_types = ["authorization_code", "refresh_token"]
redirect_uris = ["{REDIRECT_URI}"]
scope = "openid profile email read"

[[clients]]
client_id = "service"
jwks_file = "service.jwks"
grant_types = ["client_credentials"]
scope = "read"

[[clients]]
client_id = "introspector"
secret_env = "INTROSPECTOR_SECRET"
introspection = true

[[clients]]
client_id = "bound"
secret_env = "DPOP_SECRET"
grant_types = ["client_credentials"]
scope = "read"
require_dpop = true

[[users]]
username = "alice"
name = "Alice Liddell"
email = "alice@example.com"
email_verified = true
password_env = "ALICE_PASSWORD"
"#
        ),
    )
}

fn client(id: &str, secret: Option<&str>) -> TestClient {
    TestClient {
        id: id.to_owned(),
        secret: secret.map(str::to_owned),
    }
}

async fn every_kind_of_client_and_user_declared_in_a_file_works_and_applying_again_changes_nothing(
    backend: Backend,
) {
    let db = TestDatabase::create(&backend).await;
    let folder = Folder::new("kinds");
    let service_key = ProofKey::generate("ES256");
    let mut jwk = service_key.public_jwk();
    jwk["kid"] = json!("service-1");
    let file = platform_file(&folder, &jwk);

    let applied = json(&run(&["config", "apply", &file], &db.url));
    assert_eq!(counts(&applied, "clients"), [5, 0, 0, 0], "{applied}");
    assert_eq!(counts(&applied, "users"), [1, 0, 0, 0], "{applied}");
    let listed = json(&run(&["client", "list"], &db.url));

    let app = TestIssuer::on_database(&db.url, ManualClock::new(SystemClock.now()), |_| {}).await;
    let introspector = client("introspector", Some(INTROSPECTOR_SECRET));
    // client_secret_basic with the secret from a file.
    let machine = app
        .client_credentials(&client("machine", Some(MACHINE_SECRET)))
        .await;
    let machine_token = machine["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.introspect_as(&introspector, &machine_token).await["active"],
        true
    );
    // A public client with PKCE, and the user's e-mail in the ID token.
    let spa = app
        .code_flow_for(&client("spa", None), "alice", Some("openid email read"))
        .await;
    let id_token = testkit::jwt::claims(spa["id_token"].as_str().unwrap());
    assert_eq!(id_token["aud"], "spa");
    let userinfo: Value = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(spa["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(userinfo["sub"], id_token["sub"]);
    assert_eq!(userinfo["email"], "alice@example.com", "{userinfo}");
    assert_eq!(userinfo["email_verified"], true);
    // private_key_jwt by the keys of the JWK set file.
    let now = SystemClock.now();
    let assertion = service_key.sign(
        &json!({ "alg": "ES256", "kid": "service-1", "typ": "JWT" }),
        &json!({ "iss": "service", "sub": "service", "aud": app.issuer(), "iat": now, "exp": now + 60, "jti": uuid::Uuid::new_v4().to_string() }),
    );
    let service = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(service.status(), StatusCode::OK);
    // require_dpop: a request without a proof is refused.
    let unbound = app
        .post_token(
            &client("bound", Some(DPOP_SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await;
    assert_eq!(unbound.status(), StatusCode::BAD_REQUEST);
    let body: Value = unbound.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");

    // Applying again changes nothing: the same clients, the same secrets, the user's password kept (it
    // still verifies), and the token issued before still active.
    let again = json(&run(&["config", "apply", &file], &db.url));
    assert_eq!(counts(&again, "clients"), [0, 0, 5, 0], "{again}");
    assert_eq!(counts(&again, "users"), [0, 0, 1, 0], "{again}");
    assert_eq!(json(&run(&["client", "list"], &db.url)), listed);
    assert_eq!(
        app.introspect_as(&introspector, &machine_token).await["active"],
        true
    );
    assert_eq!(
        app.client_credentials(&client("machine", Some(MACHINE_SECRET)))
            .await["token_type"],
        "Bearer"
    );

    // `config export` is taken back unchanged, and holds no secret.
    let exported = run(&["config", "export"], &db.url);
    assert!(exported.success, "{}", exported.stderr);
    for secret in [MACHINE_SECRET, INTROSPECTOR_SECRET, DPOP_SECRET, "argon2"] {
        assert!(!exported.stdout.contains(secret), "{}", exported.stdout);
    }
    let export_file = folder.write("exported.toml", &exported.stdout);
    let checked = run(&["config", "check", &export_file], "sqlite::memory:");
    assert!(
        checked.success && checked.stderr.is_empty(),
        "{}",
        checked.stderr
    );
    let taken_back = json(&run(&["config", "apply", &export_file], &db.url));
    assert_eq!(counts(&taken_back, "clients"), [0, 0, 5, 0], "{taken_back}");
    assert_eq!(counts(&taken_back, "users"), [0, 0, 1, 0], "{taken_back}");
    assert_eq!(json(&run(&["client", "list"], &db.url)), listed);

    // A change in the file is an update in place: tokens stay valid.
    let changed = std::fs::read_to_string(&file)
        .unwrap()
        .replace("scope = \"read write\"", "scope = \"read\"");
    std::fs::write(&file, changed).unwrap();
    let updated = json(&run(&["config", "apply", &file], &db.url));
    assert_eq!(counts(&updated, "clients"), [0, 1, 4, 0], "{updated}");
    assert_eq!(
        app.introspect_as(&introspector, &machine_token).await["active"],
        true
    );

    // The user's grant outlived the four applies of the same password; a password changed in the file
    // ends it, as `user set-password` does.
    let spa_user_token = spa["access_token"].as_str().unwrap();
    assert_eq!(
        app.introspect_as(&introspector, spa_user_token).await["active"],
        true
    );
    let renewed = json(&run_with_new_password(&["config", "apply", &file], &db.url));
    assert_eq!(counts(&renewed, "users"), [0, 1, 0, 0], "{renewed}");
    let refreshed = app
        .post_token(
            &client("spa", None),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", spa["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(
        refreshed.status(),
        StatusCode::BAD_REQUEST,
        "the grant is revoked"
    );
    assert_eq!(
        app.introspect_as(&introspector, spa_user_token).await["active"],
        false
    );
}

async fn a_bad_entry_is_one_line_naming_file_line_and_key_and_nothing_is_applied(backend: Backend) {
    let db = TestDatabase::create(&backend).await;
    let folder = Folder::new("bad");
    let file = folder.write(
        "bad.toml",
        r#"[[clients]]
client_id = "fine"
grant_types = ["client_credentials"]
secret = "a-literal-secret-long-enough-0123456789"

[[clients]]
client_id = "web"
grant_types = ["authorization_code"]
redirect_uris = ["https://app.example/callback#fragment"]
colour = "blue"

[[clients]]
client_id = "short"
grant_types = ["client_credentials"]
secret = "too short"
"#,
    );
    let expected = [
        format!("{file}:9: redirect_uris: "),
        format!("{file}:10: colour: unknown key in [[clients]]"),
        format!("{file}:15: secret: "),
    ];
    let check_lines = |run: &Run| {
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 3, "{}", run.stderr);
        for (line, start) in lines.iter().zip(&expected) {
            assert!(
                line.starts_with(start.as_str()),
                "{line} should start with {start}"
            );
        }
    };
    check_lines(&run(&["config", "check", &file], &db.url));
    check_lines(&run(&["config", "apply", &file], &db.url));
    assert_eq!(
        json(&run(&["client", "list"], &db.url)),
        json!([]),
        "nothing applied"
    );
    // `serve` reads the file before anything else: the same lines, exit 1, never ready.
    let served = testkit::binary::run(
        crate::binary(),
        &["--config", &file, "serve", "--listen", "127.0.0.1:0"],
        &[],
        &db.url,
        None,
        "warn",
    );
    check_lines(&served);
    assert_eq!(served.stdout, "", "never ready");
    assert_eq!(json(&run(&["client", "list"], &db.url)), json!([]));
    // A confidential client named without a secret is fine once stored, an error while new; the lines
    // still name the file, and nothing of the file is applied.
    let keep = folder.write(
        "keep.toml",
        "[[clients]]\nclient_id = \"api\"\nintrospection = true\n\n[[users]]\nusername = \"bob\"\n",
    );
    let refused = run(&["config", "apply", &keep], &db.url);
    assert_eq!(refused.code, Some(1));
    let lines: Vec<&str> = refused.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", refused.stderr);
    assert!(
        lines[0].starts_with(&format!("{keep}:2: client_id: ")),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(&format!("{keep}:6: username: ")),
        "{}",
        lines[1]
    );
    assert_eq!(json(&run(&["client", "list"], &db.url)), json!([]));
    assert_eq!(json(&run(&["user", "list"], &db.url)), json!([]));
}

async fn prune_deletes_what_the_file_no_longer_names_and_its_tokens_die(backend: Backend) {
    let db = TestDatabase::create(&backend).await;
    let folder = Folder::new("prune");
    let entries = |names: &[&str], prune: bool| {
        let mut text = format!("prune = {prune}\n");
        for name in names {
            text.push_str(&format!(
                "[[clients]]\nclient_id = \"{name}\"\nsecret_env = \"INTROSPECTOR_SECRET\"\ngrant_types = [\"client_credentials\"]\nintrospection = true\nscope = \"read\"\n[[users]]\nusername = \"user-{name}\"\npassword_env = \"ALICE_PASSWORD\"\n"
            ));
        }
        text
    };
    let both = folder.write("both.toml", &entries(&["kept", "gone"], false));
    json(&run(&["config", "apply", &both], &db.url));
    let app = TestIssuer::on_database(&db.url, ManualClock::new(SystemClock.now()), |_| {}).await;
    let kept = client("kept", Some(INTROSPECTOR_SECRET));
    let gone = client("gone", Some(INTROSPECTOR_SECRET));
    let token = app.access_token(&gone).await;
    assert_eq!(app.introspect_as(&kept, &token).await["active"], true);
    // Without prune, an entry left out of the file stays.
    let one = folder.write("one.toml", &entries(&["kept"], false));
    let applied = json(&run(&["config", "apply", &one], &db.url));
    assert_eq!(counts(&applied, "clients"), [0, 0, 1, 0], "{applied}");
    assert_eq!(app.introspect_as(&kept, &token).await["active"], true);
    // With prune, it goes as `client delete` and `user delete` take it: its tokens are inactive.
    let pruning = folder.write("pruning.toml", &entries(&["kept"], true));
    let applied = json(&run(&["config", "apply", &pruning], &db.url));
    assert_eq!(counts(&applied, "clients"), [0, 0, 1, 1], "{applied}");
    assert_eq!(counts(&applied, "users"), [0, 0, 1, 1], "{applied}");
    let listed = json(&run(&["client", "list"], &db.url));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["client_id"], "kept");
    assert_eq!(
        json(&run(&["user", "list"], &db.url))[0]["username"],
        "user-kept"
    );
    // The running server forgets the deleted client within its poll interval.
    let mut active = Value::Null;
    for _ in 0..50 {
        active = app.introspect_as(&kept, &token).await["active"].clone();
        if active == false {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(active, false, "a pruned client's tokens are inactive");
}

async fn two_servers_applying_one_file_at_once_end_with_one_copy_of_everything(backend: Backend) {
    const CLIENTS: u64 = 300;
    let db = TestDatabase::create(&backend).await;
    // Migrated first, so that the race is the one of applying, not of migrating.
    assert!(run(&["migrate"], &db.url).success);
    let folder = Folder::new("replicas");
    let mut text = String::new();
    for index in 0..CLIENTS {
        text.push_str(&format!(
            "[[clients]]\nclient_id = \"client-{index}\"\nsecret_env = \"INTROSPECTOR_SECRET\"\ngrant_types = [\"client_credentials\"]\nscope = \"read\"\n"
        ));
    }
    text.push_str("[[users]]\nusername = \"alice\"\npassword_env = \"ALICE_PASSWORD\"\n");
    let file = folder.write("replicas.toml", &text);

    // Two `config apply` at once: one transaction after the other, so one creates and one finds it done.
    let applies: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| json(&run(&["config", "apply", &file], &db.url))))
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    let sum = |kind: &str, index: usize| -> u64 {
        applies
            .iter()
            .map(|applied| counts(applied, kind)[index])
            .sum()
    };
    assert_eq!(
        (sum("clients", 0), sum("clients", 2)),
        (CLIENTS, 3 * CLIENTS),
        "{applies:?}"
    );
    // The password each hashed on its own is checked again by the later ones, not replaced.
    assert_eq!(
        (sum("users", 0), sum("users", 1), sum("users", 2)),
        (1, 0, 3),
        "{applies:?}"
    );

    // Two servers started at once with the file (and two more applies in them): one copy of everything.
    let servers: Vec<ServedBinary> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    ServedBinary::start_with_env(
                        crate::binary(),
                        &db.url,
                        "warn",
                        &["--config", &file],
                        &ENVS,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .collect()
    });
    let listed = json(&run(&["client", "list"], &db.url));
    assert_eq!(listed.as_array().unwrap().len() as u64, CLIENTS);
    assert_eq!(
        json(&run(&["user", "list"], &db.url))
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let http = testkit::issuer::http_client();
    for server in &servers {
        let token = http
            .post(format!("{}/token", server.base))
            .basic_auth("client-7", Some(INTROSPECTOR_SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(token.status(), StatusCode::OK);
    }
    for server in servers {
        assert!(server.stop().await.success());
    }
}

/// `[server]` settings sit under the environment and the command line: the access-token lifetime comes
/// from the file, then from `AUTH_ACCESS_TOKEN_TTL`, then from `--access-token-ttl`, each over the last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_beats_the_environment_which_beats_the_file() {
    let folder = Folder::new("precedence");
    let file = folder.write(
        "ttl.toml",
        "[server]\naccess_token_ttl = 300\n\n[[clients]]\nclient_id = \"machine\"\nsecret_env = \"INTROSPECTOR_SECRET\"\ngrant_types = [\"client_credentials\"]\n",
    );
    let http = testkit::issuer::http_client();
    for (flags, env, expected) in [
        (&[][..], None, 300),
        (&[][..], Some("200"), 200),
        (&["--access-token-ttl", "100"][..], Some("200"), 100),
    ] {
        let mut args = vec!["--config", file.as_str()];
        args.extend_from_slice(flags);
        let mut envs = ENVS.to_vec();
        if let Some(ttl) = env {
            envs.push(("AUTH_ACCESS_TOKEN_TTL", ttl));
        }
        let server =
            ServedBinary::start_with_env(crate::binary(), "sqlite::memory:", "warn", &args, &envs);
        let token: Value = http
            .post(format!("{}/token", server.base))
            .basic_auth("machine", Some(INTROSPECTOR_SECRET))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(token["expires_in"], expected, "{flags:?} {env:?}");
        assert!(server.stop().await.success());
    }
}

/// The checked-in example starts an in-memory server with its clients and users (what `cargo xtask up` and
/// the docs use), and checks clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_platform_file_checks_and_serves_from_memory() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/platform.toml");
    let example = example.to_str().unwrap();
    let unset = testkit::binary::run(
        crate::binary(),
        &["config", "check", example],
        &[],
        "sqlite::memory:",
        None,
        "warn",
    );
    assert_eq!(unset.code, Some(1), "its secrets come from variables");
    assert_eq!(unset.stderr.lines().count(), 3, "{}", unset.stderr);
    let envs = [
        ("DEMO_CLIENT_SECRET", MACHINE_SECRET),
        ("INTROSPECTION_SECRET", INTROSPECTOR_SECRET),
        ("DEMO_PASSWORD", PASSWORD),
    ];
    let checked = testkit::binary::run(
        crate::binary(),
        &["config", "check", example],
        &envs,
        "sqlite::memory:",
        None,
        "warn",
    );
    assert!(
        checked.success && checked.stderr.is_empty(),
        "{}",
        checked.stderr
    );
    let server = ServedBinary::start_with_env(
        crate::binary(),
        "sqlite::memory:",
        "warn",
        &["--config", example],
        &envs,
    );
    let metadata: Value = testkit::issuer::http_client()
        .get(format!("{}/.well-known/openid-configuration", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        metadata["scopes_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|scope| scope == "read"),
        "{metadata}"
    );
    let token = testkit::issuer::http_client()
        .post(format!("{}/token", server.base))
        .basic_auth("demo", Some(MACHINE_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), StatusCode::OK);
    assert!(server.stop().await.success());
}
