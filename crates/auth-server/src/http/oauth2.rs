//! `POST /token` (RFC 6749 §3.2), `POST /revoke` (RFC 7009), `POST /introspect` (RFC 7662): parse the
//! form, authenticate the client, call the domain, answer JSON that no cache keeps.

use auth_core::wire::{ACCESS_TOKEN_TYPE_URN, ErrorCode, GrantType};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::credentials::client_credentials;
use super::error::{ApiError, Result};
use super::form::OAuthForm;
use super::source::Source;
use crate::clients::authentication::{self, AuthMethod, AuthenticatedClient};
use crate::clients::documents;
use crate::error::{Error, oauth};
use crate::params::Params;
use crate::state::AppState;
use crate::tokens::dpop::invalid_proof;
use crate::tokens::grants::{
    self, TokenRequest, authorization_code, client_credentials, device_code, refresh,
    token_exchange,
};
use crate::tokens::{introspection, revocation};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/token", post(oauth2_token_post))
        .route("/revoke", post(oauth2_revoke_post))
        .route("/introspect", post(oauth2_introspect_post))
        .route("/par", post(oauth2_par_post))
        .route("/device_authorization", post(device_authorization_post))
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

/// The answer of an OAuth endpoint, with every error counted by its code.
fn answer(state: &AppState, result: Result<Response>) -> Response {
    match result {
        Ok(response) => response,
        Err(error) => {
            let response = error.into_response();
            if let Some(code) = error_code(&response) {
                state
                    .metrics
                    .increment("auth_oauth_errors_total", &[("error", code)]);
            }
            response
        }
    }
}

fn error_code(response: &Response) -> Option<&'static str> {
    response
        .extensions()
        .get::<ErrorCode>()
        .map(|code| code.as_str())
}

/// Reads the client's credentials and authenticates them.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    source: Source,
) -> Result<AuthenticatedClient> {
    let credentials = client_credentials(headers, params)?;
    documents::ensure(state, credentials.client_id.as_str(), source.0)
        .await
        .map_err(|refusal| ApiError::from(Error::from(refusal)))?;
    authentication::authenticate(state, &credentials, source.0)
        .await
        .map_err(|error| ApiError {
            error,
            basic_challenge: credentials.method == AuthMethod::ClientSecretBasic,
        })
}

/// One `resource` at most (RFC 8707 allows several; one audience per token keeps tokens narrow).
fn resource(params: &Params) -> Result<Option<&str>> {
    params
        .get("resource")
        .map_err(|_| oauth(ErrorCode::InvalidTarget, "one resource per request").into())
}

/// The typed request of a `grant_type` and its parameters.
fn token_request(params: &Params) -> Result<TokenRequest<'_>> {
    let grant: GrantType = params
        .require("grant_type")?
        .parse()
        .map_err(|code| oauth(code, "grant_type is not supported"))?;
    Ok(match grant {
        GrantType::ClientCredentials => {
            TokenRequest::ClientCredentials(client_credentials::Request {
                scope: params.get("scope")?,
                resource: resource(params)?,
            })
        }
        GrantType::AuthorizationCode => {
            TokenRequest::AuthorizationCode(authorization_code::Request {
                code: params.require("code")?,
                redirect_uri: params.get("redirect_uri")?,
                code_verifier: params.get("code_verifier")?.ok_or_else(|| {
                    oauth(
                        ErrorCode::InvalidRequest,
                        "code_verifier is required (PKCE)",
                    )
                })?,
                resource: resource(params)?,
            })
        }
        GrantType::RefreshToken => TokenRequest::RefreshToken(refresh::Request {
            refresh_token: params.require("refresh_token")?,
            scope: params.get("scope")?,
            resource: resource(params)?,
        }),
        GrantType::TokenExchange => TokenRequest::TokenExchange(exchange_request(params)?),
        GrantType::DeviceCode => TokenRequest::DeviceCode(device_code::Request {
            device_code: params.require("device_code")?,
        }),
    })
}

/// RFC 8693 §2.1: the token types must be the access-token URN (the only tokens this server exchanges);
/// `audience` and `resource` may each repeat, together 1 to 10 values.
fn exchange_request(params: &Params) -> Result<token_exchange::Request<'_>> {
    let access_token_type = |name: &str| -> Result<()> {
        match params.get(name)? {
            Some(ACCESS_TOKEN_TYPE_URN) => Ok(()),
            Some(_) => Err(oauth(
                ErrorCode::InvalidRequest,
                format!("{name} must be {ACCESS_TOKEN_TYPE_URN}"),
            )
            .into()),
            None => Err(oauth(ErrorCode::InvalidRequest, format!("{name} is required")).into()),
        }
    };
    let subject_token = params.require("subject_token")?;
    access_token_type("subject_token_type")?;
    let actor_token = params.get("actor_token")?;
    match actor_token {
        Some(_) => access_token_type("actor_token_type")?,
        // §2.1: actor_token_type must not be sent without actor_token.
        None if params.has("actor_token_type") => {
            return Err(oauth(
                ErrorCode::InvalidRequest,
                "actor_token_type without actor_token",
            )
            .into());
        }
        None => {}
    }
    if params.get("requested_token_type")?.is_some() {
        access_token_type("requested_token_type")?;
    }
    let targets: Vec<&str> = params
        .pairs()
        .filter(|(name, value)| matches!(*name, "audience" | "resource") && !value.is_empty())
        .map(|(_, value)| value)
        .collect();
    if targets.is_empty() {
        return Err(oauth(
            ErrorCode::InvalidRequest,
            "an audience or resource is required",
        )
        .into());
    }
    Ok(token_exchange::Request {
        subject_token,
        actor_token,
        scope: params.get("scope")?,
        targets,
    })
}

async fn oauth2_token_post(
    State(state): State<AppState>,
    source: Source,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Response {
    let result = async {
        let request = token_request(&params)?;
        let caller = authenticate(&state, &headers, &params, source).await?;
        let proof = dpop_header(&headers)?;
        let response = grants::exchange(&state, &caller, request, proof).await?;
        Ok(no_store(Json(response)))
    }
    .await;
    with_dpop_nonce(&state, answer(&state, result))
}

/// RFC 9126 §2: a pushed authorization request, answered 201 with its `request_uri`.
async fn oauth2_par_post(
    State(state): State<AppState>,
    source: Source,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Response {
    let result = async {
        let caller = authenticate(&state, &headers, &params, source).await?;
        let proof = dpop_header(&headers)?.map(str::to_owned);
        let pushed =
            crate::authorize::par::push(&state, &caller, params, proof.as_deref(), source.0)
                .await?;
        Ok(no_store((StatusCode::CREATED, Json(pushed))))
    }
    .await;
    answer(&state, result)
}

/// RFC 8628 §3.1: a device asks for a device code and a user code.
async fn device_authorization_post(
    State(state): State<AppState>,
    source: Source,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Response {
    let result = async {
        let caller = authenticate(&state, &headers, &params, source).await?;
        let started = crate::authorize::device::start(
            &state,
            &caller.client,
            params.get("scope")?,
            resource(&params)?,
            source.0,
        )
        .await?;
        Ok(no_store(Json(started)))
    }
    .await;
    answer(&state, result)
}

/// The request's DPoP proof: at most one `DPoP` header (RFC 9449 §4.3 step 1), read by the platform's one
/// reader of it.
pub(super) fn dpop_header(headers: &HeaderMap) -> crate::error::Result<Option<&str>> {
    auth_bearer::dpop_header(headers).map_err(|error| match error {
        auth_bearer::BearerError::InvalidDpopProof(why) => invalid_proof(why),
        other => invalid_proof(other.to_string()),
    })
}

/// With `--dpop-nonce`, every token response carries the current nonce (RFC 9449 §8.2), so a client has the
/// next one before the one it holds expires.
fn with_dpop_nonce(state: &AppState, mut response: Response) -> Response {
    if let Some(nonces) = &state.dpop_nonces
        && !response.headers().contains_key("dpop-nonce")
        && let Ok(value) = HeaderValue::from_str(&nonces.current(state.clock.now()))
    {
        response.headers_mut().insert("dpop-nonce", value);
    }
    response
}

async fn oauth2_revoke_post(
    State(state): State<AppState>,
    source: Source,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Response {
    let result = async {
        let caller = authenticate(&state, &headers, &params, source).await?;
        let token = params.require("token")?;
        // token_type_hint is only a hint (RFC 7009 §2.1): both kinds are tried whatever it says.
        let _hint = params.get("token_type_hint")?;
        let proof = dpop_header(&headers)?;
        revocation::revoke(&state, &caller, token, proof).await?;
        Ok(no_store(StatusCode::OK))
    }
    .await;
    answer(&state, result)
}

async fn oauth2_introspect_post(
    State(state): State<AppState>,
    source: Source,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Response {
    let result = async {
        let caller = authenticate(&state, &headers, &params, source).await?;
        // RFC 7662 §2.1: authorization before anything about the token.
        introspection::may_introspect(&caller)?;
        let token = params.require("token")?;
        let _hint = params.get("token_type_hint")?;
        let response = introspection::introspect(&state, &caller, token).await?;
        Ok(no_store(Json(response)))
    }
    .await;
    answer(&state, result)
}
