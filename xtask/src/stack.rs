//! Starting the real binaries: seed an auth-server database through its CLI, start auth-server and
//! resource-api, wait until they answer, and stop them (SIGTERM, so they shut down gracefully).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::tls::LocalTls;

/// Runs one auth-server subcommand against `database_url` with `envs`; returns its stdout.
fn run_capture(
    binary: &Path,
    args: &[&str],
    database_url: &str,
    envs: &[(&str, &str)],
) -> Result<String> {
    let child = Command::new(binary)
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("running {}", binary.display()))?;
    let output = child
        .wait_with_output()
        .context("waiting for the seed command")?;
    if !output.status.success() {
        bail!("`{} {}` failed", binary.display(), args.join(" "));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Waits until `GET path` on `address` answers 200 (a plain HTTP/1.1 request: xtask links no HTTP client;
/// over https with `tls`, trusting its CA alone).
pub fn wait_ready(address: &str, path: &str, what: &str, tls: Option<&LocalTls>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let ca = match tls {
        Some(tls) => Some(
            std::fs::read_to_string(&tls.ca)
                .with_context(|| format!("reading {}", tls.ca.display()))?,
        ),
        None => None,
    };
    while Instant::now() < deadline {
        if let Some(ca) = &ca {
            if crate::tls::https_get(address, path, ca)
                .is_ok_and(|reply| reply.starts_with("HTTP/1.1 200"))
            {
                return Ok(());
            }
        } else if let Ok(mut stream) = TcpStream::connect(address) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
            let mut reply = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut reply).is_ok()
                && reply.starts_with("HTTP/1.1 200")
            {
                return Ok(());
            }
        }
        sleep(Duration::from_millis(200));
    }
    bail!("{what} at {address} did not become ready ({path})")
}

/// Children stopped with SIGTERM (then killed after 10 s) when dropped: on success, on error, on return.
#[derive(Default)]
pub struct Children(Vec<(String, Child)>);

impl Children {
    pub fn push(&mut self, name: &str, child: Child) {
        self.0.push((name.to_owned(), child));
    }

    /// The process ids, by name.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.0
            .iter()
            .map(|(name, child)| (name.clone(), child.id()))
            .collect()
    }

    /// The first child that has exited, with how.
    pub fn exited(&mut self) -> Option<(String, std::process::ExitStatus)> {
        self.0.iter_mut().find_map(|(name, child)| {
            child
                .try_wait()
                .ok()
                .flatten()
                .map(|status| (name.clone(), status))
        })
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            // SIGTERM through kill(1): the servers drain their connections and exit.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (name, child) in &mut self.0 {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(50)),
                    Ok(None) => {
                        eprintln!("xtask: {name} did not stop on SIGTERM; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }
}

/// A seeded database: who can do what.
pub struct Seed {
    pub client_id: String,
    pub client_secret: String,
    pub introspection_client_id: String,
    pub introspection_secret: String,
    pub public_client_id: String,
    pub redirect_uri: String,
    pub username: String,
    pub password: String,
    /// The configuration file applied.
    pub file: PathBuf,
}

/// The demo platform `up` and `load` start: its clients and user are the example configuration file's, so
/// that the demo is the documentation of configuration as code.
pub const PLATFORM_FILE: &str = "examples/platform.toml";

/// The origin of the demo client's pages in [`PLATFORM_FILE`] (its redirect and post-logout URIs).
pub const EXAMPLE_APP: &str = "http://127.0.0.1:8082";

/// A secret of 256 random bits, as 64 hex digits.
fn random_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Applies [`PLATFORM_FILE`] with `auth-server config apply`: a confidential client `demo`
/// (client_credentials), the introspection-only client `resource-api` (resource-api's, and the tour's and
/// loadtest's /introspect calls), the public OpenID Connect PKCE client `demo-spa` and the user `demo`, with
/// fresh secrets and `password` given through the variables the file names. A database that already holds
/// them gets them updated to match. `app` is the base URL of the public client's pages: when it is not the
/// example's, a copy of the file naming it is applied from `work_dir`.
pub fn seed(
    auth_server: &Path,
    database_url: &str,
    password: &str,
    app: &str,
    work_dir: &Path,
) -> Result<Seed> {
    let example = crate::project_root()?.join(PLATFORM_FILE);
    let file = if app == EXAMPLE_APP {
        example
    } else {
        let text = std::fs::read_to_string(&example)
            .with_context(|| format!("reading {}", example.display()))?;
        std::fs::create_dir_all(work_dir)
            .with_context(|| format!("creating {}", work_dir.display()))?;
        let copy = work_dir.join("platform.toml");
        std::fs::write(&copy, text.replace(EXAMPLE_APP, app))
            .with_context(|| format!("writing {}", copy.display()))?;
        copy
    };
    let client_secret = random_secret()?;
    let introspection_secret = random_secret()?;
    let file_arg = file.display().to_string();
    run_capture(
        auth_server,
        &["config", "apply", &file_arg],
        database_url,
        &[
            ("DEMO_CLIENT_SECRET", &client_secret),
            ("INTROSPECTION_SECRET", &introspection_secret),
            ("DEMO_PASSWORD", password),
        ],
    )?;
    Ok(Seed {
        client_id: "demo".into(),
        client_secret,
        introspection_client_id: "resource-api".into(),
        introspection_secret,
        public_client_id: "demo-spa".into(),
        redirect_uri: format!("{app}/callback"),
        username: "demo".into(),
        password: password.to_owned(),
        file,
    })
}

/// Where a server's output goes: the terminal (`up`), or a log file per server under a folder (`load`,
/// so that the load tester's table is what the terminal shows).
pub enum Output<'a> {
    Terminal,
    LogsIn(&'a Path),
}

impl Output<'_> {
    /// Sends `command`'s stderr where this output goes; returns where the rest of its stdout is copied.
    fn apply(&self, command: &mut Command, name: &str) -> Result<Box<dyn Write + Send>> {
        match self {
            Self::Terminal => Ok(Box::new(std::io::stdout())),
            Self::LogsIn(dir) => {
                let path = dir.join(format!("{name}.log"));
                let file = std::fs::File::create(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                command
                    .stderr(Stdio::from(file.try_clone()?))
                    .env("RUST_LOG", "warn");
                Ok(Box::new(file))
            }
        }
    }
}

/// Starts `command` (a server of ours, which prints one line on stdout once it listens: auth-server its JSON
/// ready line, resource-api `resource-api listening on ADDRESS`), copies its output to `output`'s sink,
/// and returns it with that line: `--listen 127.0.0.1:0` lets the system pick a free port, so no port is
/// found, released and bound again.
fn spawn_listening(
    mut command: Command,
    name: &str,
    output: &Output<'_>,
) -> Result<(Child, String)> {
    let mut sink = output.apply(&mut command, name)?;
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let mut stdout = BufReader::new(child.stdout.take().context("the server's stdout")?);
    let mut line = String::new();
    let read = stdout.read_line(&mut line);
    if read.is_err() || line.trim().is_empty() {
        let _ = child.kill();
        let _ = child.wait();
        bail!("{name} stopped before listening (its log says why)");
    }
    let _ = write!(sink, "{line}");
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut stdout, &mut sink);
    });
    Ok((child, line.trim_end().to_owned()))
}

/// The servers of a running stack, and where they answer.
pub struct Stack {
    pub children: Children,
    /// The issuer identifier, as auth-server says it (its address, `https://` with TLS, unless one was given).
    pub issuer: String,
    pub api: String,
}

/// Starts auth-server (on `database_url`, listening at `auth_listen`, with `issuer` or its own address as
/// the issuer) and resource-api (at `api_listen`, introspecting with the seeded client), both on https with
/// `tls` (resource-api then trusts its CA through `SSL_CERT_FILE`), and waits until both answer /readyz. A
/// port of 0 lets the system pick it.
#[allow(clippy::too_many_arguments)]
pub fn start_servers(
    binaries: &Binaries,
    auth_listen: &str,
    api_listen: &str,
    issuer: Option<&str>,
    database_url: &str,
    seeded: &Seed,
    output: &Output<'_>,
    tls: Option<&LocalTls>,
) -> Result<Stack> {
    let mut children = Children::default();
    let tls_args: Vec<String> = tls
        .map(|tls| {
            vec![
                "--tls-cert".to_owned(),
                tls.cert.display().to_string(),
                "--tls-key".to_owned(),
                tls.key.display().to_string(),
            ]
        })
        .unwrap_or_default();
    let mut auth_server = Command::new(binaries.path("auth-server"));
    auth_server
        .args(["serve", "--listen", auth_listen])
        .args(
            issuer
                .map(|issuer| ["--issuer", issuer])
                .into_iter()
                .flatten(),
        )
        .args(&tls_args)
        .env_remove("AUTH_ISSUER")
        .env("DATABASE_URL", database_url);
    let (child, line) = spawn_listening(auth_server, "auth-server", output)?;
    children.push("auth-server", child);
    // `{"issuer": URL, "listen": ADDRESS, "ready": true}`.
    let ready: serde_json::Value =
        serde_json::from_str(&line).context("auth-server's ready line is not JSON")?;
    let (Some(auth_address), Some(issuer)) = (ready["listen"].as_str(), ready["issuer"].as_str())
    else {
        bail!("auth-server's ready line names no address and issuer: {line}");
    };
    let (auth_address, issuer) = (auth_address.to_owned(), issuer.to_owned());
    wait_ready(&auth_address, "/readyz", "auth-server", tls)?;
    let mut resource_api = Command::new(binaries.path("resource-api"));
    resource_api
        .args([
            "--listen",
            api_listen,
            "--issuer",
            &issuer,
            "--introspection-client-id",
            &seeded.introspection_client_id,
        ])
        .args(&tls_args)
        .env(
            "RESOURCE_API_INTROSPECTION_SECRET",
            &seeded.introspection_secret,
        );
    if let Some(tls) = tls {
        resource_api.env("SSL_CERT_FILE", &tls.ca);
    }
    let (child, line) = spawn_listening(resource_api, "resource-api", output)?;
    // `resource-api listening on ADDRESS`.
    let api_address = line
        .split_once("listening on ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .map(str::to_owned)
        .with_context(|| format!("resource-api did not say where it listens: {line}"))?;
    children.push("resource-api", child);
    wait_ready(&api_address, "/readyz", "resource-api", tls)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    Ok(Stack {
        children,
        issuer,
        api: format!("{scheme}://{api_address}"),
    })
}

/// A fresh SQLite database file under `dir` (old files removed), as a URL. Refuses, and removes nothing,
/// while a process has one of the files open: a server of an earlier `up` or `load`, or anyone's.
pub fn fresh_sqlite(dir: &Path) -> Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = ["auth.db", "auth.db-wal", "auth.db-shm"].map(|file| dir.join(file));
    for file in &files {
        if let Some(pid) = processes_holding(file).first() {
            bail!(
                "{} is open in process {pid} (a server of an earlier run?): stop it first, or choose another \
                 --state-dir; nothing was deleted",
                file.display()
            );
        }
    }
    for file in &files {
        let _ = std::fs::remove_file(file);
    }
    Ok(format!("sqlite://{}", files[0].display()))
}

/// The processes that have `file` open (Linux: their `/proc/PID/fd` links; elsewhere none are found).
pub fn processes_holding(file: &Path) -> Vec<u32> {
    let Ok(target) = file.canonicalize() else {
        return Vec::new();
    };
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut holders = Vec::new();
    for process in processes.flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(descriptors) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        if descriptors.flatten().any(|descriptor| {
            std::fs::read_link(descriptor.path()).is_ok_and(|path| path == target)
        }) {
            holders.push(pid);
        }
    }
    holders
}

/// Where the binaries of our servers are: cargo's `release` folder, or a folder given with `--bin-dir`.
#[derive(Debug, Clone)]
pub struct Binaries(PathBuf);

impl Binaries {
    /// The folder of `cargo build --release`: asked of cargo, since `CARGO_TARGET_DIR` or a config may move it.
    pub fn release() -> Result<Self> {
        Ok(Self(crate::target_dir()?.join("release")))
    }

    /// The binaries in `bin_dir` when given, else a release build of `packages` first.
    pub fn prebuilt_or_release(bin_dir: Option<&Path>, packages: &[&str]) -> Result<Self> {
        if let Some(dir) = bin_dir {
            return Self::prebuilt(dir);
        }
        let mut args = vec!["build", "--release"];
        for package in packages {
            args.extend(["--package", package]);
        }
        crate::cargo(&args)?;
        Self::release()
    }

    /// Prebuilt binaries in `dir` (a debug build, an installed release): nothing is built.
    pub fn prebuilt(dir: &Path) -> Result<Self> {
        let dir = dir
            .canonicalize()
            .with_context(|| format!("--bin-dir {}", dir.display()))?;
        Ok(Self(dir))
    }

    /// The path of binary `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Fails, naming the first missing one, unless every binary in `names` is there.
    pub fn check(&self, names: &[&str]) -> Result<()> {
        for name in names {
            let path = self.path(name);
            if !path.is_file() {
                bail!(
                    "{} is missing: build it (cargo build --release -p {name}) or give --bin-dir",
                    path.display()
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_declares_what_the_demo_names() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let example = std::fs::read_to_string(root.join(PLATFORM_FILE)).unwrap();
        for line in [
            "client_id = \"demo\"",
            "client_id = \"resource-api\"",
            "client_id = \"demo-spa\"",
            "username = \"demo\"",
            "secret_env = \"DEMO_CLIENT_SECRET\"",
            "secret_env = \"INTROSPECTION_SECRET\"",
            "password_env = \"DEMO_PASSWORD\"",
            "redirect_uris = [\"http://127.0.0.1:8082/callback\"]",
        ] {
            assert!(example.contains(line), "{PLATFORM_FILE} lacks {line}");
        }
        assert!(example.contains(EXAMPLE_APP));
    }
}

#[cfg(test)]
mod compose_tests {
    use std::path::Path;

    /// Every `.rs` file below `dir`, as text.
    fn sources(dir: &Path, into: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, into);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                into.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }

    /// docker-compose.yml cannot be run here (no Docker engine), so at least its configuration must name
    /// only variables the binaries read: a renamed flag would otherwise break it silently.
    #[test]
    fn docker_compose_sets_only_variables_the_binaries_read() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let compose = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
        let mut code = String::new();
        sources(&root.join("crates"), &mut code);
        let mut checked = 0;
        for line in compose.lines() {
            let name = line
                .trim_start()
                .trim_start_matches("- ")
                .split(':')
                .next()
                .unwrap_or("");
            let ours = ["AUTH_", "RESOURCE_API_", "LOADTEST_"]
                .iter()
                .any(|prefix| name.starts_with(prefix));
            if ours && name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                assert!(
                    code.contains(&format!("\"{name}\"")),
                    "docker-compose.yml sets {name}, which no binary reads"
                );
                checked += 1;
            }
        }
        assert!(
            checked >= 10,
            "only {checked} variables found: is the parser still right?"
        );
    }
}
