#!/usr/bin/env bash
# Validation throughput (docs/benchmarks.md, "Validation"): GET /protected on resource-api with every request a different
# valid token, with a small set of repeated tokens, and with 64 DPoP-bound tokens (a key each, as real clients have) and a new proof per
# request, next to a plain axum handler and an axum handler that only verifies an ES256 JWT, all in one run with
# wrk on loopback.
# Needs: wrk (apt-get install wrk). Usage: [AUTH_SERVER_BIN=path] [RESOURCE_API_BIN=path] scripts/bench-validation.sh
# [seconds per run, default 5] (the variables measure other builds, an older release say, against the same baselines)
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-5}"
work="$(mktemp -d)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
wait_ready() { for _ in $(seq 1 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "not ready: $1" >&2; exit 1; }

cargo build --release -q -p auth-server --bin auth-server --example bench_baseline -p resource-api --bin resource-api \
  -p loadtest --example dpop_proofs
bin="${AUTH_SERVER_BIN:-target/release/auth-server}"
api_bin="${RESOURCE_API_BIN:-target/release/resource-api}"
# wrk's 64 connections and the readiness checks all come from 127.0.0.1: room above the per-source cap (64).
export AUTH_MAX_CONNECTIONS_PER_SOURCE=256 RESOURCE_API_MAX_CONNECTIONS_PER_SOURCE=256
# Every DPoP proof of the runs comes from one client, whose share of the replay cache is 1/8 of its capacity: room for
# both DPoP runs (each proof is remembered for two minutes).
export RESOURCE_API_DPOP_REPLAY_CAPACITY=8000000
db="sqlite://$work/auth.db"
secret=$(DATABASE_URL="$db" $bin client create --client-id bench --grant-type client_credentials --scope "read write" | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')
DATABASE_URL="$db" RUST_LOG=warn $bin serve --listen 127.0.0.1:8093 --issuer http://127.0.0.1:8093 --access-token-ttl 3600 >/dev/null 2>&1 & pids+=($!)
wait_ready http://127.0.0.1:8093/readyz
RUST_LOG=warn $api_bin --listen 127.0.0.1:8094 --issuer http://127.0.0.1:8093 >/dev/null 2>&1 & pids+=($!)
wait_ready http://127.0.0.1:8094/readyz
target/release/examples/bench_baseline 127.0.0.1:8095 http://127.0.0.1:8093 >/dev/null 2>&1 & pids+=($!)
wait_ready http://127.0.0.1:8095/plain

# Mint distinct tokens (more than any run below can use), then stop loading the issuer.
export TOKENS_FILE="$work/tokens.txt" THREADS=2
BASIC="$(printf 'bench:%s' "$secret" | base64 -w0)" wrk -t2 -c32 -d"$((duration * 3))s" -s scripts/bench-collect-tokens.lua http://127.0.0.1:8093/token >/dev/null
cat "$TOKENS_FILE".* > "$TOKENS_FILE"

minted=$(wc -l < "$TOKENS_FILE")
half=$((minted / 2))
run() { # label connections url offset count
  local out rps p50 p99 non2xx requests note=""
  out=$(TOKENS_OFFSET="$4" TOKENS_COUNT="$5" wrk -t2 -c"$2" -d"${duration}s" --latency -s scripts/bench-bearer.lua "$3")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  [ "$5" -gt 16 ] && [ "$requests" -gt "$5" ] && note=" (tokens wrapped: $requests requests, $5 tokens)"
  printf '| %s%s | %s | %s | %s | %s | %s |\n' "$1" "$note" "$2" "$rps" "$p50" "$p99" "${non2xx:-0}"
}
run_dpop() { # connections: 64 keys with a DPoP-bound token each, proofs made just before the run (fresh for a minute)
  local out rps p50 p99 non2xx requests count=$((duration * 40000)) note=""
  target/release/examples/dpop_proofs resource http://127.0.0.1:8093/token bench "$secret" http://127.0.0.1:8094/protected \
    "$count" > "$work/proofs.txt"
  out=$(PROOFS_FILE="$work/proofs.txt" wrk -t2 -c"$1" -d"${duration}s" --latency -s scripts/bench-dpop.lua \
    http://127.0.0.1:8094/protected)
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  requests=$(echo "$out" | awk '/requests in/ {print $1}')
  [ "$requests" -gt "$count" ] && note=" (proofs wrapped: $requests requests, $count proofs)"
  printf '| %s%s | %s | %s | %s | %s | %s |\n' "resource-api GET /protected, 64 DPoP-bound tokens, a new proof each" \
    "$note" "$1" "$rps" "$p50" "$p99" "${non2xx:-0}"
}
echo "| endpoint | connections | req/s | p50 | p99 | non-2xx |"
echo "|---|---:|---:|---:|---:|---:|"
slice=0
for connections in 16 64; do
  run "plain axum handler (GET /plain)" "$connections" http://127.0.0.1:8095/plain 0 16
  run "verify-only axum handler, fresh tokens" "$connections" http://127.0.0.1:8095/verify 0 "$minted"
  # resource-api caches verified tokens: each fresh run gets tokens it has never seen.
  run "resource-api GET /protected, fresh tokens" "$connections" http://127.0.0.1:8094/protected "$slice" "$half"
  slice=$((slice + half))
  run "resource-api GET /protected, 16 repeated tokens" "$connections" http://127.0.0.1:8094/protected 0 16
  run_dpop "$connections"
done
