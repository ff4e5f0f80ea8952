//! `POST /token` (RFC 6749 §3.2), `POST /revoke` (RFC 7009), `POST /introspect` (RFC 7662).

use std::net::SocketAddr;

use auth_core::wire::{ErrorCode, GrantType};
use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::client_auth::{AuthMethod, authenticate};
use super::error::{ApiError, Result};
use super::form::{OAuthForm, Params};
use crate::grants;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/token", post(oauth2_token_post))
        .route("/revoke", post(oauth2_revoke_post))
        .route("/introspect", post(oauth2_introspect_post))
}

/// RFC 6749 §5.1: token responses must not be cached.
fn no_store(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// One `resource` at most (RFC 8707 allows several; one audience per token keeps tokens narrow).
fn resource(params: &Params) -> Result<Option<&str>> {
    params
        .get("resource")
        .map_err(|_| ApiError::oauth(ErrorCode::InvalidTarget, "one resource per request"))
}

async fn oauth2_token_post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Result<Response> {
    let grant: GrantType = params
        .require("grant_type")?
        .parse()
        .map_err(|code| ApiError::oauth(code, "grant_type is not supported"))?;
    let authenticated = authenticate(&state, &headers, &params, peer.ip()).await?;
    let client = &authenticated.client;
    if !client.allows(grant) {
        return Err(ApiError::oauth(
            ErrorCode::UnauthorizedClient,
            "the client is not registered for this grant type",
        ));
    }
    let resource = resource(&params)?;
    let response = match grant {
        GrantType::ClientCredentials => {
            // RFC 6749 §4.4: only confidential clients.
            if authenticated.method == AuthMethod::None {
                return Err(ApiError::oauth(
                    ErrorCode::UnauthorizedClient,
                    "public clients cannot use client_credentials",
                ));
            }
            grants::client_credentials(&state, client, params.get("scope")?, resource)?
        }
        GrantType::AuthorizationCode => {
            grants::exchange_code(
                &state,
                client,
                params.get("code")?,
                params.get("redirect_uri")?,
                params.get("code_verifier")?,
                resource,
            )
            .await?
        }
        GrantType::RefreshToken => {
            grants::refresh(
                &state,
                client,
                params.get("refresh_token")?,
                params.get("scope")?,
                resource,
            )
            .await?
        }
    };
    Ok(no_store(Json(response)))
}

async fn oauth2_revoke_post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Result<Response> {
    let authenticated = authenticate(&state, &headers, &params, peer.ip()).await?;
    let token = params.require("token")?;
    // token_type_hint is only a hint (RFC 7009 §2.1): both kinds are tried whatever it says.
    let _ = params.get("token_type_hint")?;
    grants::revoke(&state, &authenticated.client, token).await?;
    Ok(no_store(StatusCode::OK))
}

async fn oauth2_introspect_post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Result<Response> {
    let authenticated = authenticate(&state, &headers, &params, peer.ip()).await?;
    // RFC 7662 §2.1 requires authorization; only confidential clients may ask.
    if authenticated.method == AuthMethod::None {
        return Err(ApiError::OAuth {
            code: ErrorCode::InvalidClient,
            description: "introspection requires a confidential client".into(),
            basic_challenge: false,
        });
    }
    let token = params.require("token")?;
    let _ = params.get("token_type_hint")?;
    let response = grants::introspect(&state, token).await?;
    Ok(no_store(Json(response)))
}
