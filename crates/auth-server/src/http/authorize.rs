//! `GET /authorize` and `POST /authorize` (RFC 6749 §4.1, RFC 7636, RFC 9207): validate the request, log the
//! user in, ask for consent, and redirect back with a code.
//!
//! Errors before the client and redirect URI are known to be good are shown as an HTML page, never
//! redirected (RFC 6749 §4.1.2.1: no open redirector); later errors go back to the client with `error`,
//! `state` and `iss`.

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use auth_core::pkce::{CodeChallenge, PkceError};
use auth_core::scope::ScopeSet;
use auth_core::secret::{OpaqueToken, SecretDigest, constant_time_eq};
use auth_core::wire::{ErrorCode, GrantType};
use axum::Router;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::form::{OAuthForm, Params};
use crate::grants::{self, GrantError};
use crate::state::{AppState, LOGIN_FAILURES_PER_ADDRESS, LOGIN_FAILURES_PER_USER};
use crate::store::{Authorization, ClientRecord};

/// Session cookie name.
pub const SESSION_COOKIE: &str = "auth_session";
/// CSRF cookie name (double-submit: the form carries the same value).
pub const CSRF_COOKIE: &str = "auth_csrf";

/// The authorization-request parameters carried through the login and consent forms.
const REQUEST_FIELDS: [&str; 8] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
];

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/authorize",
        get(oauth2_authorize_get).post(oauth2_authorize_post),
    )
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    action: &'a str,
    client_id: &'a str,
    fields: Vec<(&'static str, String)>,
    csrf_token: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    action: &'a str,
    client_id: &'a str,
    username: &'a str,
    scopes: Vec<&'a str>,
    audience: &'a str,
    fields: Vec<(&'static str, String)>,
    csrf_token: &'a str,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    message: &'a str,
}

/// RFC 9700 §4.16: pages must not be framed (clickjacking); they carry CSRF tokens, so no caching either.
fn html(status: StatusCode, body: Result<String, askama::Error>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "template rendering failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn error_page(status: StatusCode, message: &str) -> Response {
    html(status, ErrorPage { message }.render())
}

/// A validated authorization request.
struct ValidRequest {
    client: Arc<ClientRecord>,
    redirect_uri: String,
    scope: ScopeSet,
    state: Option<String>,
    challenge: CodeChallenge,
    audience: String,
    fields: Vec<(&'static str, String)>,
}

/// Why a request cannot go on.
enum Refusal {
    /// Shown to the user: the client or redirect URI is not trustworthy.
    Page(StatusCode, String),
    /// Sent back to the (verified) redirect URI.
    Redirect {
        redirect_uri: String,
        error: ErrorCode,
        description: String,
        state: Option<String>,
    },
    /// The store failed.
    Unavailable,
}

impl From<crate::store::StoreError> for Refusal {
    fn from(error: crate::store::StoreError) -> Self {
        tracing::error!(%error, "authorization request: storage unavailable");
        Self::Unavailable
    }
}

/// Appends query parameters to a redirect URI (keeping its own query).
fn redirect_to(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let location = match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut query = url.query_pairs_mut();
                for (name, value) in params {
                    query.append_pair(name, value);
                }
            }
            url.to_string()
        }
        Err(_) => return error_page(StatusCode::BAD_REQUEST, "the redirect URI is invalid"),
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn refusal_response(app: &AppState, refusal: Refusal) -> Response {
    match refusal {
        Refusal::Page(status, message) => error_page(status, &message),
        Refusal::Unavailable => error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is temporarily unavailable. Try again shortly.",
        ),
        Refusal::Redirect {
            redirect_uri,
            error,
            description,
            state,
        } => {
            metrics::counter!("auth_oauth_errors_total", "error" => error.as_str()).increment(1);
            let mut params = vec![
                ("error", error.as_str()),
                ("error_description", description.as_str()),
            ];
            if let Some(state) = state.as_deref() {
                params.push(("state", state));
            }
            // RFC 9207: the issuer in every authorization response, errors included.
            params.push(("iss", app.settings.issuer.as_str()));
            redirect_to(&redirect_uri, &params)
        }
    }
}

async fn validate(app: &AppState, params: &Params) -> Result<ValidRequest, Refusal> {
    let page = |message: &str| Refusal::Page(StatusCode::BAD_REQUEST, message.to_owned());
    let get = |name: &str| {
        params
            .get(name)
            .map_err(|_| page(&format!("The parameter {name} was given more than once.")))
    };
    let client_id = get("client_id")?.ok_or_else(|| page("The request names no client."))?;
    let client = app
        .clients
        .get(app.store.as_ref(), client_id)
        .await?
        .ok_or_else(|| page("The client is not registered."))?;
    // Exact string match against the registered form (RFC 9700 §4.1.3, §2.1).
    let redirect_uri = match get("redirect_uri")? {
        Some(uri)
            if client
                .redirect_uris
                .iter()
                .any(|registered| registered == uri) =>
        {
            uri.to_owned()
        }
        Some(_) => return Err(page("The redirect URI is not registered for this client.")),
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return Err(page("The request must name a redirect URI.")),
    };
    let state = get("state")?.map(str::to_owned);
    let redirect = |error: ErrorCode, description: &str| Refusal::Redirect {
        redirect_uri: redirect_uri.clone(),
        error,
        description: description.to_owned(),
        state: state.clone(),
    };
    // From here on the redirect URI is trusted; every error goes back to the client.
    let one = |name: &str| {
        params.get(name).map_err(|_| {
            redirect(
                ErrorCode::InvalidRequest,
                &format!("{name} was given more than once"),
            )
        })
    };
    match one("response_type")? {
        Some("code") => {}
        Some(_) => {
            return Err(redirect(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
        None => {
            return Err(redirect(
                ErrorCode::InvalidRequest,
                "response_type is required",
            ));
        }
    }
    if !client.allows(GrantType::AuthorizationCode) {
        return Err(redirect(
            ErrorCode::UnauthorizedClient,
            "the client may not use the authorization code grant",
        ));
    }
    let challenge_text = one("code_challenge")?.ok_or_else(|| {
        redirect(
            ErrorCode::InvalidRequest,
            "code_challenge is required (PKCE S256)",
        )
    })?;
    let challenge =
        CodeChallenge::parse(challenge_text, one("code_challenge_method")?).map_err(|error| {
            match error {
                PkceError::UnsupportedMethod => redirect(
                    ErrorCode::InvalidRequest,
                    "code_challenge_method must be S256",
                ),
                _ => redirect(ErrorCode::InvalidRequest, "code_challenge is malformed"),
            }
        })?;
    let scope = grants::resolve_scope(one("scope")?, &client.scope)
        .map_err(|error| grant_redirect(error, &redirect))?;
    let audience =
        grants::resolve_audience(&client, one("resource")?, &app.settings.default_audience)
            .map_err(|error| grant_redirect(error, &redirect))?;
    let mut fields = Vec::new();
    for name in REQUEST_FIELDS {
        if let Ok(Some(value)) = params.get(name) {
            fields.push((name, value.to_owned()));
        }
    }
    Ok(ValidRequest {
        client,
        redirect_uri,
        scope,
        state,
        challenge,
        audience,
        fields,
    })
}

fn grant_redirect(error: GrantError, redirect: &dyn Fn(ErrorCode, &str) -> Refusal) -> Refusal {
    match error {
        GrantError::OAuth { code, description } => redirect(code, &description),
        _ => Refusal::Unavailable,
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

fn set_cookie(response: &mut Response, app: &AppState, name: &str, value: &str, max_age: i64) {
    let secure = if app.settings.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    if let Ok(value) = HeaderValue::from_str(&text) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// The CSRF token of this browser, creating one when it has none.
fn csrf_token(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, CSRF_COOKIE) {
        Some(token) if token.len() == 43 => (token.to_owned(), false),
        _ => (OpaqueToken::generate().into_string(), true),
    }
}

/// The logged-in user, from the session cookie.
async fn session_user(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(String, String, i64)>, Refusal> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some((user_id, auth_time)) = app
        .store
        .find_session(&SecretDigest::of(token), app.clock.now())
        .await?
    else {
        return Ok(None);
    };
    let Some(user) = app.store.find_user(&user_id).await? else {
        return Ok(None);
    };
    Ok(Some((user.user_id, user.username, auth_time)))
}

fn action(app: &AppState) -> String {
    format!("{}/authorize", app.settings.base_url)
}

fn login_page(
    app: &AppState,
    request: &ValidRequest,
    csrf: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let action = action(app);
    html(
        status,
        LoginPage {
            action: &action,
            client_id: &request.client.client_id,
            fields: request.fields.clone(),
            csrf_token: csrf,
            error,
        }
        .render(),
    )
}

fn consent_page(app: &AppState, request: &ValidRequest, csrf: &str, username: &str) -> Response {
    let action = action(app);
    html(
        StatusCode::OK,
        ConsentPage {
            action: &action,
            client_id: &request.client.client_id,
            username,
            scopes: request.scope.iter().collect(),
            audience: &request.audience,
            fields: request.fields.clone(),
            csrf_token: csrf,
        }
        .render(),
    )
}

/// Issues the code and redirects with `code`, `state` and `iss`.
async fn approve(
    app: &AppState,
    request: &ValidRequest,
    user_id: &str,
    auth_time: i64,
) -> Response {
    let authorization = Authorization {
        family_id: uuid::Uuid::new_v4().to_string(),
        client_id: request.client.client_id.clone(),
        user_id: user_id.to_owned(),
        scope: request.scope.clone(),
        audience: request.audience.clone(),
        auth_time,
    };
    match grants::issue_code(
        app,
        authorization,
        &request.redirect_uri,
        &request.challenge,
    )
    .await
    {
        Ok(code) => {
            let mut params = vec![("code", code.as_str())];
            if let Some(state) = request.state.as_deref() {
                params.push(("state", state));
            }
            params.push(("iss", app.settings.issuer.as_str()));
            redirect_to(&request.redirect_uri, &params)
        }
        Err(error) => {
            tracing::error!(%error, "issuing an authorization code failed");
            refusal_response(app, Refusal::Unavailable)
        }
    }
}

fn with_csrf_cookie(mut response: Response, app: &AppState, csrf: &str, fresh: bool) -> Response {
    if fresh {
        set_cookie(
            &mut response,
            app,
            CSRF_COOKIE,
            csrf,
            app.settings.session_ttl,
        );
    }
    response
}

async fn oauth2_authorize_get(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let request = match validate(&app, &params).await {
        Ok(request) => request,
        Err(refusal) => return refusal_response(&app, refusal),
    };
    let (csrf, fresh) = csrf_token(&headers);
    let response = match session_user(&app, &headers).await {
        Err(refusal) => refusal_response(&app, refusal),
        Ok(Some((user_id, _, auth_time))) if request.client.skip_consent => {
            approve(&app, &request, &user_id, auth_time).await
        }
        Ok(Some((_, username, _))) => consent_page(&app, &request, &csrf, &username),
        Ok(None) => login_page(&app, &request, &csrf, None, StatusCode::OK),
    };
    with_csrf_cookie(response, &app, &csrf, fresh)
}

async fn oauth2_authorize_post(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Response {
    let request = match validate(&app, &params).await {
        Ok(request) => request,
        Err(refusal) => return refusal_response(&app, refusal),
    };
    // Double-submit CSRF check: the form must carry the value of this browser's CSRF cookie.
    let form_csrf = params.get("csrf_token").ok().flatten().unwrap_or_default();
    let cookie_csrf = cookie(&headers, CSRF_COOKIE).unwrap_or_default();
    if cookie_csrf.is_empty() || !constant_time_eq(form_csrf.as_bytes(), cookie_csrf.as_bytes()) {
        return error_page(
            StatusCode::FORBIDDEN,
            "The form has expired or did not come from this site. Start again from the application.",
        );
    }
    let csrf = cookie_csrf.to_owned();
    if params.has("username") || params.has("password") {
        return login(&app, &request, &params, &csrf, peer).await;
    }
    let user = match session_user(&app, &headers).await {
        Ok(user) => user,
        Err(refusal) => return refusal_response(&app, refusal),
    };
    let Some((user_id, _, auth_time)) = user else {
        return login_page(
            &app,
            &request,
            &csrf,
            Some("Your session has ended. Sign in again."),
            StatusCode::OK,
        );
    };
    match params.get("decision").ok().flatten() {
        Some("approve") => approve(&app, &request, &user_id, auth_time).await,
        Some("deny") => refusal_response(
            &app,
            Refusal::Redirect {
                redirect_uri: request.redirect_uri.clone(),
                error: ErrorCode::AccessDenied,
                description: "the user denied the request".into(),
                state: request.state.clone(),
            },
        ),
        _ => error_page(StatusCode::BAD_REQUEST, "The form is incomplete."),
    }
}

async fn login(
    app: &AppState,
    request: &ValidRequest,
    params: &Params,
    csrf: &str,
    peer: SocketAddr,
) -> Response {
    let username = params
        .get("username")
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_owned();
    let password = params
        .get("password")
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_owned();
    let now = app.clock.now();
    let user_key = format!("user:{username}");
    let address_key = format!("addr:{}", peer.ip());
    if app
        .throttle
        .check(&user_key, LOGIN_FAILURES_PER_USER, now)
        .and_then(|()| {
            app.throttle
                .check(&address_key, LOGIN_FAILURES_PER_ADDRESS, now)
        })
        .is_err()
    {
        metrics::counter!("auth_login_attempts_total", "result" => "throttled").increment(1);
        tracing::warn!(target: "audit", event = "login", user = %username, client_id = %request.client.client_id, source = %peer.ip(), outcome = "throttled", "login throttled");
        return login_page(
            app,
            request,
            csrf,
            Some("Too many failed attempts. Wait a minute and try again."),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let user = match app.store.find_user_by_username(&username).await {
        Ok(user) => user,
        Err(error) => return refusal_response(app, Refusal::from(error)),
    };
    // argon2 is CPU-heavy: run it on the blocking pool. An unknown user costs one dummy verification, so a
    // wrong username and a wrong password take the same time and get the same answer.
    let hasher = app.hasher.clone();
    let stored = user.as_ref().map(|user| user.password_hash.clone());
    let verified = tokio::task::spawn_blocking(move || match stored {
        Some(stored) => hasher.verify(&password, &stored).unwrap_or(false),
        None => hasher.verify_unknown_user(&password),
    })
    .await
    .unwrap_or(false);
    let Some(user) = user.filter(|_| verified) else {
        app.throttle.record_failure(&user_key, now);
        app.throttle.record_failure(&address_key, now);
        metrics::counter!("auth_login_attempts_total", "result" => "failure").increment(1);
        tracing::warn!(target: "audit", event = "login", user = %username, client_id = %request.client.client_id, source = %peer.ip(), outcome = "failure", "login failed");
        return login_page(
            app,
            request,
            csrf,
            Some("Invalid username or password."),
            StatusCode::OK,
        );
    };
    app.throttle.reset(&user_key);
    metrics::counter!("auth_login_attempts_total", "result" => "success").increment(1);
    tracing::info!(target: "audit", event = "login", user = %user.username, client_id = %request.client.client_id, source = %peer.ip(), outcome = "success", "login succeeded");
    let session = OpaqueToken::generate();
    if let Err(error) = app
        .store
        .create_session(
            &session.digest(),
            &user.user_id,
            now,
            now + app.settings.session_ttl,
        )
        .await
    {
        return refusal_response(app, Refusal::from(error));
    }
    let mut response = if request.client.skip_consent {
        approve(app, request, &user.user_id, now).await
    } else {
        consent_page(app, request, csrf, &user.username)
    };
    set_cookie(
        &mut response,
        app,
        SESSION_COOKIE,
        session.as_str(),
        app.settings.session_ttl,
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_several_headers_and_pairs() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; auth_csrf=xyz"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("auth_session=s"));
        assert_eq!(cookie(&headers, CSRF_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("s"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn redirects_keep_the_registered_query_and_escape_values() {
        let response = redirect_to(
            "http://app.example/cb?tenant=1",
            &[("code", "a b"), ("state", "x&y")],
        );
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            response.headers()[header::LOCATION],
            "http://app.example/cb?tenant=1&code=a+b&state=x%26y"
        );
    }

    #[test]
    fn pages_cannot_be_framed() {
        let response = error_page(StatusCode::BAD_REQUEST, "<script>alert(1)</script>");
        assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(
            response.headers()[header::CONTENT_SECURITY_POLICY],
            "frame-ancestors 'none'"
        );
    }
}
