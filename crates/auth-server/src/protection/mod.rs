//! What bounds the cost of guessing and flooding: a request's source as the per-source rules count it,
//! counters of failed logins and of requests that could make the server store something for nobody, and the
//! gate in front of argon2. Connection limits live below the application, in `service_kit::connection`.

pub mod password_checks;
pub mod source;
pub mod throttle;
