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
    /// The issuer identifier: the one `aud` an assertion may have, as a string or a one-member array
    /// (draft-ietf-oauth-rfc7523bis §4, FAPI 2.0 Security Profile §5.3.2.1).
    pub issuer: &'a str,
    /// An older audience also accepted, when the operator opted in: the token endpoint URL, as one string.
    /// It re-opens audience injection (an assertion made for one server's token endpoint replayed where
    /// that URL is another server's audience).
    pub token_endpoint: Option<&'a str>,
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
    /// `aud` is not the issuer identifier alone.
    #[error("aud must be the issuer identifier, as one string")]
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
    // A JWT whose typ says it is something else (an access token, a DPoP proof) is not an assertion;
    // rfc7523bis §4 names its own.
    if let Some(typ) = jws.header_str("typ")
        && !crate::typ::is_type(typ, "JWT")
        && !crate::typ::is_type(typ, "client-authentication+jwt")
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
    // Compared exactly (RFC 3986 §6.2.1): no normalization that an attacker's URL could ride on.
    let audience_ok = match jws.payload.get("aud") {
        Some(Value::String(aud)) => {
            aud == context.issuer || context.token_endpoint.is_some_and(|url| aud == url)
        }
        Some(Value::Array(values)) => {
            matches!(values.as_slice(), [Value::String(aud)] if aud == context.issuer)
        }
        _ => false,
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
            issuer: "https://as.example",
            token_endpoint: None,
            now,
        };
        let good = json!({ "iss": "app", "sub": "app", "aud": "https://as.example",
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
        // Audience injection (CVE-2025-27370/27371): only the issuer, as one string or a one-member array.
        change(
            "aud",
            json!("https://as.example/token"),
            AssertionError::Audience,
        );
        change(
            "aud",
            json!("https://as.example/par"),
            AssertionError::Audience,
        );
        change(
            "aud",
            json!("https://as.example/"),
            AssertionError::Audience,
        );
        change(
            "aud",
            json!(["https://as.example", "https://elsewhere"]),
            AssertionError::Audience,
        );
        change(
            "aud",
            json!(["https://elsewhere", "https://as.example"]),
            AssertionError::Audience,
        );
        change("aud", json!([]), AssertionError::Audience);
        change("aud", json!(null), AssertionError::Audience);
        change("iat", json!(now + 61), AssertionError::Lifetime);
        change("nbf", json!(now + 90), AssertionError::Lifetime);
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
        // Accepted: a one-member array of the issuer; iat and nbf a few seconds ahead (clock skew).
        for (member, value) in [
            ("aud", json!(["https://as.example"])),
            ("iat", json!(now + 8)),
            ("nbf", json!(now + 60)),
        ] {
            let mut claims = good.clone();
            claims[member] = value;
            assert!(
                verify_assertion(&assertion(&key, &claims), &keys, &context).is_ok(),
                "{claims}"
            );
        }
        // The token endpoint URL only when the operator opted in, and only as one string.
        let older = AssertionContext {
            token_endpoint: Some("https://as.example/token"),
            ..context
        };
        let mut claims = good.clone();
        claims["aud"] = json!("https://as.example/token");
        assert!(verify_assertion(&assertion(&key, &claims), &keys, &older).is_ok());
        claims["aud"] = json!(["https://as.example/token"]);
        assert_eq!(
            verify_assertion(&assertion(&key, &claims), &keys, &older),
            Err(AssertionError::Audience)
        );
    }
}
