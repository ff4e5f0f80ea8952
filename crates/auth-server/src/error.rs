//! The errors of the domain modules (authorization, sign-in, client authentication, grants, tokens): the
//! OAuth error a client may read, and the failures whose cause it must not see. No HTTP here:
//! `http::error` maps each to a status, a body and headers.

use auth_core::wire::{ErrorCode, ErrorResponse};

use crate::store::StoreError;

/// The one OAuth error shape of the whole server: RFC 6749 §5.2 `{"error", "error_description"}`, the same
/// type every crate of the workspace puts on the wire. The token endpoint answers it as JSON, the
/// authorization endpoint as query parameters of an error redirect (RFC 6749 §4.1.2.1).
pub type OAuthError = ErrorResponse;

/// Why a request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error the client may read.
    #[error("{}", .0.error)]
    OAuth(OAuthError),
    /// An error the client may read, for a client that proved who it is but may not do this (HTTP 403).
    #[error("{}", .0.error)]
    Forbidden(OAuthError),
    /// RFC 9449 §8: the DPoP proof lacks the server's current nonce, which is this.
    #[error("use_dpop_nonce")]
    UseDpopNonce(String),
    /// Too many requests of this kind from this source (or in all): `temporarily_unavailable`, HTTP 429, try
    /// again after this many seconds.
    #[error("too many requests")]
    TooMany { retry_after: i64 },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No key signs right now (none stored, or none active yet).
    #[error("no signing key is active")]
    NoSigningKey,
    /// The crypto library failed to sign.
    #[error("signing failed")]
    Signing,
    /// The operating system's random number generator failed: no code, token or session can be made.
    #[error("the operating system random number generator failed")]
    Random,
}

/// `Result` of the domain modules.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An OAuth error with a description for the client's developer (never internal error text).
pub fn oauth(code: ErrorCode, description: impl Into<String>) -> Error {
    Error::OAuth(ErrorResponse::new(code, description))
}

/// `invalid_request` (RFC 6749 §5.2): a parameter is missing, repeated or malformed.
pub fn invalid_request(description: impl Into<String>) -> Error {
    oauth(ErrorCode::InvalidRequest, description)
}

impl From<OAuthError> for Error {
    fn from(error: OAuthError) -> Self {
        Self::OAuth(error)
    }
}

impl From<auth_core::secret::SecretError> for Error {
    fn from(_: auth_core::secret::SecretError) -> Self {
        Self::Random
    }
}
