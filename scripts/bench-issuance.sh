#!/usr/bin/env bash
# Issuance throughput (docs/benchmarks.md, "Issuance"): client_credentials at /token on SQLite and PostgreSQL, plain and
# with a DPoP proof per request (proofs prepared beforehand, each sent once), next to a plain axum handler and a
# sign-only axum handler, all measured in one run with wrk on loopback.
# Needs: wrk (apt-get install wrk); PostgreSQL at $BENCH_PG_URL (default the local test server).
# Usage: [AUTH_SERVER_BIN=path] scripts/bench-issuance.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
pg_admin="${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
work="$(mktemp -d)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

cargo build --release -q -p auth-server --bin auth-server --example bench_baseline -p loadtest --example dpop_proofs
# AUTH_SERVER_BIN measures another build (an older release, say) against the same baselines.
bin="${AUTH_SERVER_BIN:-target/release/auth-server}"
# wrk's 64 connections and the readiness checks all come from 127.0.0.1: room above the per-source cap (64).
export AUTH_MAX_CONNECTIONS_PER_SOURCE=256
wait_ready() { for _ in $(seq 1 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "not ready: $1" >&2; exit 1; }

target/release/examples/bench_baseline 127.0.0.1:8090 >/dev/null 2>&1 & pids+=($!)
wait_ready http://127.0.0.1:8090/plain

start_server() { # database_url port -> sets $basic
  local url="$1" port="$2" secret
  secret=$(DATABASE_URL="$url" $bin client create --client-id bench --grant-type client_credentials --scope "read write" | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')
  DATABASE_URL="$url" RUST_LOG=warn $bin serve --listen "127.0.0.1:$port" --issuer "http://127.0.0.1:$port" >/dev/null 2>&1 & pids+=($!)
  wait_ready "http://127.0.0.1:$port/readyz"
  basic="$(printf 'bench:%s' "$secret" | base64 -w0)"
}
db="bench_issuance_$$"
psql "$pg_admin" -qc "create database $db" >/dev/null
trap 'cleanup; psql "$pg_admin" -qc "drop database if exists $db with (force)" >/dev/null' EXIT
pg_url="${pg_admin%/*}/$db"
start_server "sqlite://$work/bench.db" 8091; basic_sqlite="$basic"
start_server "$pg_url" 8092; basic_pg="$basic"

run() { # label connections url [lua]
  local out
  if [ -n "${4:-}" ]; then out=$(BASIC="$5" wrk -t2 -c"$2" -d"${duration}s" --latency -s "$4" "$3"); else out=$(wrk -t2 -c"$2" -d"${duration}s" --latency "$3"); fi
  local rps p50 p99 non2xx
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$rps" "$p50" "$p99" "${non2xx:-0}"
}
run_dpop() { # label connections port basic [path]: proofs made just before the run (fresh for a minute)
  local out rps p50 p99 non2xx requests count=$((duration * 30000)) note="" path="${5:-/token}"
  target/release/examples/dpop_proofs token "http://127.0.0.1:$3$path" "$count" > "$work/proofs.txt"
  out=$(PROOFS_FILE="$work/proofs.txt" BASIC="$4" wrk -t2 -c"$2" -d"${duration}s" --latency \
    -s scripts/bench-issuance-dpop.lua "http://127.0.0.1:$3$path")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  [ "$requests" -gt "$count" ] && note=" (proofs wrapped: $requests requests, $count proofs)"
  printf '| %s%s | %s | %s | %s | %s | %s |\n' "$1" "$note" "$2" "$rps" "$p50" "$p99" "${non2xx:-0}"
}
echo "| endpoint | connections | req/s | p50 | p99 | non-2xx |"
echo "|---|---:|---:|---:|---:|---:|"
for connections in 16 64; do
  run "plain axum handler (GET /plain)" "$connections" http://127.0.0.1:8090/plain
  run "sign-only axum handler (POST /sign, ES256)" "$connections" http://127.0.0.1:8090/sign scripts/bench-sign.lua ""
  run "auth-server /token, SQLite" "$connections" http://127.0.0.1:8091/token scripts/bench-issuance.lua "$basic_sqlite"
  run "auth-server /token, PostgreSQL" "$connections" http://127.0.0.1:8092/token scripts/bench-issuance.lua "$basic_pg"
  run_dpop "DPoP ceiling axum handler (POST /sign-dpop: verify the proof, sign)" "$connections" 8090 "" /sign-dpop
  run_dpop "auth-server /token with DPoP, SQLite" "$connections" 8091 "$basic_sqlite"
  run_dpop "auth-server /token with DPoP, PostgreSQL" "$connections" 8092 "$basic_pg"
done
