//! The core of the auth platform: access tokens (RFC 9068), signing keys and JWKS, PKCE, scopes, secrets
//! and the wire types every service shares. No HTTP server and no SQL live here.
//!
//! | module | concept |
//! |---|---|
//! | [`id`] | identifiers as types: client, user, family, key thumbprint, time |
//! | [`scope`] | RFC 6749 §3.3 scope sets |
//! | [`pkce`] | RFC 7636 S256 challenges |
//! | [`typ`] | the JWS `typ` of each kind of JWT issued here, and how a received one compares |
//! | [`jws`] | compact JWS with our own keys: signing under a kept header, reading a header, verifying by `kid` |
//! | [`token`] | RFC 9068 claims, [`token::issue`] and [`token::verify`] |
//! | [`id_token`] | OpenID Connect ID tokens: claims, `at_hash`, issuing, reading an `id_token_hint` |
//! | [`keys`] | signing keys, PKCS#8 storage, at-rest encryption, JWK export, RFC 7638 `kid` |
//! | [`jwks`] | key sets by `kid`; with feature `remote`, a fetched-and-cached JWKS |
//! | [`jose`] | signatures clients make: their algorithms (PS256, Ed25519 by both names) and public keys |
//! | [`dpop`] | RFC 9449 DPoP proofs and server nonces |
//! | [`client_assertion`] | RFC 7523 `private_key_jwt` client assertions |
//! | [`secret`] | opaque tokens, SHA-256 digests, constant-time comparison, argon2id |
//! | [`wire`] | token, error, introspection and metadata bodies |
//! | [`clock`] | time as a parameter |

pub mod client_assertion;
pub mod clock;
pub mod dpop;
pub mod id;
pub mod id_token;
pub mod jose;
pub mod jwks;
pub mod jws;
pub mod keys;
pub mod pkce;
pub mod scope;
pub mod secret;
pub mod token;
pub mod typ;
pub mod wire;
