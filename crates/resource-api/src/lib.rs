//! An API protected by JWT access tokens (SPEC §4), and [`bearer`], the validation layer any axum service can
//! reuse. It knows its issuer only over HTTP: RFC 8414 metadata, the JWKS, and RFC 7662 introspection.

pub mod bearer;
pub mod config;
pub mod http;
pub mod items;
pub mod startup;
