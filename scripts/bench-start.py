#!/usr/bin/env python3
"""Start to ready (docs/benchmarks.md, "Start to ready"): nine starts of `auth-server serve --database-url
sqlite::memory: --listen 127.0.0.1:0`, each timed from exec to its JSON ready line on stdout, and its resident
memory 0.3 s later. Usage: scripts/bench-start.py [BINARY] (default target/release/auth-server; build it with
`cargo build --release -p auth-server` first)."""
import subprocess, time, json, statistics, sys, os, signal
binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/auth-server"
runs = []
rss = []
for _ in range(9):
    t0 = time.perf_counter()
    p = subprocess.Popen([binary, "serve", "--database-url", "sqlite::memory:", "--listen", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
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
