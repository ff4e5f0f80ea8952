//! JWK sets (RFC 7517 §5): the published document, and the [`KeySet`] a verifier looks keys up in by `kid`.
//! With the `remote` feature, [`remote::RemoteJwks`] keeps a JWKS fetched over HTTP fresh.

use std::collections::HashMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::{Deserialize, Serialize};

use crate::keys::{PublicJwk, RSA_BITS, SigningAlgorithm, SigningKey};

#[cfg(feature = "remote")]
pub mod remote;

/// A JWK set document: `{"keys": [...]}`, public members only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSetDocument {
    /// The keys.
    pub keys: Vec<PublicJwk>,
}

/// Why a JWK or a JWK set was not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// The document is not a JSON object with a `keys` array.
    #[error("the JWK set is not valid JSON with a keys array")]
    MalformedDocument,
    /// A key cannot be used for verification, and why.
    #[error("key {kid:?} is unusable: {reason}")]
    UnusableKey {
        /// The key's id, when it has one.
        kid: Option<String>,
        /// Why.
        reason: &'static str,
    },
}

/// A public key ready to verify signatures: its id, its algorithm and the parsed key.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: String,
    alg: SigningAlgorithm,
    decoding: DecodingKey,
    jwk: PublicJwk,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

fn decoded_len(value: &str) -> Option<usize> {
    URL_SAFE_NO_PAD.decode(value).ok().map(|bytes| bytes.len())
}

/// The kinds of public key we verify with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyFamily {
    /// EC on P-256.
    P256,
    /// OKP Ed25519.
    Ed25519,
    /// RSA of 2048 bits or more.
    Rsa,
}

/// The family and parsed public key of a JWK: EC P-256 (32-byte coordinates), OKP Ed25519 (32 bytes) or RSA
/// (≥ 2048 bits, RFC 7518 §3.3); `oct` keys never (RFC 8725 §3.1).
pub(crate) fn public_decoding_key(jwk: &PublicJwk) -> Result<(KeyFamily, DecodingKey), JwksError> {
    let unusable = |reason| JwksError::UnusableKey {
        kid: jwk.kid.clone(),
        reason,
    };
    let missing = || unusable("missing key parameter");
    match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("EC", Some("P-256")) => {
            let (x, y) = (
                jwk.x.as_deref().ok_or_else(missing)?,
                jwk.y.as_deref().ok_or_else(missing)?,
            );
            if decoded_len(x) != Some(32) || decoded_len(y) != Some(32) {
                return Err(unusable("P-256 coordinates must be 32 bytes"));
            }
            let key =
                DecodingKey::from_ec_components(x, y).map_err(|_| unusable("invalid EC key"))?;
            Ok((KeyFamily::P256, key))
        }
        ("OKP", Some("Ed25519")) => {
            let x = jwk.x.as_deref().ok_or_else(missing)?;
            if decoded_len(x) != Some(32) {
                return Err(unusable("Ed25519 public keys are 32 bytes"));
            }
            let key =
                DecodingKey::from_ed_components(x).map_err(|_| unusable("invalid OKP key"))?;
            Ok((KeyFamily::Ed25519, key))
        }
        ("RSA", _) => {
            let (n, e) = (
                jwk.n.as_deref().ok_or_else(missing)?,
                jwk.e.as_deref().ok_or_else(missing)?,
            );
            // RFC 7518 §3.3: a key of size 2048 bits or larger MUST be used.
            if decoded_len(n).is_none_or(|len| len * 8 < RSA_BITS) || decoded_len(e).is_none() {
                return Err(unusable("RSA keys must be 2048 bits or larger"));
            }
            let key =
                DecodingKey::from_rsa_components(n, e).map_err(|_| unusable("invalid RSA key"))?;
            Ok((KeyFamily::Rsa, key))
        }
        ("oct", _) => Err(unusable("symmetric keys are never accepted")),
        _ => Err(unusable("unsupported key type or curve")),
    }
}

impl VerifyingKey {
    /// Builds a verifying key from a public JWK. The algorithm is the JWK's `alg` when present, else the one
    /// its key type implies; `oct` (HMAC) keys and keys for other uses are refused (RFC 8725 §3.1).
    pub fn from_jwk(jwk: &PublicJwk) -> Result<Self, JwksError> {
        let unusable = |reason| JwksError::UnusableKey {
            kid: jwk.kid.clone(),
            reason,
        };
        let kid = jwk.kid.clone().ok_or_else(|| unusable("no kid"))?;
        if let Some(usage) = &jwk.public_key_use
            && usage != "sig"
        {
            return Err(unusable("use is not sig"));
        }
        let (family, decoding) = public_decoding_key(jwk)?;
        let implied = match family {
            KeyFamily::P256 => SigningAlgorithm::Es256,
            KeyFamily::Ed25519 => SigningAlgorithm::EdDsa,
            KeyFamily::Rsa => SigningAlgorithm::Rs256,
        };
        let alg = match &jwk.alg {
            Some(name) => {
                let alg: SigningAlgorithm =
                    name.parse().map_err(|_| unusable("unsupported alg"))?;
                // An RSA key verifies the one RSA algorithm its `alg` names (RS256 or PS256).
                if alg != implied && !(alg.is_rsa() && implied.is_rsa()) {
                    return Err(unusable("alg does not fit the key type"));
                }
                alg
            }
            None => implied,
        };
        Ok(Self {
            kid,
            alg,
            decoding,
            jwk: jwk.clone(),
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The only algorithm this key verifies.
    pub fn alg(&self) -> SigningAlgorithm {
        self.alg
    }

    /// The parsed key for jsonwebtoken.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// The public JWK.
    pub fn jwk(&self) -> &PublicJwk {
        &self.jwk
    }
}

/// Verification keys by `kid`.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: HashMap<String, VerifyingKey>,
}

impl KeySet {
    /// The public halves of signing keys (an issuer verifying its own tokens).
    pub fn from_signing_keys<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> Self {
        let mut set = Self::default();
        for key in keys {
            // Our own keys always export a complete JWK with a kid; skip defensively rather than fail.
            if let Ok(verifying) = VerifyingKey::from_jwk(key.public_jwk()) {
                set.keys.entry(verifying.kid.clone()).or_insert(verifying);
            }
        }
        set
    }

    /// Parses a JWKS document. Keys that cannot be used for signature verification are skipped, as
    /// RFC 7517 §5 asks ("ignore JWKs within a JWK Set that use kty values that are not understood");
    /// with duplicate `kid`s the first wins.
    pub fn from_jwks_json(document: &[u8]) -> Result<Self, JwksError> {
        #[derive(Deserialize)]
        struct Loose {
            keys: Vec<serde_json::Value>,
        }
        let loose: Loose =
            serde_json::from_slice(document).map_err(|_| JwksError::MalformedDocument)?;
        let mut set = Self::default();
        for value in loose.keys {
            let Ok(jwk) = serde_json::from_value::<PublicJwk>(value) else {
                continue;
            };
            if let Ok(key) = VerifyingKey::from_jwk(&jwk) {
                set.keys.entry(key.kid.clone()).or_insert(key);
            }
        }
        Ok(set)
    }

    /// The key with this id.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    /// True when a key has this id.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The algorithms of the keys, each once, in [`SigningAlgorithm::ALL`] order (OpenID Connect Discovery
    /// `id_token_signing_alg_values_supported`).
    pub fn algorithms(&self) -> Vec<SigningAlgorithm> {
        SigningAlgorithm::ALL
            .into_iter()
            .filter(|alg| self.keys.values().any(|key| key.alg() == *alg))
            .collect()
    }

    /// The document to publish (keys sorted by kid, so the output is stable).
    pub fn to_document(&self) -> JwkSetDocument {
        let mut keys: Vec<PublicJwk> = self.keys.values().map(|key| key.jwk.clone()).collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        JwkSetDocument { keys }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es256_jwk() -> PublicJwk {
        SigningKey::generate(SigningAlgorithm::Es256)
            .unwrap()
            .public_jwk()
            .clone()
    }

    #[test]
    fn document_round_trip_keeps_every_key() {
        let keys = [
            SigningKey::generate(SigningAlgorithm::Es256).unwrap(),
            SigningKey::generate(SigningAlgorithm::EdDsa).unwrap(),
        ];
        let set = KeySet::from_signing_keys(keys.iter());
        let json = serde_json::to_vec(&set.to_document()).unwrap();
        let parsed = KeySet::from_jwks_json(&json).unwrap();
        assert_eq!(parsed.len(), 2);
        for key in &keys {
            assert_eq!(parsed.get(key.kid()).unwrap().alg(), key.alg());
        }
    }

    #[test]
    fn symmetric_and_foreign_keys_are_skipped() {
        let good = es256_jwk();
        let document = serde_json::json!({ "keys": [
            { "kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256" },
            { "kty": "EC", "crv": "P-384", "kid": "p384", "x": "AA", "y": "AA" },
            { "kty": "weird" },
            "not an object",
            good,
        ]});
        let set = KeySet::from_jwks_json(document.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.contains(good.kid.as_deref().unwrap()));
        assert!(!set.contains("hmac"));
    }

    #[test]
    fn refusals_name_their_reason() {
        let mut jwk = es256_jwk();
        jwk.public_key_use = Some("enc".into());
        assert!(matches!(
            VerifyingKey::from_jwk(&jwk),
            Err(JwksError::UnusableKey {
                reason: "use is not sig",
                ..
            })
        ));
        let mut jwk = es256_jwk();
        jwk.alg = Some("RS256".into());
        assert!(matches!(
            VerifyingKey::from_jwk(&jwk),
            Err(JwksError::UnusableKey {
                reason: "alg does not fit the key type",
                ..
            })
        ));
        let mut jwk = es256_jwk();
        jwk.kid = None;
        assert!(matches!(
            VerifyingKey::from_jwk(&jwk),
            Err(JwksError::UnusableKey {
                reason: "no kid",
                ..
            })
        ));
        let small_rsa = PublicJwk {
            kty: "RSA".into(),
            n: Some(URL_SAFE_NO_PAD.encode([0xffu8; 128])),
            e: Some("AQAB".into()),
            crv: None,
            x: None,
            y: None,
            kid: Some("small".into()),
            public_key_use: None,
            alg: None,
        };
        assert!(matches!(
            VerifyingKey::from_jwk(&small_rsa),
            Err(JwksError::UnusableKey {
                reason: "RSA keys must be 2048 bits or larger",
                ..
            })
        ));
    }

    #[test]
    fn malformed_documents_are_errors() {
        for bad in [&b"not json"[..], b"{}", b"{\"keys\": 3}", b"[]"] {
            assert_eq!(
                KeySet::from_jwks_json(bad).unwrap_err(),
                JwksError::MalformedDocument
            );
        }
        assert!(
            KeySet::from_jwks_json(b"{\"keys\": []}")
                .unwrap()
                .is_empty()
        );
    }
}
