//! Identifiers that carry their meaning: a client id, a user id, a token family id, a key thumbprint and a
//! point in time are different types, each made by one function that says what a valid one is, so no
//! function can be handed one in the place of another.
//!
//! ```
//! use auth_core::id::{ClientId, Jkt};
//! assert!(ClientId::parse("webapp").is_ok());
//! assert!(ClientId::parse("nul\0").is_err());
//! assert!(Jkt::parse("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I").is_ok());
//! assert!(Jkt::parse("too-short").is_err());
//! ```

use std::fmt;
use std::ops::{Add, Sub};

use serde::{Deserialize, Serialize};

/// Why a text is not an identifier of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty, too long, or with a control character.
    #[error("a client id is 1 to {MAX_CLIENT_ID_BYTES} bytes without control characters")]
    ClientId,
    /// Not an RFC 7638 SHA-256 thumbprint.
    #[error("a JWK SHA-256 thumbprint is 43 base64url characters")]
    Jkt,
}

/// The longest client id (bytes). A client ID metadata document's URL may be this long.
pub const MAX_CLIENT_ID_BYTES: usize = 2048;

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The identifier as owned text.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_id!(
    /// A client's id (RFC 6749 §2.2): 1 to [`MAX_CLIENT_ID_BYTES`] bytes without control characters (a NUL
    /// would be refused by PostgreSQL), so one that could never be registered is looked up nowhere.
    ClientId
);
string_id!(
    /// A user's stable id: the `sub` of the user's tokens.
    UserId
);
string_id!(
    /// A token family: one authorization and everything issued from it (its code, its refresh tokens, and
    /// the access tokens that carry it as `fam`). Revoking it revokes them all.
    FamilyId
);
string_id!(
    /// An RFC 7638 JWK SHA-256 thumbprint, base64url without padding: what a DPoP-bound token's `cnf.jkt`
    /// names (RFC 9449 §6.1).
    Jkt
);

impl ClientId {
    /// A client id, if `text` could be one.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        if text.is_empty() || text.len() > MAX_CLIENT_ID_BYTES || text.chars().any(char::is_control)
        {
            return Err(IdError::ClientId);
        }
        Ok(Self(text.to_owned()))
    }

    /// A client id read back from storage or from a token this server signed.
    pub fn from_trusted(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

impl UserId {
    /// A new random user id (a UUID).
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// A user id read back from storage or from a token this server signed.
    pub fn from_trusted(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

impl FamilyId {
    /// A new random family id (a UUID).
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// A family id read back from storage or from a token this server signed.
    pub fn from_trusted(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

impl Jkt {
    /// A thumbprint as a client sent it (`dpop_jkt`, RFC 9449 §10): base64url of a SHA-256 digest.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        if text.len() == 43
            && text
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        {
            Ok(Self(text.to_owned()))
        } else {
            Err(IdError::Jkt)
        }
    }

    /// A thumbprint this platform computed, or read back from storage or a token it signed.
    pub fn from_trusted(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

/// Seconds since the Unix epoch: every time this platform stores, signs or compares.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixTime(pub i64);

impl UnixTime {
    /// The number of seconds.
    pub fn seconds(self) -> i64 {
        self.0
    }
}

impl Add<i64> for UnixTime {
    type Output = Self;
    fn add(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds))
    }
}

impl Sub<i64> for UnixTime {
    type Output = Self;
    fn sub(self, seconds: i64) -> Self {
        Self(self.0.saturating_sub(seconds))
    }
}

impl Sub for UnixTime {
    type Output = i64;
    fn sub(self, earlier: Self) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_that_could_never_be_registered_are_refused() {
        for bad in [
            "",
            "nul\0",
            "new\nline",
            &"x".repeat(MAX_CLIENT_ID_BYTES + 1),
        ] {
            assert_eq!(ClientId::parse(bad), Err(IdError::ClientId), "{bad:?}");
        }
        assert_eq!(ClientId::parse("émile").unwrap().as_str(), "émile");
    }

    #[test]
    fn thumbprints_are_43_base64url_characters() {
        assert!(Jkt::parse(&"A".repeat(43)).is_ok());
        for bad in [
            "",
            &"A".repeat(42),
            &"A".repeat(44),
            &format!("{}=", "A".repeat(42)),
        ] {
            assert_eq!(Jkt::parse(bad), Err(IdError::Jkt), "{bad:?}");
        }
    }

    #[test]
    fn times_add_without_overflow_and_ids_serialize_as_strings() {
        assert_eq!(UnixTime(i64::MAX) + 5, UnixTime(i64::MAX));
        assert_eq!(UnixTime(100) - UnixTime(40), 60);
        assert_eq!(
            serde_json::to_string(&FamilyId::from_trusted("f")).unwrap(),
            "\"f\""
        );
        assert_ne!(UserId::generate(), UserId::generate());
    }
}
