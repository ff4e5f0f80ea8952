//! The cookies of the login and consent pages: the session cookie and the CSRF token's (RFC 6265, RFC 9700
//! §4.7): HttpOnly, SameSite=Lax, Secure whenever the issuer is https.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

use auth_core::secret::{OpaqueToken, constant_time_eq};

use crate::params::Params;
use crate::state::AppState;

/// Names a browser's login session.
pub const SESSION_COOKIE: &str = "auth_session";
/// Carries the CSRF token (double-submit: the form carries the same value).
pub const CSRF_COOKIE: &str = "auth_csrf";

/// The value of cookie `name`, among every Cookie header and pair.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Adds a `Set-Cookie` for `name`.
pub fn set_cookie(
    response: &mut Response,
    state: &AppState,
    name: &str,
    value: &str,
    max_age: i64,
) {
    let secure = if state.settings.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    if let Ok(value) = HeaderValue::from_str(&text) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// The CSRF token of this browser, and whether it is new (then it must be set as a cookie).
pub fn csrf_token(headers: &HeaderMap) -> (String, bool) {
    match cookie(headers, CSRF_COOKIE) {
        Some(token) if token.len() == 43 => (token.to_owned(), false),
        _ => (OpaqueToken::generate().into_string(), true),
    }
}

/// The CSRF token of a form post, when the form carries this browser's CSRF cookie value.
pub fn checked_csrf_token(headers: &HeaderMap, params: &Params) -> Option<String> {
    let form = params.get("csrf_token").ok().flatten().unwrap_or_default();
    let cookie = cookie(headers, CSRF_COOKIE).unwrap_or_default();
    (!cookie.is_empty() && constant_time_eq(form.as_bytes(), cookie.as_bytes()))
        .then(|| cookie.to_owned())
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
}
