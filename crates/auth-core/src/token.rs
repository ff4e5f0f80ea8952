//! RFC 9068 JWT access tokens: the claims, issuing them with a kept key, and verifying them under a
//! [`ValidationPolicy`] that follows RFC 8725 (JWT BCP).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;
use crate::id::Jkt;
use crate::jwks::KeySet;
use crate::jws::{Typ, inspect_typed_header, sign_compact, verify_signature};
use crate::keys::{SigningAlgorithm, SigningKey};
use crate::scope::ScopeSet;
use crate::typ::JwtType;

pub use crate::jws::{Audience, MAX_TOKEN_LENGTH, TokenError};
pub use crate::typ::ACCESS_TOKEN_TYPE;

/// The largest clock-skew leeway a policy accepts, in seconds.
pub const MAX_LEEWAY_SECONDS: i64 = 60;

/// The claims of an access token (RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// Issuer: exactly the authorization server's issuer identifier.
    pub iss: String,
    /// Subject: the user id for user grants, the client id for client_credentials.
    pub sub: String,
    /// Audience: the resource server(s) the token is for.
    pub aud: Audience,
    /// The client the token was issued to.
    pub client_id: String,
    /// Granted scope, space separated; omitted when empty.
    #[serde(default, skip_serializing_if = "ScopeSet::is_empty")]
    pub scope: ScopeSet,
    /// Issued at.
    pub iat: i64,
    /// Expiry.
    pub exp: i64,
    /// Not before, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Unique token id (used by revocation deny lists).
    pub jti: String,
    /// When the user authenticated (RFC 9068 §2.2.1), for user grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// A private claim: the authorization (refresh-token family) the token descends from, for user grants.
    /// The issuer refuses every token of a revoked family at introspection, whenever it was minted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<String>,
    /// RFC 7800 confirmation: the key a DPoP-bound token is bound to (RFC 9449 §6.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// RFC 8693 §4.1: the party acting for the subject, on a token issued by a token exchange; its own
    /// `act` names whoever acted before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// RFC 8693 §4.4: who may act for the subject by exchanging this token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub may_act: Option<Actor>,
}

/// The `act` (and `may_act`) claim of RFC 8693 §4.1: the acting party's `sub`, and the party that acted
/// before it. Only the outermost actor is the current one; the nested ones are history (§4.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// How many actors the chain names, this one included.
    pub fn depth(&self) -> usize {
        1 + self.act.as_ref().map_or(0, |inner| inner.depth())
    }

    /// The chain from the current actor outwards: this one, then whoever acted before it.
    pub fn chain(&self) -> impl Iterator<Item = &Actor> {
        std::iter::successors(Some(self), |actor| actor.act.as_deref())
    }
}

/// The `cnf` claim of a sender-constrained token (RFC 7800 §3.1, RFC 9449 §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The RFC 7638 thumbprint of the DPoP proof key.
    pub jkt: Jkt,
}

/// Signs `claims` with `key` as a compact JWS with header `{"alg", "typ": "at+jwt", "kid"}`.
///
/// ```
/// use auth_core::clock::{Clock, ManualClock};
/// use auth_core::jwks::KeySet;
/// use auth_core::keys::{SigningAlgorithm, SigningKey};
/// use auth_core::token::{issue, verify, AccessTokenClaims, Audience, ValidationPolicy};
/// use std::sync::Arc;
///
/// let key = SigningKey::generate(SigningAlgorithm::Es256)?;
/// let clock = ManualClock::new(1_800_000_000);
/// let claims = AccessTokenClaims {
///     iss: "https://as.example".into(),
///     sub: "alice".into(),
///     aud: Audience::One("resource-api".into()),
///     client_id: "app".into(),
///     scope: "read".parse()?,
///     iat: clock.now(),
///     exp: clock.now() + 900,
///     nbf: None,
///     jti: "id-1".into(),
///     auth_time: None,
///     fam: None,
///     cnf: None,
///     act: None,
///     may_act: None,
/// };
/// let token = issue(&claims, &key)?;
/// let keys = KeySet::from_signing_keys([&key]);
/// let policy = ValidationPolicy::new("https://as.example", "resource-api", Arc::new(clock.clone()));
/// assert_eq!(verify(&token, &keys, &policy)?, claims);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn issue(claims: &AccessTokenClaims, key: &SigningKey) -> Result<String, TokenError> {
    sign_compact(key.encoded_header(JwtType::Access), claims, key)
}

/// What a resource server (or the introspection endpoint) requires of a token.
#[derive(Clone)]
pub struct ValidationPolicy {
    issuer: String,
    audience: Option<String>,
    /// Another audience accepted as well (a resource's RFC 8707 identifier beside its name).
    also_audience: Option<String>,
    leeway: i64,
    clock: SharedClock,
}

impl fmt::Debug for ValidationPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidationPolicy")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl ValidationPolicy {
    /// Requires `iss == issuer` exactly and `aud` containing `audience`; 60 s leeway.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, clock: SharedClock) -> Self {
        Self {
            issuer: issuer.into(),
            audience: Some(audience.into()),
            also_audience: None,
            leeway: MAX_LEEWAY_SECONDS,
            clock,
        }
    }

    /// For the issuer itself (introspection): any audience is acceptable, the issuer must still match.
    pub fn any_audience(issuer: impl Into<String>, clock: SharedClock) -> Self {
        Self {
            issuer: issuer.into(),
            audience: None,
            also_audience: None,
            leeway: MAX_LEEWAY_SECONDS,
            clock,
        }
    }

    /// Accepts `aud` containing `audience` too (a resource known by a name and by its RFC 8707 identifier).
    pub fn also_accepting(mut self, audience: impl Into<String>) -> Self {
        self.also_audience = Some(audience.into());
        self
    }

    /// Sets the clock-skew leeway, clamped to 0..=60 seconds.
    pub fn with_leeway(mut self, seconds: i64) -> Self {
        self.leeway = seconds.clamp(0, MAX_LEEWAY_SECONDS);
        self
    }

    /// The leeway in seconds.
    pub fn leeway(&self) -> i64 {
        self.leeway
    }

    /// The expected issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}

/// Claims as they arrive, every member optional, so a missing one gets its own error.
#[derive(Deserialize)]
struct ReceivedClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    client_id: Option<String>,
    scope: Option<String>,
    iat: Option<i64>,
    exp: Option<i64>,
    nbf: Option<i64>,
    jti: Option<String>,
    auth_time: Option<i64>,
    fam: Option<String>,
    cnf: Option<Confirmation>,
    act: Option<Actor>,
    may_act: Option<Actor>,
}

/// Reads the header and the `kid` it names, checking everything that needs no key.
/// Returns the header's `kid` and algorithm.
pub fn inspect_header(token: &str) -> Result<(String, SigningAlgorithm), TokenError> {
    inspect_typed_header(token, Typ::Exactly(ACCESS_TOKEN_TYPE))
}

/// Verifies an access token and returns its claims.
///
/// The algorithm comes from the key that the header's `kid` names, never from the header alone: a header
/// whose `alg` differs from its key's is refused before any cryptography (RFC 8725 §2.1, §3.1). The
/// signature is checked with jsonwebtoken's aws-lc-rs backend; the claims are then checked under `policy`.
pub fn verify(
    token: &str,
    keys: &KeySet,
    policy: &ValidationPolicy,
) -> Result<AccessTokenClaims, TokenError> {
    let payload = verify_signature(token, keys, Typ::Exactly(ACCESS_TOKEN_TYPE))?;
    let received: ReceivedClaims =
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    check_claims(received, policy)
}

fn check_claims(
    received: ReceivedClaims,
    policy: &ValidationPolicy,
) -> Result<AccessTokenClaims, TokenError> {
    let iss = received.iss.ok_or(TokenError::MissingClaim("iss"))?;
    let exp = received.exp.ok_or(TokenError::MissingClaim("exp"))?;
    let aud = received.aud.ok_or(TokenError::MissingClaim("aud"))?;
    let sub = received.sub.ok_or(TokenError::MissingClaim("sub"))?;
    let client_id = received
        .client_id
        .ok_or(TokenError::MissingClaim("client_id"))?;
    let iat = received.iat.ok_or(TokenError::MissingClaim("iat"))?;
    let jti = received.jti.ok_or(TokenError::MissingClaim("jti"))?;
    let scope = match received.scope {
        Some(text) => ScopeSet::parse(&text).map_err(|_| TokenError::InvalidClaim("scope"))?,
        None => ScopeSet::empty(),
    };
    if iss != policy.issuer {
        return Err(TokenError::IssuerMismatch);
    }
    if let Some(expected) = &policy.audience
        && !aud.contains(expected)
        && !policy
            .also_audience
            .as_deref()
            .is_some_and(|also| aud.contains(also))
    {
        return Err(TokenError::AudienceMismatch);
    }
    let now = policy.clock.now();
    if now > exp.saturating_add(policy.leeway) {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = received.nbf
        && now.saturating_add(policy.leeway) < nbf
    {
        return Err(TokenError::NotYetValid);
    }
    // A token issued in the future was minted by a server with a broken clock or forged; either way not yet.
    if now.saturating_add(policy.leeway) < iat {
        return Err(TokenError::NotYetValid);
    }
    Ok(AccessTokenClaims {
        iss,
        sub,
        aud,
        client_id,
        scope,
        iat,
        exp,
        nbf: received.nbf,
        jti,
        auth_time: received.auth_time,
        fam: received.fam,
        cnf: received.cnf,
        act: received.act,
        may_act: received.may_act,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::typ::is_type;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use proptest::prelude::*;
    use std::sync::{Arc, OnceLock};

    const ISSUER: &str = "https://as.example";
    const NOW: i64 = 1_800_000_000;

    fn keys() -> &'static [SigningKey; 4] {
        // RSA generation is slow in debug builds: generate each key once for all tests.
        static KEYS: OnceLock<[SigningKey; 4]> = OnceLock::new();
        KEYS.get_or_init(|| SigningAlgorithm::ALL.map(|alg| SigningKey::generate(alg).unwrap()))
    }

    fn es256() -> &'static SigningKey {
        &keys()[0]
    }

    fn claims(now: i64) -> AccessTokenClaims {
        AccessTokenClaims {
            iss: ISSUER.into(),
            sub: "alice".into(),
            aud: Audience::Many(vec!["other".into(), "resource-api".into()]),
            client_id: "app".into(),
            scope: "read write".parse().unwrap(),
            iat: now,
            exp: now + 900,
            nbf: None,
            jti: "jti-1".into(),
            auth_time: Some(now - 5),
            fam: Some("family-1".into()),
            cnf: None,
            act: None,
            may_act: None,
        }
    }

    fn policy(clock: &ManualClock) -> ValidationPolicy {
        ValidationPolicy::new(ISSUER, "resource-api", Arc::new(clock.clone()))
    }

    fn keyset() -> KeySet {
        KeySet::from_signing_keys(keys().iter())
    }

    /// Builds a token from raw header and payload JSON, signed with `key` (or with `signature`).
    fn forge(header: &serde_json::Value, payload: &serde_json::Value, key: &SigningKey) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let signature = key.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn header(key: &SigningKey) -> serde_json::Value {
        serde_json::json!({ "alg": key.alg().as_str(), "typ": "at+jwt", "kid": key.kid() })
    }

    #[test]
    fn issue_and_verify_every_algorithm() {
        let clock = ManualClock::new(NOW);
        for key in keys() {
            let token = issue(&claims(NOW), key).unwrap();
            assert_eq!(
                verify(&token, &keyset(), &policy(&clock)).unwrap(),
                claims(NOW),
                "{}",
                key.alg()
            );
        }
    }

    #[test]
    fn issued_tokens_verify_with_plain_jsonwebtoken_decode() {
        // Interop: a stock jsonwebtoken consumer accepts what our kept-key signer produces.
        for key in keys() {
            let token = issue(&claims(NOW), key).unwrap();
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(header.kid.as_deref(), Some(key.kid()));
            let jwk: jsonwebtoken::jwk::Jwk =
                serde_json::from_value(serde_json::to_value(key.public_jwk()).unwrap()).unwrap();
            let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
            let mut validation = jsonwebtoken::Validation::new(key.alg().to_jsonwebtoken());
            validation.set_audience(&["resource-api"]);
            validation.set_issuer(&[ISSUER]);
            validation.validate_exp = false;
            let decoded =
                jsonwebtoken::decode::<AccessTokenClaims>(&token, &decoding, &validation).unwrap();
            assert_eq!(decoded.claims, claims(NOW));
        }
    }

    #[test]
    fn tokens_from_jsonwebtoken_encode_verify_here() {
        let key = es256();
        let encoding = jsonwebtoken::EncodingKey::from_ec_der(key.pkcs8_der());
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(key.kid().into());
        let token = jsonwebtoken::encode(&header, &claims(NOW), &encoding).unwrap();
        let clock = ManualClock::new(NOW);
        assert_eq!(
            verify(&token, &keyset(), &policy(&clock)).unwrap(),
            claims(NOW)
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let clock = ManualClock::new(NOW);
        for none in ["none", "None", "NONE"] {
            let header = serde_json::json!({ "alg": none, "typ": "at+jwt", "kid": es256().kid() });
            let token = format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(serde_json::to_string(&claims(NOW)).unwrap())
            );
            assert_eq!(
                verify(&token, &keyset(), &policy(&clock)),
                Err(TokenError::AlgNone)
            );
        }
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        // The classic algorithm-confusion attack: HMAC keyed with the public key bytes.
        use aws_lc_rs::hmac;
        let key = es256();
        let public = serde_json::to_vec(key.public_jwk()).unwrap();
        let header = serde_json::json!({ "alg": "HS256", "typ": "at+jwt", "kid": key.kid() });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(serde_json::to_string(&claims(NOW)).unwrap())
        );
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &public),
            input.as_bytes(),
        );
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        let clock = ManualClock::new(NOW);
        assert_eq!(
            verify(&token, &keyset(), &policy(&clock)),
            Err(TokenError::UnsupportedAlgorithm("HS256".into()))
        );
    }

    #[test]
    fn header_alg_must_match_the_keys_algorithm() {
        let [es, ed, _, _] = keys();
        // Signed by the EdDSA key but the header names the ES256 key's kid with alg EdDSA.
        let header = serde_json::json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": es.kid() });
        let token = forge(&header, &serde_json::to_value(claims(NOW)).unwrap(), ed);
        let clock = ManualClock::new(NOW);
        assert_eq!(
            verify(&token, &keyset(), &policy(&clock)),
            Err(TokenError::AlgorithmMismatch {
                header: SigningAlgorithm::EdDsa,
                key: SigningAlgorithm::Es256
            })
        );
    }

    #[test]
    fn wrong_or_missing_typ_is_refused() {
        let clock = ManualClock::new(NOW);
        let payload = serde_json::to_value(claims(NOW)).unwrap();
        let key = es256();
        let jwt = serde_json::json!({ "alg": "ES256", "typ": "JWT", "kid": key.kid() });
        assert_eq!(
            verify(&forge(&jwt, &payload, key), &keyset(), &policy(&clock)),
            Err(TokenError::WrongType(Some("JWT".into())))
        );
        let untyped = serde_json::json!({ "alg": "ES256", "kid": key.kid() });
        assert_eq!(
            verify(&forge(&untyped, &payload, key), &keyset(), &policy(&clock)),
            Err(TokenError::WrongType(None))
        );
        // The full media type is the same type (RFC 7515 §4.1.9).
        let long =
            serde_json::json!({ "alg": "ES256", "typ": "application/AT+JWT", "kid": key.kid() });
        assert!(verify(&forge(&long, &payload, key), &keyset(), &policy(&clock)).is_ok());
    }

    #[test]
    fn a_typ_of_any_unicode_is_a_wrong_type_not_a_panic() {
        let clock = ManualClock::new(NOW);
        let payload = serde_json::to_value(claims(NOW)).unwrap();
        let key = es256();
        // Twelve bytes that end inside "é" (the prefix check once sliced there), NUL, and look-alikes.
        for typ in [
            "aaaaaaaaaaaé",
            "aaaaaaaaaaaaé",
            "é",
            "applicationé/at+jwt",
            "at+jwt\u{0}",
            "аt+jwt",
            "application/",
        ] {
            let header = serde_json::json!({ "alg": "ES256", "typ": typ, "kid": key.kid() });
            assert_eq!(
                verify(&forge(&header, &payload, key), &keyset(), &policy(&clock)),
                Err(TokenError::WrongType(Some(typ.into()))),
                "{typ:?}"
            );
        }
        assert!(is_type("Application/AT+jwt", ACCESS_TOKEN_TYPE));
    }

    #[test]
    fn crit_header_missing_kid_and_unknown_kid_are_refused() {
        let clock = ManualClock::new(NOW);
        let payload = serde_json::to_value(claims(NOW)).unwrap();
        let key = es256();
        let crit = serde_json::json!({ "alg": "ES256", "typ": "at+jwt", "kid": key.kid(), "crit": ["exp"] });
        assert_eq!(
            verify(&forge(&crit, &payload, key), &keyset(), &policy(&clock)),
            Err(TokenError::CriticalHeader)
        );
        let no_kid = serde_json::json!({ "alg": "ES256", "typ": "at+jwt" });
        assert_eq!(
            verify(&forge(&no_kid, &payload, key), &keyset(), &policy(&clock)),
            Err(TokenError::MissingKeyId)
        );
        let unknown = serde_json::json!({ "alg": "ES256", "typ": "at+jwt", "kid": "made-up" });
        assert_eq!(
            verify(&forge(&unknown, &payload, key), &keyset(), &policy(&clock)),
            Err(TokenError::UnknownKey("made-up".into()))
        );
    }

    #[test]
    fn a_token_signed_by_another_key_with_the_same_kid_fails_the_signature() {
        let stranger = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
        let token = forge(
            &header(es256()),
            &serde_json::to_value(claims(NOW)).unwrap(),
            &stranger,
        );
        let clock = ManualClock::new(NOW);
        assert_eq!(
            verify(&token, &keyset(), &policy(&clock)),
            Err(TokenError::InvalidSignature)
        );
    }

    #[test]
    fn altered_payload_fails_the_signature() {
        let token = issue(&claims(NOW), es256()).unwrap();
        let (header, _, signature) = crate::jws::split_compact(&token).unwrap();
        let mut altered = claims(NOW);
        altered.scope = "admin".parse().unwrap();
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_string(&altered).unwrap());
        let clock = ManualClock::new(NOW);
        assert_eq!(
            verify(
                &format!("{header}.{payload}.{signature}"),
                &keyset(),
                &policy(&clock)
            ),
            Err(TokenError::InvalidSignature)
        );
    }

    #[test]
    fn issuer_and_audience_must_match() {
        let clock = ManualClock::new(NOW);
        let token = issue(&claims(NOW), es256()).unwrap();
        let other_issuer = ValidationPolicy::new(
            "https://as.example/",
            "resource-api",
            Arc::new(clock.clone()),
        );
        assert_eq!(
            verify(&token, &keyset(), &other_issuer),
            Err(TokenError::IssuerMismatch)
        );
        let other_audience = ValidationPolicy::new(ISSUER, "billing", Arc::new(clock.clone()));
        assert_eq!(
            verify(&token, &keyset(), &other_audience),
            Err(TokenError::AudienceMismatch)
        );
        let any = ValidationPolicy::any_audience(ISSUER, Arc::new(clock.clone()));
        assert!(verify(&token, &keyset(), &any).is_ok());
        // A resource known by a name and by its identifier accepts either, and nothing else.
        let by_identifier =
            ValidationPolicy::new(ISSUER, "https://api.example/", Arc::new(clock.clone()))
                .also_accepting("resource-api");
        assert!(verify(&token, &keyset(), &by_identifier).is_ok());
        let neither = ValidationPolicy::new(ISSUER, "billing", Arc::new(clock.clone()))
            .also_accepting("https://billing.example/");
        assert_eq!(
            verify(&token, &keyset(), &neither),
            Err(TokenError::AudienceMismatch)
        );
    }

    #[test]
    fn expiry_and_not_before_honour_the_leeway() {
        let clock = ManualClock::new(NOW);
        let mut early = claims(NOW);
        early.nbf = Some(NOW + 30);
        let token = issue(&claims(NOW), es256()).unwrap();
        let not_yet = issue(&early, es256()).unwrap();

        let strict = policy(&clock).with_leeway(0);
        assert_eq!(
            verify(&not_yet, &keyset(), &strict),
            Err(TokenError::NotYetValid)
        );
        assert!(
            verify(&not_yet, &keyset(), &policy(&clock)).is_ok(),
            "30 s early is inside 60 s leeway"
        );

        clock.set(NOW + 900 + 60);
        assert!(
            verify(&token, &keyset(), &policy(&clock)).is_ok(),
            "exactly at exp + leeway"
        );
        clock.advance(1);
        assert_eq!(
            verify(&token, &keyset(), &policy(&clock)),
            Err(TokenError::Expired)
        );
        assert_eq!(
            policy(&clock).with_leeway(3_600).leeway(),
            60,
            "leeway is capped"
        );
    }

    #[test]
    fn tokens_issued_in_the_future_are_not_yet_valid() {
        let clock = ManualClock::new(NOW);
        let token = issue(&claims(NOW + 120), es256()).unwrap();
        assert_eq!(
            verify(&token, &keyset(), &policy(&clock)),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn every_required_claim_is_required() {
        let clock = ManualClock::new(NOW);
        let required: [&'static str; 7] = ["iss", "sub", "aud", "client_id", "iat", "exp", "jti"];
        for claim in required {
            let mut payload = serde_json::to_value(claims(NOW)).unwrap();
            payload.as_object_mut().unwrap().remove(claim);
            let token = forge(&header(es256()), &payload, es256());
            assert_eq!(
                verify(&token, &keyset(), &policy(&clock)),
                Err(TokenError::MissingClaim(claim)),
                "{claim}"
            );
        }
    }

    #[test]
    fn malformed_inputs_are_malformed_or_too_large() {
        let clock = ManualClock::new(NOW);
        for bad in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "!!!.e30.sig",
            "e30.e30.e30",
            "..",
        ] {
            let result = verify(bad, &keyset(), &policy(&clock));
            assert!(
                matches!(result, Err(TokenError::Malformed)),
                "{bad:?}: {result:?}"
            );
        }
        let huge = "a".repeat(MAX_TOKEN_LENGTH + 1);
        assert_eq!(
            verify(&huge, &keyset(), &policy(&clock)),
            Err(TokenError::TooLarge)
        );
    }

    #[test]
    fn claims_serialize_scope_as_a_string_and_skip_empty_members() {
        let mut claims = claims(NOW);
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(json["scope"], "read write");
        claims.scope = ScopeSet::empty();
        claims.auth_time = None;
        claims.aud = Audience::One("resource-api".into());
        let json = serde_json::to_value(&claims).unwrap();
        assert!(json.get("scope").is_none());
        assert!(json.get("nbf").is_none());
        assert_eq!(json["aud"], "resource-api");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_tampered_byte_fails_verification(index in any::<prop::sample::Index>(), replacement in any::<u8>()) {
            let clock = ManualClock::new(NOW);
            let token = issue(&claims(NOW), es256()).unwrap();
            let mut bytes = token.clone().into_bytes();
            let position = index.index(bytes.len());
            prop_assume!(bytes[position] != replacement);
            bytes[position] = replacement;
            let tampered = String::from_utf8_lossy(&bytes).into_owned();
            prop_assert!(verify(&tampered, &keyset(), &policy(&clock)).is_err());
        }

        #[test]
        fn verify_never_panics_on_arbitrary_strings(input in "(?s).{0,300}") {
            let clock = ManualClock::new(NOW);
            prop_assert!(verify(&input, &keyset(), &policy(&clock)).is_err());
        }

        #[test]
        fn verify_never_panics_on_arbitrary_dotted_base64(header in "[A-Za-z0-9_-]{0,80}", payload in "[A-Za-z0-9_-]{0,80}", signature in "[A-Za-z0-9_-]{0,90}") {
            let clock = ManualClock::new(NOW);
            let token = format!("{header}.{payload}.{signature}");
            prop_assert!(verify(&token, &keyset(), &policy(&clock)).is_err());
        }
    }

    /// Cases for the `fuzz_` properties: PROPTEST_CASES when set (`cargo xtask fuzz` sets it high), else a
    /// bounded number for every CI run.
    fn fuzz_config() -> ProptestConfig {
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|cases| cases.parse().ok())
            .unwrap_or(256);
        ProptestConfig::with_cases(cases)
    }

    /// Text an attacker puts in any member: any Unicode (controls, NUL, right-to-left marks, look-alikes),
    /// and long runs.
    fn hostile_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "(?s).{0,40}",
            "[\\x00-\\x1f\\u{7f}-\\u{a0}\\u{202e}\\u{feff}]{0,8}",
            Just("a".repeat(300)),
            Just("aaaaaaaaaaaé".to_owned()),
            Just("at+jwt\u{0}".to_owned()),
        ]
    }

    /// A JSON value of any type, huge and odd numbers included.
    fn hostile_value() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            hostile_text().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            Just(serde_json::json!(1e308)),
            Just(serde_json::json!(-1e308)),
            Just(serde_json::json!(null)),
            Just(serde_json::json!(true)),
            Just(serde_json::json!([])),
            Just(serde_json::json!(["resource-api", 7])),
            Just(serde_json::json!({ "a": 1 })),
        ]
    }

    /// `valid`, or `valid` with one member (named in `members`) replaced by a hostile value, removed, or
    /// added: most cases stay valid, so the fuzz reaches the signature and claim checks.
    fn one_member_changed(
        valid: serde_json::Value,
        members: &'static [&'static str],
    ) -> impl Strategy<Value = Changed> {
        let changed = valid.clone();
        prop_oneof![
            3 => Just((valid, None)),
            2 => (
                prop::sample::select(members),
                proptest::option::weighted(0.8, hostile_value())
            )
                .prop_map(move |(member, value)| {
                    let mut object = changed.clone();
                    match value {
                        Some(value) => object[member] = value,
                        None => {
                            object.as_object_mut().map(|members| members.remove(member));
                        }
                    }
                    (object, Some(member))
                }),
        ]
    }

    /// A case of the verifier fuzz: which key signs, its header and claims with at most one member
    /// changed each, and whether the signature is real or random bytes.
    /// A JSON object and the member that was changed in it, if any.
    type Changed = (serde_json::Value, Option<&'static str>);

    fn hostile_case() -> impl Strategy<Value = (usize, Changed, Changed, Option<Vec<u8>>)> {
        (0usize..3).prop_flat_map(|signer| {
            let key = &keys()[signer];
            let typ = prop::sample::select(vec!["at+jwt", "application/at+jwt", "AT+JWT"]);
            let header = typ.prop_flat_map(move |typ| {
                let header =
                    serde_json::json!({ "alg": key.alg().as_str(), "typ": typ, "kid": key.kid() });
                one_member_changed(header, &["alg", "typ", "kid", "crit", "jku"])
            });
            let claims = one_member_changed(
                serde_json::to_value(claims(NOW)).unwrap(),
                &[
                    "iss",
                    "sub",
                    "aud",
                    "client_id",
                    "scope",
                    "iat",
                    "exp",
                    "nbf",
                    "jti",
                ],
            );
            let signature =
                proptest::option::weighted(0.1, proptest::collection::vec(any::<u8>(), 0..300));
            (Just(signer), header, claims, signature)
        })
    }

    /// Fuzz target for the verifier. Whatever verifies was signed by the key its kid names, with that
    /// key's algorithm, and its claims hold within the leeway; an untouched token signed for real always
    /// verifies. Most cases get past the header checks, so the signature and claim checks are fuzzed too.
    #[test]
    fn fuzz_verify_hostile_tokens() {
        use proptest::test_runner::{TestCaseError, TestRunner};
        use std::cell::Cell;
        let config = fuzz_config();
        let cases = config.cases;
        let (verified, past_header) = (Cell::new(0u32), Cell::new(0u32));
        let mut runner = TestRunner::new(config);
        runner
            .run(
                &hostile_case(),
                |(signer, (header, header_change), (payload, claims_change), random)| {
                    let clock = ManualClock::new(NOW);
                    let key = &keys()[signer];
                    let token = match &random {
                        Some(signature) => format!(
                            "{}.{}.{}",
                            URL_SAFE_NO_PAD.encode(header.to_string()),
                            URL_SAFE_NO_PAD.encode(payload.to_string()),
                            URL_SAFE_NO_PAD.encode(signature)
                        ),
                        None => forge(&header, &payload, key),
                    };
                    let result = verify(&token, &keyset(), &policy(&clock));
                    if !matches!(
                        result,
                        Err(TokenError::TooLarge
                            | TokenError::Malformed
                            | TokenError::AlgNone
                            | TokenError::UnsupportedAlgorithm(_)
                            | TokenError::MissingKeyId
                            | TokenError::UnknownKey(_)
                            | TokenError::AlgorithmMismatch { .. }
                            | TokenError::WrongType(_)
                            | TokenError::CriticalHeader)
                    ) {
                        past_header.set(past_header.get() + 1);
                    }
                    let untouched = header_change.is_none() && claims_change.is_none();
                    match result {
                        Ok(claims) => {
                            verified.set(verified.get() + 1);
                            prop_assert!(random.is_none(), "a random signature verified");
                            prop_assert_eq!(&header["kid"], &serde_json::json!(key.kid()));
                            prop_assert_eq!(&header["alg"], &serde_json::json!(key.alg().as_str()));
                            prop_assert_eq!(claims.iss.as_str(), ISSUER);
                            prop_assert!(claims.aud.contains("resource-api"));
                            prop_assert!(NOW <= claims.exp.saturating_add(MAX_LEEWAY_SECONDS));
                            prop_assert!(claims.iat <= NOW + MAX_LEEWAY_SECONDS);
                            prop_assert!(
                                claims.nbf.is_none_or(|nbf| nbf <= NOW + MAX_LEEWAY_SECONDS)
                            );
                        }
                        Err(error) if untouched && random.is_none() => {
                            return Err(TestCaseError::fail(format!(
                                "an untouched token was refused: {error}"
                            )));
                        }
                        Err(_) => {}
                    }
                    Ok(())
                },
            )
            .unwrap();
        // The fuzz reaches the deep checks: most cases get past the header, a good share verifies.
        if cases >= 100 {
            assert!(
                past_header.get() * 10 >= cases * 4,
                "{} of {cases} past the header",
                past_header.get()
            );
            assert!(
                verified.get() * 10 >= cases,
                "{} of {cases} verified",
                verified.get()
            );
        }
    }

    proptest! {
        #![proptest_config(fuzz_config())]

        /// Fuzz target: any bytes at all, as a token.
        #[test]
        fn fuzz_verify_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let clock = ManualClock::new(NOW);
            let text = String::from_utf8_lossy(&bytes);
            prop_assert!(verify(&text, &keyset(), &policy(&clock)).is_err());
            let dotted = format!("{}.{}.{}", text, URL_SAFE_NO_PAD.encode(&bytes), text);
            prop_assert!(verify(&dotted, &keyset(), &policy(&clock)).is_err());
        }
    }
}
