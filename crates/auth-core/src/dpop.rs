//! DPoP proofs (RFC 9449): the one policy the authorization server (/token, /par, /userinfo) and the bearer
//! layer both apply: algorithms and `typ`, the public `jwk`, `htm`/`htu` after normalization, the `iat`
//! window, `ath`, the key a token is bound to, and server nonces.
//!
//! What needs shared state (a `jti` seen before, across replicas or in one process) is the caller's:
//! [`verify_proof`] returns the proof's `jti`, its key's thumbprint and until when to remember it.

use std::fmt;

use serde_json::Value;

use crate::id::Jkt;
use crate::jose::{ClientJws, ClientKey, JwsError, sha256_base64url};
use crate::secret::{Mac, constant_time_eq};

/// The `typ` of a DPoP proof (RFC 9449 §4.2).
pub const DPOP_TYPE: &str = "dpop+jwt";

/// How old a proof's `iat` may be, in seconds (RFC 9449 §11.1 leaves the window to us).
pub const IAT_MAX_AGE: i64 = 60;

/// How far ahead of now a proof's `iat` may be, in seconds (clock skew). Short on purpose: a proof is
/// remembered until it can no longer be accepted, so one dated in the future would cost a replay cache entry
/// for that much longer.
pub const IAT_MAX_AHEAD: i64 = 10;

/// The longest `jti` we accept (its digest is what is stored, but a bound keeps hashing cheap).
pub const MAX_JTI_LENGTH: usize = 256;

/// What a proof must match: the request it came with.
#[derive(Debug, Clone, Copy)]
pub struct ProofContext<'a> {
    /// The request's method (`htm`, RFC 9449 §4.3 step 8).
    pub method: &'a str,
    /// The request's URI without query and fragment, as this server's external address makes it (`htu`).
    pub uri: &'a str,
    /// Now, in seconds since the epoch.
    pub now: i64,
    /// The access token presented with the proof, at a resource server (`ath`, §4.3 step 11).
    pub access_token: Option<&'a str>,
    /// The key the presented token (or code, or refresh token) is bound to: the proof must be by it
    /// (§4.3 step 12, §7.1).
    pub bound_to: Option<&'a Jkt>,
    /// Server nonces, when this server requires them (§8, §9): the proof must carry a current one.
    pub nonces: Option<&'a NonceSource>,
}

/// A proof that passed every check that needs no shared state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// The RFC 7638 thumbprint of the proof's key: what `cnf.jkt` binds to.
    pub jkt: Jkt,
    /// The proof's `jti`, to be recorded as used until [`VerifiedProof::remember_until`].
    pub jti: String,
    /// The proof's `iat`.
    pub iat: i64,
    /// The proof's `nonce`, if it has one.
    pub nonce: Option<String>,
}

impl VerifiedProof {
    /// The last second at which this proof could still be accepted: its `jti` must be remembered until then.
    pub fn remember_until(&self) -> i64 {
        self.iat.saturating_add(IAT_MAX_AGE).saturating_add(1)
    }
}

/// Why a proof was refused. All of these but [`ProofError::UseNonce`] are `invalid_dpop_proof` to a client
/// (RFC 9449 §7.1); the text is for the error description and the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The JWS itself: malformed, wrong `typ`, unsupported `alg`, bad signature.
    #[error("{0}")]
    Jws(#[from] JwsError),
    /// No usable `jwk` in the header: missing, private, symmetric or of an unsupported type.
    #[error("the header must carry the public key as jwk")]
    Key,
    /// A required claim is missing or not of its type.
    #[error("the proof lacks the {0} claim")]
    MissingClaim(&'static str),
    /// `htm` is not this request's method.
    #[error("htm does not match the request method")]
    Method,
    /// `htu` is not this request's URI, or carries a query or fragment.
    #[error("htu does not match the request URI")]
    Uri,
    /// `iat` is too far from now.
    #[error("the proof is not fresh (iat)")]
    Stale,
    /// `ath` is not the hash of the presented access token.
    #[error("ath does not match the access token")]
    AccessTokenHash,
    /// The proof is not by the key the token is bound to.
    #[error("the proof is not by the key the token is bound to")]
    KeyMismatch,
    /// The proof lacks the server's current nonce, which is this (`use_dpop_nonce`, §8.1, §9).
    #[error("the proof must carry the server's DPoP nonce")]
    UseNonce(String),
}

/// Checks a proof (RFC 9449 §4.3 steps 2–12 and the nonce of §8, without the `jti` replay check, which needs
/// state). The nonce is checked last, after everything else proved the proof sound, so a client that is
/// told `use_dpop_nonce` has nothing else to fix.
pub fn verify_proof(proof: &str, context: &ProofContext<'_>) -> Result<VerifiedProof, ProofError> {
    let jws = ClientJws::parse(proof, Some(DPOP_TYPE))?;
    let jwk = jws
        .header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(ProofError::Key)?;
    let key = ClientKey::from_json(jwk).map_err(|_| ProofError::Key)?;
    jws.verify_with(&key)?;
    let jti = jws
        .claim_str("jti")
        .ok_or(ProofError::MissingClaim("jti"))?;
    if jti.is_empty() || jti.len() > MAX_JTI_LENGTH {
        return Err(ProofError::MissingClaim("jti"));
    }
    let htm = jws
        .claim_str("htm")
        .ok_or(ProofError::MissingClaim("htm"))?;
    if htm != context.method {
        return Err(ProofError::Method);
    }
    let htu = jws
        .claim_str("htu")
        .ok_or(ProofError::MissingClaim("htu"))?;
    if !same_target_uri(htu, context.uri) {
        return Err(ProofError::Uri);
    }
    let iat = jws
        .claim_time("iat")
        .ok_or(ProofError::MissingClaim("iat"))?;
    // Saturating: an `iat` near i64::MIN or MAX must not overflow its way into the window.
    if iat < context.now.saturating_sub(IAT_MAX_AGE)
        || iat > context.now.saturating_add(IAT_MAX_AHEAD)
    {
        return Err(ProofError::Stale);
    }
    if let Some(token) = context.access_token {
        let ath = jws
            .claim_str("ath")
            .ok_or(ProofError::MissingClaim("ath"))?;
        if !constant_time_eq(ath.as_bytes(), sha256_base64url(token).as_bytes()) {
            return Err(ProofError::AccessTokenHash);
        }
    }
    let nonce = match jws.payload.get("nonce") {
        None => None,
        Some(Value::String(nonce)) => Some(nonce.clone()),
        Some(_) => return Err(ProofError::MissingClaim("nonce")),
    };
    let jkt = Jkt::from_trusted(key.thumbprint());
    if context.bound_to.is_some_and(|bound| *bound != jkt) {
        return Err(ProofError::KeyMismatch);
    }
    if let Some(nonces) = context.nonces
        && !nonce
            .as_deref()
            .is_some_and(|nonce| nonces.accepts(nonce, context.now))
    {
        return Err(ProofError::UseNonce(nonces.current(context.now)));
    }
    Ok(VerifiedProof {
        jkt,
        jti: jti.to_owned(),
        iat,
        nonce,
    })
}

/// RFC 9449 §4.3 step 9: `htu` equals the request's URI, ignoring query and fragment, after syntax-based and
/// scheme-based normalization (RFC 3986 §6.2.2, §6.2.3: case of scheme and host, default port, percent-encoding
/// case, dot segments). A proof whose `htu` carries a query or fragment was not made as §4.2 says: refused.
pub fn same_target_uri(htu: &str, expected: &str) -> bool {
    let (Ok(htu), Ok(expected)) = (url::Url::parse(htu), url::Url::parse(expected)) else {
        return false;
    };
    if htu.query().is_some() || htu.fragment().is_some() || htu.cannot_be_a_base() {
        return false;
    }
    htu.scheme() == expected.scheme()
        && htu.host() == expected.host()
        && htu.port_or_known_default() == expected.port_or_known_default()
        && htu.username().is_empty()
        && htu.password().is_none()
        && normalized_path(htu.path()) == normalized_path(expected.path())
}

/// Percent-encoded octets with upper-case hex digits, and unreserved characters decoded (RFC 3986 §6.2.2.1–2).
fn normalized_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = path.get(i + 1..i + 3)
            && let Ok(octet) = u8::from_str_radix(hex, 16)
        {
            if octet.is_ascii_alphanumeric() || b"-._~".contains(&octet) {
                out.push(char::from(octet));
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
            continue;
        }
        out.push(char::from(bytes[i]));
        i += 1;
    }
    out
}

/// How long a server nonce is current, in seconds; the previous one is still accepted, so a nonce lives
/// between one and two periods.
pub const NONCE_PERIOD: i64 = 300;

/// Server-provided nonces (RFC 9449 §8): a MAC of the period number under a key every replica shares, so any
/// replica accepts a nonce any other issued, with nothing stored.
pub struct NonceSource {
    mac: Mac,
}

impl fmt::Debug for NonceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceSource")
    }
}

impl NonceSource {
    /// Nonces under `key` (at least 32 random bytes, shared by the replicas).
    pub fn new(key: &[u8]) -> Self {
        Self { mac: Mac::new(key) }
    }

    fn period(now: i64) -> i64 {
        now.div_euclid(NONCE_PERIOD)
    }

    fn for_period(&self, period: i64) -> String {
        let number = period.to_string();
        format!(
            "{number}.{}",
            self.mac.tag(&[b"dpop-nonce", number.as_bytes()])
        )
    }

    /// The current nonce.
    pub fn current(&self, now: i64) -> String {
        self.for_period(Self::period(now))
    }

    /// Whether `nonce` is the current or the previous period's.
    pub fn accepts(&self, nonce: &str, now: i64) -> bool {
        let Some((number, tag)) = nonce.split_once('.') else {
            return false;
        };
        let Ok(period) = number.parse::<i64>() else {
            return false;
        };
        let current = Self::period(now);
        (period == current || period == current - 1)
            && number == period.to_string()
            && self.mac.verify(&[b"dpop-nonce", number.as_bytes()], tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_uris_compare_after_normalization_and_refuse_a_query() {
        let expected = "https://as.example/token";
        for same in [
            "https://as.example/token",
            "HTTPS://AS.EXAMPLE/token",
            "https://as.example:443/token",
            "https://as.example/%74oken",
            "https://as.example/a/../token",
        ] {
            assert!(same_target_uri(same, expected), "{same}");
        }
        for other in [
            "https://as.example/token?x=1",
            "https://as.example/token#f",
            "http://as.example/token",
            "https://as.example:8443/token",
            "https://other.example/token",
            "https://as.example/Token",
            "https://user@as.example/token",
            "not a url",
        ] {
            assert!(!same_target_uri(other, expected), "{other}");
        }
    }

    #[test]
    fn a_proof_checks_out_and_an_iat_far_from_now_never_wraps_past_the_window() {
        use crate::keys::{SigningAlgorithm, SigningKey};
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let key = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
        let now = 1_000_000;
        let proof = |iat: i64| {
            let header =
                serde_json::json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk() });
            let claims = serde_json::json!({ "jti": "j", "htm": "POST", "htu": "https://as.example/token", "iat": iat });
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let signature = key.sign(input.as_bytes()).unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
        };
        let context = ProofContext {
            method: "POST",
            uri: "https://as.example/token",
            now,
            access_token: None,
            bound_to: None,
            nonces: None,
        };
        let verified = verify_proof(&proof(now - 30), &context).unwrap();
        assert!(verify_proof(&proof(now - 60), &context).is_ok());
        assert!(verify_proof(&proof(now + 10), &context).is_ok());
        assert_eq!(
            verified.jkt.as_str(),
            key.public_jwk().thumbprint().unwrap()
        );
        let other = Jkt::from_trusted("x".repeat(43));
        assert_eq!(
            verify_proof(
                &proof(now),
                &ProofContext {
                    bound_to: Some(&other),
                    ..context
                }
            ),
            Err(ProofError::KeyMismatch)
        );
        let nonces = NonceSource::new(&[3; 32]);
        assert_eq!(
            verify_proof(
                &proof(now),
                &ProofContext {
                    nonces: Some(&nonces),
                    ..context
                }
            ),
            Err(ProofError::UseNonce(nonces.current(now)))
        );
        for iat in [i64::MIN, i64::MIN + now, i64::MAX, now + 11, now - 61] {
            assert_eq!(
                verify_proof(&proof(iat), &context),
                Err(ProofError::Stale),
                "{iat}"
            );
        }
    }

    #[test]
    fn nonces_live_one_to_two_periods_and_need_the_key() {
        let source = NonceSource::new(&[7; 32]);
        let now = 1_000_000;
        let nonce = source.current(now);
        assert!(source.accepts(&nonce, now));
        assert!(source.accepts(&nonce, now + NONCE_PERIOD));
        assert!(!source.accepts(&nonce, now + 2 * NONCE_PERIOD));
        assert!(!source.accepts(&nonce, now - NONCE_PERIOD));
        assert!(!NonceSource::new(&[8; 32]).accepts(&nonce, now));
        let (number, tag) = nonce.split_once('.').unwrap();
        assert!(!source.accepts(&format!("0{number}.{tag}"), now));
        assert!(!source.accepts("garbage", now));
    }
}
