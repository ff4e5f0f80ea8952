//! Compact JWS (RFC 7515) for the JWTs this platform signs and verifies with its own keys: signing under a
//! header encoded once per key, reading a header without a key, and verifying a signature by the key the
//! header's `kid` names. Access tokens (`token`), ID tokens and logout tokens (`id_token`) build on it.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::jwks::KeySet;
use crate::keys::{KeyError, SigningAlgorithm, SigningKey};
use crate::typ::{JwtType, is_type};

/// The largest token we look at. Real access tokens are well under 2 KiB; refusing larger input early
/// bounds the work an attacker can cause.
pub const MAX_TOKEN_LENGTH: usize = 8 * 1024;

/// The `aud` claim: one audience or several (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience, serialized as a string.
    One(String),
    /// Several audiences, serialized as an array.
    Many(Vec<String>),
}

impl Audience {
    /// True when `audience` is among the values.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(value) => value == audience,
            Self::Many(values) => values.iter().any(|value| value == audience),
        }
    }

    /// The values.
    pub fn values(&self) -> Vec<&str> {
        match self {
            Self::One(value) => vec![value.as_str()],
            Self::Many(values) => values.iter().map(String::as_str).collect(),
        }
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.values().join(" "))
    }
}

/// Why a token was not issued or not accepted. Each rejection has its own variant, so callers and tests
/// can tell them apart; all of them mean "invalid_token" to a client (RFC 6750 §3.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Larger than [`MAX_TOKEN_LENGTH`].
    #[error("token is too large")]
    TooLarge,
    /// Not three base64url parts, or a part that does not decode or parse.
    #[error("token is malformed")]
    Malformed,
    /// `alg: none` (RFC 8725 §2.1, §3.1).
    #[error("unsecured tokens (alg none) are refused")]
    AlgNone,
    /// An algorithm outside the allow list, HS* included (RFC 8725 §3.1).
    #[error("algorithm {0:?} is not accepted")]
    UnsupportedAlgorithm(String),
    /// The header names no `kid`.
    #[error("token header has no kid")]
    MissingKeyId,
    /// No key with the header's `kid`.
    #[error("no key with kid {0:?}")]
    UnknownKey(String),
    /// The header's `alg` is not the algorithm of the key named by `kid` (algorithm confusion, RFC 8725 §2.1).
    #[error("header alg {header} does not match the key's algorithm {key}")]
    AlgorithmMismatch {
        /// What the header says.
        header: SigningAlgorithm,
        /// What the key is for.
        key: SigningAlgorithm,
    },
    /// `typ` is not the one expected: `at+jwt` for access tokens (RFC 9068 §4), `JWT` for ID tokens
    /// (RFC 8725 §3.11: one kind of JWT is never taken for another).
    #[error("token type {0:?} is not the expected one")]
    WrongType(Option<String>),
    /// The header carries `crit` extensions we do not understand (RFC 7515 §4.1.11).
    #[error("token header has critical extensions")]
    CriticalHeader,
    /// The signature does not verify.
    #[error("signature is invalid")]
    InvalidSignature,
    /// A claim RFC 9068 §2.2 requires is missing.
    #[error("required claim {0} is missing")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or form.
    #[error("claim {0} is invalid")]
    InvalidClaim(&'static str),
    /// `iss` is not the expected issuer.
    #[error("issuer does not match")]
    IssuerMismatch,
    /// `aud` does not contain the expected audience.
    #[error("audience does not match")]
    AudienceMismatch,
    /// Past `exp` by more than the leeway.
    #[error("token has expired")]
    Expired,
    /// Before `nbf` (or `iat`) by more than the leeway.
    #[error("token is not yet valid")]
    NotYetValid,
    /// Signing failed.
    #[error("signing failed")]
    Signing,
}

impl From<KeyError> for TokenError {
    fn from(_: KeyError) -> Self {
        Self::Signing
    }
}

/// Signs `claims` as a compact JWS under an already encoded header.
pub(crate) fn sign_compact(
    header: &str,
    claims: &impl Serialize,
    key: &SigningKey,
) -> Result<String, TokenError> {
    let payload = serde_json::to_vec(claims).map_err(|_| TokenError::Signing)?;
    let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 400);
    token.push_str(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
    Ok(token)
}

/// Signs a token of `kind` whose claims are `claims` and, beside them, `extra` (test fixtures: `token mint
/// --claim`). A member of `extra` that `claims` already has is refused rather than let override what the
/// token says about itself.
pub fn sign_with_extra_claims(
    kind: JwtType,
    claims: &impl Serialize,
    extra: &serde_json::Map<String, serde_json::Value>,
    key: &SigningKey,
) -> Result<String, TokenError> {
    let serde_json::Value::Object(mut all) =
        serde_json::to_value(claims).map_err(|_| TokenError::Signing)?
    else {
        return Err(TokenError::Signing);
    };
    for (name, value) in extra {
        if all.contains_key(name) {
            return Err(TokenError::InvalidClaim(
                "an extra claim names a claim the token sets",
            ));
        }
        all.insert(name.clone(), value.clone());
    }
    sign_compact(key.encoded_header(kind), &all, key)
}

#[derive(Deserialize)]
struct JoseHeader {
    alg: Option<String>,
    typ: Option<String>,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
}

/// Splits a compact JWS into its three parts.
pub(crate) fn split_compact(token: &str) -> Result<(&str, &str, &str), TokenError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(header), Some(payload), Some(signature), None) => Ok((header, payload, signature)),
        _ => Err(TokenError::Malformed),
    }
}

/// Which `typ` a verifier accepts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Typ<'a> {
    /// Exactly this type (what we issue).
    Exactly(&'a str),
    /// This type, or none (what other issuers may send: OpenID Connect does not require `typ`).
    AbsentOr(&'a str),
}

impl Typ<'_> {
    fn accepts(self, typ: Option<&str>) -> bool {
        match (self, typ) {
            (Self::Exactly(expected) | Self::AbsentOr(expected), Some(typ)) => {
                is_type(typ, expected)
            }
            (Self::AbsentOr(_), None) => true,
            (Self::Exactly(_), None) => false,
        }
    }
}

/// Reads a JWT header: its `kid` and algorithm, checking everything that needs no key (size, shape, `alg`
/// allow list, `crit`) and that its `typ` must be acceptable to `typ`.
pub(crate) fn inspect_typed_header(
    token: &str,
    expected: Typ<'_>,
) -> Result<(String, SigningAlgorithm), TokenError> {
    if token.len() > MAX_TOKEN_LENGTH {
        return Err(TokenError::TooLarge);
    }
    let (header, _, _) = split_compact(token)?;
    let header_bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed)?;
    let header: JoseHeader =
        serde_json::from_slice(&header_bytes).map_err(|_| TokenError::Malformed)?;
    let alg_name = header.alg.ok_or(TokenError::Malformed)?;
    if alg_name.eq_ignore_ascii_case("none") {
        return Err(TokenError::AlgNone);
    }
    let alg: SigningAlgorithm = alg_name
        .parse()
        .map_err(|_| TokenError::UnsupportedAlgorithm(alg_name.clone()))?;
    if header.crit.is_some() {
        return Err(TokenError::CriticalHeader);
    }
    if !expected.accepts(header.typ.as_deref()) {
        return Err(TokenError::WrongType(header.typ));
    }
    let kid = header.kid.ok_or(TokenError::MissingKeyId)?;
    Ok((kid, alg))
}

/// Checks the header (its `typ` as `expected` says) and the signature of a compact JWS by the key its `kid`
/// names, and returns the decoded payload. The algorithm comes from that key, never from the header alone: a
/// header whose `alg` differs from its key's is refused before any cryptography (RFC 8725 §2.1, §3.1).
pub(crate) fn verify_signature(
    token: &str,
    keys: &KeySet,
    expected: Typ<'_>,
) -> Result<Vec<u8>, TokenError> {
    let (kid, header_alg) = inspect_typed_header(token, expected)?;
    let key = keys
        .get(&kid)
        .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?;
    if key.alg() != header_alg {
        return Err(TokenError::AlgorithmMismatch {
            header: header_alg,
            key: key.alg(),
        });
    }
    // split_compact succeeded inside inspect_header; the signing input is everything before the last dot.
    let (_, payload, signature) = split_compact(token)?;
    let signing_input_len = token.len() - signature.len() - 1;
    let signing_input = &token.as_bytes()[..signing_input_len];
    // Strict base64url (no padding, no stray trailing bits): a token has exactly one encoding, so any
    // changed byte is a different token that fails.
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed)?;
    let provider = jsonwebtoken::crypto::CryptoProvider::try_get_default()
        .ok_or(TokenError::InvalidSignature)?;
    let verifier = (provider.verifier_factory)(&key.alg().to_jsonwebtoken(), key.decoding_key())
        .map_err(|_| TokenError::InvalidSignature)?;
    verifier
        .verify(signing_input, &signature)
        .map_err(|_| TokenError::InvalidSignature)?;
    URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)
}
