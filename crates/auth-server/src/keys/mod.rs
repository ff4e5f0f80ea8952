//! The server's own keys and secrets: the signing keys in memory with their schedule, and the secrets every
//! replica shares (the CSRF MAC key, the DPoP nonce key), both sealed at rest when a key-encryption key is
//! configured.

pub mod keyring;
pub mod server_secrets;
