#!/usr/bin/env python3
"""Start to ready (docs/benchmarks.md, "Start to ready"): nine starts of `auth-server serve --database-url
sqlite::memory: --listen 127.0.0.1:0`, each timed from exec to its JSON ready line on stdout, and its resident
memory 0.3 s later. Usage: scripts/bench-start.py [--config FILE] [BINARY] (default target/release/auth-server;
build it with `cargo build --release -p auth-server` first). With --config the file is applied at each start, its
secrets and passwords set in the environment (the names examples/platform.toml uses); --password-hash first
rewrites the file's `password_env` lines as `password_hash` (an argon2id hash the binary made), so that no
password is hashed at start."""
import subprocess, time, json, statistics, sys, os, signal, re, sqlite3, tempfile
args = sys.argv[1:]
hashed = "--password-hash" in args
args = [a for a in args if a != "--password-hash"]
config = []
if args[:1] == ["--config"]:
    config = ["--config", os.path.abspath(args[1])]
    args = args[2:]
binary = args[0] if args else "target/release/auth-server"
secrets = {"DEMO_CLIENT_SECRET": "bench-client-secret-0123456789abcdef",
           "INTROSPECTION_SECRET": "bench-introspection-secret-0123456789",
           "DEMO_PASSWORD": "bench-password"}
work = tempfile.mkdtemp(prefix="bench-start-")
if hashed and config:
    db = os.path.join(work, "hash.db")
    subprocess.run([binary, "user", "create", "--username", "hash", "--password-stdin"], input=b"bench-password",
                   env={**os.environ, "DATABASE_URL": "sqlite://" + db}, check=True, stdout=subprocess.DEVNULL)
    digest = sqlite3.connect(db).execute("select password_hash from app_user").fetchone()[0]
    text = open(config[1]).read()
    text = re.sub(r'password_env = "[A-Z_]+"', 'password_hash = "%s"' % digest, text)
    config[1] = os.path.join(work, "platform.toml")
    open(config[1], "w").write(text)
runs = []
rss = []
for _ in range(9):
    t0 = time.perf_counter()
    p = subprocess.Popen([binary, *config, "serve", "--database-url", "sqlite::memory:", "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         env={**os.environ, **secrets, "RUST_LOG": "warn"})
    line = p.stdout.readline()
    t1 = time.perf_counter()
    assert json.loads(line)["ready"] is True, line
    time.sleep(0.3)
    with open(f"/proc/{p.pid}/status") as f:
        for l in f:
            if l.startswith("VmRSS"):
                rss.append(int(l.split()[1]) / 1024)
    p.send_signal(signal.SIGTERM); p.wait()
    runs.append((t1 - t0) * 1000)
print("start to ready ms: median %.1f  min %.1f  max %.1f  (%s)" % (statistics.median(runs), min(runs), max(runs), ", ".join("%.0f" % r for r in runs)))
print("idle RSS MiB: median %.1f" % statistics.median(rss))
