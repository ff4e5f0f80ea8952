//! `cargo xtask up`: release-build and start auth-server and resource-api on a fresh SQLite database, seed a
//! demo confidential client, a public client and a demo user, print the endpoints and ready-to-paste curl
//! commands, and run until Ctrl-C (which both servers receive and handle with a graceful shutdown).

use std::path::Path;

use anyhow::{Result, bail};

use crate::stack::{Output, fresh_sqlite, release_binary, seed, start_servers};
use crate::{cargo, unix_seconds};

const ISSUER: &str = "http://127.0.0.1:8080";
const API: &str = "http://127.0.0.1:8081";
const DEMO_PASSWORD: &str = "demo-password-change-me";

/// `cargo xtask up [--database-url URL]`: SQLite in target/xtask-up/ unless a PostgreSQL URL is given.
pub fn up(args: &[String]) -> Result<()> {
    let database_url = match args {
        [] => None,
        [flag, url] if flag == "--database-url" => Some(url.clone()),
        [other, ..] => bail!("usage: cargo xtask up [--database-url URL] (unexpected {other:?})"),
    };
    cargo(&[
        "build",
        "--release",
        "--package",
        "auth-server",
        "--package",
        "resource-api",
    ])?;
    let auth_server = release_binary("auth-server");
    // A database of the user's keeps its rows: this run's clients and user get their own ids.
    let (database_url, suffix, store) = match database_url {
        Some(url) => (url, format!("-{}", unix_seconds()), "the given database"),
        None => (
            fresh_sqlite(Path::new("target/xtask-up"))?,
            String::new(),
            "fresh SQLite database in target/xtask-up/",
        ),
    };
    let seeded = seed(&auth_server, &database_url, &suffix, DEMO_PASSWORD)?;
    let secret = &seeded.client_secret;
    let (rid, rsecret) = (
        &seeded.introspection_client_id,
        &seeded.introspection_secret,
    );
    let (cid, spa, user) = (
        &seeded.client_id,
        &seeded.public_client_id,
        &seeded.username,
    );

    let mut stack = start_servers(
        "127.0.0.1:8080",
        "127.0.0.1:8081",
        Some(ISSUER),
        &database_url,
        &seeded,
        &Output::Terminal,
    )?;

    println!(
        "
The stack is up ({store}):
  auth-server   {ISSUER}   metadata: {ISSUER}/.well-known/oauth-authorization-server
  resource-api  {API}

Seeded:
  confidential client  {cid} / {secret}   (client_credentials, scope \"read write\")
  resource server      {rid} / {rsecret}   (may call /introspect; resource-api uses it)
  public client        {spa}  (authorization_code + PKCE, redirect http://127.0.0.1:8082/callback)
  user                 {user} / {DEMO_PASSWORD}

Try:
  TOKEN=$(curl -s -u {cid}:{secret} -d grant_type=client_credentials {ISSUER}/token | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')
  curl -s -H \"Authorization: Bearer $TOKEN\" {API}/protected
  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' -d '{{\"name\":\"first\"}}' {API}/items
  curl -s -u {rid}:{rsecret} -d token=$TOKEN {ISSUER}/introspect
  curl -s -u {cid}:{secret} -d token=$TOKEN {ISSUER}/revoke
  curl -s -i -X DELETE -H \"Authorization: Bearer $TOKEN\" {API}/items/1      # 401: revoked
  open \"{ISSUER}/authorize?response_type=code&client_id={spa}&redirect_uri=http%3A%2F%2F127.0.0.1%3A8082%2Fcallback&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&state=xyz\"
    (then: curl -s -d grant_type=authorization_code -d client_id={spa} -d code=CODE \\
       -d redirect_uri=http://127.0.0.1:8082/callback -d code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk {ISSUER}/token)

Ctrl-C stops both.
"
    );
    // Ctrl-C reaches the whole foreground process group: the servers shut down gracefully on their own.
    stack.children.wait();
    Ok(())
}
