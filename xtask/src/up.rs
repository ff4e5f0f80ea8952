//! `cargo xtask up`: release-build and start auth-server and resource-api on a fresh SQLite database, seed a
//! demo confidential client, a public client and a demo user, print the endpoints and ready-to-paste curl
//! commands, and run until Ctrl-C (which both servers receive and handle with a graceful shutdown).

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cargo;

const ISSUER: &str = "http://127.0.0.1:8080";
const API: &str = "http://127.0.0.1:8081";
const DEMO_PASSWORD: &str = "demo-password-change-me";

/// Kills the children if `up` fails or returns early.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run_capture(
    binary: &Path,
    args: &[&str],
    database_url: &str,
    stdin: Option<&str>,
) -> Result<String> {
    let mut child = Command::new(binary)
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("running {}", binary.display()))?;
    if let Some(mut input) = child.stdin.take()
        && let Some(text) = stdin
    {
        input
            .write_all(text.as_bytes())
            .context("writing to stdin")?;
    }
    let output = child
        .wait_with_output()
        .context("waiting for the seed command")?;
    if !output.status.success() {
        bail!("`{} {}` failed", binary.display(), args.join(" "));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The value of a string member in one line of JSON (the CLI prints `{"client_id":…,"client_secret":…}`).
pub fn json_string_member(json: &str, member: &str) -> Option<String> {
    let marker = format!("\"{member}\":\"");
    let start = json.find(&marker)? + marker.len();
    let end = json[start..].find('"')? + start;
    Some(json[start..end].to_owned())
}

fn wait_for(address: &str, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(address).is_ok() {
            return Ok(());
        }
        sleep(Duration::from_millis(100));
    }
    bail!("{what} did not start listening on {address}")
}

pub fn up() -> Result<()> {
    cargo(&[
        "build",
        "--release",
        "--package",
        "auth-server",
        "--package",
        "resource-api",
    ])?;
    let auth_server = Path::new("target/release/auth-server");
    let resource_api = Path::new("target/release/resource-api");
    let data = Path::new("target/xtask-up");
    std::fs::create_dir_all(data).context("creating target/xtask-up")?;
    for file in ["auth.db", "auth.db-wal", "auth.db-shm"] {
        let _ = std::fs::remove_file(data.join(file));
    }
    let database_url = format!("sqlite://{}", data.join("auth.db").display());

    let machine = run_capture(
        auth_server,
        &[
            "client",
            "create",
            "--client-id",
            "demo",
            "--grant-type",
            "client_credentials",
            "--scope",
            "read write",
        ],
        &database_url,
        None,
    )?;
    let secret = json_string_member(&machine, "client_secret")
        .context("reading the demo client's secret")?;
    let introspection = run_capture(
        auth_server,
        &[
            "client",
            "create",
            "--client-id",
            "resource-api",
            "--grant-type",
            "client_credentials",
        ],
        &database_url,
        None,
    )?;
    let introspection_secret = json_string_member(&introspection, "client_secret")
        .context("reading the introspection secret")?;
    run_capture(
        auth_server,
        &[
            "client",
            "create",
            "--client-id",
            "demo-spa",
            "--public",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--redirect-uri",
            "http://127.0.0.1:8082/callback",
            "--scope",
            "read write",
        ],
        &database_url,
        None,
    )?;
    run_capture(
        auth_server,
        &["user", "create", "--username", "demo", "--password-stdin"],
        &database_url,
        Some(DEMO_PASSWORD),
    )?;

    let mut children = Children(Vec::new());
    children.0.push(
        Command::new(auth_server)
            .args(["serve", "--listen", "127.0.0.1:8080", "--issuer", ISSUER])
            .env("DATABASE_URL", &database_url)
            .spawn()
            .context("starting auth-server")?,
    );
    wait_for("127.0.0.1:8080", "auth-server")?;
    children.0.push(
        Command::new(resource_api)
            .args([
                "--listen",
                "127.0.0.1:8081",
                "--issuer",
                ISSUER,
                "--introspection-client-id",
                "resource-api",
            ])
            .env("RESOURCE_API_INTROSPECTION_SECRET", &introspection_secret)
            .spawn()
            .context("starting resource-api")?,
    );
    wait_for("127.0.0.1:8081", "resource-api")?;

    println!(
        "
The stack is up (fresh SQLite database in target/xtask-up/):
  auth-server   {ISSUER}   metadata: {ISSUER}/.well-known/oauth-authorization-server
  resource-api  {API}

Seeded:
  confidential client  demo / {secret}   (client_credentials, scope \"read write\")
  public client        demo-spa          (authorization_code + PKCE, redirect http://127.0.0.1:8082/callback)
  user                 demo / {DEMO_PASSWORD}

Try:
  TOKEN=$(curl -s -u demo:{secret} -d grant_type=client_credentials {ISSUER}/token | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')
  curl -s -H \"Authorization: Bearer $TOKEN\" {API}/protected
  curl -s -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' -d '{{\"name\":\"first\"}}' {API}/items
  curl -s -u demo:{secret} -d token=$TOKEN {ISSUER}/introspect
  curl -s -u demo:{secret} -d token=$TOKEN {ISSUER}/revoke
  curl -s -i -X DELETE -H \"Authorization: Bearer $TOKEN\" {API}/items/1      # 401: revoked
  open \"{ISSUER}/authorize?response_type=code&client_id=demo-spa&redirect_uri=http%3A%2F%2F127.0.0.1%3A8082%2Fcallback&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256&state=xyz\"
    (then: curl -s -d grant_type=authorization_code -d client_id=demo-spa -d code=CODE \\
       -d redirect_uri=http://127.0.0.1:8082/callback -d code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk {ISSUER}/token)

Ctrl-C stops both.
"
    );
    // Ctrl-C reaches the whole foreground process group: the servers shut down gracefully on their own.
    for child in &mut children.0 {
        let _ = child.wait();
    }
    children.0.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_secret_from_the_cli_output() {
        let output = "{\"client_id\":\"demo\",\"client_secret\":\"abc_DEF-123\"}\n";
        assert_eq!(
            json_string_member(output, "client_secret").as_deref(),
            Some("abc_DEF-123")
        );
        assert_eq!(json_string_member(output, "missing"), None);
    }
}
