//! How an authorization (or logout) request ends, kept typed until the HTTP layer: a redirect to a
//! trusted URI with its parameters, an error for the client with what RFC 6749 §4.1.2.1 sends back, or a page
//! for the user. Only `http::` turns these into a `Location` or a body, and counts the errors there, once.

use crate::error::{Error, OAuthError};

/// A redirect to a URI this server trusts (a registered redirect or post-logout URI), with the parameters
/// to add to its query (RFC 6749 §4.1.2: `code`, `state`, `iss`; RP-Initiated Logout: `state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The registered URI, exactly as stored.
    pub to: String,
    /// The parameters, in order.
    pub params: Vec<(&'static str, String)>,
}

/// An error response to the client's redirect URI (RFC 6749 §4.1.2.1, RFC 9207): the error, the request's
/// `state` and the issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRedirect {
    /// The verified redirect URI.
    pub to: String,
    pub error: OAuthError,
    pub state: Option<String>,
    pub iss: String,
}

impl ErrorRedirect {
    /// The redirect that carries it.
    pub fn redirect(&self) -> Redirect {
        let mut params = vec![
            ("error", self.error.error.as_str().to_owned()),
            (
                "error_description",
                self.error.error_description.clone().unwrap_or_default(),
            ),
        ];
        if let Some(state) = &self.state {
            params.push(("state", state.clone()));
        }
        params.push(("iss", self.iss.clone()));
        Redirect {
            to: self.to.clone(),
            params,
        }
    }
}

/// Why a request cannot go on.
#[derive(Debug)]
pub enum Refusal {
    /// Shown to the user: the client or the redirect URI is not trustworthy (RFC 6749 §4.1.2.1: never a
    /// redirect then), or the request can no longer be answered.
    Page(String),
    /// Sent back to the verified redirect URI.
    Error(ErrorRedirect),
    /// The server failed (the database, the random number generator).
    Failed(Error),
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Self::Failed(error)
    }
}

impl From<crate::store::StoreError> for Refusal {
    fn from(error: crate::store::StoreError) -> Self {
        Self::Failed(error.into())
    }
}

impl Refusal {
    /// The refusal as a JSON endpoint answers it (RFC 9126 §2.3: /par's errors are the token endpoint's):
    /// a page's message as `invalid_request`, an error redirect's error as it is.
    pub fn into_error(self) -> Error {
        match self {
            Self::Page(message) => crate::error::invalid_request(message),
            Self::Error(redirect) => Error::OAuth(redirect.error),
            Self::Failed(error) => error,
        }
    }
}
