//! `GET /.well-known/oauth-authorization-server` (RFC 8414), `GET /.well-known/openid-configuration`
//! (OpenID Connect Discovery 1.0: the same document, which carries both sets of members) and
//! `GET /jwks.json` (RFC 7517).

use auth_core::wire::{AuthorizationServerMetadata, GrantType};
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::clients::authentication::{AUTH_METHODS, AuthMethod};
use crate::config::JWKS_MAX_AGE_SECONDS;
use crate::state::AppState;

/// The well-known path (RFC 8414 §3).
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// The OpenID Connect Discovery path (Discovery §4: appended to the issuer, path included).
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";

/// The routes of this module. For an issuer with a path `/p`, the metadata is also served at
/// `/.well-known/oauth-authorization-server/p` (RFC 8414 §3.1).
pub fn router(issuer_path: Option<&str>) -> Router<AppState> {
    let mut router = Router::new()
        .route(METADATA_PATH, get(wellknown_metadata_get))
        .route(OPENID_CONFIGURATION_PATH, get(wellknown_metadata_get))
        .route("/jwks.json", get(wellknown_jwks_get));
    if let Some(path) = issuer_path {
        router = router.route(
            &format!("{METADATA_PATH}{path}"),
            get(wellknown_metadata_get),
        );
    }
    router
}

/// The metadata document of this server.
pub fn metadata(state: &AppState) -> AuthorizationServerMetadata {
    let base = &state.settings.base_url;
    let methods: Vec<String> = AUTH_METHODS
        .iter()
        .map(|method| method.as_str().to_owned())
        .collect();
    let confidential: Vec<String> = AUTH_METHODS
        .iter()
        .filter(|method| **method != AuthMethod::None)
        .map(|method| method.as_str().to_owned())
        .collect();
    // What clients may sign DPoP proofs and assertions with; Ed25519 under both names (RFC 9864).
    let assertion_algs: Vec<String> = auth_core::jose::ClientAlgorithm::ALL
        .iter()
        .map(|alg| alg.as_str().to_owned())
        .collect();
    AuthorizationServerMetadata {
        issuer: state.settings.issuer.clone(),
        authorization_endpoint: Some(format!("{base}/authorize")),
        token_endpoint: Some(format!("{base}/token")),
        jwks_uri: Some(format!("{base}/jwks.json")),
        // OpenID Connect's scopes, and every registered client's.
        scopes_supported: {
            let registered = state.supported_scopes();
            let mut scopes: Vec<String> = crate::tokens::openid::USER_SCOPES
                .iter()
                .map(|scope| (*scope).to_owned())
                .collect();
            scopes.extend(
                registered
                    .iter()
                    .filter(|scope| !crate::tokens::openid::USER_SCOPES.contains(scope))
                    .map(str::to_owned),
            );
            scopes
        },
        response_types_supported: vec!["code".into()],
        grant_types_supported: GrantType::ALL
            .iter()
            .map(|grant| grant.as_str().to_owned())
            .collect(),
        token_endpoint_auth_methods_supported: methods.clone(),
        token_endpoint_auth_signing_alg_values_supported: assertion_algs.clone(),
        revocation_endpoint_auth_signing_alg_values_supported: assertion_algs.clone(),
        introspection_endpoint_auth_signing_alg_values_supported: assertion_algs.clone(),
        revocation_endpoint: Some(format!("{base}/revoke")),
        revocation_endpoint_auth_methods_supported: methods,
        introspection_endpoint: Some(format!("{base}/introspect")),
        registration_endpoint: (state.settings.registration
            != crate::clients::policy::RegistrationPolicy::Off)
            .then(|| format!("{base}/register")),
        client_id_metadata_document_supported: state.settings.client_id_metadata_documents,
        pushed_authorization_request_endpoint: Some(format!("{base}/par")),
        device_authorization_endpoint: Some(format!("{base}/device_authorization")),
        backchannel_logout_supported: true,
        backchannel_logout_session_supported: true,
        require_pushed_authorization_requests: false,
        introspection_endpoint_auth_methods_supported: confidential,
        code_challenge_methods_supported: vec!["S256".into()],
        authorization_response_iss_parameter_supported: true,
        userinfo_endpoint: Some(format!("{base}/userinfo")),
        end_session_endpoint: Some(format!("{base}/logout")),
        subject_types_supported: vec!["public".into()],
        // RFC 9449 §5.1; Ed25519 under both of its names (RFC 9864).
        dpop_signing_alg_values_supported: assertion_algs,
        // What a client may register as its id_token_signed_response_alg, RS256 first: Discovery §3 requires
        // it, and a client that registers nothing gets it.
        id_token_signing_alg_values_supported: crate::tokens::openid::ID_TOKEN_ALGORITHMS
            .iter()
            .map(|alg| alg.as_str().to_owned())
            .collect(),
        claims_supported: crate::tokens::openid::CLAIMS_SUPPORTED
            .iter()
            .map(|claim| (*claim).to_owned())
            .collect(),
        response_modes_supported: vec!["query".into()],
        request_parameter_supported: Some(false),
        request_uri_parameter_supported: Some(false),
    }
}

async fn wellknown_metadata_get(
    State(state): State<AppState>,
) -> Json<AuthorizationServerMetadata> {
    Json(metadata(&state))
}

async fn wellknown_jwks_get(State(state): State<AppState>) -> Response {
    let snapshot = state.keys.snapshot();
    let mut response = (
        [(header::CONTENT_TYPE, "application/json")],
        snapshot.jwks_json.clone(),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("public, max-age={JWKS_MAX_AGE_SECONDS}")) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}
