#!/usr/bin/env bash
# A burst of concurrent login posts (docs/benchmarks.md, "A burst of logins"): starts the given auth-server
# binary on a fresh SQLite file, seeds a public web client and a confidential one, and runs the
# login_burst example against it: resident memory (peak included), answers and latencies, and another
# client's token requests meanwhile. Any auth-server binary with the same CLI works, so an older build can
# be measured the same way.
# Usage: scripts/bench-login-burst.sh [AUTH_SERVER_BINARY] [LOGINS, default 500] [SOURCES, default 25]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-target/release/auth-server}"
logins="${2:-500}"
sources="${3:-25}"
port=18093
work="$(mktemp -d)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cargo build --release -q -p auth-server --example login_burst
export DATABASE_URL="sqlite://$work/burst.db"
redirect="http://127.0.0.1:9/callback"
"$bin" client create --client-id web --public --grant-type authorization_code --redirect-uri "$redirect" >/dev/null
secret=$("$bin" client create --client-id probe --grant-type client_credentials | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')
RUST_LOG=error "$bin" serve --listen "127.0.0.1:$port" --issuer "http://127.0.0.1:$port" >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
target/release/examples/login_burst "http://127.0.0.1:$port" "$pid" web "$redirect" probe "$secret" "$logins" "$sources"
