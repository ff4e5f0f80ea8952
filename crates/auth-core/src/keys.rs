//! Signing keys: generation (pure Rust), the PKCS#8 storage form, optional AES-256-GCM encryption at rest,
//! public JWK export (RFC 7517/7518, RFC 8037 for OKP) and RFC 7638 thumbprints used as `kid`.
//!
//! A [`SigningKey`] parses its PKCS#8 document once into an aws-lc-rs key pair and keeps it: re-parsing
//! on every signature (what `jsonwebtoken::encode` does) costs about half of an ES256 signature.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
    RSA_PSS_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::secret::fill_random;
use crate::typ::JwtType;

/// The JWS algorithms we sign with. Anything else (above all `none` and HS*) is never accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4): the default.
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519 (RFC 8037 §3.1).
    #[serde(rename = "EdDSA")]
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3), 2048-bit keys or larger.
    #[serde(rename = "RS256")]
    Rs256,
    /// RSASSA-PSS with SHA-256 and MGF1 (RFC 7518 §3.5), 2048-bit keys or larger: ID tokens of clients
    /// that registered it.
    #[serde(rename = "PS256")]
    Ps256,
}

impl SigningAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [SigningAlgorithm; 4] = [Self::Es256, Self::EdDsa, Self::Rs256, Self::Ps256];

    /// The JOSE name (`ES256`, `EdDSA`, `RS256`, `PS256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
            Self::Ps256 => "PS256",
        }
    }

    /// Whether its keys are RSA keys.
    pub fn is_rsa(self) -> bool {
        matches!(self, Self::Rs256 | Self::Ps256)
    }

    /// The same algorithm in jsonwebtoken's terms.
    pub fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::Es256 => jsonwebtoken::Algorithm::ES256,
            Self::EdDsa => jsonwebtoken::Algorithm::EdDSA,
            Self::Rs256 => jsonwebtoken::Algorithm::RS256,
            Self::Ps256 => jsonwebtoken::Algorithm::PS256,
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An algorithm name we do not sign or verify with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported signing algorithm {0:?} (supported: ES256, EdDSA, RS256, PS256)")]
pub struct UnsupportedAlgorithm(pub String);

impl FromStr for SigningAlgorithm {
    type Err = UnsupportedAlgorithm;

    /// JOSE algorithm names are case-sensitive (RFC 7515 §4.1.1).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "ES256" => Ok(Self::Es256),
            "EdDSA" => Ok(Self::EdDsa),
            "RS256" => Ok(Self::Rs256),
            "PS256" => Ok(Self::Ps256),
            other => Err(UnsupportedAlgorithm(other.to_owned())),
        }
    }
}

/// Why a key could not be made, loaded, sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Key generation failed.
    #[error("key generation failed: {0}")]
    Generation(String),
    /// The PKCS#8 document is not a valid key for the algorithm.
    #[error("the stored key is not a valid {0} PKCS#8 key")]
    InvalidPrivateKey(SigningAlgorithm),
    /// The key-encryption key is not 32 bytes of base64. The message says what a key looks like and never
    /// repeats the value, which is a secret even when malformed.
    #[error(
        "the key-encryption key must be 32 bytes encoded as base64url (43 characters of A-Z a-z 0-9 - _, \
         as `auth-server keys generate-kek` prints it); standard base64 with padding is accepted too"
    )]
    InvalidEncryptionKey,
    /// The sealed key does not open with this key-encryption key (wrong key, or tampered record).
    #[error("the encrypted key does not decrypt with the configured key-encryption key")]
    Decryption,
    /// Encryption or signing failed inside the crypto library.
    #[error("cryptographic operation failed")]
    Crypto,
    /// The OS RNG failed.
    #[error("the operating system random number generator failed")]
    Random,
}

/// RSA modulus size for generated keys (RFC 7518 §3.3 requires 2048 bits or more).
pub const RSA_BITS: usize = 2048;

/// RFC 8410 §7: PKCS#8 v1 prefix of an Ed25519 private key, followed by the 32-byte seed.
const ED25519_PKCS8_V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Generates a private key for `alg` and returns its PKCS#8 DER document.
///
/// All generation is pure Rust, from the OS RNG: P-256 with the `p256` crate, RSA with the `rsa` crate, and
/// Ed25519, whose private key is 32 random bytes (RFC 8032 §5.1.5), wrapped in its RFC 8410 PKCS#8 form.
pub fn generate_pkcs8(alg: SigningAlgorithm) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let mut rng = getrandom::SysRng;
    match alg {
        SigningAlgorithm::Es256 => {
            use p256::elliptic_curve::Generate as _;
            use p256::pkcs8::EncodePrivateKey as _;
            let key = p256::ecdsa::SigningKey::try_generate_from_rng(&mut rng)
                .map_err(|_| KeyError::Random)?;
            let document = key
                .to_pkcs8_der()
                .map_err(|error| KeyError::Generation(error.to_string()))?;
            Ok(Zeroizing::new(document.as_bytes().to_vec()))
        }
        SigningAlgorithm::EdDsa => {
            let mut seed = Zeroizing::new([0u8; 32]);
            fill_random(seed.as_mut()).map_err(|_| KeyError::Random)?;
            let mut document = Zeroizing::new(Vec::with_capacity(48));
            document.extend_from_slice(&ED25519_PKCS8_V1_PREFIX);
            document.extend_from_slice(seed.as_ref());
            Ok(document)
        }
        SigningAlgorithm::Rs256 | SigningAlgorithm::Ps256 => {
            use rsa::pkcs8::EncodePrivateKey as _;
            let key = rsa::PrivateKey::new(&mut rng, RSA_BITS)
                .map_err(|error| KeyError::Generation(error.to_string()))?;
            let document = key
                .to_pkcs8_der()
                .map_err(|error| KeyError::Generation(error.to_string()))?;
            Ok(Zeroizing::new(document.as_bytes().to_vec()))
        }
    }
}

/// A public key as a JWK (RFC 7517), with the members RFC 7518 §6 and RFC 8037 §2 define for its type.
/// Private members (`d`, `p`, `q`, …) do not exist in this type, so they can never be published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    /// Key type: `EC`, `OKP` or `RSA`.
    pub kty: String,
    /// Curve for EC and OKP keys (`P-256`, `Ed25519`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate or OKP public key, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA public exponent, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Intended use: `sig`.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub public_key_use: Option<String>,
    /// The algorithm the key is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
}

/// A JWK lacks a member its key type requires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JWK of type {kty:?} lacks required member {member:?}")]
pub struct IncompleteJwk {
    /// The key type.
    pub kty: String,
    /// The missing member.
    pub member: &'static str,
}

impl PublicJwk {
    /// The RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order, no whitespace,
    /// base64url encoded.
    pub fn thumbprint(&self) -> Result<String, IncompleteJwk> {
        let required =
            |member: &'static str, value: &Option<String>| -> Result<String, IncompleteJwk> {
                value.clone().ok_or(IncompleteJwk {
                    kty: self.kty.clone(),
                    member,
                })
            };
        let mut members = BTreeMap::new();
        members.insert("kty", self.kty.clone());
        match self.kty.as_str() {
            "EC" => {
                members.insert("crv", required("crv", &self.crv)?);
                members.insert("x", required("x", &self.x)?);
                members.insert("y", required("y", &self.y)?);
            }
            "OKP" => {
                members.insert("crv", required("crv", &self.crv)?);
                members.insert("x", required("x", &self.x)?);
            }
            "RSA" => {
                members.insert("e", required("e", &self.e)?);
                members.insert("n", required("n", &self.n)?);
            }
            _ => {
                return Err(IncompleteJwk {
                    kty: self.kty.clone(),
                    member: "kty",
                });
            }
        }
        // A BTreeMap serializes its keys in order, and serde_json writes no whitespace: exactly the
        // RFC 7638 §3.3 canonical form.
        let canonical = serde_json::to_string(&members).map_err(|_| IncompleteJwk {
            kty: self.kty.clone(),
            member: "kty",
        })?;
        Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
    }
}

enum KeyPair {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Rs256(RsaKeyPair),
    Ps256(RsaKeyPair),
}

/// A private signing key, parsed once and kept for the life of the process.
///
/// The PKCS#8 document zeroizes on drop (aws-lc frees its own copy with `OPENSSL_free`, which cleanses
/// memory); neither appears in `Debug`.
pub struct SigningKey {
    alg: SigningAlgorithm,
    kid: String,
    pkcs8: Zeroizing<Vec<u8>>,
    pair: KeyPair,
    public_jwk: PublicJwk,
    /// `BASE64URL(UTF8(JWS Protected Header))` of each kind of JWT signed with this key (in
    /// [`JwtType::ALL`] order), computed once.
    encoded_headers: [String; 3],
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl SigningKey {
    /// Generates a new key for `alg`.
    pub fn generate(alg: SigningAlgorithm) -> Result<Self, KeyError> {
        let pkcs8 = generate_pkcs8(alg)?;
        Self::from_pkcs8(alg, &pkcs8)
    }

    /// Loads a key from its PKCS#8 DER document.
    pub fn from_pkcs8(alg: SigningAlgorithm, pkcs8: &[u8]) -> Result<Self, KeyError> {
        let invalid = |_| KeyError::InvalidPrivateKey(alg);
        let (pair, mut jwk) = match alg {
            SigningAlgorithm::Es256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(invalid)?;
                // An uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = pair.public_key().as_ref();
                if point.len() != 65 || point[0] != 0x04 {
                    return Err(KeyError::InvalidPrivateKey(alg));
                }
                let jwk = PublicJwk {
                    kty: "EC".into(),
                    crv: Some("P-256".into()),
                    x: Some(URL_SAFE_NO_PAD.encode(&point[1..33])),
                    y: Some(URL_SAFE_NO_PAD.encode(&point[33..65])),
                    ..PublicJwk::empty()
                };
                (KeyPair::Es256(pair), jwk)
            }
            SigningAlgorithm::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(invalid)?;
                let jwk = PublicJwk {
                    kty: "OKP".into(),
                    crv: Some("Ed25519".into()),
                    x: Some(URL_SAFE_NO_PAD.encode(pair.public_key().as_ref())),
                    ..PublicJwk::empty()
                };
                (KeyPair::EdDsa(pair), jwk)
            }
            SigningAlgorithm::Rs256 | SigningAlgorithm::Ps256 => {
                let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(invalid)?;
                if pair.public_modulus_len() * 8 < RSA_BITS {
                    return Err(KeyError::InvalidPrivateKey(alg));
                }
                let public = pair.public_key();
                let jwk = PublicJwk {
                    kty: "RSA".into(),
                    n: Some(
                        URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                    ),
                    e: Some(
                        URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
                    ),
                    ..PublicJwk::empty()
                };
                if alg == SigningAlgorithm::Ps256 {
                    (KeyPair::Ps256(pair), jwk)
                } else {
                    (KeyPair::Rs256(pair), jwk)
                }
            }
        };
        let kid = jwk
            .thumbprint()
            .map_err(|_| KeyError::InvalidPrivateKey(alg))?;
        jwk.kid = Some(kid.clone());
        jwk.public_key_use = Some("sig".into());
        jwk.alg = Some(alg.as_str().into());
        let encoded_header = |typ: &str| {
            let header = serde_json::json!({ "alg": alg.as_str(), "typ": typ, "kid": kid });
            URL_SAFE_NO_PAD.encode(header.to_string())
        };
        let encoded_headers = JwtType::ALL.map(|typ| encoded_header(typ.as_str()));
        Ok(Self {
            alg,
            kid,
            pkcs8: Zeroizing::new(pkcs8.to_vec()),
            pair,
            public_jwk: jwk,
            encoded_headers,
        })
    }

    /// The algorithm.
    pub fn alg(&self) -> SigningAlgorithm {
        self.alg
    }

    /// The key id: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK with `kid`, `use: sig` and `alg`.
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.public_jwk
    }

    /// The PKCS#8 DER document, for storage (seal it with a [`KeyEncryptionKey`] when one is configured).
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The base64url header `{"alg", "typ", "kid"}` of a JWT of this kind signed by this key, encoded once.
    pub(crate) fn encoded_header(&self, typ: JwtType) -> &str {
        &self.encoded_headers[typ.index()]
    }

    /// Signs `message` and returns the JWS signature bytes (RFC 7518: fixed-width R || S for ECDSA).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            KeyPair::Es256(pair) => {
                // aws-lc-rs draws the ECDSA nonce itself; the rng argument exists for ring compatibility.
                let signature = pair
                    .sign(&SystemRandom::new(), message)
                    .map_err(|_| KeyError::Crypto)?;
                Ok(signature.as_ref().to_vec())
            }
            KeyPair::EdDsa(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            KeyPair::Rs256(pair) | KeyPair::Ps256(pair) => {
                let padding: &'static dyn aws_lc_rs::signature::RsaEncoding =
                    if matches!(self.pair, KeyPair::Ps256(_)) {
                        &RSA_PSS_SHA256
                    } else {
                        &RSA_PKCS1_SHA256
                    };
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(padding, &SystemRandom::new(), message, &mut signature)
                    .map_err(|_| KeyError::Crypto)?;
                Ok(signature)
            }
        }
    }
}

impl jsonwebtoken::signature::Signer<Vec<u8>> for SigningKey {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, jsonwebtoken::signature::Error> {
        self.sign(message)
            .map_err(jsonwebtoken::signature::Error::from_source)
    }
}

/// The kept key plugs into jsonwebtoken's crypto traits, so any jsonwebtoken-based code can sign with it.
impl jsonwebtoken::crypto::JwtSigner for SigningKey {
    fn algorithm(&self) -> jsonwebtoken::Algorithm {
        self.alg.to_jsonwebtoken()
    }
}

impl PublicJwk {
    fn empty() -> Self {
        Self {
            kty: String::new(),
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
            kid: None,
            public_key_use: None,
            alg: None,
        }
    }
}

/// The key that encrypts signing keys at rest (AES-256-GCM), from `AUTH_KEY_ENCRYPTION_KEY`.
pub struct KeyEncryptionKey {
    key: LessSafeKey,
}

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyEncryptionKey(<redacted>)")
    }
}

/// Version byte of the sealed format: `0x01 || nonce (12) || ciphertext || tag (16)`.
const SEALED_FORMAT_V1: u8 = 0x01;

impl KeyEncryptionKey {
    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let unbound =
            UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| KeyError::InvalidEncryptionKey)?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// A key from its configuration text: 32 bytes, base64 (standard or URL-safe, padding optional).
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .or_else(|_| STANDARD.decode(text))
                .map_err(|_| KeyError::InvalidEncryptionKey)?,
        );
        if bytes.len() != 32 {
            return Err(KeyError::InvalidEncryptionKey);
        }
        Self::from_bytes(&bytes)
    }

    /// A random key as base64url, printed once by tooling for the operator to keep.
    ///
    /// The text never starts with `-`: a value that does is read as a flag by many command-line parsers
    /// (ours accept it, other tools may not), so the one draw in 64 whose first character would be `-` is
    /// drawn again. That removes log2(64/63) ≈ 0.02 of the 256 bits.
    pub fn generate_base64() -> Result<String, KeyError> {
        loop {
            let mut bytes = Zeroizing::new([0u8; 32]);
            fill_random(bytes.as_mut()).map_err(|_| KeyError::Random)?;
            let text = URL_SAFE_NO_PAD.encode(bytes.as_ref());
            if !text.starts_with('-') {
                return Ok(text);
            }
        }
    }

    /// Encrypts `plaintext`; `context` (e.g. the key id) is authenticated, so a sealed key cannot be moved
    /// to another record unnoticed.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        // 96-bit random nonces: safe for far more than the handful of keys a deployment ever seals.
        fill_random(&mut nonce).map_err(|_| KeyError::Random)?;
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut in_out,
            )
            .map_err(|_| KeyError::Crypto)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        sealed.push(SEALED_FORMAT_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        in_out.iter_mut().for_each(|byte| *byte = 0);
        Ok(sealed)
    }

    /// Decrypts what [`KeyEncryptionKey::seal`] produced with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        if sealed.len() < 1 + NONCE_LEN + AES_256_GCM.tag_len() || sealed[0] != SEALED_FORMAT_V1 {
            return Err(KeyError::Decryption);
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[1..1 + NONCE_LEN])
            .map_err(|_| KeyError::Decryption)?;
        let mut in_out = Zeroizing::new(sealed[1 + NONCE_LEN..].to_vec());
        let plaintext_len = self
            .key
            .open_in_place(nonce, Aad::from(context), in_out.as_mut_slice())
            .map_err(|_| KeyError::Decryption)?
            .len();
        in_out.truncate(plaintext_len);
        Ok(in_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8037 Appendix A.1: the Ed25519 private key `d`.
    const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    /// RFC 8037 Appendix A.2: its public key `x`.
    const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    pub(crate) fn rfc8037_key() -> SigningKey {
        let mut pkcs8 = ED25519_PKCS8_V1_PREFIX.to_vec();
        pkcs8.extend_from_slice(&URL_SAFE_NO_PAD.decode(RFC8037_D).unwrap());
        SigningKey::from_pkcs8(SigningAlgorithm::EdDsa, &pkcs8).unwrap()
    }

    #[test]
    fn rfc8037_ed25519_jwk_known_answer() {
        let key = rfc8037_key();
        let jwk = key.public_jwk();
        assert_eq!(jwk.kty, "OKP");
        assert_eq!(jwk.crv.as_deref(), Some("Ed25519"));
        assert_eq!(jwk.x.as_deref(), Some(RFC8037_X));
        // RFC 8037 Appendix A.3: the JWK thumbprint.
        assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn rfc8037_ed25519_signature_known_answer() {
        // RFC 8037 Appendix A.4: Ed25519 is deterministic, so the signature is fixed.
        let key = rfc8037_key();
        let signing_input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
        let signature = URL_SAFE_NO_PAD.encode(key.sign(signing_input.as_bytes()).unwrap());
        assert_eq!(
            signature,
            "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
    }

    #[test]
    fn rfc7638_rsa_thumbprint_known_answer() {
        // RFC 7638 §3.1.
        let jwk = PublicJwk {
            kty: "RSA".into(),
            n: Some("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into()),
            e: Some("AQAB".into()),
            alg: Some("RS256".into()),
            kid: Some("2011-04-29".into()),
            ..PublicJwk::empty()
        };
        assert_eq!(
            jwk.thumbprint().unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn thumbprint_needs_the_required_members() {
        let jwk = PublicJwk {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            x: Some("AA".into()),
            ..PublicJwk::empty()
        };
        assert_eq!(
            jwk.thumbprint(),
            Err(IncompleteJwk {
                kty: "EC".into(),
                member: "y"
            })
        );
        let oct = PublicJwk {
            kty: "oct".into(),
            ..PublicJwk::empty()
        };
        assert!(oct.thumbprint().is_err());
    }

    #[test]
    fn generated_keys_round_trip_through_pkcs8_and_publish_only_public_members() {
        for alg in [SigningAlgorithm::Es256, SigningAlgorithm::EdDsa] {
            let key = SigningKey::generate(alg).unwrap();
            let again = SigningKey::from_pkcs8(alg, key.pkcs8_der()).unwrap();
            assert_eq!(key.kid(), again.kid());
            let json = serde_json::to_value(key.public_jwk()).unwrap();
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(json.get(private).is_none(), "{alg}: {private} published");
            }
            assert_eq!(json["use"], "sig");
            assert_eq!(json["alg"], alg.as_str());
            assert_eq!(json["kid"], key.kid());
        }
    }

    #[test]
    fn generated_rsa_key_is_2048_bits() {
        let key = SigningKey::generate(SigningAlgorithm::Rs256).unwrap();
        let n = URL_SAFE_NO_PAD
            .decode(key.public_jwk().n.as_deref().unwrap())
            .unwrap();
        assert_eq!(n.len() * 8, RSA_BITS);
        assert_eq!(key.public_jwk().e.as_deref(), Some("AQAB"));
        assert_eq!(key.sign(b"message").unwrap().len(), 256);
    }

    #[test]
    fn debug_never_shows_private_material() {
        let key = SigningKey::generate(SigningAlgorithm::Es256).unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains("<redacted>"));
        assert!(!debug.contains(&URL_SAFE_NO_PAD.encode(key.pkcs8_der())));
    }

    #[test]
    fn wrong_algorithm_for_a_document_is_refused() {
        let ec = generate_pkcs8(SigningAlgorithm::Es256).unwrap();
        assert!(matches!(
            SigningKey::from_pkcs8(SigningAlgorithm::EdDsa, &ec),
            Err(KeyError::InvalidPrivateKey(SigningAlgorithm::EdDsa))
        ));
        assert!(SigningKey::from_pkcs8(SigningAlgorithm::Es256, b"garbage").is_err());
    }

    #[test]
    fn algorithm_names_are_exact() {
        assert_eq!(
            "ES256".parse::<SigningAlgorithm>().unwrap(),
            SigningAlgorithm::Es256
        );
        assert_eq!(
            "EdDSA".parse::<SigningAlgorithm>().unwrap(),
            SigningAlgorithm::EdDsa
        );
        for refused in ["none", "HS256", "es256", "RS384", ""] {
            assert!(refused.parse::<SigningAlgorithm>().is_err(), "{refused}");
        }
    }

    /// A key whose base64url text starts with `-` (the first byte is 0xF8: its top six bits are 62).
    pub(crate) const LEADING_DASH_KEK: &str = "-AECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    #[test]
    fn generated_key_encryption_keys_are_43_base64url_characters_never_starting_with_a_dash() {
        // 2 000 draws: were the redraw missing, one would start with '-' with probability 1 - (63/64)^2000.
        for _ in 0..2_000 {
            let text = KeyEncryptionKey::generate_base64().unwrap();
            assert_eq!(text.len(), 43, "{text}");
            assert!(!text.starts_with('-'), "{text}");
            assert!(KeyEncryptionKey::from_base64(&text).is_ok());
        }
        // Keys that do start with '-' (made elsewhere, or by an older release) are still keys.
        assert!(KeyEncryptionKey::from_base64(LEADING_DASH_KEK).is_ok());
        assert_eq!(URL_SAFE_NO_PAD.decode(LEADING_DASH_KEK).unwrap()[0], 0xF8);
    }

    #[test]
    fn a_malformed_key_encryption_key_is_explained_without_being_repeated() {
        for bad in [
            "short",
            "",
            "-AECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh",
            "!!!!",
        ] {
            let message = KeyEncryptionKey::from_base64(bad).unwrap_err().to_string();
            assert!(
                message.contains("32 bytes") && message.contains("base64url"),
                "{message}"
            );
            assert!(bad.is_empty() || !message.contains(bad), "{message}");
        }
    }

    #[test]
    fn sealed_keys_open_only_with_the_same_key_and_context() {
        let kek =
            KeyEncryptionKey::from_base64(&KeyEncryptionKey::generate_base64().unwrap()).unwrap();
        let other =
            KeyEncryptionKey::from_base64(&KeyEncryptionKey::generate_base64().unwrap()).unwrap();
        let sealed = kek.seal(b"private key bytes", b"kid-1").unwrap();
        assert_ne!(&sealed[13..30], b"private key bytes");
        assert_eq!(
            kek.open(&sealed, b"kid-1").unwrap().as_slice(),
            b"private key bytes"
        );
        assert!(matches!(
            kek.open(&sealed, b"kid-2"),
            Err(KeyError::Decryption)
        ));
        assert!(matches!(
            other.open(&sealed, b"kid-1"),
            Err(KeyError::Decryption)
        ));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(
            kek.open(&tampered, b"kid-1"),
            Err(KeyError::Decryption)
        ));
        assert!(matches!(
            kek.open(&sealed[..10], b"kid-1"),
            Err(KeyError::Decryption)
        ));
    }

    #[test]
    fn encryption_key_text_must_be_32_bytes() {
        assert!(KeyEncryptionKey::from_base64("c2hvcnQ").is_err());
        assert!(KeyEncryptionKey::from_base64("not base64 !!").is_err());
        // Standard alphabet with padding is accepted too.
        assert!(KeyEncryptionKey::from_base64(&STANDARD.encode([7u8; 32])).is_ok());
    }
}
