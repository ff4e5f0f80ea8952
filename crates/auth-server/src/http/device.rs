//! `GET` and `POST /device` (RFC 8628 §3.3): the user enters the code their device shows, signs in (the
//! same sign-in as /authorize, with its throttles and password-check gate), and approves or denies on a
//! consent page that is always shown. Every form carries a CSRF token; the consent form's covers the code it
//! answers. The domain is `authorize::device`.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;

use super::cookies::{Csrf, clear_session_cookie, session_cookie, set_session_cookie};
use super::form::OAuthForm;
use super::outcome::failure;
use super::pages::{
    device_consent_page, device_done_page, device_login_page, device_page, error_page,
    with_retry_after,
};
use super::source::Source;
use crate::authorize::csrf::Form;
use crate::authorize::device::{self, Lookup};
use crate::authorize::login::{self, SignIn};
use crate::params::Params;
use crate::state::AppState;
use crate::store::{ClientRecord, DeviceAuthorizationRecord};

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/device", get(device_get).post(device_post))
}

fn forged() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "The form has expired or did not come from this site. Open the device page again.",
    )
}

/// `GET /device`, optionally `?user_code=` (from `verification_uri_complete`): the form, filled in, never
/// submitted by itself (the user must see and confirm the code).
async fn device_get(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    let typed = params.get("user_code").ok().flatten().unwrap_or_default();
    // Shown back only as far as it could be a code.
    let prefill = device::normalize(typed)
        .map(|code| device::display(&code))
        .unwrap_or_default();
    let csrf = match Csrf::of_page(&state, &headers) {
        Ok(csrf) => csrf,
        Err(error) => return failure(&error),
    };
    let mut response = device_page(
        &state,
        &csrf.token(&state, Form::Device),
        &prefill,
        None,
        StatusCode::OK,
    );
    csrf.set_cookie(&mut response, &state);
    response
}

/// A typed code that found nothing: the form again (400), or the 429 page once this source failed too often.
fn not_found(state: &AppState, csrf: &Csrf, lookup: Lookup) -> Response {
    match lookup {
        Lookup::Throttled { retry_after } => with_retry_after(
            device_page(
                state,
                &csrf.token(state, Form::Device),
                "",
                Some("Too many wrong codes. Wait a minute and try again."),
                StatusCode::TOO_MANY_REQUESTS,
            ),
            retry_after,
        ),
        _ => device_page(
            state,
            &csrf.token(state, Form::Device),
            "",
            Some(
                "That code is not valid, has expired or was already used. Check the code on your device.",
            ),
            StatusCode::BAD_REQUEST,
        ),
    }
}

/// The consent page for a pending code, or the login form when the browser has no session.
async fn consent_or_login(
    state: &AppState,
    headers: &HeaderMap,
    csrf: &Csrf,
    record: &DeviceAuthorizationRecord,
    client: &ClientRecord,
) -> Response {
    match login::current_session(state, session_cookie(state, headers)).await {
        Ok(Some(session)) => device_consent_page(
            state,
            client,
            record,
            &csrf.token(
                state,
                Form::DeviceConsent(&device::fingerprint(&record.user_code)),
            ),
            &session.username,
        ),
        Ok(None) => device_login_page(
            state,
            client,
            &record.user_code,
            &csrf.token(state, Form::Login),
            None,
            StatusCode::OK,
            "",
        ),
        Err(error) => failure(&error),
    }
}

async fn device_post(
    State(state): State<AppState>,
    source: Source,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Response {
    let field = |name| params.get(name).ok().flatten().unwrap_or_default();
    let typed = field("user_code");
    let form = if params.has("username") || params.has("password") {
        Form::Login
    } else if params.has("decision") {
        let Some(code) = device::normalize(typed) else {
            return forged();
        };
        return decide(&state, &headers, &params, source, &code).await;
    } else {
        Form::Device
    };
    let Some(mut csrf) = Csrf::of_post(&state, &headers, &params, form) else {
        return forged();
    };
    let (record, client) = match device::lookup(&state, typed, source.0).await {
        Ok(Lookup::Pending { record, client }) => (record, client),
        Ok(other) => return not_found(&state, &csrf, other),
        Err(error) => return failure(&error),
    };
    if matches!(form, Form::Device) {
        return consent_or_login(&state, &headers, &csrf, &record, &client).await;
    }
    // The login form's answer.
    let attempt = login::sign_in(
        &state,
        field("username"),
        field("password"),
        source.0,
        client.client_id.as_str(),
    )
    .await;
    let again = |csrf: &Csrf, message: &str, status: StatusCode| {
        device_login_page(
            &state,
            &client,
            &record.user_code,
            &csrf.token(&state, Form::Login),
            Some(message),
            status,
            field("username"),
        )
    };
    match attempt {
        Ok(SignIn::SignedIn { session, cookie }) => {
            csrf.renew(cookie.as_str());
            let mut response = device_consent_page(
                &state,
                &client,
                &record,
                &csrf.token(
                    &state,
                    Form::DeviceConsent(&device::fingerprint(&record.user_code)),
                ),
                &session.username,
            );
            set_session_cookie(&mut response, &state, cookie.as_str());
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

/// The consent form's answer: approve, deny, or sign out to switch accounts.
async fn decide(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    source: Source,
    code: &str,
) -> Response {
    let fingerprint = device::fingerprint(code);
    let Some(mut csrf) = Csrf::of_post(state, headers, params, Form::DeviceConsent(&fingerprint))
    else {
        return forged();
    };
    let (record, client) = match device::lookup(state, code, source.0).await {
        Ok(Lookup::Pending { record, client }) => (record, client),
        Ok(other) => return not_found(state, &csrf, other),
        Err(error) => return failure(&error),
    };
    let decision = params.get("decision").ok().flatten();
    if decision == Some("switch") {
        if let Some(cookie) = session_cookie(state, headers)
            && let Err(error) = login::end_session(state, cookie).await
        {
            return failure(&error);
        }
        csrf.end_session();
        let mut response = device_login_page(
            state,
            &client,
            &record.user_code,
            &csrf.token(state, Form::Login),
            None,
            StatusCode::OK,
            "",
        );
        clear_session_cookie(&mut response, state);
        return response;
    }
    let session = match login::current_session(state, session_cookie(state, headers)).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            return device_login_page(
                state,
                &client,
                &record.user_code,
                &csrf.token(state, Form::Login),
                Some("Your session has ended. Sign in again."),
                StatusCode::OK,
                "",
            );
        }
        Err(error) => return failure(&error),
    };
    let answered = match decision {
        Some("approve") => device::approve(state, &record, &session)
            .await
            .map(|done| (done, true)),
        Some("deny") => device::deny(state, &record).await.map(|done| (done, false)),
        _ => return error_page(StatusCode::BAD_REQUEST, "The form is incomplete."),
    };
    match answered {
        Ok((true, approved)) => device_done_page(&client, approved),
        Ok((false, _)) => error_page(
            StatusCode::BAD_REQUEST,
            "This code was already answered or has expired. Start again on your device.",
        ),
        Err(error) => failure(&error),
    }
}
