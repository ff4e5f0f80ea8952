//! The path an MCP client takes (the Model Context Protocol's authorization): from a bare 401 at
//! resource-api, through its protected-resource metadata (RFC 9728), the authorization server's metadata
//! (RFC 8414), a dynamic registration (RFC 7591) and code + PKCE + `resource` (RFC 8707) over a loopback
//! redirect on a port of its own, to a 200. The client is the official MCP TypeScript SDK, unmodified
//! (`tests/mcp`, pinned by its lock file); the servers are the prebuilt debug binaries on ports the system
//! picks; the user signs in and consents through the same form helpers as every other flow test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use testkit::Browser;
use testkit::binary::ServedBinary;
use tokio::io::AsyncBufReadExt;

const PASSWORD: &str = "correct horse battery staple";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_sdk_goes_from_a_bare_401_to_a_200_registering_itself() {
    let binaries = debug_binaries();
    let client_script = mcp_client();
    let folder = Folder::new("mcp");

    // resource-api names the issuer, and the issuer's default audience is resource-api's identifier: the
    // issuer's public address is a forwarder bound first, so each URL is known before the other starts.
    let front = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", front.local_addr().unwrap());
    let mut api = Command::new(binaries.join("resource-api"))
        .args(["--listen", "127.0.0.1:0", "--issuer", &issuer])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start resource-api");
    let mut line = String::new();
    BufReader::new(api.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let resource = line
        .trim()
        .strip_prefix("resource-api listening on ")
        .map(|address| format!("http://{address}"))
        .unwrap_or_else(|| panic!("no ready line: {line:?}"));
    let _api = KillOnDrop(api);

    let config = folder.0.join("platform.toml");
    std::fs::write(
        &config,
        "[[users]]\nusername = \"alice\"\npassword_env = \"MCP_USER_PASSWORD\"\n",
    )
    .unwrap();
    let database = format!("sqlite://{}?mode=rwc", folder.0.join("mcp.db").display());
    let server = ServedBinary::start_with_env(
        &binaries.join("auth-server"),
        &database,
        "warn",
        &[
            "--issuer",
            &issuer,
            "--registration",
            "open",
            // What resource-api's metadata lists in `scopes_supported`, which the SDK asks for.
            "--registration-scopes",
            "read write",
            "--default-audience",
            &resource,
            "--config",
            config.to_str().unwrap(),
        ],
        &[("MCP_USER_PASSWORD", PASSWORD)],
    );
    let listen = server.ready["listen"].as_str().unwrap().parse().unwrap();
    let _front = testkit::balancer::start_round_robin(front, vec![listen]).await;
    let http = testkit::http::no_redirect_client();
    wait_ready(&http, &format!("{resource}/readyz")).await;

    let mut node = tokio::process::Command::new("node")
        .arg(&client_script)
        .arg(format!("{resource}/protected"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node (the MCP client) runs");
    let mut said = tokio::io::BufReader::new(node.stdout.take().unwrap()).lines();
    let mut next_line = async || -> Value {
        let line = tokio::time::timeout(Duration::from_secs(60), said.next_line())
            .await
            .expect("the MCP client answers within a minute")
            .unwrap();
        match line {
            Some(line) => serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line}")),
            None => {
                let mut stderr = String::new();
                if let Some(mut pipe) = node.stderr.take() {
                    let _ = tokio::io::AsyncReadExt::read_to_string(&mut pipe, &mut stderr).await;
                }
                panic!("the MCP client stopped: {stderr}")
            }
        }
    };

    // The SDK discovered, registered and now sends the user to the authorization endpoint.
    let authorize = next_line().await;
    let authorize = authorize["authorize"]
        .as_str()
        .expect("an authorization URL");
    let url = reqwest::Url::parse(authorize).unwrap();
    assert_eq!(
        url.as_str().split('?').next(),
        Some(&*format!("{issuer}/authorize"))
    );
    let param = |name: &str| {
        url.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(param("resource").as_deref(), Some(resource.as_str()));
    assert_eq!(param("scope").as_deref(), Some("read write"));
    let redirect_uri = param("redirect_uri").unwrap();
    assert!(
        redirect_uri.starts_with("http://localhost:"),
        "{redirect_uri}"
    );
    let client_id = param("client_id").unwrap();

    // The user signs in; the consent page says who registered the application.
    let mut browser = Browser::new(http.clone(), format!("{issuer}/authorize"), issuer.clone());
    let login = browser.open_login(authorize).await;
    let consent = browser.sign_in(&login, "alice", PASSWORD).await;
    assert!(consent.is_consent_form(), "{}", consent.html);
    assert!(
        consent
            .html
            .contains("registered by its developer, not by the operator of this server"),
        "{}",
        consent.html
    );
    let approved = browser.decide(&consent, "approve").await;
    let callback = approved.location().expect("a redirect to the client");
    assert!(callback.starts_with(&redirect_uri), "{callback}");
    let landed = http
        .get(callback)
        .send()
        .await
        .expect("the loopback callback");
    assert_eq!(landed.status(), 200);

    // The SDK exchanged the code and called the resource again.
    let answer = next_line().await;
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"]["message"], "Secure data", "{answer}");
    assert_eq!(answer["client_id"], client_id.as_str());
    let status = tokio::time::timeout(Duration::from_secs(10), node.wait())
        .await
        .expect("the MCP client exits")
        .unwrap();
    assert!(status.success());

    // The subject is alice, and the client is on record as self-registered.
    let run = |args: &[&str]| {
        let run = testkit::binary::run(
            &binaries.join("auth-server"),
            args,
            &[],
            &database,
            None,
            "error",
        );
        assert!(run.success, "{}", run.stderr);
        serde_json::from_str::<Value>(&run.stdout).unwrap()
    };
    let users = run(&["user", "list"]);
    let alice = users
        .as_array()
        .unwrap()
        .iter()
        .find(|user| user["username"] == "alice")
        .unwrap();
    assert_eq!(answer["body"]["user"], alice["user_id"]);
    let clients = run(&["client", "list"]);
    let registered = clients
        .as_array()
        .unwrap()
        .iter()
        .find(|client| client["client_id"] == client_id.as_str())
        .expect("the registered client is listed");
    assert_eq!(registered["registered"], "dynamic");
    assert_eq!(registered["public"], true, "{registered}");
    server.stop().await;
}

/// The SDK's client script, its dependencies installed (`npm ci` in `tests/mcp`; `cargo xtask test` runs it
/// when they are missing).
fn mcp_client() -> PathBuf {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("mcp");
    assert!(
        folder
            .join("node_modules/@modelcontextprotocol/sdk/package.json")
            .exists(),
        "the MCP SDK is not installed: run `npm ci --prefix {}` (cargo xtask test does)",
        folder.display()
    );
    folder.join("client.mjs")
}

/// The workspace's debug binaries, current: built as `cargo xtask test` builds them before any test (a
/// no-op there, a build under a plain `cargo test`).
fn debug_binaries() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "--bins",
                "-p",
                "auth-server",
                "-p",
                "resource-api",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success());
    });
    // This test binary is `target/debug/deps/e2e-…`.
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

async fn wait_ready(http: &reqwest::Client, url: &str) {
    for _ in 0..200 {
        if http
            .get(url)
            .send()
            .await
            .is_ok_and(|response| response.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never became ready");
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A folder of the test's own, removed at the end.
struct Folder(PathBuf);

impl Folder {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("platform-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
