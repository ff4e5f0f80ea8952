//! The HTML the authorization endpoint shows (login, consent, error) and the headers every page carries:
//! no framing (RFC 9700 §4.16), no caching (pages carry CSRF tokens), no referrer.

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::authorization::{AuthorizationRequest, Redirect};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    action: &'a str,
    client_id: &'a str,
    fields: &'a [(&'static str, String)],
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
    fields: &'a [(&'static str, String)],
    csrf_token: &'a str,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    message: &'a str,
}

/// A page with the security headers.
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

/// Where the forms post.
fn action(state: &AppState) -> String {
    format!("{}/authorize", state.settings.base_url)
}

/// An error page; `message` is our own text, escaped all the same.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    html(status, ErrorPage { message }.render())
}

/// The login form for `request`, with an optional message.
pub fn login_page(
    state: &AppState,
    request: &AuthorizationRequest,
    csrf_token: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let action = action(state);
    html(
        status,
        LoginPage {
            action: &action,
            client_id: &request.client.client_id,
            fields: &request.fields,
            csrf_token,
            error,
        }
        .render(),
    )
}

/// The consent form for `request`, shown to `username`.
pub fn consent_page(
    state: &AppState,
    request: &AuthorizationRequest,
    csrf_token: &str,
    username: &str,
) -> Response {
    let action = action(state);
    html(
        StatusCode::OK,
        ConsentPage {
            action: &action,
            client_id: &request.client.client_id,
            username,
            scopes: request.scope.iter().collect(),
            audience: &request.audience,
            fields: &request.fields,
            csrf_token,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    action: &'a str,
    client_id: Option<&'a str>,
    fields: &'a [(&'static str, String)],
    csrf_token: &'a str,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage;

/// The logout confirmation (RP-Initiated Logout §2: a request without a valid `id_token_hint`).
pub fn logout_page(
    state: &AppState,
    client_id: Option<&str>,
    fields: &[(&'static str, String)],
    csrf_token: &str,
) -> Response {
    let action = format!("{}/logout", state.settings.base_url);
    html(
        StatusCode::OK,
        LogoutPage {
            action: &action,
            client_id,
            fields,
            csrf_token,
        }
        .render(),
    )
}

/// After a logout without a post-logout redirect URI.
pub fn signed_out_page() -> Response {
    html(StatusCode::OK, SignedOutPage.render())
}

/// A 303 to an authorization response (RFC 6749 §4.1.2), never cached.
pub fn redirect(redirect: &Redirect) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(&redirect.location) {
        Ok(location) => {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Err(_) => return error_page(StatusCode::BAD_REQUEST, "The redirect URI is invalid."),
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cannot_be_framed_and_escape_what_they_show() {
        let response = error_page(StatusCode::BAD_REQUEST, "<script>alert(1)</script>");
        assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
        assert!(
            response.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
    }

    #[test]
    fn redirects_are_303_and_not_cached() {
        let response = redirect(&Redirect {
            location: "http://app.example/cb?code=c".into(),
        });
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            response.headers()[header::LOCATION],
            "http://app.example/cb?code=c"
        );
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    }
}
