//! The authorization endpoint and the pages around it: the request and its two validation steps, the
//! decisions after it (sign in, consent, code), how each ends (typed until the HTTP layer), sign-in and
//! browser sessions, pushed requests, RP-initiated logout, the forms' CSRF tokens and the consent page's
//! words for each scope. No axum here: `http::authorize` and `http::logout` map these to HTTP.

pub mod csrf;
pub mod decision;
pub mod device;
pub mod login;
pub mod logout;
pub mod outcome;
pub mod par;
pub mod request;
pub mod scope_descriptions;
