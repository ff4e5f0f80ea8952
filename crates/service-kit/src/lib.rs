//! What auth-server and resource-api share below their applications. It knows no OAuth and no storage.
//!
//! - [`serve`] runs an axum router on hyper with what `axum::serve` leaves out: a deadline for reading a
//!   request's headers (a client trickling header bytes, "slowloris", is cut off instead of holding a
//!   connection and a task forever) and a bounded drain on shutdown.
//! - [`with_request_layers`] puts around a router what every request goes through: a request id, a
//!   tracing span carrying it, a timeout and a body limit.
//! - [`metrics::Metrics`]: a Prometheus recorder held in state, and the per-route request metrics.
//! - [`telemetry::init_tracing`]: logs on stderr, text or JSON, colour only on a terminal.
//! - [`secret::Secret`]: configuration secrets, redacted in `Debug`.
//! - [`source`]: the source address of a request (the TCP peer, or `X-Forwarded-For` from trusted proxies).
//! - [`tls`]: HTTPS on the same loop (RFC 9325 settings), the certificate reloaded from disk as it changes.
//! - [`shutdown_signal`]: Ctrl-C or SIGTERM.

pub mod connection;
pub mod layers;
pub mod metrics;
pub mod secret;
pub mod shutdown;
pub mod source;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tls;

pub use connection::{ServeLimits, serve};
pub use layers::{REQUEST_ID, with_request_layers};
pub use shutdown::{shutdown_signal, split_shutdown};
