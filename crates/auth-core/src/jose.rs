//! Signatures that clients make: DPoP proofs (RFC 9449) and client assertions (RFC 7523). A client chooses
//! among more algorithms than we sign with (PS256, and Ed25519 under both of its JOSE names, RFC 9864), and
//! its keys come from the client, so every key is checked for its type, size and the algorithm it may serve.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde_json::{Map, Value};

use crate::jwks::{JwksError, KeyFamily, public_decoding_key};
use crate::keys::PublicJwk;

/// The largest client-made JWS we look at (a proof with an RSA-4096 `jwk` is under 2 KiB).
pub const MAX_CLIENT_JWS_LENGTH: usize = 8 * 1024;

/// The JWS algorithms a client may sign with. `none` and HS* are never among them (RFC 8725 §3.1, RFC 9449
/// §4.3 step 5, RFC 7523 §3 step 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientAlgorithm {
    /// ECDSA P-256 SHA-256.
    Es256,
    /// Ed25519, by its RFC 8037 name.
    EdDsa,
    /// Ed25519, by its RFC 9864 name (openid-client 6 sends this one).
    Ed25519,
    /// RSASSA-PKCS1-v1_5 SHA-256.
    Rs256,
    /// RSASSA-PSS SHA-256.
    Ps256,
}

impl ClientAlgorithm {
    /// Every algorithm a client may use, as metadata lists them.
    pub const ALL: [Self; 5] = [
        Self::Es256,
        Self::EdDsa,
        Self::Ed25519,
        Self::Rs256,
        Self::Ps256,
    ];

    /// The JOSE name (case-sensitive, RFC 7515 §4.1.1).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Ed25519 => "Ed25519",
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
        }
    }

    /// The algorithm of a JOSE name, if a client may use it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == name)
    }

    /// Every JOSE name, space separated (a `WWW-Authenticate: DPoP algs="…"` value).
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(" ")
    }

    fn family(self) -> KeyFamily {
        match self {
            Self::Es256 => KeyFamily::P256,
            Self::EdDsa | Self::Ed25519 => KeyFamily::Ed25519,
            Self::Rs256 | Self::Ps256 => KeyFamily::Rsa,
        }
    }

    fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::Es256 => jsonwebtoken::Algorithm::ES256,
            Self::EdDsa | Self::Ed25519 => jsonwebtoken::Algorithm::EdDSA,
            Self::Rs256 => jsonwebtoken::Algorithm::RS256,
            Self::Ps256 => jsonwebtoken::Algorithm::PS256,
        }
    }

    /// Whether a key whose JWK says `alg` may serve this algorithm. Ed25519's two names are one algorithm.
    fn fits_declared(self, declared: &str) -> bool {
        match self {
            Self::EdDsa | Self::Ed25519 => declared == "EdDSA" || declared == "Ed25519",
            _ => declared == self.as_str(),
        }
    }
}

impl fmt::Display for ClientAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A client's public key, checked and parsed.
#[derive(Clone)]
pub struct ClientKey {
    jwk: PublicJwk,
    family: KeyFamily,
    decoding: DecodingKey,
    thumbprint: String,
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("kid", &self.jwk.kid)
            .field("thumbprint", &self.thumbprint)
            .finish()
    }
}

/// Members that only private or symmetric JWKs have (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

impl ClientKey {
    /// A key from a JWK as JSON: refused if it carries any private member (RFC 9449 §4.3 step 7), is
    /// symmetric, or is not an EC P-256, OKP Ed25519 or RSA (≥ 2048 bits) key.
    pub fn from_json(jwk: &Map<String, Value>) -> Result<Self, JwksError> {
        if PRIVATE_MEMBERS
            .iter()
            .any(|member| jwk.contains_key(*member))
        {
            return Err(JwksError::UnusableKey {
                kid: None,
                reason: "a JWK with private members",
            });
        }
        let parsed: PublicJwk = serde_json::from_value(Value::Object(jwk.clone()))
            .map_err(|_| JwksError::MalformedDocument)?;
        Self::from_jwk(&parsed)
    }

    /// A key from a public JWK (as a client registered it).
    pub fn from_jwk(jwk: &PublicJwk) -> Result<Self, JwksError> {
        if let Some(usage) = &jwk.public_key_use
            && usage != "sig"
        {
            return Err(JwksError::UnusableKey {
                kid: jwk.kid.clone(),
                reason: "use is not sig",
            });
        }
        let (family, decoding) = public_decoding_key(jwk)?;
        let thumbprint = jwk.thumbprint().map_err(|_| JwksError::UnusableKey {
            kid: jwk.kid.clone(),
            reason: "missing key parameter",
        })?;
        Ok(Self {
            jwk: jwk.clone(),
            family,
            decoding,
            thumbprint,
        })
    }

    /// The RFC 7638 thumbprint (a DPoP `jkt`).
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The key's id, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.jwk.kid.as_deref()
    }

    /// The JWK.
    pub fn jwk(&self) -> &PublicJwk {
        &self.jwk
    }

    /// Whether this key may verify `alg`: the key type must fit, and a declared `alg` must agree.
    pub fn fits(&self, alg: ClientAlgorithm) -> bool {
        alg.family() == self.family
            && self
                .jwk
                .alg
                .as_deref()
                .is_none_or(|declared| alg.fits_declared(declared))
    }

    /// Verifies a signature over `input`.
    pub fn verify(&self, alg: ClientAlgorithm, input: &[u8], signature: &[u8]) -> bool {
        if !self.fits(alg) {
            return false;
        }
        let Some(provider) = jsonwebtoken::crypto::CryptoProvider::try_get_default() else {
            return false;
        };
        (provider.verifier_factory)(&alg.to_jsonwebtoken(), &self.decoding)
            .is_ok_and(|verifier| verifier.verify(input, &signature.to_vec()).is_ok())
    }
}

/// Why a client-made JWS was refused before its claims were read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Not a compact JWS of three base64url parts with a JSON header and payload, or too large.
    #[error("not a well-formed compact JWS")]
    Malformed,
    /// `alg` is missing, `none`, symmetric or not one a client may use. (What the client sent is kept for
    /// debugging, never echoed in an error description or a challenge.)
    #[error("the alg is not one of ES256, EdDSA, Ed25519, RS256, PS256")]
    UnsupportedAlgorithm(String),
    /// The header has `crit`, which we do not understand (RFC 7515 §4.1.11).
    #[error("critical header parameters are not supported")]
    CriticalHeader,
    /// `typ` is not the one this kind of JWS must have.
    #[error("wrong typ")]
    WrongType,
    /// The key cannot serve the header's algorithm, or the signature does not verify.
    #[error("the signature does not verify")]
    InvalidSignature,
}

/// A client-made compact JWS, split and decoded, signature not yet checked.
#[derive(Debug)]
pub struct ClientJws<'a> {
    /// The protected header.
    pub header: Map<String, Value>,
    /// The header's algorithm.
    pub alg: ClientAlgorithm,
    /// The payload as JSON.
    pub payload: Map<String, Value>,
    signing_input: &'a [u8],
    signature: Vec<u8>,
}

impl<'a> ClientJws<'a> {
    /// Splits and decodes a compact JWS (strict base64url), checking what needs no key: size, `alg`, no
    /// `crit`, and (when given) the `typ`, compared as the JWT BCP says (RFC 8725 §3.11).
    pub fn parse(compact: &'a str, typ: Option<&str>) -> Result<Self, JwsError> {
        if compact.len() > MAX_CLIENT_JWS_LENGTH {
            return Err(JwsError::Malformed);
        }
        let mut parts = compact.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwsError::Malformed);
        };
        let object = |part: &str| -> Result<Map<String, Value>, JwsError> {
            let bytes = URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| JwsError::Malformed)?;
            serde_json::from_slice(&bytes).map_err(|_| JwsError::Malformed)
        };
        let header = object(header)?;
        let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
        let alg = ClientAlgorithm::from_name(alg_name)
            .ok_or_else(|| JwsError::UnsupportedAlgorithm(alg_name.to_owned()))?;
        if header.contains_key("crit") {
            return Err(JwsError::CriticalHeader);
        }
        if let Some(expected) = typ {
            let found = header.get("typ").and_then(Value::as_str);
            if !found.is_some_and(|found| crate::typ::is_type(found, expected)) {
                return Err(JwsError::WrongType);
            }
        }
        let payload = object(payload)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| JwsError::Malformed)?;
        let signing_input =
            &compact.as_bytes()[..compact.len() - parts_len_after_last_dot(compact)];
        Ok(Self {
            header,
            alg,
            payload,
            signing_input,
            signature,
        })
    }

    /// Verifies the signature with `key` under the header's algorithm.
    pub fn verify_with(&self, key: &ClientKey) -> Result<(), JwsError> {
        if key.verify(self.alg, self.signing_input, &self.signature) {
            Ok(())
        } else {
            Err(JwsError::InvalidSignature)
        }
    }

    /// A string header member.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    /// A string claim.
    pub fn claim_str(&self, name: &str) -> Option<&str> {
        self.payload.get(name).and_then(Value::as_str)
    }

    /// A NumericDate claim as whole seconds (fractions are cut; anything else is absent).
    pub fn claim_time(&self, name: &str) -> Option<i64> {
        let value = self.payload.get(name)?;
        value
            .as_i64()
            .or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
    }
}

/// The length of the signature part with its dot.
fn parts_len_after_last_dot(compact: &str) -> usize {
    compact.rfind('.').map_or(0, |dot| compact.len() - dot)
}

/// base64url(SHA-256(text)): the `ath` of a DPoP proof (RFC 9449 §4.2) and similar hashes.
pub fn sha256_base64url(text: &str) -> String {
    use sha2::{Digest, Sha256};
    URL_SAFE_NO_PAD.encode(Sha256::digest(text.as_bytes()))
}
