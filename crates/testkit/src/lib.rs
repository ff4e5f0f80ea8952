//! The one test harness of the workspace, for auth-server's integration tests and the platform tests:
//!
//! | module | gives |
//! |---|---|
//! | [`database`] | a fresh SQLite file or PostgreSQL database per test, and [`backend_tests!`] |
//! | [`issuer`] | [`TestIssuer`]: the real auth-server in-process on port 0, with a settable clock |
//! | [`clients`] | [`ClientSpec`]: clients registered by a builder, as `client create` would |
//! | [`browser`] | [`Browser`]: cookies, forms and redirects of the authorization code flow |
//! | [`api`] | [`TestApi`]: the real resource-api in-process |
//! | [`binary`] | the real binaries, started on port 0 or run as one-shot commands |
//! | [`balancer`] | a round-robin balancer in front of replicas |
//! | [`refuser`] | a bound port that closes every connection, later handed to a server |
//! | [`jwt`] | reading what the server put in a token |
//! | [`dpop`] | [`dpop::ProofKey`]: DPoP proofs and signed JWTs made with RustCrypto, independently of the server |
//! | [`webdriver`] | [`webdriver::HeadlessChrome`]: a real headless browser over WebDriver, and a stand-in app |
//! | [`tls`] | [`tls::ca`]: the process's test CA, a server certificate it signed, and clients that trust it |

// Test code: a failed expectation fails the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod api;
pub mod balancer;
pub mod binary;
pub mod browser;
pub mod clients;
pub mod database;
pub mod dpop;
pub mod http;
pub mod issuer;
pub mod jwt;
pub mod refuser;
pub mod tls;
pub mod webdriver;

pub use api::{Stack, TestApi};
pub use browser::Browser;
pub use clients::REDIRECT_URI;
pub use clients::{ClientSpec, TestClient};
pub use database::{Backend, TestDatabase};
pub use issuer::{PASSWORD, TestIssuer};
pub use refuser::Refuser;
