//! Baseline servers for `scripts/bench-issuance.sh`: `GET /plain` (an axum handler that does nothing) and
//! `POST /sign` (an axum handler that only signs an ES256 access token with a cached key and answers the
//! same JSON shape as /token). The issuance figures of auth-server are read against these.
//!
//! Usage: `cargo run --release -p auth-server --example bench_baseline -- 127.0.0.1:8090`

use std::sync::Arc;

use auth_core::clock::{Clock, SystemClock};
use auth_core::keys::{SigningAlgorithm, SigningKey};
use auth_core::token::{AccessTokenClaims, Audience, issue};
use auth_core::wire::{TokenResponse, TokenType};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};

async fn plain() -> &'static str {
    "ok"
}

async fn sign(State(key): State<Arc<SigningKey>>) -> Result<Json<TokenResponse>, StatusCode> {
    let now = SystemClock.now();
    let claims = AccessTokenClaims {
        iss: "http://127.0.0.1:8080".into(),
        sub: "bench".into(),
        aud: Audience::One("resource-api".into()),
        client_id: "bench".into(),
        scope: "read write"
            .parse()
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?,
        iat: now,
        exp: now + 900,
        nbf: None,
        jti: uuid::Uuid::new_v4().to_string(),
        auth_time: None,
    };
    let access_token = issue(&claims, &key).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(Json(TokenResponse {
        access_token,
        token_type: TokenType::Bearer,
        expires_in: 900,
        scope: Some("read write".into()),
        refresh_token: None,
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let key = Arc::new(SigningKey::generate(SigningAlgorithm::Es256)?);
    let app = Router::new()
        .route("/plain", get(plain))
        .route("/sign", post(sign))
        .with_state(key);
    let listener = tokio::net::TcpListener::bind(&address).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
