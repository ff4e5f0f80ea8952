//! The JWS `typ` header (RFC 7515 §4.1.9) of each kind of JWT this platform issues, and how a received
//! `typ` is compared. Distinct types keep one kind of token from passing for another (RFC 8725 §3.11).

/// The `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// The `typ` of ID tokens (OpenID Connect Core §2 allows any; `JWT` is what relying parties expect).
pub const ID_TOKEN_TYPE: &str = "JWT";
/// The `typ` of back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.4).
pub const LOGOUT_TOKEN_TYPE: &str = "logout+jwt";

/// A kind of JWT this platform signs with its own keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtType {
    /// An RFC 9068 access token.
    Access,
    /// An OpenID Connect ID token.
    Id,
    /// An OpenID Connect back-channel logout token.
    Logout,
}

impl JwtType {
    /// Every kind, in the order keys keep their pre-encoded headers.
    pub const ALL: [Self; 3] = [Self::Access, Self::Id, Self::Logout];

    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => ACCESS_TOKEN_TYPE,
            Self::Id => ID_TOKEN_TYPE,
            Self::Logout => LOGOUT_TOKEN_TYPE,
        }
    }

    /// Its position in [`JwtType::ALL`].
    pub fn index(self) -> usize {
        match self {
            Self::Access => 0,
            Self::Id => 1,
            Self::Logout => 2,
        }
    }
}

/// `typ` compares case-insensitively and may carry the `application/` prefix (RFC 7515 §4.1.9). Compared
/// as bytes: a `typ` of any Unicode is just another wrong type, never a slice inside a character.
pub fn is_type(typ: &str, expected: &str) -> bool {
    const PREFIX: &[u8] = b"application/";
    let typ = typ.as_bytes();
    let typ = match typ.split_at_checked(PREFIX.len()) {
        Some((prefix, rest)) if prefix.eq_ignore_ascii_case(PREFIX) => rest,
        _ => typ,
    };
    typ.eq_ignore_ascii_case(expected.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_compare_without_case_and_with_the_application_prefix() {
        assert!(is_type("at+jwt", ACCESS_TOKEN_TYPE));
        assert!(is_type("application/AT+JWT", ACCESS_TOKEN_TYPE));
        assert!(!is_type("jwt", ACCESS_TOKEN_TYPE));
        assert!(!is_type("applicatioé", ID_TOKEN_TYPE));
        for kind in JwtType::ALL {
            assert_eq!(JwtType::ALL[kind.index()], kind);
        }
    }
}
