//! PKCE (RFC 7636) with the S256 method only: `plain` is not offered (RFC 9700 §2.1.1).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a PKCE value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    /// RFC 7636 §4.1: 43 to 128 characters from `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
    #[error("code_verifier must be 43 to 128 unreserved characters")]
    InvalidVerifier,
    /// The challenge is not a base64url SHA-256 digest (43 characters).
    #[error("code_challenge must be the base64url SHA-256 of a verifier (43 characters)")]
    InvalidChallenge,
    /// Only S256 is supported.
    #[error("code_challenge_method must be S256")]
    UnsupportedMethod,
    /// The verifier does not hash to the challenge.
    #[error("code_verifier does not match the code_challenge")]
    Mismatch,
}

/// The only challenge method offered.
pub const METHOD_S256: &str = "S256";

/// An S256 code challenge, as sent at the authorization endpoint and stored with the code.
///
/// ```
/// use auth_core::pkce::CodeChallenge;
///
/// // RFC 7636 Appendix B.
/// let challenge = CodeChallenge::parse("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", Some("S256"))?;
/// assert!(challenge.verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").is_ok());
/// # Ok::<(), auth_core::pkce::PkceError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

/// RFC 7636 §4.1: `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"`, 43 to 128 of them.
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The S256 challenge of a verifier: `BASE64URL(SHA256(ASCII(code_verifier)))` (RFC 7636 §4.2).
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl CodeChallenge {
    /// Parses a challenge and its method as received at /authorize. The method defaults to `plain` in
    /// RFC 7636 §4.3, which we refuse, so a missing method is refused too.
    pub fn parse(challenge: &str, method: Option<&str>) -> Result<Self, PkceError> {
        if method != Some(METHOD_S256) {
            return Err(PkceError::UnsupportedMethod);
        }
        Self::from_stored(challenge)
    }

    /// Rebuilds a challenge from its stored text (S256 implied).
    pub fn from_stored(challenge: &str) -> Result<Self, PkceError> {
        // A SHA-256 digest is 32 bytes, 43 base64url characters without padding.
        let decoded = URL_SAFE_NO_PAD
            .decode(challenge)
            .map_err(|_| PkceError::InvalidChallenge)?;
        if decoded.len() != 32 || challenge.len() != 43 {
            return Err(PkceError::InvalidChallenge);
        }
        Ok(Self(challenge.to_owned()))
    }

    /// The challenge of a verifier (client side, tests, load tests).
    pub fn from_verifier(verifier: &str) -> Result<Self, PkceError> {
        if !is_valid_verifier(verifier) {
            return Err(PkceError::InvalidVerifier);
        }
        Ok(Self(s256_challenge(verifier)))
    }

    /// Checks a verifier against this challenge in constant time.
    pub fn verify(&self, verifier: &str) -> Result<(), PkceError> {
        if !is_valid_verifier(verifier) {
            return Err(PkceError::InvalidVerifier);
        }
        let computed = s256_challenge(verifier);
        if bool::from(computed.as_bytes().ct_eq(self.0.as_bytes())) {
            Ok(())
        } else {
            Err(PkceError::Mismatch)
        }
    }

    /// The challenge text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A fresh verifier: 32 random bytes as 43 base64url characters (RFC 7636 §4.1 recommendation).
pub fn generate_verifier() -> String {
    crate::secret::OpaqueToken::generate().into_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // RFC 7636 Appendix B.
    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b_known_answer() {
        assert_eq!(s256_challenge(RFC_VERIFIER), RFC_CHALLENGE);
        let challenge = CodeChallenge::parse(RFC_CHALLENGE, Some("S256")).unwrap();
        assert_eq!(challenge.verify(RFC_VERIFIER), Ok(()));
    }

    #[test]
    fn plain_and_missing_method_are_refused() {
        assert_eq!(
            CodeChallenge::parse(RFC_VERIFIER, Some("plain")),
            Err(PkceError::UnsupportedMethod)
        );
        assert_eq!(
            CodeChallenge::parse(RFC_CHALLENGE, None),
            Err(PkceError::UnsupportedMethod)
        );
        assert_eq!(
            CodeChallenge::parse(RFC_CHALLENGE, Some("s256")),
            Err(PkceError::UnsupportedMethod)
        );
    }

    #[test]
    fn wrong_verifier_is_a_mismatch() {
        let challenge = CodeChallenge::from_stored(RFC_CHALLENGE).unwrap();
        let other = "a".repeat(43);
        assert_eq!(challenge.verify(&other), Err(PkceError::Mismatch));
    }

    #[test]
    fn verifier_syntax_bounds() {
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(is_valid_verifier(&"a".repeat(43)));
        assert!(is_valid_verifier(&"~._-".repeat(32)));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_verifier(&format!("{}+", "a".repeat(43))));
        let challenge = CodeChallenge::from_stored(RFC_CHALLENGE).unwrap();
        assert_eq!(challenge.verify("short"), Err(PkceError::InvalidVerifier));
    }

    #[test]
    fn malformed_challenges_are_refused() {
        for bad in [
            "",
            "abc",
            &"A".repeat(44),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM",
        ] {
            assert_eq!(
                CodeChallenge::parse(bad, Some("S256")),
                Err(PkceError::InvalidChallenge),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn generated_verifiers_are_valid_and_distinct() {
        let a = generate_verifier();
        let b = generate_verifier();
        assert!(is_valid_verifier(&a));
        assert_ne!(a, b);
        assert!(CodeChallenge::from_verifier(&a).unwrap().verify(&a).is_ok());
    }

    proptest! {
        #[test]
        fn any_valid_verifier_matches_its_own_challenge(verifier in "[A-Za-z0-9._~-]{43,128}") {
            let challenge = CodeChallenge::from_verifier(&verifier).unwrap();
            prop_assert!(challenge.verify(&verifier).is_ok());
        }
    }
}
