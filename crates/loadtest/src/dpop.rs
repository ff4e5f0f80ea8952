//! DPoP proofs (RFC 9449 §4) as a client makes them: one ES256 key for the run, a new proof (fresh `jti`
//! and `iat`) for every request, with `ath` when an access token goes with it.

use std::time::{SystemTime, UNIX_EPOCH};

use auth_core::keys::{SigningAlgorithm, SigningKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

/// The client's proof key and the encoded header every proof shares.
pub struct ProofSigner {
    key: SigningKey,
    header: String,
}

impl std::fmt::Debug for ProofSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofSigner")
            .field("kid", &self.key.kid())
            .finish()
    }
}

impl ProofSigner {
    /// A new ES256 key.
    pub fn generate() -> anyhow::Result<Self> {
        let key = SigningKey::generate(SigningAlgorithm::Es256)?;
        let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk() });
        let header = URL_SAFE_NO_PAD.encode(header.to_string());
        Ok(Self { key, header })
    }

    /// A proof for `method` on `uri` (without query), bound to `access_token` when given.
    pub fn proof(&self, method: &str, uri: &str, access_token: Option<&str>) -> String {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or_default();
        let mut claims = json!({
            "jti": uuid::Uuid::new_v4().to_string(),
            "htm": method,
            "htu": uri,
            "iat": iat,
        });
        if let Some(token) = access_token {
            claims["ath"] = json!(auth_core::jose::sha256_base64url(token));
        }
        let input = format!(
            "{}.{}",
            self.header,
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        // Signing with a kept ES256 key cannot fail but for a broken crypto library: then the proof is
        // refused by the server and the request counts as an error, as it should.
        let signature = self.key.sign(input.as_bytes()).unwrap_or_default();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}
