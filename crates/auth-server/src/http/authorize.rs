//! `GET /authorize` and `POST /authorize` (RFC 6749 §4.1.1, §4.1.2; OpenID Connect Core §3.1.2): map the
//! domain's decisions (`crate::authorization`, `crate::authorize::login`) to pages, cookies and redirects.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;

use super::cookies::{
    Csrf, browser_digest, clear_session_cookie, session_cookie, set_session_cookie,
};
use super::form::OAuthForm;
use super::outcome::{failure, redirect, refusal};
use super::pages::{consent_page, error_page, login_page, with_retry_after};
use super::source::Source;
use crate::authorize::csrf::Form;
use crate::authorize::decision::{self, Next, SignedIn};
use crate::authorize::login::{self, Session, SignIn};
use crate::authorize::request::{self, AuthorizationRequest};
use crate::clients::documents::{self, DocumentRefusal};
use crate::error::Error;
use crate::params::Params;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/authorize",
        get(oauth2_authorize_get).post(oauth2_authorize_post),
    )
}

/// The page for the next step of a valid request, its form carrying the token for that form.
fn next_page(
    state: &AppState,
    request: &AuthorizationRequest,
    next: Result<Next, Error>,
    csrf: &Csrf,
) -> Response {
    match next {
        Ok(Next::SignIn) => login_page(
            state,
            request,
            &csrf.token(state, Form::Login),
            None,
            StatusCode::OK,
            request.login_hint.as_deref().unwrap_or_default(),
        ),
        Ok(Next::Consent(session)) => consent_page(
            state,
            request,
            &csrf.token(state, Form::Consent(&request.fingerprint())),
            &session.username,
        ),
        Ok(Next::Redirect(to)) => redirect(&to),
        Ok(Next::Refused(refused)) => refusal(state, refused),
        Err(error) => failure(&error),
    }
}

async fn oauth2_authorize_get(
    State(state): State<AppState>,
    source: Source,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    authorization_request(&state, &params, &headers, source).await
}

/// A client named by its metadata document is fetched (or refreshed) before the request is read: the page
/// that says why when it cannot be used (never a redirect: the redirect URI is not known to be its own).
async fn client_document(state: &AppState, params: &Params, source: Source) -> Option<Response> {
    let Ok(Some(client_id)) = params.get("client_id") else {
        return None;
    };
    match documents::ensure(state, client_id, source.0).await {
        Ok(()) => None,
        Err(DocumentRefusal::Busy { retry_after }) => Some(with_retry_after(
            error_page(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many applications are being looked up right now. Try again in a moment.",
            ),
            retry_after,
        )),
        Err(refusal @ DocumentRefusal::Unusable(_)) => {
            Some(error_page(StatusCode::BAD_REQUEST, &format!("{refusal}.")))
        }
        Err(DocumentRefusal::Store(error)) => Some(failure(&Error::Store(error))),
    }
}

/// An authorization request, from the query of a GET or the form of a POST (Core §3.1.2.1: both MUST be
/// supported): the page of its next step, or where it ends.
async fn authorization_request(
    state: &AppState,
    params: &Params,
    headers: &HeaderMap,
    source: Source,
) -> Response {
    if let Some(refused) = client_document(state, params, source).await {
        return refused;
    }
    let csrf = match Csrf::of_page(state, headers) {
        Ok(csrf) => csrf,
        Err(error) => return failure(&error),
    };
    let request = match request::validate(state, params, Some(&csrf.browser_digest())).await {
        Ok(request) => request,
        Err(error) => {
            let mut response = refusal(state, error);
            csrf.set_cookie(&mut response, state);
            return response;
        }
    };
    let next = match login::current_session(state, session_cookie(state, headers)).await {
        Ok(session) => decision::next_step(state, &request, session, SignedIn::Earlier).await,
        Err(error) => Err(error),
    };
    let mut response = next_page(state, &request, next, &csrf);
    csrf.set_cookie(&mut response, state);
    response
}

/// The page of a form post that does not come from this site's own form.
fn forged() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "The form has expired or did not come from this site. Start again from the application.",
    )
}

async fn oauth2_authorize_post(
    State(state): State<AppState>,
    source: Source,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Response {
    // Only this server's own forms carry a CSRF token: any other post is an authorization request made
    // by POST, answered exactly as the GET would be (its pages then carry their own tokens).
    if !params.has("csrf_token") {
        return authorization_request(&state, &params, &headers, source).await;
    }
    if let Some(refused) = client_document(&state, &params, source).await {
        return refused;
    }
    let browser = browser_digest(&state, &headers);
    let request = match request::validate(&state, &params, browser.as_ref()).await {
        Ok(request) => request,
        Err(error) => return refusal(&state, error),
    };
    if params.has("username") || params.has("password") {
        let Some(csrf) = Csrf::of_post(&state, &headers, &params, Form::Login) else {
            return forged();
        };
        return sign_in(&state, &request, &params, csrf, source).await;
    }
    // A consent answers exactly the request its page showed (after the checks that page passed).
    let fingerprint = request.fingerprint();
    let Some(csrf) = Csrf::of_post(&state, &headers, &params, Form::Consent(&fingerprint)) else {
        return forged();
    };
    if params.get("decision").ok().flatten() == Some("switch") {
        return switch_account(&state, &request, &headers, csrf).await;
    }
    let session = match login::current_session(&state, session_cookie(&state, &headers)).await {
        Ok(session) => session,
        Err(error) => return failure(&error),
    };
    let Some(session) = session else {
        return login_page(
            &state,
            &request,
            &csrf.token(&state, Form::Login),
            Some("Your session has ended. Sign in again."),
            StatusCode::OK,
            "",
        );
    };
    decide(&state, &request, &params, &session).await
}

/// "Not you? Sign out" on the consent page: ends the session and shows the login form for the same request.
async fn switch_account(
    state: &AppState,
    request: &AuthorizationRequest,
    headers: &HeaderMap,
    mut csrf: Csrf,
) -> Response {
    if let Some(cookie) = session_cookie(state, headers) {
        match login::end_session(state, cookie).await {
            Ok(ended) => {
                tracing::info!(target: "audit", event = "logout", client_id = request.client().client_id.as_str(), sessions_ended = u8::from(ended), outcome = "switch_account", "signed out from the consent page");
            }
            Err(error) => return failure(&error),
        }
    }
    csrf.end_session();
    let mut response = login_page(
        state,
        request,
        &csrf.token(state, Form::Login),
        None,
        StatusCode::OK,
        "",
    );
    clear_session_cookie(&mut response, state);
    response
}

/// The consent form's answer.
async fn decide(
    state: &AppState,
    request: &AuthorizationRequest,
    params: &Params,
    session: &Session,
) -> Response {
    match params.get("decision").ok().flatten() {
        Some("approve") => match decision::approve_and_remember(state, request, session).await {
            Ok(Some(to)) => redirect(&to),
            // A pushed request whose request_uri was used meanwhile (RFC 9126 §4).
            Ok(None) => error_page(
                StatusCode::BAD_REQUEST,
                "This authorization request was already answered. Start again from the application.",
            ),
            Err(error) => failure(&error),
        },
        Some("deny") => refusal(state, decision::deny(state, request).await),
        _ => error_page(StatusCode::BAD_REQUEST, "The form is incomplete."),
    }
}

/// The login form's answer.
async fn sign_in(
    state: &AppState,
    request: &AuthorizationRequest,
    params: &Params,
    mut csrf: Csrf,
    source: Source,
) -> Response {
    let field = |name| params.get(name).ok().flatten().unwrap_or_default();
    let attempt = login::sign_in(
        state,
        field("username"),
        field("password"),
        source.0,
        request.client().client_id.as_str(),
    )
    .await;
    let again = |csrf: &Csrf, message: &str, status: StatusCode| {
        login_page(
            state,
            request,
            &csrf.token(state, Form::Login),
            Some(message),
            status,
            field("username"),
        )
    };
    match attempt {
        Ok(SignIn::SignedIn { session, cookie }) => {
            // The consent form carries a token bound to the new session: the pre-login one dies here.
            csrf.renew(cookie.as_str());
            let next = decision::next_step(state, request, Some(session), SignedIn::JustNow).await;
            let mut response = next_page(state, request, next, &csrf);
            set_session_cookie(&mut response, state, cookie.as_str());
            response
        }
        Ok(SignIn::Rejected) => again(&csrf, "Invalid username or password.", StatusCode::OK),
        Ok(SignIn::Throttled { retry_after }) => with_retry_after(
            again(
                &csrf,
                "Too many failed attempts. Wait a minute and try again.",
                StatusCode::TOO_MANY_REQUESTS,
            ),
            retry_after,
        ),
        // The one 5xx client traffic may cause: every password-check slot stayed busy for 2 s.
        Ok(SignIn::Busy) => with_retry_after(
            again(
                &csrf,
                "The service is busy. Try again in a moment.",
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            1,
        ),
        Err(error) => failure(&error),
    }
}
