//! Baseline servers for `scripts/bench-issuance.sh` and `scripts/bench-validation.sh`:
//! - `GET /plain`: an axum handler that does nothing;
//! - `POST /sign`: an axum handler that only signs an ES256 access token with a cached key and answers the
//!   same JSON shape as /token;
//! - `GET /verify`: an axum handler that only verifies the bearer token (ES256) against the issuer's keys,
//!   fetched once at start when an issuer URL is given;
//! - `POST /sign-dpop`: the irreducible work of a DPoP token request (RFC 9449 §5): read the `DPoP` proof's
//!   `jwk`, verify the proof's signature with it, sign an access token; nothing else (no claim checks, no
//!   thumbprint, no replay check, no client authentication).
//!
//! The figures of auth-server and resource-api are read against these.
//!
//! Usage: `cargo run --release -p auth-server --example bench_baseline -- 127.0.0.1:8090 [ISSUER]`

use std::sync::Arc;

use auth_core::clock::{Clock, SystemClock};
use auth_core::jose::{ClientJws, ClientKey};
use auth_core::jwks::KeySet;
use auth_core::keys::{SigningAlgorithm, SigningKey};
use auth_core::token::{AccessTokenClaims, Audience, issue};
use auth_core::token::{ValidationPolicy, verify};
use auth_core::wire::{TokenResponse, TokenType};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};

async fn plain() -> &'static str {
    "ok"
}

#[derive(Clone)]
struct Baseline {
    key: Arc<SigningKey>,
    issuer_keys: Arc<KeySet>,
    policy: ValidationPolicy,
}

async fn verify_only(
    State(state): State<Baseline>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, StatusCode> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let claims =
        verify(token, &state.issuer_keys, &state.policy).map_err(|_| StatusCode::UNAUTHORIZED)?;
    Ok(Json(
        serde_json::json!({ "message": "Secure data", "user": claims.sub }),
    ))
}

async fn sign(State(state): State<Baseline>) -> Result<Json<TokenResponse>, StatusCode> {
    let key = &state.key;
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
        fam: None,
        cnf: None,
        act: None,
        may_act: None,
    };
    let access_token = issue(&claims, key).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(Json(TokenResponse {
        access_token,
        token_type: TokenType::Bearer,
        expires_in: 900,
        scope: Some("read write".into()),
        refresh_token: None,
        id_token: None,
        issued_token_type: None,
    }))
}

/// The DPoP ceiling: the proof's key from its header, the proof's signature verified with it, a token signed.
async fn sign_dpop(
    State(state): State<Baseline>,
    headers: HeaderMap,
) -> Result<Json<TokenResponse>, StatusCode> {
    let proof = headers
        .get("dpop")
        .and_then(|value| value.to_str().ok())
        .ok_or(StatusCode::BAD_REQUEST)?;
    let jws = ClientJws::parse(proof, None).map_err(|_| StatusCode::BAD_REQUEST)?;
    let jwk = jws
        .header
        .get("jwk")
        .and_then(serde_json::Value::as_object)
        .ok_or(StatusCode::BAD_REQUEST)?;
    let key = ClientKey::from_json(jwk).map_err(|_| StatusCode::BAD_REQUEST)?;
    jws.verify_with(&key).map_err(|_| StatusCode::BAD_REQUEST)?;
    sign(State(state)).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let issuer = std::env::args().nth(2);
    let issuer_keys = match &issuer {
        Some(issuer) => {
            let jwks = reqwest::get(format!("{issuer}/jwks.json"))
                .await?
                .bytes()
                .await?;
            KeySet::from_jwks_json(&jwks)?
        }
        None => KeySet::default(),
    };
    let state = Baseline {
        key: Arc::new(SigningKey::generate(SigningAlgorithm::Es256)?),
        issuer_keys: Arc::new(issuer_keys),
        policy: ValidationPolicy::new(
            issuer.unwrap_or_default(),
            "resource-api",
            Arc::new(SystemClock),
        ),
    };
    let app = Router::new()
        .route("/plain", get(plain))
        .route("/sign", post(sign))
        .route("/sign-dpop", post(sign_dpop))
        .route("/verify", get(verify_only))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(&address).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
