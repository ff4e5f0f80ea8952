//! The auth-server integration tests: one binary, one file per feature. Every behaviour runs on SQLite
//! and on PostgreSQL (skipped with a printed reason when DATABASE_URL is not set; CI always sets it).

// This whole crate is test code: a failed expectation should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod helpers;

mod authorize;
mod cli;
mod client_credentials;
mod code_flow;
mod faults;
mod fuzz;
mod hostile;
mod introspection_revocation;
mod keys_and_metadata;
mod logs;
mod operability;
mod refresh;
mod replicas;
