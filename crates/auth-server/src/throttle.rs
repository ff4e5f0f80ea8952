//! The failure throttle: fixed-window failure counters per key, kept in this replica's memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Failed logins allowed per username per window.
pub const LOGIN_FAILURES_PER_USER: u32 = 5;
/// Failed logins allowed per client address per window.
pub const LOGIN_FAILURES_PER_ADDRESS: u32 = 20;
/// Failed client authentications allowed per client id per window.
pub const CLIENT_AUTH_FAILURES_PER_CLIENT: u32 = 10;
/// Failed client authentications allowed per address per window (all client ids together).
pub const CLIENT_AUTH_FAILURES_PER_ADDRESS: u32 = 100;

/// The most keys a throttle remembers before it drops expired windows.
const THROTTLE_MAX_KEYS: usize = 100_000;

/// Fixed-window failure counters per key (`user:NAME`, `addr:IP`, `client:ID`): after `limit` failures in
/// a window the key is refused until the window ends.
#[derive(Debug)]
pub struct Throttle {
    windows: Mutex<HashMap<String, (i64, u32)>>,
    /// How many keys `windows` holds, readable without the lock: with no recorded failures (the normal
    /// case) checks and resets cost one atomic load instead of a mutex and a key allocation.
    tracked: AtomicUsize,
    window_seconds: i64,
}

impl Throttle {
    /// A throttle with windows of `window_seconds`.
    pub fn new(window_seconds: i64) -> Self {
        Self {
            windows: Mutex::new(HashMap::new()),
            tracked: AtomicUsize::new(0),
            window_seconds,
        }
    }

    /// True when no failure is on record: nothing can be throttled.
    pub fn is_empty(&self) -> bool {
        self.tracked.load(Ordering::Acquire) == 0
    }

    /// `Err(retry_after_seconds)` when `key` has had `limit` failures in the current window.
    pub fn check(&self, key: &str, limit: u32, now: i64) -> Result<(), i64> {
        if self.is_empty() {
            return Ok(());
        }
        let Ok(windows) = self.windows.lock() else {
            return Ok(());
        };
        match windows.get(key) {
            Some(&(start, failures)) if now < start + self.window_seconds && failures >= limit => {
                Err(start + self.window_seconds - now)
            }
            _ => Ok(()),
        }
    }

    /// Counts a failure for `key`.
    pub fn record_failure(&self, key: &str, now: i64) {
        let Ok(mut windows) = self.windows.lock() else {
            return;
        };
        if windows.len() >= THROTTLE_MAX_KEYS {
            let window = self.window_seconds;
            windows.retain(|_, (start, _)| now < *start + window);
        }
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now >= entry.0 + self.window_seconds {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        self.tracked.store(windows.len(), Ordering::Release);
    }

    /// Forgets `key` (after a success).
    pub fn reset(&self, key: &str) {
        if self.is_empty() {
            return;
        }
        if let Ok(mut windows) = self.windows.lock() {
            windows.remove(key);
            self.tracked.store(windows.len(), Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_refuses_after_the_limit_until_the_window_ends() {
        let throttle = Throttle::new(60);
        for _ in 0..3 {
            assert!(throttle.check("user:a", 3, 100).is_ok());
            throttle.record_failure("user:a", 100);
        }
        assert_eq!(throttle.check("user:a", 3, 110), Err(50));
        assert!(
            throttle.check("user:b", 3, 110).is_ok(),
            "other keys are unaffected"
        );
        assert!(
            throttle.check("user:a", 3, 160).is_ok(),
            "a new window starts"
        );
        throttle.record_failure("user:a", 160);
        assert!(throttle.check("user:a", 3, 161).is_ok());
        throttle.reset("user:a");
        assert!(throttle.check("user:a", 1, 161).is_ok());
        assert!(
            throttle.is_empty(),
            "the fast path is back once every key is forgotten"
        );
    }
}
