//! At most `--max-password-checks` argon2 verifications at once, at most half of them (rounded up) for one
//! source, and a bounded wait for one: each check holds 19 MiB and a blocking thread for tens of
//! milliseconds, so without a bound a burst of logins (no account needed) takes memory and threads without
//! limit, and without the per-source share one source's burst queues ahead of everyone else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How long a login waits for a check to start before it answers 503.
pub const MAX_WAIT: Duration = Duration::from_secs(2);

/// The gate in front of the password checks.
#[derive(Debug)]
pub struct PasswordChecks {
    permits: Arc<Semaphore>,
    limit: usize,
    per_source: usize,
    /// Checks held per source; a source with none is not in the map, so it holds only sources with a
    /// check running (at most `limit` entries).
    held: Mutex<HashMap<IpAddr, usize>>,
    released: Notify,
}

/// A running check: dropping it gives the slot back.
#[derive(Debug)]
pub struct CheckPermit {
    checks: Arc<PasswordChecks>,
    source: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for CheckPermit {
    fn drop(&mut self) {
        if let Ok(mut held) = self.checks.held.lock()
            && let Some(count) = held.get_mut(&self.source)
        {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.source);
            }
        }
        self.checks.released.notify_waiters();
    }
}

impl PasswordChecks {
    /// A gate of `limit` checks (at least 1); one source may hold half of them, rounded up.
    pub fn new(limit: usize) -> Arc<Self> {
        let limit = limit.max(1);
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            per_source: limit.div_ceil(2),
            held: Mutex::new(HashMap::new()),
            released: Notify::new(),
        })
    }

    /// The number of checks that may run at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Checks running now.
    pub fn running(&self) -> usize {
        self.limit - self.permits.available_permits()
    }

    /// A slot for a check from `source`, or `None` when none frees up within `wait`.
    pub async fn acquire(self: &Arc<Self>, source: IpAddr, wait: Duration) -> Option<CheckPermit> {
        let deadline = Instant::now() + wait;
        // First the source's share, so that its own burst waits here and not in the queue for permits,
        // where it would stand in front of every other source.
        loop {
            let released = self.released.notified();
            {
                let mut held = self.held.lock().ok()?;
                let count = held.entry(source).or_insert(0);
                if *count < self.per_source {
                    *count += 1;
                    break;
                }
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return None;
            }
        }
        let reserved = Reserved {
            checks: self,
            source,
        };
        let permit = tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned())
            .await
            .ok()?
            .ok()?;
        std::mem::forget(reserved);
        Some(CheckPermit {
            checks: self.clone(),
            source,
            _permit: permit,
        })
    }
}

/// The source's share taken but no permit yet: given back if the wait for a permit ends without one.
struct Reserved<'a> {
    checks: &'a Arc<PasswordChecks>,
    source: IpAddr,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        if let Ok(mut held) = self.checks.held.lock()
            && let Some(count) = held.get_mut(&self.source)
        {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.source);
            }
        }
        self.checks.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[tokio::test(start_paused = true)]
    async fn one_source_holds_at_most_half_and_the_rest_stays_for_others() {
        let checks = PasswordChecks::new(4);
        let first = checks.acquire(A, MAX_WAIT).await.unwrap();
        let second = checks.acquire(A, MAX_WAIT).await.unwrap();
        // A third from A waits its 2 s and gives up, although two permits are free...
        assert!(checks.acquire(A, MAX_WAIT).await.is_none());
        // ...because they are B's to take.
        let b1 = checks.acquire(B, MAX_WAIT).await.unwrap();
        let b2 = checks.acquire(B, MAX_WAIT).await.unwrap();
        assert_eq!(checks.running(), 4);
        // A waiting source gets a slot as soon as one of its own checks ends.
        let waiting = tokio::spawn({
            let checks = checks.clone();
            async move { checks.acquire(A, MAX_WAIT).await.is_some() }
        });
        tokio::task::yield_now().await;
        drop(first);
        assert!(waiting.await.unwrap());
        drop((second, b1, b2));
        assert!(checks.held.lock().unwrap().is_empty(), "no source kept");
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_permit_is_busy_a_check_waits_then_gives_up_and_gives_its_share_back() {
        let checks = PasswordChecks::new(2);
        let a = checks.acquire(A, MAX_WAIT).await.unwrap();
        let b = checks.acquire(B, MAX_WAIT).await.unwrap();
        let started = Instant::now();
        assert!(checks.acquire(B, MAX_WAIT).await.is_none());
        assert!(started.elapsed() >= MAX_WAIT);
        drop(b);
        assert!(checks.acquire(B, MAX_WAIT).await.is_some());
        drop(a);
        assert_eq!(checks.running(), 0);
    }
}
