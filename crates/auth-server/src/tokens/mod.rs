//! The token side of the server: the grants of the token endpoint (one module each), the one issuing path
//! every grant takes, the OpenID Connect claims, our own access tokens read back, introspection,
//! revocation, UserInfo, DPoP proofs and the single-use `jti` ledger. No axum here: `http::oauth2` and
//! `http::userinfo` map these to HTTP.

pub mod access;
pub mod dpop;
pub mod grants;
pub mod introspection;
pub mod issue;
pub mod openid;
pub mod replay;
pub mod revocation;
pub mod rules;
pub mod userinfo;
