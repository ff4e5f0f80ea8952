//! `cargo xtask up`: release-build and start auth-server and resource-api on a fresh SQLite database, seed a
//! demo confidential client, a public client and a demo user, serve the public client's callback page, print
//! the endpoints and ready-to-paste commands, and run until Ctrl-C, SIGTERM or SIGHUP (each stops both
//! servers gracefully).
//!
//! Nothing is deleted while something may use it: the addresses must be free and no server of an earlier
//! `up` on the same folder may be alive (its pid file says which processes those are) before the database
//! is replaced, and on Linux no process may have the database open.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::callback;
use crate::on_path;
use crate::stack::{Binaries, Children, Output, fresh_sqlite, seed, start_servers};

const DEMO_PASSWORD: &str = "demo-password-change-me";
/// RFC 7636 Appendix B's verifier and its S256 challenge: the tour's authorize URL and exchange command.
const CODE_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CODE_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// auth-server's default `--auth-code-ttl`.
const CODE_LIFETIME: u64 = 60;

pub const USAGE: &str = "\
usage: cargo xtask up [--tls] [--database-url URL] [--listen ADDR] [--api-listen ADDR] [--app-listen ADDR]
                      [--state-dir DIR] [--bin-dir DIR]
  --tls           both servers on https, with a certificate for 127.0.0.1 and localhost signed by a local CA
                  (made once in the state folder's tls/ and kept; the tour uses curl --cacert)
  --database-url  auth-server's database (default: a fresh SQLite file in the state folder; a given
                  database keeps its rows, and the example's clients and user are created or updated in it)
  --listen        auth-server's address                          (default 127.0.0.1:8080; port 0: any free one)
  --api-listen    resource-api's address                         (default 127.0.0.1:8081)
  --app-listen    the demo client's callback page                (default 127.0.0.1:8082)
  --state-dir     the SQLite database and the pid file of the run (default: target/xtask-up)
  --bin-dir       run the auth-server and resource-api binaries found there instead of a release build
Ctrl-C, SIGTERM and SIGHUP stop both servers.";

/// The options of `up`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpArgs {
    pub database_url: Option<String>,
    pub listen: String,
    pub api_listen: String,
    pub app_listen: String,
    pub state_dir: Option<PathBuf>,
    pub bin_dir: Option<PathBuf>,
    pub tls: bool,
}

impl UpArgs {
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut parsed = Self {
            database_url: None,
            listen: "127.0.0.1:8080".into(),
            api_listen: "127.0.0.1:8081".into(),
            app_listen: "127.0.0.1:8082".into(),
            state_dir: None,
            bin_dir: None,
            tls: false,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if arg == "--tls" {
                parsed.tls = true;
                continue;
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
                _ => (arg.as_str(), None),
            };
            let value = match inline {
                Some(value) => value,
                None => args
                    .next()
                    .cloned()
                    .with_context(|| format!("{flag} needs a value\n{USAGE}"))?,
            };
            match flag {
                "--database-url" => parsed.database_url = Some(value),
                "--listen" => parsed.listen = address(flag, value)?,
                "--api-listen" => parsed.api_listen = address(flag, value)?,
                "--app-listen" => parsed.app_listen = address(flag, value)?,
                "--state-dir" => parsed.state_dir = Some(value.into()),
                "--bin-dir" => parsed.bin_dir = Some(value.into()),
                other => bail!("unknown option {other:?}\n{USAGE}"),
            }
        }
        Ok(parsed)
    }

    /// Each fixed address with its flag (port 0 is always free).
    fn fixed_addresses(&self) -> Vec<(&'static str, &str)> {
        [
            ("--listen", self.listen.as_str()),
            ("--api-listen", self.api_listen.as_str()),
            ("--app-listen", self.app_listen.as_str()),
        ]
        .into_iter()
        .filter(|(_, address)| !address.ends_with(":0"))
        .collect()
    }
}

/// `HOST:PORT` with an IP address (the servers bind exactly that).
fn address(flag: &str, value: String) -> Result<String> {
    value.parse::<std::net::SocketAddr>().with_context(|| {
        format!("{flag} {value:?}: give an address and port, e.g. 127.0.0.1:8080")
    })?;
    Ok(value)
}

/// Fails, before anything is built or touched, if another process listens on one of the fixed addresses.
fn check_addresses_free(args: &UpArgs) -> Result<()> {
    for (flag, address) in args.fixed_addresses() {
        if let Err(error) = TcpListener::bind(address) {
            bail!(
                "{address} is not free ({error}): another `cargo xtask up`, or another server, uses it; \
                 stop it, or choose another address with {flag}. Nothing was started or deleted"
            );
        }
    }
    Ok(())
}

/// The pid file of a running `up`: this process and its servers, one `NAME PID` per line. Claimed with
/// `create_new`, so of two `up`s on one folder only one runs; removed when the run ends.
pub struct RunFile {
    path: PathBuf,
}

/// Whether process `pid` exists (signal 0 checks without sending).
fn alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

impl RunFile {
    const NAME: &'static str = "up.pid";

    /// Fails if the pid file of `dir` names a live process.
    pub fn check(dir: &Path) -> Result<()> {
        let path = dir.join(Self::NAME);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(());
        };
        for line in text.lines() {
            let Some((name, pid)) = line.split_once(' ') else {
                continue;
            };
            if let Ok(pid) = pid.trim().parse::<u32>()
                && pid != std::process::id()
                && alive(pid)
            {
                bail!(
                    "an earlier `cargo xtask up` is still running in {}: {name} (pid {pid}) is alive. Stop it \
                     (Ctrl-C in its terminal, or kill {pid}) first; nothing was started or deleted. (If pid \
                     {pid} is not ours, remove {}.)",
                    dir.display(),
                    path.display()
                );
            }
        }
        Ok(())
    }

    /// Claims `dir` for this run.
    pub fn claim(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(Self::NAME);
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    std::io::Write::write_all(
                        &mut file,
                        format!("xtask {}\n", std::process::id()).as_bytes(),
                    )
                    .with_context(|| format!("writing {}", path.display()))?;
                    return Ok(Self { path });
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                    Self::check(dir)?;
                    // Every process it names is gone: a run that was killed left it behind.
                    let _ = std::fs::remove_file(&path);
                }
                Err(error) => {
                    return Err(error).with_context(|| format!("creating {}", path.display()));
                }
            }
        }
        bail!(
            "{} keeps reappearing: another `cargo xtask up` is starting",
            path.display()
        )
    }

    /// Records the servers' pids beside ours.
    pub fn record(&self, children: &[(String, u32)]) -> Result<()> {
        let mut text = format!("xtask {}\n", std::process::id());
        for (name, pid) in children {
            text.push_str(&format!("{name} {pid}\n"));
        }
        std::fs::write(&self.path, text).with_context(|| format!("writing {}", self.path.display()))
    }
}

impl Drop for RunFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub fn up(args: &[String]) -> Result<()> {
    let args = UpArgs::parse(args)?;
    let state_dir = match &args.state_dir {
        Some(dir) => dir.clone(),
        None => crate::target_dir()?.join("xtask-up"),
    };
    // Both checks again after the build, which takes minutes: they fail fast here.
    RunFile::check(&state_dir)?;
    check_addresses_free(&args)?;
    let binaries =
        Binaries::prebuilt_or_release(args.bin_dir.as_deref(), &["auth-server", "resource-api"])?;
    binaries.check(&["auth-server", "resource-api"])?;
    let run_file = RunFile::claim(&state_dir)?;
    check_addresses_free(&args)?;
    let app_listener = TcpListener::bind(&args.app_listen)
        .with_context(|| format!("--app-listen {}", args.app_listen))?;
    let app = format!("http://{}", app_listener.local_addr()?);
    // A database of the user's keeps its rows; the example's clients and user are made to match the file.
    let (database_url, store) = match &args.database_url {
        Some(url) => (url.clone(), "the given database".to_owned()),
        None => (
            fresh_sqlite(&state_dir)?,
            format!("a fresh SQLite database in {}", state_dir.display()),
        ),
    };
    let auth_server = binaries.path("auth-server");
    let seeded = seed(&auth_server, &database_url, DEMO_PASSWORD, &app, &state_dir)?;
    let tls = if args.tls {
        Some(crate::tls::local_tls(&state_dir.join("tls"))?)
    } else {
        None
    };

    let signals = Signals::install()?;
    let mut stack = start_servers(
        &binaries,
        &args.listen,
        &args.api_listen,
        None,
        &database_url,
        &seeded,
        &Output::Terminal,
        tls.as_ref(),
    )?;
    run_file.record(&stack.children.pids())?;
    let issuer = stack.issuer.clone();
    callback::serve(
        app_listener,
        callback::Client {
            token_endpoint: format!("{issuer}/token"),
            client_id: seeded.public_client_id.clone(),
            redirect_uri: seeded.redirect_uri.clone(),
            code_verifier: CODE_VERIFIER.to_owned(),
            code_lifetime: CODE_LIFETIME,
        },
    );
    println!(
        "{}",
        banner(&Banner {
            issuer: &issuer,
            api: &stack.api,
            store: &store,
            database_url: &database_url,
            auth_server: &auth_server,
            seeded: &seeded,
            opener: callback::opener(cfg!(target_os = "macos"), on_path),
            ca: tls.as_ref().map(|tls| tls.ca.as_path()),
        })
    );
    let stopped = signals.wait(&mut stack.children);
    drop(stack);
    drop(run_file);
    stopped
}

/// What the banner shows.
struct Banner<'a> {
    issuer: &'a str,
    api: &'a str,
    store: &'a str,
    database_url: &'a str,
    auth_server: &'a Path,
    seeded: &'a crate::stack::Seed,
    opener: Option<&'static str>,
    /// With `--tls`: the local CA, which every curl of the tour trusts.
    ca: Option<&'a Path>,
}

fn banner(b: &Banner<'_>) -> String {
    let (issuer, api) = (b.issuer, b.api);
    let seeded = b.seeded;
    let (cid, secret) = (&seeded.client_id, &seeded.client_secret);
    let (rid, rsecret) = (
        &seeded.introspection_client_id,
        &seeded.introspection_secret,
    );
    let (spa, user, redirect) = (
        &seeded.public_client_id,
        &seeded.username,
        &seeded.redirect_uri,
    );
    let encoded_redirect = redirect.replace(':', "%3A").replace('/', "%2F");
    let authorize = format!(
        "{issuer}/authorize?response_type=code&client_id={spa}&redirect_uri={encoded_redirect}&scope=openid%20profile%20read&code_challenge={CODE_CHALLENGE}&code_challenge_method=S256&state=xyz"
    );
    let open = match b.opener {
        Some(opener) => format!("{opener} \"{authorize}\""),
        None => format!("# open in a browser: {authorize}"),
    };
    let binary = b.auth_server.display();
    let database_url = b.database_url;
    let curl = match b.ca {
        Some(ca) => format!("curl --cacert {}", ca.display()),
        None => "curl".to_owned(),
    };
    let trust = match b.ca {
        Some(ca) => format!(
            "\nBoth servers speak https only, with a certificate signed by the local CA {} (kept between runs: a\n\
             browser that should trust it can import it).\n",
            ca.display()
        ),
        None => String::new(),
    };
    format!(
        "
The stack is up ({store}):
  auth-server   {issuer}   metadata: {issuer}/.well-known/openid-configuration
  resource-api  {api}
  demo client   {redirect}   (the public client's redirect URI: shows the code and how to exchange it)

Applied {file} (configuration as code: edit it, or pass your own with serve --config):
  confidential client  {cid} / {secret}   (client_credentials, scope \"read write\")
  resource server      {rid} / {rsecret}   (may call /introspect; resource-api uses it)
  public client        {spa}  (\"Demo SPA\": authorization_code + PKCE, redirect {redirect})
  user                 {user} / {DEMO_PASSWORD}

{trust}
Try:
  TOKEN=$({curl} -s -u {cid}:{secret} -d grant_type=client_credentials {issuer}/token | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')
  {curl} -s -H \"Authorization: Bearer $TOKEN\" {api}/protected
  {curl} -s -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' -d '{{\"name\":\"first\"}}' {api}/items
  {curl} -s -u {rid}:{rsecret} -d token=$TOKEN {issuer}/introspect
  {curl} -s -u {cid}:{secret} -d token=$TOKEN {issuer}/revoke
  {curl} -s -i -X DELETE -H \"Authorization: Bearer $TOKEN\" {api}/items/1      # 401: revoked
  {open}
    (sign in as {user}; the callback page prints the exchange command: the code works once, for {CODE_LIFETIME} s)

The operator CLI on this stack's database (another terminal):
  export DATABASE_URL={database_url}
  {binary} client list
  {binary} user list

Ctrl-C stops both.
",
        store = b.store,
        file = seeded.file.display()
    )
}

/// SIGINT, SIGTERM and SIGHUP, caught from the moment the servers start until they are stopped.
struct Signals {
    runtime: tokio::runtime::Runtime,
    #[cfg(unix)]
    streams: Vec<(&'static str, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn install() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the signal runtime")?;
        #[cfg(unix)]
        let streams = {
            use tokio::signal::unix::{SignalKind, signal};
            let _guard = runtime.enter();
            vec![
                ("SIGINT", signal(SignalKind::interrupt())?),
                ("SIGTERM", signal(SignalKind::terminate())?),
                ("SIGHUP", signal(SignalKind::hangup())?),
            ]
        };
        Ok(Self {
            runtime,
            #[cfg(unix)]
            streams,
        })
    }

    /// Returns when a signal arrives (Ok) or a server stops on its own (Ok when it exited cleanly, as on a
    /// Ctrl-C that reached it first; an error otherwise). The caller then stops the rest.
    fn wait(mut self, children: &mut Children) -> Result<()> {
        self.runtime.block_on(async {
            loop {
                #[cfg(unix)]
                {
                    let received = futures_first(&mut self.streams);
                    tokio::select! {
                        name = received => {
                            eprintln!("xtask: {name}: stopping both servers");
                            return Ok(());
                        }
                        () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
                #[cfg(not(unix))]
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                if let Some((name, status)) = children.exited() {
                    if status.success() {
                        eprintln!("xtask: {name} stopped; stopping the other");
                        return Ok(());
                    }
                    bail!("{name} stopped ({status}); its log above says why");
                }
            }
        })
    }
}

/// The name of the first of `streams` to receive a signal.
#[cfg(unix)]
async fn futures_first(
    streams: &mut [(&'static str, tokio::signal::unix::Signal)],
) -> &'static str {
    std::future::poll_fn(|context| {
        for (name, stream) in streams.iter_mut() {
            if stream.poll_recv(context).is_ready() {
                return std::task::Poll::Ready(*name);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests;
