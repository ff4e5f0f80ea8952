//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OpenID Connect Core §9): a JWT the client
//! signs with one of its registered keys. The `jti` single-use check needs shared state and is the caller's.

use serde_json::Value;

use crate::jose::{ClientJws, ClientKey, JwsError};

/// `client_assertion_type` of a JWT assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How far ahead an assertion's `exp` may be, in seconds: assertions are meant to be short-lived.
pub const MAX_LIFETIME: i64 = 300;

/// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY: i64 = 60;

/// The most keys tried for an assertion without a `kid` (a registered JWKS rarely has more than two).
pub const MAX_KEYS_TRIED: usize = 8;

/// What an assertion must say.
#[derive(Debug, Clone, Copy)]
pub struct AssertionContext<'a> {
    /// The client it authenticates (`iss` = `sub`).
    pub client_id: &'a str,
    /// The audiences that name this server here: the issuer and the endpoint's URL.
    pub audiences: &'a [&'a str],
    /// Now, in seconds since the epoch.
    pub now: i64,
}

/// An assertion that passed every check but the `jti` replay check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// Its `jti`, to be recorded as used until `exp`.
    pub jti: String,
    /// Its `exp`.
    pub exp: i64,
}

/// Why an assertion was refused: all `invalid_client` to the client (RFC 7523 §3.2); the text is for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// The JWS: malformed, unsupported `alg`, or no registered key verifies it.
    #[error("{0}")]
    Jws(#[from] JwsError),
    /// `iss` or `sub` is not the client.
    #[error("iss and sub must both be the client_id")]
    Subject,
    /// `aud` names nothing of ours.
    #[error("aud must name this server")]
    Audience,
    /// `exp` missing, past, or too far ahead; `nbf`/`iat` in the future.
    #[error("the assertion is expired, not yet valid or too long-lived")]
    Lifetime,
    /// No usable `jti`.
    #[error("the assertion lacks a jti")]
    Jti,
}

/// The `sub` an assertion claims, read without verifying anything: how a client that sent no `client_id`
/// is found (RFC 7521 §4.2). Whatever it says is checked by [`verify_assertion`] afterwards.
pub fn claimed_client_id(assertion: &str) -> Option<String> {
    let jws = ClientJws::parse(assertion, None).ok()?;
    jws.claim_str("sub").map(str::to_owned)
}

/// Verifies an assertion against the client's registered keys.
pub fn verify_assertion(
    assertion: &str,
    keys: &[ClientKey],
    context: &AssertionContext<'_>,
) -> Result<VerifiedAssertion, AssertionError> {
    let jws = ClientJws::parse(assertion, None)?;
    // A JWT whose typ says it is something else (an access token, a DPoP proof) is not an assertion.
    if let Some(typ) = jws.header_str("typ")
        && !crate::typ::is_type(typ, "JWT")
    {
        return Err(JwsError::WrongType.into());
    }
    let candidates = keys.iter().filter(|key| key.fits(jws.alg));
    let verified = match jws.header_str("kid") {
        Some(kid) => candidates
            .filter(|key| key.kid() == Some(kid))
            .any(|key| jws.verify_with(key).is_ok()),
        None => candidates
            .take(MAX_KEYS_TRIED)
            .any(|key| jws.verify_with(key).is_ok()),
    };
    if !verified {
        return Err(JwsError::InvalidSignature.into());
    }
    if jws.claim_str("iss") != Some(context.client_id)
        || jws.claim_str("sub") != Some(context.client_id)
    {
        return Err(AssertionError::Subject);
    }
    let names_us = |value: &Value| {
        value
            .as_str()
            .is_some_and(|aud| context.audiences.contains(&aud))
    };
    let audience_ok = match jws.payload.get("aud") {
        Some(Value::Array(values)) => values.iter().any(names_us),
        Some(value) => names_us(value),
        None => false,
    };
    if !audience_ok {
        return Err(AssertionError::Audience);
    }
    let now = context.now;
    let exp = jws.claim_time("exp").ok_or(AssertionError::Lifetime)?;
    if exp.saturating_add(LEEWAY) <= now || exp > now.saturating_add(MAX_LIFETIME + LEEWAY) {
        return Err(AssertionError::Lifetime);
    }
    for claim in ["nbf", "iat"] {
        if jws.payload.contains_key(claim)
            && jws
                .claim_time(claim)
                .is_none_or(|time| time > now.saturating_add(LEEWAY))
        {
            return Err(AssertionError::Lifetime);
        }
    }
    let jti = jws.claim_str("jti").ok_or(AssertionError::Jti)?;
    if jti.is_empty() || jti.len() > crate::dpop::MAX_JTI_LENGTH {
        return Err(AssertionError::Jti);
    }
    Ok(VerifiedAssertion {
        jti: jti.to_owned(),
        exp,
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::{Value, json};

    use super::*;
    use crate::keys::{SigningAlgorithm, SigningKey};

    fn assertion(key: &SigningKey, claims: &Value) -> String {
        let header = json!({ "alg": key.alg().as_str(), "kid": key.kid() });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = key.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    #[test]
    fn an_assertion_is_checked_for_key_subject_audience_lifetime_and_jti() {
        let key = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
        let other = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
        let keys = [ClientKey::from_jwk(key.public_jwk()).unwrap()];
        let now = 1_000_000;
        let context = AssertionContext {
            client_id: "app",
            audiences: &["https://as.example", "https://as.example/token"],
            now,
        };
        let good = json!({ "iss": "app", "sub": "app", "aud": ["https://as.example/token"],
                           "exp": now + 60, "iat": now, "jti": "one" });
        let verified = verify_assertion(&assertion(&key, &good), &keys, &context).unwrap();
        assert_eq!(verified.jti, "one");
        assert_eq!(
            claimed_client_id(&assertion(&key, &good)).as_deref(),
            Some("app")
        );
        let mut cases: Vec<(Value, AssertionError)> = Vec::new();
        let mut change = |member: &str, value: Value, error: AssertionError| {
            let mut claims = good.clone();
            claims[member] = value;
            cases.push((claims, error));
        };
        change("sub", json!("other"), AssertionError::Subject);
        change("iss", json!("other"), AssertionError::Subject);
        change("aud", json!("https://elsewhere"), AssertionError::Audience);
        change("exp", json!(now - 120), AssertionError::Lifetime);
        change("exp", json!(now + 3600), AssertionError::Lifetime);
        change("iat", json!(now + 3600), AssertionError::Lifetime);
        change("jti", json!(""), AssertionError::Jti);
        for (claims, error) in cases {
            assert_eq!(
                verify_assertion(&assertion(&key, &claims), &keys, &context),
                Err(error),
                "{claims}"
            );
        }
        assert_eq!(
            verify_assertion(&assertion(&other, &good), &keys, &context),
            Err(AssertionError::Jws(JwsError::InvalidSignature)),
            "a key the client did not register"
        );
    }
}
