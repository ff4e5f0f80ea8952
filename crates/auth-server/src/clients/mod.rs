//! Clients: the rules that make a registration valid (one rule set for the command line, the
//! configuration file and dynamic registration), the in-memory cache of client records, client
//! authentication, and the keys of `private_key_jwt` clients.

pub mod authentication;
pub mod cache;
pub mod document_fetch;
pub mod documents;
pub mod dynamic;
pub mod idle;
pub mod keys;
pub mod policy;
pub mod registrar;
pub mod registration;
