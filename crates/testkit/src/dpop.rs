//! JWTs signed the way a client signs them (DPoP proofs, RFC 9449; client assertions, RFC 7523), written
//! here from the RFCs with RustCrypto (p256, ed25519-dalek, rsa), independently of the server's JOSE code,
//! which verifies with aws-lc-rs through jsonwebtoken.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// A client's key pair and the JOSE algorithm it signs with.
#[derive(Clone)]
pub enum ProofKey {
    /// ES256.
    Es256(p256::ecdsa::SigningKey),
    /// Ed25519, signing with `alg` `EdDSA` or `Ed25519` (RFC 9864).
    Ed25519(ed25519_dalek::SigningKey, &'static str),
    /// RS256 (`pss` false) or PS256 (`pss` true).
    Rsa(Box<rsa::PrivateKey>, bool),
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// One 2048-bit RSA key per test binary: generating one is slow in debug builds.
fn shared_rsa_key() -> rsa::PrivateKey {
    static KEY: OnceLock<rsa::PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).expect("an RSA key"))
        .clone()
}

impl ProofKey {
    /// A fresh key for `alg`: `ES256`, `EdDSA`, `Ed25519`, `RS256` or `PS256`.
    pub fn generate(alg: &str) -> Self {
        match alg {
            "ES256" => {
                use p256::elliptic_curve::Generate as _;
                Self::Es256(
                    p256::ecdsa::SigningKey::try_generate_from_rng(&mut getrandom::SysRng)
                        .expect("a P-256 key"),
                )
            }
            "EdDSA" | "Ed25519" => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed).expect("randomness");
                let name = if alg == "EdDSA" { "EdDSA" } else { "Ed25519" };
                Self::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed), name)
            }
            "RS256" => Self::Rsa(Box::new(shared_rsa_key()), false),
            "PS256" => Self::Rsa(Box::new(shared_rsa_key()), true),
            other => panic!("no test key for {other}"),
        }
    }

    /// The JOSE `alg`.
    pub fn alg(&self) -> &'static str {
        match self {
            Self::Es256(_) => "ES256",
            Self::Ed25519(_, name) => name,
            Self::Rsa(_, false) => "RS256",
            Self::Rsa(_, true) => "PS256",
        }
    }

    /// The public JWK (RFC 7518 §6, RFC 8037 §2).
    pub fn public_jwk(&self) -> Value {
        match self {
            Self::Es256(key) => {
                let point = key.verifying_key().to_sec1_point(false);
                json!({ "kty": "EC", "crv": "P-256",
                        "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y")) })
            }
            Self::Ed25519(key, _) => {
                json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(&key.verifying_key().to_bytes()) })
            }
            Self::Rsa(key, _) => {
                use rsa::traits::PublicKeyParts as _;
                json!({ "kty": "RSA", "n": b64(&key.n().to_be_bytes_trimmed_vartime()),
                        "e": b64(&key.e().to_be_bytes_trimmed_vartime()) })
            }
        }
    }

    /// The RFC 7638 thumbprint, computed here from the RFC: the required members in lexicographic order.
    pub fn thumbprint(&self) -> String {
        let jwk = self.public_jwk();
        let canonical = match jwk["kty"].as_str() {
            Some("EC") => format!(
                r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                jwk["x"].as_str().unwrap(),
                jwk["y"].as_str().unwrap()
            ),
            Some("OKP") => format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                jwk["x"].as_str().unwrap()
            ),
            _ => format!(
                r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                jwk["e"].as_str().unwrap(),
                jwk["n"].as_str().unwrap()
            ),
        };
        b64(&Sha256::digest(canonical.as_bytes()))
    }

    /// The signature of `input` in JWS form (ECDSA as R‖S, RFC 7518 §3.4).
    pub fn sign_bytes(&self, input: &[u8]) -> Vec<u8> {
        match self {
            Self::Es256(key) => {
                use p256::ecdsa::signature::Signer as _;
                let signature: p256::ecdsa::Signature = key.sign(input);
                signature.to_bytes().to_vec()
            }
            Self::Ed25519(key, _) => {
                use ed25519_dalek::Signer as _;
                key.sign(input).to_bytes().to_vec()
            }
            Self::Rsa(key, false) => {
                use rsa::signature::{SignatureEncoding as _, Signer as _};
                let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new((**key).clone());
                signer.sign(input).to_vec()
            }
            Self::Rsa(key, true) => {
                use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _};
                let signer = rsa::pss::SigningKey::<Sha256>::new((**key).clone());
                signer
                    .try_sign_with_rng(&mut getrandom::SysRng, input)
                    .expect("a PSS signature")
                    .to_vec()
            }
        }
    }

    /// A compact JWS of `header` and `claims`, signed with this key (whatever `header` says).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self.sign_bytes(input.as_bytes());
        format!("{input}.{}", b64(&signature))
    }

    /// The header of a proof: `typ` `dpop+jwt`, this key's `alg` and public `jwk`.
    pub fn proof_header(&self) -> Value {
        json!({ "typ": "dpop+jwt", "alg": self.alg(), "jwk": self.public_jwk() })
    }

    /// A proof for `method` on `uri`, now, with a fresh `jti`; `access_token` adds `ath`.
    pub fn proof(&self, method: &str, uri: &str, iat: i64, access_token: Option<&str>) -> String {
        let mut claims = proof_claims(method, uri, iat);
        if let Some(token) = access_token {
            claims.insert("ath".into(), Value::String(ath(token)));
        }
        self.sign(&self.proof_header(), &Value::Object(claims))
    }

    /// A proof whose header and claims `change` edits after they are made.
    pub fn proof_with(
        &self,
        method: &str,
        uri: &str,
        iat: i64,
        change: impl FnOnce(&mut Map<String, Value>, &mut Map<String, Value>),
    ) -> String {
        let Value::Object(mut header) = self.proof_header() else {
            unreachable!()
        };
        let mut claims = proof_claims(method, uri, iat);
        change(&mut header, &mut claims);
        self.sign(&Value::Object(header), &Value::Object(claims))
    }
}

/// The claims every proof has (RFC 9449 §4.2).
fn proof_claims(method: &str, uri: &str, iat: i64) -> Map<String, Value> {
    let Value::Object(claims) = json!({
        "jti": uuid::Uuid::new_v4().to_string(),
        "htm": method,
        "htu": uri,
        "iat": iat,
    }) else {
        unreachable!()
    };
    claims
}

/// `ath`: base64url(SHA-256(access token)) (RFC 9449 §4.2).
pub fn ath(access_token: &str) -> String {
    b64(&Sha256::digest(access_token.as_bytes()))
}
