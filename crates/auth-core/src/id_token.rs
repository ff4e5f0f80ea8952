//! OpenID Connect ID tokens (Core 1.0 §2): the claims, the `at_hash` that ties one to its access token
//! (§3.1.3.6), issuing one with a kept key, and reading one back as an `id_token_hint` (RP-Initiated Logout
//! 1.0 §2), where an expired token is still good evidence of who the user was.
//!
//! An ID token's header says `typ: JWT`, an access token's `at+jwt` (RFC 9068 §2.1): each verifier accepts
//! only its own kind, so neither can be passed off as the other (RFC 8725 §3.11).
//!
//! [`validate_id_token`] is the relying party's side (Core §3.1.3.7), for clients of any provider (the load
//! tester validates every ID token it gets, as an app would).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

use crate::jwks::KeySet;
use crate::jws::{Audience, TokenError, Typ, inspect_typed_header, sign_compact, verify_signature};
use crate::keys::{SigningAlgorithm, SigningKey};
use crate::typ::JwtType;

pub use crate::typ::ID_TOKEN_TYPE;

/// The claims of an ID token (Core §2), as this server issues them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    /// The user: the same `sub` as the access token's.
    pub sub: String,
    /// The client the token is for.
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    /// When the user last typed their password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The authorization request's `nonce`, exactly (Core §3.1.2.1); never on a refresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The left half of the access token's hash (Core §3.1.3.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// The browser session at the provider (Front-Channel Logout 1.0 §3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// `at_hash` (Core §3.1.3.6): base64url of the left-most half of the hash of the access token's ASCII, the
/// hash being the one of the ID token's signing algorithm: SHA-256 for ES256, RS256 and PS256, SHA-512 for EdDSA
/// (Ed25519 signs with SHA-512; OpenID Connect Core errata and every major relying-party library agree).
pub fn at_hash(alg: SigningAlgorithm, access_token: &str) -> String {
    let digest: Vec<u8> = match alg {
        SigningAlgorithm::Es256 | SigningAlgorithm::Rs256 | SigningAlgorithm::Ps256 => {
            Sha256::digest(access_token.as_bytes()).to_vec()
        }
        SigningAlgorithm::EdDsa => Sha512::digest(access_token.as_bytes()).to_vec(),
    };
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

/// Signs `claims` with `key`: header `{"alg", "typ": "JWT", "kid"}`.
pub fn issue_id_token(claims: &IdTokenClaims, key: &SigningKey) -> Result<String, TokenError> {
    sign_compact(key.encoded_header(JwtType::Id), claims, key)
}

/// The event a logout token carries (OpenID Connect Back-Channel Logout 1.0 §2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The claims of a back-channel logout token (Back-Channel Logout 1.0 §2.4): never a `nonce`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutTokenClaims {
    pub iss: String,
    /// The client told.
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub sub: String,
    /// The session that ended, as the client's ID tokens named it.
    pub sid: String,
    /// `{"http://schemas.openid.net/event/backchannel-logout": {}}`.
    pub events: serde_json::Value,
}

impl LogoutTokenClaims {
    /// The `events` member of every logout token.
    pub fn events() -> serde_json::Value {
        serde_json::json!({ BACKCHANNEL_LOGOUT_EVENT: {} })
    }
}

/// Signs `claims` with `key`: header `{"alg", "typ": "logout+jwt", "kid"}`.
pub fn issue_logout_token(
    claims: &LogoutTokenClaims,
    key: &SigningKey,
) -> Result<String, TokenError> {
    sign_compact(key.encoded_header(JwtType::Logout), claims, key)
}

/// Claims as they arrive, every member optional, so a missing one gets its own error.
#[derive(Deserialize)]
struct ReceivedClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<i64>,
    iat: Option<i64>,
    auth_time: Option<i64>,
    nonce: Option<String>,
    at_hash: Option<String>,
    sid: Option<String>,
}

/// Reads an `id_token_hint`: an ID token of `issuer`, signed by a key of `keys`, whatever its `exp` (a hint
/// is evidence of who the user was, not a credential; RP-Initiated Logout 1.0 §2). An access token is
/// refused by its `typ`. The audience is for the caller to compare with the client it expects; a token
/// with several audiences is refused (this server issues one).
pub fn read_id_token_hint(
    token: &str,
    keys: &KeySet,
    issuer: &str,
) -> Result<IdTokenClaims, TokenError> {
    let payload = verify_signature(token, keys, Typ::Exactly(ID_TOKEN_TYPE))?;
    let received: ReceivedClaims =
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    let iss = received.iss.ok_or(TokenError::MissingClaim("iss"))?;
    if iss != issuer {
        return Err(TokenError::IssuerMismatch);
    }
    let aud = match received.aud.ok_or(TokenError::MissingClaim("aud"))? {
        Audience::One(aud) => aud,
        Audience::Many(mut many) if many.len() == 1 => many.remove(0),
        Audience::Many(_) => return Err(TokenError::InvalidClaim("aud")),
    };
    Ok(IdTokenClaims {
        iss,
        sub: received.sub.ok_or(TokenError::MissingClaim("sub"))?,
        aud,
        exp: received.exp.ok_or(TokenError::MissingClaim("exp"))?,
        iat: received.iat.ok_or(TokenError::MissingClaim("iat"))?,
        auth_time: received.auth_time,
        nonce: received.nonce,
        at_hash: received.at_hash,
        sid: received.sid,
    })
}

/// The `kid` and `alg` of an ID token's header (of this or another provider: `typ` `JWT` or absent), to
/// pick the key before [`validate_id_token`].
pub fn header_kid(token: &str) -> Result<(String, SigningAlgorithm), TokenError> {
    inspect_typed_header(token, Typ::AbsentOr(ID_TOKEN_TYPE))
}

/// What a relying party expects of an ID token (Core §3.1.3.7).
#[derive(Debug, Clone, Copy)]
pub struct IdTokenChecks<'a> {
    /// The provider's issuer identifier, exactly.
    pub issuer: &'a str,
    /// This client: it must be in `aud`.
    pub client_id: &'a str,
    /// The nonce the authorization request sent, which the token must echo; `None` on a refresh (then the
    /// token may carry none).
    pub nonce: Option<&'a str>,
    pub now: i64,
    /// Clock skew allowed for `exp` and `iat`.
    pub leeway: i64,
}

/// Validates an ID token as a relying party does (Core §3.1.3.7): a signature by a key of the provider's
/// JWKS (the key's algorithm, never the header's alone), `typ` `JWT` or absent (never `at+jwt`), the issuer,
/// this client in `aud`, not expired, not issued in the future, the nonce echoed. Returns the claims and the
/// algorithm, for checking `at_hash` with [`at_hash`].
pub fn validate_id_token(
    token: &str,
    keys: &KeySet,
    checks: &IdTokenChecks<'_>,
) -> Result<(IdTokenClaims, SigningAlgorithm), TokenError> {
    let payload = verify_signature(token, keys, Typ::AbsentOr(ID_TOKEN_TYPE))?;
    let (kid, _) = header_kid(token)?;
    let alg = keys
        .get(&kid)
        .map(|key| key.alg())
        .ok_or(TokenError::UnknownKey(kid))?;
    let received: ReceivedClaims =
        serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    let iss = received.iss.ok_or(TokenError::MissingClaim("iss"))?;
    if iss != checks.issuer {
        return Err(TokenError::IssuerMismatch);
    }
    let audience = received.aud.ok_or(TokenError::MissingClaim("aud"))?;
    if !audience.contains(checks.client_id) {
        return Err(TokenError::AudienceMismatch);
    }
    let exp = received.exp.ok_or(TokenError::MissingClaim("exp"))?;
    if checks.now > exp.saturating_add(checks.leeway) {
        return Err(TokenError::Expired);
    }
    let iat = received.iat.ok_or(TokenError::MissingClaim("iat"))?;
    if checks.now.saturating_add(checks.leeway) < iat {
        return Err(TokenError::NotYetValid);
    }
    match (checks.nonce, received.nonce.as_deref()) {
        (Some(expected), Some(nonce)) if expected == nonce => {}
        (None, _) => {}
        _ => return Err(TokenError::InvalidClaim("nonce")),
    }
    let aud = match audience {
        Audience::One(aud) => aud,
        Audience::Many(_) => checks.client_id.to_owned(),
    };
    Ok((
        IdTokenClaims {
            iss,
            sub: received.sub.ok_or(TokenError::MissingClaim("sub"))?,
            aud,
            exp,
            iat,
            auth_time: received.auth_time,
            nonce: received.nonce,
            at_hash: received.at_hash,
            sid: received.sid,
        },
        alg,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{AccessTokenClaims, Audience, issue};

    fn claims() -> IdTokenClaims {
        IdTokenClaims {
            iss: "https://op.example".into(),
            sub: "user-1".into(),
            aud: "app".into(),
            exp: 1_000,
            iat: 100,
            auth_time: Some(90),
            nonce: Some("n-0S6_WzA2Mj".into()),
            at_hash: Some("x".into()),
            sid: Some("s".into()),
        }
    }

    #[test]
    fn at_hash_follows_core_3_1_3_6() {
        // A published worked example (RS256, so SHA-256; Ping Identity's developer guide).
        let access_token = "dNZX1hEZ9wBCzNL40Upu646bdzQA";
        assert_eq!(
            at_hash(SigningAlgorithm::Rs256, access_token),
            "wfgvmE9VxjAudsl9lc6TqA"
        );
        assert_eq!(
            at_hash(SigningAlgorithm::Es256, access_token),
            at_hash(SigningAlgorithm::Rs256, access_token)
        );
        let ed = at_hash(SigningAlgorithm::EdDsa, access_token);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(&ed).unwrap().len(),
            32,
            "half of SHA-512"
        );
        assert_eq!(
            ed,
            URL_SAFE_NO_PAD.encode(&Sha512::digest(access_token.as_bytes())[..32])
        );
    }

    #[test]
    fn a_relying_party_validates_signature_issuer_audience_expiry_and_nonce() {
        let key = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
        let keys = KeySet::from_signing_keys([&key]);
        let token = issue_id_token(&claims(), &key).unwrap();
        let checks = IdTokenChecks {
            issuer: "https://op.example",
            client_id: "app",
            nonce: Some("n-0S6_WzA2Mj"),
            now: 500,
            leeway: 60,
        };
        let (read, alg) = validate_id_token(&token, &keys, &checks).unwrap();
        assert_eq!((read, alg), (claims(), SigningAlgorithm::Es256));
        let refused =
            |checks: IdTokenChecks<'_>| validate_id_token(&token, &keys, &checks).unwrap_err();
        assert_eq!(
            refused(IdTokenChecks {
                issuer: "https://x",
                ..checks
            }),
            TokenError::IssuerMismatch
        );
        assert_eq!(
            refused(IdTokenChecks {
                client_id: "other",
                ..checks
            }),
            TokenError::AudienceMismatch
        );
        assert_eq!(
            refused(IdTokenChecks {
                now: 1_061,
                ..checks
            }),
            TokenError::Expired
        );
        assert_eq!(
            refused(IdTokenChecks { now: 39, ..checks }),
            TokenError::NotYetValid
        );
        assert_eq!(
            refused(IdTokenChecks {
                nonce: Some("another flow's"),
                ..checks
            }),
            TokenError::InvalidClaim("nonce")
        );
        // No nonce expected (a refresh): any is fine; a token without nonce when one is expected is not.
        assert!(
            validate_id_token(
                &token,
                &keys,
                &IdTokenChecks {
                    nonce: None,
                    ..checks
                }
            )
            .is_ok()
        );
        let without_nonce = issue_id_token(
            &IdTokenClaims {
                nonce: None,
                ..claims()
            },
            &key,
        )
        .unwrap();
        assert_eq!(
            validate_id_token(&without_nonce, &keys, &checks).unwrap_err(),
            TokenError::InvalidClaim("nonce")
        );
        // Another provider's key: unknown.
        let other =
            KeySet::from_signing_keys([&SigningKey::generate(SigningAlgorithm::Es256).unwrap()]);
        assert!(matches!(
            validate_id_token(&token, &other, &checks),
            Err(TokenError::UnknownKey(_))
        ));
    }

    #[test]
    fn an_id_token_reads_back_as_a_hint_even_expired_and_an_access_token_never_does() {
        for alg in SigningAlgorithm::ALL {
            let key = SigningKey::generate(alg).unwrap();
            let keys = KeySet::from_signing_keys([&key]);
            let token = issue_id_token(&claims(), &key).unwrap();
            let header: serde_json::Value = serde_json::from_slice(
                &URL_SAFE_NO_PAD
                    .decode(token.split('.').next().unwrap())
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(header["typ"], "JWT");
            assert_eq!(header["kid"], key.kid());
            // exp 1 000 is long past: a hint is still read.
            assert_eq!(
                read_id_token_hint(&token, &keys, "https://op.example"),
                Ok(claims())
            );
            assert_eq!(
                read_id_token_hint(&token, &keys, "https://other.example"),
                Err(TokenError::IssuerMismatch)
            );
            let access = issue(
                &AccessTokenClaims {
                    iss: "https://op.example".into(),
                    sub: "user-1".into(),
                    aud: Audience::One("app".into()),
                    client_id: "app".into(),
                    scope: "openid".parse().unwrap(),
                    iat: 100,
                    exp: 1_000,
                    nbf: None,
                    jti: "j".into(),
                    auth_time: None,
                    fam: None,
                    cnf: None,
                    act: None,
                    may_act: None,
                },
                &key,
            )
            .unwrap();
            assert_eq!(
                read_id_token_hint(&access, &keys, "https://op.example"),
                Err(TokenError::WrongType(Some("at+jwt".into())))
            );
            // And the access-token verifier refuses an ID token.
            assert!(matches!(
                crate::token::inspect_header(&token),
                Err(TokenError::WrongType(_))
            ));
            let mut tampered = token.clone();
            tampered.push('A');
            assert!(read_id_token_hint(&tampered, &keys, "https://op.example").is_err());
        }
    }
}
