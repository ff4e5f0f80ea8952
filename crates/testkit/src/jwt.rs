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

/// Verifies an RS256 JWT with RustCrypto's `rsa` (not the server's aws-lc-rs) against the RSA key of `jwks`
/// that its header's `kid` names, and returns its header and claims. `None` when no key matches or the
/// signature is wrong: a relying party's own check, independent of the server's code.
pub fn verify_rs256(token: &str, jwks: &Value) -> Option<(Value, Value)> {
    let header = header(token);
    if header["alg"] != "RS256" {
        return None;
    }
    let key = jwks["keys"]
        .as_array()?
        .iter()
        .find(|key| key["kid"] == header["kid"] && key["kty"] == "RSA")?;
    let number = |member: &str| -> Option<rsa::BoxedUint> {
        let bytes = URL_SAFE_NO_PAD.decode(key[member].as_str()?).ok()?;
        let bits = u32::try_from(bytes.len() * 8).ok()?;
        rsa::BoxedUint::from_be_slice(&bytes, bits).ok()
    };
    let public = rsa::PublicKey::new(number("n")?, number("e")?).ok()?;
    let (signed, signature) = token.rsplit_once('.')?;
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    public
        .pkcs1v15_verify::<sha2::Sha256>(signed.as_bytes(), &signature)
        .ok()?;
    Some((header, claims(token)))
}
