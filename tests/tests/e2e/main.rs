//! End-to-end tests of the platform: real auth-server and resource-api applications on
//! 127.0.0.1:0, tokens from real grants, every route, and the attacks a resource server must refuse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod attacks;
mod dpop;
mod fuzz;
mod lifecycle;
mod load;
mod mcp;
mod routes;
