//! The state a replica keeps for back-channel logout delivery (`super::deliver` does the work): the wake-up
//! signal, the bound on deliveries in flight, and the two HTTP clients.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

use crate::clients::document_fetch::guarded_client;

/// Deliveries in flight per replica.
pub const MAX_IN_FLIGHT: usize = 16;
/// The whole exchange with a client's back channel.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The delivering side of one replica.
pub struct Deliverer {
    pub(super) wake: Notify,
    pub(super) in_flight: Arc<Semaphore>,
    /// For operator-registered clients: any address, as the operator chose it.
    pub(super) operator: Option<reqwest::Client>,
    /// For self-registered clients: never a special-use address.
    pub(super) guarded: Option<reqwest::Client>,
    pub(super) loopback: bool,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field(
                "in_flight",
                &(MAX_IN_FLIGHT - self.in_flight.available_permits()),
            )
            .finish()
    }
}

impl Deliverer {
    /// `loopback`: `--insecure-loopback-metadata` (tests) lifts the address rule for loopback hosts.
    pub fn new(loopback: bool) -> Self {
        Self {
            wake: Notify::new(),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            operator: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .connect_timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                // A few idle connections per client, not one per delivery ever made.
                .pool_max_idle_per_host(2)
                .pool_idle_timeout(Duration::from_secs(30))
                .build()
                .ok(),
            guarded: guarded_client(loopback, TIMEOUT),
            loopback,
        }
    }

    /// Something was queued here: look now rather than at the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}
