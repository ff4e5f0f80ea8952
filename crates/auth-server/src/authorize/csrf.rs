//! The CSRF tokens of the login, consent and logout forms (RFC 9700 §4.7). The server issues them: a token
//! is the MAC (under a secret every replica shares) of the browser's own random id, kept in a cookie before
//! any login, of its login session once it has one, and of the form it is for. So a value the server never
//! issued does not verify, a token taken from another browser does not match this one's cookie, and the
//! token changes at login: the pre-login one is refused afterwards. A consent form's token also covers the
//! authorization request it shows, so a consent can only be given to the request the server displayed,
//! after the checks it passed (`prompt`, `max_age`). Nothing is stored per visitor.

use auth_core::secret::{OpaqueToken, SecretDigest};

use crate::state::AppState;

/// A browser id as the server makes them: 43 base64url characters. Anything else in the cookie is replaced.
pub fn is_browser_id(text: &str) -> bool {
    text.len() == 43
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// A new browser id (256 random bits).
pub fn new_browser_id() -> crate::error::Result<String> {
    Ok(OpaqueToken::try_generate()?.into_string())
}

/// The binding of a live login session: the digest of its cookie.
fn binding(session: Option<&SecretDigest>) -> Vec<u8> {
    session
        .map(|digest| digest.as_bytes().to_vec())
        .unwrap_or_default()
}

/// Which form a token is for.
#[derive(Debug, Clone, Copy)]
pub enum Form<'a> {
    /// The login form (any authorization request: the request is validated again when posted).
    Login,
    /// The consent form of the authorization request with this fingerprint.
    Consent(&'a SecretDigest),
    /// The logout confirmation.
    Logout,
    /// The device page's form for entering a user code (RFC 8628 §3.3).
    Device,
    /// The device consent form for the user code with this fingerprint.
    DeviceConsent(&'a SecretDigest),
}

impl Form<'_> {
    fn parts(&self) -> (&'static [u8], &[u8]) {
        match self {
            Self::Login => (b"login", b""),
            Self::Consent(request) => (b"consent", request.as_bytes()),
            Self::Logout => (b"logout", b""),
            Self::Device => (b"device", b""),
            Self::DeviceConsent(code) => (b"device-consent", code.as_bytes()),
        }
    }
}

/// The token of `form` shown to `browser`, with `session` its login session cookie's digest, if any.
pub fn token(
    state: &AppState,
    browser: &str,
    session: Option<&SecretDigest>,
    form: Form<'_>,
) -> String {
    let (kind, bound) = form.parts();
    state
        .secrets
        .csrf
        .tag(&[b"csrf", browser.as_bytes(), &binding(session), kind, bound])
}

/// Did the server issue `presented` for `form` to `browser` with this `session`?
pub fn verify(
    state: &AppState,
    browser: &str,
    session: Option<&SecretDigest>,
    form: Form<'_>,
    presented: &str,
) -> bool {
    let (kind, bound) = form.parts();
    is_browser_id(browser)
        && state.secrets.csrf.verify(
            &[b"csrf", browser.as_bytes(), &binding(session), kind, bound],
            presented,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_ids_are_43_base64url_characters() {
        assert!(is_browser_id(&new_browser_id().unwrap()));
        assert!(!is_browser_id("short"));
        assert!(!is_browser_id(&"=".repeat(43)));
        assert!(!is_browser_id(&"é".repeat(22)));
    }
}
