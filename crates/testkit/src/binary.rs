//! The real binaries: `serve` started on 127.0.0.1:0 (the port read from the line it prints), and
//! one-shot subcommands with their output.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};

/// A running `auth-server serve`, ready when returned.
pub struct ServedBinary {
    pub base: String,
    /// The one line it printed on stdout once ready (`{"issuer", "listen", "ready"[, "metrics"]}`).
    pub ready: serde_json::Value,
    pub child: Child,
    /// The rest of its stdout (kept open: a server writing to a closed pipe would fail).
    pub stdout: Option<BufReader<ChildStdout>>,
}

impl ServedBinary {
    /// Starts `binary serve --listen 127.0.0.1:0` on `database_url` with `RUST_LOG=rust_log` and `extra`
    /// flags. The issuer is the bound address unless `extra` names one. Stderr is piped: take it from
    /// `child` and read it, or a chatty log fills the pipe.
    pub fn start(binary: &Path, database_url: &str, rust_log: &str, extra: &[&str]) -> Self {
        Self::start_with_env(binary, database_url, rust_log, extra, &[])
    }

    /// [`ServedBinary::start`] with environment variables (`AUTH_…` settings, a configuration file's
    /// secrets).
    pub fn start_with_env(
        binary: &Path,
        database_url: &str,
        rust_log: &str,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Self {
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", rust_log)
            .env_remove("AUTH_ISSUER")
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start auth-server serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        let mut stdout = BufReader::new(stdout);
        let read = stdout.read_line(&mut line);
        // `{"issuer": URL, "listen": ADDRESS, "ready": true}`: the base is the issuer (https with --tls-cert).
        let ready = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .filter(|ready| ready["ready"] == true);
        let base = ready
            .as_ref()
            .and_then(|ready| ready["issuer"].as_str().map(str::to_owned));
        match (read, base, ready) {
            (Ok(_), Some(base), Some(ready)) => Self {
                base,
                ready,
                child,
                stdout: Some(stdout),
            },
            (read, _, _) => {
                let _ = child.kill();
                let output = child.wait_with_output().expect("wait");
                panic!(
                    "auth-server serve did not start ({read:?}, {line:?}): {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }

    /// SIGTERM, then the exit status.
    pub async fn stop(self) -> ExitStatus {
        let mut child = self.child;
        let signalled = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(signalled.success());
        tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("join")
            .expect("wait")
    }
}

/// What a one-shot command did.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    /// The exit code (`None` when a signal ended it).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `binary args…` with `DATABASE_URL`, `RUST_LOG` and `envs`, writing `stdin` to it.
pub fn run(
    binary: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    database_url: &str,
    stdin: Option<&str>,
    rust_log: &str,
) -> Run {
    let mut child = Command::new(binary)
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", rust_log)
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the binary");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin
        && let Err(error) = input.write_all(text.as_bytes())
    {
        // A command refused before it reads its input (a usage error) may have exited already.
        assert_eq!(
            error.kind(),
            std::io::ErrorKind::BrokenPipe,
            "write stdin: {error}"
        );
    }
    drop(input);
    let output = child.wait_with_output().expect("wait");
    Run {
        success: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
