#!/usr/bin/env bash
# TLS beside plaintext (docs/benchmarks.md, "Over TLS"): client_credentials issuance at auth-server's /token and
# validation of a repeated token at resource-api's /protected, each over http and over https (a P-256 certificate of
# a local CA), with keep-alive and with a new connection per request (`Connection: close`: a TCP and a TLS handshake
# per grant, the unit Keycloak publishes), all in one run with wrk on loopback.
# Needs: wrk and openssl (apt-get install wrk openssl). Usage: scripts/bench-tls.sh [seconds per run, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-5}"
work="$(mktemp -d)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
wait_ready() { for _ in $(seq 1 100); do curl -sf --cacert "$work/ca.pem" "$1" >/dev/null && return 0; sleep 0.1; done; echo "not ready: $1" >&2; exit 1; }

cargo build --release -q -p auth-server --bin auth-server -p resource-api --bin resource-api
bin="${AUTH_SERVER_BIN:-target/release/auth-server}"
api_bin="${RESOURCE_API_BIN:-target/release/resource-api}"
# wrk's connections and the readiness checks all come from 127.0.0.1: room above the per-source cap (64).
export AUTH_MAX_CONNECTIONS_PER_SOURCE=256 RESOURCE_API_MAX_CONNECTIONS_PER_SOURCE=256

# A CA and a certificate for 127.0.0.1 (ECDSA P-256, as ACME CAs issue by default).
openssl ecparam -name prime256v1 -genkey -noout -out "$work/ca.key" 2>/dev/null
openssl req -x509 -new -key "$work/ca.key" -subj /CN=bench-ca -days 1 -out "$work/ca.pem" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$work/key.pem" 2>/dev/null
openssl req -new -key "$work/key.pem" -subj /CN=127.0.0.1 -out "$work/req.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$work/ext.cnf"
openssl x509 -req -in "$work/req.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 1 \
  -extfile "$work/ext.cnf" -out "$work/cert.pem" 2>/dev/null
tls=(--tls-cert "$work/cert.pem" --tls-key "$work/key.pem")

db="sqlite://$work/auth.db"
secret=$(DATABASE_URL="$db" $bin client create --client-id bench --grant-type client_credentials --scope "read write" | sed -E 's/.*"client_secret":"([^"]+)".*/\1/')
basic="$(printf 'bench:%s' "$secret" | base64 -w0)"
DATABASE_URL="$db" RUST_LOG=warn $bin serve --listen 127.0.0.1:8096 --access-token-ttl 3600 >/dev/null 2>&1 & pids+=($!)
DATABASE_URL="$db" RUST_LOG=warn $bin serve --listen 127.0.0.1:8097 --access-token-ttl 3600 "${tls[@]}" >/dev/null 2>&1 & pids+=($!)
wait_ready http://127.0.0.1:8096/readyz
wait_ready https://127.0.0.1:8097/readyz
RUST_LOG=warn $api_bin --listen 127.0.0.1:8098 --issuer http://127.0.0.1:8096 >/dev/null 2>&1 & pids+=($!)
SSL_CERT_FILE="$work/ca.pem" RUST_LOG=warn $api_bin --listen 127.0.0.1:8099 --issuer https://127.0.0.1:8097 "${tls[@]}" \
  >/dev/null 2>&1 & pids+=($!)
wait_ready http://127.0.0.1:8098/readyz
wait_ready https://127.0.0.1:8099/readyz
token() { curl -sf --cacert "$work/ca.pem" -u "bench:$secret" -d grant_type=client_credentials "$1/token" | sed -E 's/.*"access_token":"([^"]+)".*/\1/'; }
http_token=$(token http://127.0.0.1:8096)
https_token=$(token https://127.0.0.1:8097)

run() { # label connections url extra-wrk-args...
  local label="$1" connections="$2" url="$3" out rps p50 p99 non2xx errors
  shift 3
  out=$(BASIC="$basic" wrk -t2 -c"$connections" -d"${duration}s" --latency "$@" "$url")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  errors=$(echo "$out" | awk '/Socket errors/ {print $4 $5 $6 $7 $8 $9}')
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$connections" "$rps" "$p50" "$p99" "${non2xx:-0}" "${errors:-none}"
}
echo "| endpoint | connections | req/s | p50 | p99 | non-2xx | socket errors |"
echo "|---|---:|---:|---:|---:|---:|---|"
for connections in 16 64; do
  run "/token, http, keep-alive" "$connections" http://127.0.0.1:8096/token -s scripts/bench-issuance.lua
  run "/token, https, keep-alive" "$connections" https://127.0.0.1:8097/token -s scripts/bench-issuance.lua
  run "/token, http, a new connection per request" "$connections" http://127.0.0.1:8096/token -s scripts/bench-issuance.lua -H "Connection: close"
  run "/token, https, a new connection per request" "$connections" https://127.0.0.1:8097/token -s scripts/bench-issuance.lua -H "Connection: close"
  run "/protected, http, keep-alive" "$connections" http://127.0.0.1:8098/protected -H "Authorization: Bearer $http_token"
  run "/protected, https, keep-alive" "$connections" https://127.0.0.1:8099/protected -H "Authorization: Bearer $https_token"
  run "/protected, http, a new connection per request" "$connections" http://127.0.0.1:8098/protected -H "Authorization: Bearer $http_token" -H "Connection: close"
  run "/protected, https, a new connection per request" "$connections" https://127.0.0.1:8099/protected -H "Authorization: Bearer $https_token" -H "Connection: close"
done
