//! RFC 6750 bearer-token validation for any axum service.
//!
//! [`BearerAuth`] discovers the issuer's keys from its RFC 8414 metadata, verifies access tokens (RFC 9068)
//! against the cached JWKS, keeps recently verified tokens so a repeated token costs a lookup, and asks the
//! issuer's introspection endpoint (RFC 7662) where a route needs to know a token is still active.
//! [`Authenticated`] is the extractor; errors answer exactly as RFC 6750 §3 says.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{Router, routing::get, Json};
//! use auth_bearer::{Authenticated, BearerAuth, BearerConfig, BearerError};
//!
//! async fn reports(auth: Authenticated) -> Result<Json<String>, BearerError> {
//!     auth.require_scope("reports:read")?;                   // 403 insufficient_scope otherwise
//!     Ok(Json(format!("hello {}", auth.claims.sub)))
//! }
//!
//! # async fn example() {
//! let bearer = BearerAuth::new(
//!     BearerConfig::new("https://as.example", "reports-api"),
//!     reqwest::Client::new(),
//!     Arc::new(auth_core::clock::SystemClock),
//! );
//! let app: Router = Router::new().route("/reports", get(reports)).with_state(bearer);
//! # let _ = app;
//! # }
//! ```
//!
//! A state type of your own works too: implement `FromRef<YourState> for BearerAuth`.
//!
//! | module | concern |
//! |---|---|
//! | [`error`] | [`BearerError`] and its RFC 6750 §3 challenges |
//! | [`validator`] | [`BearerAuth`]: discovery, verification, introspection |
//! | [`cache`] | the verified-token cache |
//! | [`extract`] | the [`Authenticated`] extractor and the `Authorization` header |
//! | [`metadata`] | RFC 9728 protected-resource metadata |

pub mod cache;
pub mod error;
pub mod extract;
pub mod metadata;
mod replay;
pub mod validator;

pub use error::{BearerError, DEFAULT_REALM, challenge, challenge_with};
pub use extract::{
    Authenticated, Scheme, authorization, bearer_token, dpop_header, presented_token,
};
pub use validator::{BearerAuth, BearerConfig, IntrospectionCredentials, PresentedProof};
