//! The cookies of the login and consent pages (RFC 6265, RFC 9700 §4.7): the login session's and the
//! browser id the CSRF tokens are bound to. HttpOnly, SameSite=Lax, and, whenever the issuer is https,
//! Secure with the `__Host-` prefix (RFC 6265bis §4.1.3.2), so that no sibling host can plant or overwrite
//! them.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

use auth_core::secret::SecretDigest;

use crate::authorize::csrf::{self, Form};
use crate::error::Result;
use crate::params::Params;
use crate::state::AppState;

/// Names a browser's login session (`__Host-auth_session` on https).
const SESSION_COOKIE: &str = "auth_session";
/// Carries the browser id the CSRF tokens are bound to (`__Host-auth_csrf` on https).
const BROWSER_COOKIE: &str = "auth_csrf";

/// The name a cookie has for this issuer.
fn cookie_name(state: &AppState, name: &str) -> String {
    if state.settings.secure_cookies {
        format!("__Host-{name}")
    } else {
        name.to_owned()
    }
}

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

/// Adds a `Set-Cookie` for `name` (unprefixed; the prefix is added here).
fn set_cookie(response: &mut Response, state: &AppState, name: &str, value: &str, max_age: i64) {
    let secure = if state.settings.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let name = cookie_name(state, name);
    let text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    if let Ok(value) = HeaderValue::from_str(&text) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// The login session cookie the browser presents.
pub fn session_cookie<'a>(state: &AppState, headers: &'a HeaderMap) -> Option<&'a str> {
    cookie(headers, &cookie_name(state, SESSION_COOKIE))
}

/// Sets the cookie of a new login session.
pub fn set_session_cookie(response: &mut Response, state: &AppState, value: &str) {
    set_cookie(
        response,
        state,
        SESSION_COOKIE,
        value,
        state.settings.session_ttl,
    );
}

/// The CSRF state of one request: the browser id (new when the browser had none) and the session cookie
/// the tokens are bound to.
pub struct Csrf {
    browser: String,
    fresh: bool,
    session: Option<SecretDigest>,
}

impl Csrf {
    /// The browser's CSRF state, making a browser id when it has none (for pages that show a form).
    pub fn of_page(state: &AppState, headers: &HeaderMap) -> Result<Self> {
        let (browser, fresh) = match cookie(headers, &cookie_name(state, BROWSER_COOKIE)) {
            Some(id) if csrf::is_browser_id(id) => (id.to_owned(), false),
            _ => (csrf::new_browser_id()?, true),
        };
        Ok(Self {
            browser,
            fresh,
            session: session_cookie(state, headers).map(SecretDigest::of),
        })
    }

    /// The CSRF state of a form post, when its `csrf_token` is one the server issued for `form` to this
    /// browser for its current session cookie.
    pub fn of_post(
        state: &AppState,
        headers: &HeaderMap,
        params: &Params,
        form: Form<'_>,
    ) -> Option<Self> {
        let browser = cookie(headers, &cookie_name(state, BROWSER_COOKIE))?;
        let presented = params.get("csrf_token").ok().flatten()?;
        let session = session_cookie(state, headers).map(SecretDigest::of);
        csrf::verify(state, browser, session.as_ref(), form, presented).then(|| Self {
            browser: browser.to_owned(),
            fresh: false,
            session,
        })
    }

    /// The digest of the browser id: what a pushed request is bound to at its first use.
    pub fn browser_digest(&self) -> SecretDigest {
        SecretDigest::of(&self.browser)
    }

    /// The token of `form` for this response.
    pub fn token(&self, state: &AppState, form: Form<'_>) -> String {
        csrf::token(state, &self.browser, self.session.as_ref(), form)
    }

    /// Binds the tokens to a new login session: those issued before it are refused from now on.
    pub fn renew(&mut self, session_cookie: &str) {
        self.session = Some(SecretDigest::of(session_cookie));
    }

    /// Unbinds the tokens from the session that just ended (a sign-out): the next login form's token is
    /// the one for a browser without a session.
    pub fn end_session(&mut self) {
        self.session = None;
    }

    /// Sets the browser id cookie when it is new.
    pub fn set_cookie(&self, response: &mut Response, state: &AppState) {
        if self.fresh {
            set_cookie(
                response,
                state,
                BROWSER_COOKIE,
                &self.browser,
                state.settings.session_ttl,
            );
        }
    }
}

/// The digest of the browser id a request presents, when it is one the server could have made.
pub fn browser_digest(state: &AppState, headers: &HeaderMap) -> Option<SecretDigest> {
    cookie(headers, &cookie_name(state, BROWSER_COOKIE))
        .filter(|id| csrf::is_browser_id(id))
        .map(SecretDigest::of)
}

/// Clears the session cookie (sign-out).
pub fn clear_session_cookie(response: &mut Response, state: &AppState) {
    set_cookie(response, state, SESSION_COOKIE, "", 0);
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
        assert_eq!(cookie(&headers, BROWSER_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("s"));
        assert_eq!(cookie(&headers, "missing"), None);
    }
}
