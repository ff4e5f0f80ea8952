//! What bounds the cost of guessing and flooding: failed-login counters and the gate in front of argon2.
//! Connection limits live below the application, in `service_kit::connection`.

pub mod password_checks;
pub mod throttle;
