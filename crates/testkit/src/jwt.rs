//! What the server put in a token, read without verification (the tests check the server's work).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

fn part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a JWT part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// The claims of a JWT.
pub fn claims(token: &str) -> Value {
    part(token, 1)
}

/// The JOSE header of a JWT.
pub fn header(token: &str) -> Value {
    part(token, 0)
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier = auth_core::pkce::generate_verifier();
    let challenge = auth_core::pkce::s256_challenge(&verifier);
    (verifier, challenge)
}
