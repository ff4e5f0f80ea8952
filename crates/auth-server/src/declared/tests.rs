use std::path::PathBuf;

use clap::CommandFactory;

use super::*;
use crate::config::{Cli, Command, without_environment};

const SECRET: &str = "a-client-secret-of-at-least-32-chars";

fn env(name: &str) -> Option<String> {
    match name {
        "WEB_SECRET" => Some(SECRET.to_owned()),
        "ALICE_PASSWORD" => Some("alice's long password".to_owned()),
        _ => None,
    }
}

fn check(text: &str) -> Result<Declaration, Problems> {
    parse(&PathBuf::from("platform.toml"), text, &env)
}

fn problems(text: &str) -> Vec<String> {
    check(text).unwrap_err().0
}

#[test]
fn a_file_declares_every_kind_of_client_and_user() {
    let key =
        auth_core::keys::SigningKey::generate(auth_core::keys::SigningAlgorithm::Es256).unwrap();
    // An inline TOML table: `{ kty = "EC", crv = "P-256", … }`.
    let members = serde_json::to_value(key.public_jwk()).unwrap();
    let jwk = members
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| format!("{name} = {value}"))
        .collect::<Vec<_>>()
        .join(", ");
    let jwk = format!("{{ {jwk} }}");
    let text = format!(
        r#"
prune = true
min_password_length = 12

[server]
access_token_ttl = 300
dpop_nonce = true
trusted_proxy = ["10.0.0.0/8", "192.0.2.7"]

[scopes]
read = "Read your invoices"

[[clients]]
client_id = "web"
name = "The web app"
secret_env = "WEB_SECRET"
grant_types = ["authorization_code", "refresh_token"]
redirect_uris = ["https://app.example/callback"]
scope = "openid profile email read"

[[clients]]
client_id = "spa"
public = true
grant_types = ["authorization_code"]
redirect_uris = ["http://127.0.0.1/callback"]
scope = "read"

[[clients]]
client_id = "service"
grant_types = ["client_credentials"]
scope = "read"
require_dpop = true
jwks = {{ keys = [{jwk}] }}

[[clients]]
client_id = "api"
introspection = true

[[users]]
username = "alice"
name = "Alice"
email = "alice@example.com"
email_verified = true
password_env = "ALICE_PASSWORD"
"#
    );
    let declaration = check(&text).unwrap();
    assert!(declaration.prune);
    assert_eq!(declaration.min_password_length, 12);
    assert_eq!(declaration.clients.len(), 4);
    let web = &declaration.clients[0];
    assert_eq!(web.line, 14, "the line of its client_id");
    assert_eq!(web.secret, SecretSource::Given);
    assert!(web.record.secret_digest.unwrap().matches(SECRET));
    assert_eq!(declaration.clients[1].secret, SecretSource::None);
    let service = &declaration.clients[2];
    assert!(service.record.uses_private_key_jwt() && service.record.require_dpop);
    assert_eq!(service.secret, SecretSource::None);
    // Confidential, and no secret named: the stored one stays.
    assert_eq!(declaration.clients[3].secret, SecretSource::Keep);
    assert!(declaration.clients[3].record.secret_digest.is_none());
    let alice = &declaration.users[0];
    assert!(
        matches!(&alice.password, PasswordSource::Plain(p) if p.as_str() == "alice's long password")
    );
    assert!(alice.email_verified);
    assert_eq!(
        declaration.scopes,
        [("read".to_owned(), "Read your invoices".to_owned())]
    );
    let flags: Vec<_> = declaration
        .server
        .iter()
        .map(|setting| (setting.flag.as_str(), setting.values.len(), setting.switch))
        .collect();
    assert!(flags.contains(&("access-token-ttl", 1, false)), "{flags:?}");
    assert!(flags.contains(&("dpop-nonce", 0, true)), "{flags:?}");
    assert!(flags.contains(&("trusted-proxy", 2, false)), "{flags:?}");
    assert!(declaration.warnings.is_empty());
}

#[test]
fn each_problem_is_one_line_naming_the_file_line_and_key() {
    let lines = problems(
        r#"[[clients]]
client_id = "web"
colour = "blue"
grant_types = ["authorization_code"]
redirect_uris = ["https://app.example/cb#fragment"]

[[clients]]
client_id = "short"
grant_types = ["client_credentials"]
secret = "too short"

[[users]]
username = "bob"
password_env = "UNSET_VARIABLE"

[server]
access_token_ttl = 0
database_url = "sqlite://x.db"
"#,
    );
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert_eq!(
        lines[0],
        "platform.toml:3: colour: unknown key in [[clients]]"
    );
    assert!(
        lines[1].starts_with("platform.toml:5: redirect_uris: ") && lines[1].contains("fragment"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("platform.toml:10: secret: ") && lines[2].contains("at least 32"),
        "{}",
        lines[2]
    );
    assert_eq!(
        lines[3],
        "platform.toml:14: password_env: the variable UNSET_VARIABLE is not set"
    );
    assert!(
        lines[4].starts_with("platform.toml:17: access_token_ttl: "),
        "{}",
        lines[4]
    );
    assert!(
        lines[5].starts_with("platform.toml:18: database_url: unknown key in [server]"),
        "{}",
        lines[5]
    );
}

#[test]
fn duplicates_missing_files_short_passwords_and_costly_hashes_are_refused() {
    let lines = problems(
        r#"min_password_length = 32
[[clients]]
client_id = "a"
grant_types = ["client_credentials"]
secret_file = "no-such-file"
[[clients]]
client_id = "a"
grant_types = ["client_credentials"]
[[users]]
username = "alice"
password_env = "ALICE_PASSWORD"
[[users]]
username = "carol"
password_hash = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
[[users]]
username = "dave"
password_hash = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
password_env = "ALICE_PASSWORD"
"#,
    );
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(
        lines[0].starts_with("platform.toml:5: secret_file: ") && lines[0].contains("no-such-file"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1], "platform.toml:7: client_id: a is declared twice");
    assert!(
        lines[2].starts_with("platform.toml:11: password_env: ")
            && lines[2].contains("at least 32"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with("platform.toml:14: password_hash: ") && lines[3].contains("higher"),
        "{}",
        lines[3]
    );
    assert!(
        lines[4].starts_with("platform.toml:15: ")
            && lines[4].contains("not password_env and password_hash"),
        "{}",
        lines[4]
    );
}

#[test]
fn a_literal_secret_is_accepted_with_a_warning_and_toml_errors_have_lines() {
    let declaration = check(&format!(
        "[[clients]]\nclient_id = \"m\"\ngrant_types = [\"client_credentials\"]\nsecret = \"{SECRET}\"\n"
    ))
    .unwrap();
    assert_eq!(declaration.warnings.len(), 1);
    assert!(declaration.warnings[0].starts_with("platform.toml:4: secret: "));
    let lines = problems("[server]\naccess_token_ttl = 300\naccess_token_ttl = 400\n");
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("platform.toml:3: "), "{}", lines[0]);
}

fn parse_with(args: &[&str], file: &str) -> crate::config::ServeConfig {
    let dir = std::env::temp_dir().join(format!("declared-{}-{}", std::process::id(), file.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("platform.toml");
    std::fs::write(&path, file).unwrap();
    let mut argv = vec![
        "auth-server".to_owned(),
        "--config".to_owned(),
        path.display().to_string(),
    ];
    argv.extend(args.iter().map(|arg| (*arg).to_owned()));
    let (cli, declaration) = server::parse(
        without_environment(Cli::command()),
        argv.into_iter().map(Into::into).collect(),
        &env,
    )
    .unwrap();
    assert!(declaration.is_some());
    std::fs::remove_dir_all(&dir).unwrap();
    match cli.command {
        Command::Serve(serve) => serve,
        other => panic!("serve expected, got {other:?}"),
    }
}

#[test]
fn the_command_line_wins_over_the_file_and_the_file_over_the_defaults() {
    let file = "[server]\naccess_token_ttl = 300\nauth_code_ttl = 30\ntrusted_proxy = [\"10.0.0.0/8\"]\ndpop_nonce = true\n[scopes]\nread = \"From the file\"\nwrite = \"Write, from the file\"\n";
    let serve = parse_with(
        &[
            "serve",
            "--access-token-ttl",
            "120",
            "--scope-description",
            "read=From the flag",
        ],
        file,
    );
    assert_eq!(serve.access_token_ttl, 120, "the flag wins");
    assert_eq!(serve.auth_code_ttl, 30, "the file beats the default");
    assert_eq!(
        serve.refresh_token_ttl, 1_209_600,
        "the default where neither says"
    );
    assert_eq!(serve.trusted_proxies.len(), 1);
    assert!(serve.dpop_nonce);
    let descriptions =
        crate::authorize::scope_descriptions::ScopeDescriptions::new(&serve.scope_descriptions);
    assert_eq!(descriptions.describe("read"), "From the flag");
    assert_eq!(descriptions.describe("write"), "Write, from the file");
}

#[test]
fn a_secret_pasted_where_a_variable_name_goes_is_not_repeated() {
    let lines = problems(
        "[[clients]]\nclient_id = \"m\"\ngrant_types = [\"client_credentials\"]\nsecret_env = \"s3cr3t-value-of-forty-characters-000000\"\n",
    );
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("platform.toml:4: secret_env: "),
        "{}",
        lines[0]
    );
    assert!(!lines[0].contains("s3cr3t"), "{}", lines[0]);
}

#[test]
fn server_settings_that_only_conflict_together_are_the_files_problem() {
    let dir = std::env::temp_dir().join(format!("declared-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("platform.toml");
    std::fs::write(&path, "[server]\ntls_cert = \"cert.pem\"\n").unwrap();
    let refused = server::parse(
        without_environment(Cli::command()),
        ["auth-server", "--config", path.to_str().unwrap(), "serve"]
            .into_iter()
            .map(Into::into)
            .collect(),
        &env,
    );
    std::fs::remove_dir_all(&dir).unwrap();
    match refused {
        Err(server::Refusal::File(problems)) => {
            assert_eq!(problems.0.len(), 1);
            assert!(
                problems.0[0].contains("[server]") && problems.0[0].contains("tls"),
                "{problems:?}"
            );
        }
        other => panic!("a file problem expected, got {other:?}"),
    }
}
