# syntax=docker/dockerfile:1
# Multi-stage build of the three binaries: auth-server, resource-api, loadtest.
# Used by docker-compose.yml; `docker build -t auth-platform .` builds it alone.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# aws-lc-sys builds its C with gcc alone (no cmake, clang or nasm); the slim image lacks gcc.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev make && rm -rf /var/lib/apt/lists/*
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --package auth-server --package resource-api --package loadtest \
 && mkdir -p /out \
 && cp target/release/auth-server target/release/resource-api target/release/loadtest /out/

FROM debian:bookworm-slim AS runtime
# curl serves the compose health checks; ca-certificates lets the services reach HTTPS issuers.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --create-home auth
COPY --from=build /out/ /usr/local/bin/
# The example configuration, for `--config /etc/auth-platform/platform.toml` (AUTH_CONFIG); mount your own
# file over it. Its secrets come from the variables it names.
COPY examples/platform.toml /etc/auth-platform/platform.toml
USER auth
WORKDIR /data
EXPOSE 8080 8081
CMD ["auth-server", "serve", "--listen", "0.0.0.0:8080"]
