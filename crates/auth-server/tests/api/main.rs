//! The auth-server integration tests: one binary, one file per feature, on the one harness (`testkit`).
//! Every behaviour runs on SQLite and on PostgreSQL (`<file>::sqlite::<test>`, `<file>::postgres::<test>`).

// This whole crate is test code: a failed expectation should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod authorize;
mod backchannel;
mod bounds;
mod browser;
mod cli;
mod client_credentials;
mod code_flow;
mod declared;
mod device;
mod documents;
mod dpop;
mod faults;
mod fuzz;
mod hostile;
mod introspection_revocation;
mod keys_and_metadata;
mod logs;
mod openid;
mod operability;
mod operator;
mod par;
mod private_key_jwt;
mod races;
mod refresh;
mod registration;
mod replicas;
mod storage;
mod token_exchange;

/// The `auth-server` binary cargo built for these tests.
pub fn binary() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_BIN_EXE_auth-server"))
}
