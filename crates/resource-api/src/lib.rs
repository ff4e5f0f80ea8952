//! The demo API protected by access tokens: `/protected`, `/items` (docs/architecture.md). It is built on
//! `auth_bearer`, the validation layer any axum service can use, and knows its issuer only over HTTP:
//! RFC 8414 metadata, the JWKS, and RFC 7662 introspection.

pub mod config;
pub mod http;
pub mod items;
pub mod startup;
