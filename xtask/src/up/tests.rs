//! `cargo xtask up` as a user runs it: the real xtask binary with the debug builds of the servers
//! (`--bin-dir`), on ports the system picks, in a folder of the test's own.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::test_support::{Folder, debug_binaries};

/// `cargo xtask up` on free ports in `state`, with extra arguments.
fn up_command(state: &Path, extra: &[&str]) -> Command {
    let bin = debug_binaries();
    let mut command = Command::new(bin.join("xtask"));
    command
        .arg("up")
        .args(["--bin-dir", bin.to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"])
        .args(["--app-listen", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "warn");
    command
}

/// A running `up`, its banner, and the addresses the banner names.
struct Running {
    child: Child,
    banner: String,
    issuer: String,
    app: String,
}

impl Running {
    fn start(state: &Path) -> Self {
        Self::start_with(state, &[])
    }

    fn start_with(state: &Path, extra: &[&str]) -> Self {
        let mut child = up_command(state, extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !banner.contains("Ctrl-C stops both.") {
            assert!(Instant::now() < deadline, "no banner: {banner}");
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                panic!("xtask up ended: {banner} {:?}", child.wait());
            }
            banner.push_str(&line);
        }
        // Keep draining the servers' output, so they never block on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let named = |label: &str| {
            banner
                .lines()
                .skip_while(|line| !line.starts_with("The stack is up"))
                .find_map(|line| line.trim_start().strip_prefix(label))
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap_or_else(|| panic!("{label} in {banner}"))
                .to_owned()
        };
        let issuer = named("auth-server");
        let app = named("demo client");
        Self {
            child,
            banner,
            issuer,
            app,
        }
    }

    /// The server pids of the run's pid file.
    fn server_pids(state: &Path) -> Vec<u32> {
        std::fs::read_to_string(state.join("up.pid"))
            .unwrap()
            .lines()
            .filter(|line| !line.starts_with("xtask "))
            .map(|line| line.split_once(' ').unwrap().1.parse().unwrap())
            .collect()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for `up` to end.
    fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "xtask up did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal("TERM");
            let _ = self.wait();
        }
    }
}

/// One HTTP/1.1 exchange: the status line and body.
fn http(base: &str, method: &str, path: &str, form: &str) -> String {
    let address = base.strip_prefix("http://").unwrap();
    let address = address.split('/').next().unwrap();
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // A TLS listener may answer plain text by closing or resetting the connection, even while the request
    // is still being written: no reply.
    let closed = |error: std::io::Error| {
        assert!(
            matches!(
                error.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "{error}"
        );
        String::new()
    };
    if let Err(error) = write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{form}",
        form.len()
    ) {
        return closed(error);
    }
    let mut reply = String::new();
    if let Err(error) = stream.read_to_string(&mut reply) {
        return closed(error);
    }
    reply
}

/// `auth-server ARGS` on `database_url`: its stdout.
fn cli(database_url: &str, args: &[&str]) -> String {
    let output = Command::new(debug_binaries().join("auth-server"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn a_second_up_refuses_and_leaves_the_running_stack_and_its_database_alone() {
    let state = Folder::new("second");
    let first = Running::start(&state.0);
    let database_url = first
        .banner
        .lines()
        .find_map(|line| line.trim().strip_prefix("export DATABASE_URL="))
        .unwrap()
        .to_owned();
    assert!(
        database_url.contains(&*state.0.to_string_lossy()),
        "{database_url}"
    );
    // The banner's CLI line works on the running stack's database: a client made there gets tokens.
    let made = cli(
        &database_url,
        &[
            "client",
            "create",
            "--client-id",
            "made-by-cli",
            "--grant-type",
            "client_credentials",
            "--scope",
            "read",
        ],
    );
    let secret = json_string_member(&made, "client_secret").unwrap();
    let token_form =
        format!("grant_type=client_credentials&client_id=made-by-cli&client_secret={secret}");
    let token = http(&first.issuer, "POST", "/token", &token_form);
    assert!(token.starts_with("HTTP/1.1 200"), "{token}");

    // A second `up` on the same folder: refused before anything is touched.
    let second = up_command(&state.0, &[]).output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert!(stderr.contains("is still running"), "{stderr}");
    assert!(
        stderr.contains("nothing was started or deleted"),
        "{stderr}"
    );
    let clients = cli(&database_url, &["client", "list"]);
    assert!(clients.contains("made-by-cli"), "{clients}");
    let token = http(&first.issuer, "POST", "/token", &token_form);
    assert!(
        token.starts_with("HTTP/1.1 200"),
        "the server still knows the client: {token}"
    );

    // A second `up` in another folder, on an address in use: refused, and its folder's database kept.
    let other = Folder::new("busy");
    std::fs::write(other.0.join("auth.db"), "someone's database").unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = busy.local_addr().unwrap().to_string();
    let refused = up_command(&other.0, &["--api-listen", &address])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains(&format!("{address} is not free")),
        "{stderr}"
    );
    assert!(stderr.contains("--api-listen"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(other.0.join("auth.db")).unwrap(),
        "someone's database"
    );
}

#[test]
fn sigterm_and_sighup_stop_both_servers_like_ctrl_c() {
    for signal in ["TERM", "HUP", "INT"] {
        let state = Folder::new(&format!("signal-{signal}"));
        let mut running = Running::start(&state.0);
        let servers = Running::server_pids(&state.0);
        assert_eq!(servers.len(), 2, "auth-server and resource-api");
        assert!(servers.iter().all(|pid| alive(*pid)));
        running.signal(signal);
        let status = running.wait();
        assert!(status.success(), "SIG{signal}: {status:?}");
        for pid in servers {
            assert!(!alive(pid), "SIG{signal}: server {pid} still runs");
        }
        assert!(
            !state.0.join("up.pid").exists(),
            "the pid file goes with the run"
        );
        // Nothing is left holding the database: the next `up` there starts.
        drop(Running::start(&state.0));
    }
}

#[test]
fn the_demo_clients_callback_page_answers_at_its_redirect_uri() {
    let state = Folder::new("callback");
    let running = Running::start(&state.0);
    assert!(running.app.ends_with("/callback"), "{}", running.banner);
    let page = http(
        &running.app,
        "GET",
        "/callback?code=abc_DEF-1&state=xyz",
        "",
    );
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("code=abc_DEF-1"), "{page}");
    assert!(
        page.contains(&format!("{}/token", running.issuer)),
        "{page}"
    );
    assert!(page.contains("-d client_id=demo-spa"), "{page}");
    // The banner's authorize URL sends the browser there, and names the opener this machine has.
    let redirect = running.app.replace(':', "%3A").replace('/', "%2F");
    assert!(
        running.banner.contains(&format!("redirect_uri={redirect}")),
        "{}",
        running.banner
    );
    let opener_line = match callback::opener(cfg!(target_os = "macos"), crate::on_path) {
        Some(opener) => format!("{opener} \"{}/authorize?", running.issuer),
        None => format!("# open in a browser: {}/authorize?", running.issuer),
    };
    assert!(running.banner.contains(&opener_line), "{}", running.banner);
    // The seeded public client has a display name for the pages.
    let login = http(
        &running.issuer,
        "GET",
        &format!(
            "/authorize?response_type=code&client_id=demo-spa&redirect_uri={redirect}&scope=read&code_challenge={CODE_CHALLENGE}&code_challenge_method=S256"
        ),
        "",
    );
    assert!(login.contains("Demo SPA"), "{login}");
}

#[test]
fn a_database_file_another_process_holds_is_never_deleted() {
    let state = Folder::new("held");
    let database = state.0.join("auth.db");
    std::fs::write(&database, "in use").unwrap();
    let held = std::fs::File::open(&database).unwrap();
    if Path::new("/proc/self/fd").is_dir() {
        let refused = fresh_sqlite(&state.0).unwrap_err().to_string();
        assert!(
            refused.contains(&format!("open in process {}", std::process::id())),
            "{refused}"
        );
        assert_eq!(std::fs::read_to_string(&database).unwrap(), "in use");
    }
    drop(held);
    assert!(fresh_sqlite(&state.0).is_ok());
    assert!(!database.exists(), "a file nobody holds is replaced");
}

#[test]
fn binaries_are_looked_for_where_cargo_builds_them() {
    let elsewhere = std::env::temp_dir().join("xtask-target-elsewhere");
    assert_eq!(
        crate::target_dir_with(&[("CARGO_TARGET_DIR", elsewhere.to_str().unwrap())]).unwrap(),
        elsewhere
    );
    let missing = Binaries::prebuilt(&std::env::temp_dir())
        .unwrap()
        .check(&["no-such-binary-of-ours"])
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("no-such-binary-of-ours is missing"),
        "{missing}"
    );
}

#[test]
fn reads_its_options() {
    let args =
        |list: &[&str]| UpArgs::parse(&list.iter().map(|a| a.to_string()).collect::<Vec<_>>());
    let defaults = args(&[]).unwrap();
    assert_eq!(defaults.listen, "127.0.0.1:8080");
    assert_eq!(defaults.api_listen, "127.0.0.1:8081");
    assert_eq!(defaults.app_listen, "127.0.0.1:8082");
    let given = args(&["--listen=127.0.0.1:0", "--bin-dir", "target/debug"]).unwrap();
    assert_eq!(given.listen, "127.0.0.1:0");
    assert_eq!(given.bin_dir.as_deref(), Some(Path::new("target/debug")));
    assert_eq!(given.fixed_addresses().len(), 2, "port 0 is never in use");
    assert!(!given.tls);
    assert!(args(&["--tls"]).unwrap().tls);
    for bad in [&["--listen", "localhost"][..], &["--listen"], &["--bogus"]] {
        assert!(args(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn with_tls_both_servers_speak_https_under_a_local_ca_kept_between_runs() {
    let state = Folder::new("tls");
    for run in 0..2 {
        let mut running = Running::start_with(&state.0, &["--tls"]);
        assert!(
            running.issuer.starts_with("https://127.0.0.1:"),
            "{}",
            running.banner
        );
        let ca_path = state.0.join("tls").join("ca.pem");
        assert!(
            running
                .banner
                .contains(&format!("curl --cacert {}", ca_path.display())),
            "{}",
            running.banner
        );
        let ca = std::fs::read_to_string(&ca_path).unwrap();
        let address = running.issuer.strip_prefix("https://").unwrap().to_owned();
        let discovery =
            crate::tls::https_get(&address, "/.well-known/openid-configuration", &ca).unwrap();
        assert!(
            discovery.starts_with("HTTP/1.1 200"),
            "run {run}: {discovery}"
        );
        assert!(
            discovery.contains(&format!("\"token_endpoint\":\"{}/token\"", running.issuer)),
            "{discovery}"
        );
        // resource-api reached the https issuer (it trusts the CA through SSL_CERT_FILE) and is ready.
        let api = running
            .banner
            .lines()
            .skip_while(|line| !line.starts_with("The stack is up"))
            .find_map(|line| line.trim_start().strip_prefix("resource-api"))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap()
            .to_owned();
        assert!(api.starts_with("https://"), "{api}");
        let ready =
            crate::tls::https_get(api.strip_prefix("https://").unwrap(), "/readyz", &ca).unwrap();
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        // Plain http to the issuer's port gets no answer.
        assert!(!http(&format!("http://{address}"), "GET", "/healthz", "").starts_with("HTTP/1.1"));
        running.signal("TERM");
        assert!(running.wait().success());
    }
}

/// The value of a string member in one line of JSON (the CLI prints `{"client_id":…,"client_secret":…}`).
fn json_string_member(json: &str, member: &str) -> Option<String> {
    let marker = format!("\"{member}\":\"");
    let start = json.find(&marker)? + marker.len();
    let end = json[start..].find('"')? + start;
    Some(json[start..end].to_owned())
}
