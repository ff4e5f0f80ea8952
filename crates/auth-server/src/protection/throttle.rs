//! Failed-login counters: fixed windows of 60 s per key, kept in this replica's memory (N replicas allow N
//! times the rate; docs/security.md). Keys are hashed with a per-process random key, so they hold no
//! username and cannot be aimed at one bucket, and the table has a fixed capacity.
//!
//! The rules (`crate::authorize::login`): 5 failures per (username, source) and 20 per source, counted *before* the
//! password check, so a burst of concurrent attempts gets no more checks than the limit. There is no limit
//! per username across sources: it would let anyone lock any user out.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Mutex;

/// Failed logins allowed per (username, source) per window.
pub const LOGIN_FAILURES_PER_USER_AND_SOURCE: u32 = 5;
/// Failed logins allowed per source per window.
pub const LOGIN_FAILURES_PER_SOURCE: u32 = 20;
/// Pushed authorization requests allowed per (public client, source) per window: a public client's id is
/// all it takes to make the server store a push, so its rows are bounded per source (RFC 9126 §2; an
/// authenticated client is accountable and bounded by the total cap of pushes).
pub const PUSHES_PER_PUBLIC_CLIENT_AND_SOURCE: u32 = 30;
/// The window, seconds.
pub const WINDOW_SECONDS: i64 = 60;
/// Open registrations (RFC 7591) per source a minute, counted before the request is read.
pub const REGISTRATIONS_PER_SOURCE: u32 = 10;
/// Uncached client ID metadata document fetches per source per window.
pub const DOCUMENT_FETCHES_PER_SOURCE: u32 = 10;
/// Device authorization requests (RFC 8628 §3.1) per (client, source) a minute: each stores a row.
pub const DEVICE_AUTHORIZATIONS_PER_CLIENT_AND_SOURCE: u32 = 30;
/// Wrong user codes per source a minute (RFC 8628 §5.1): the sixth lookup that finds nothing is refused.
pub const USER_CODE_FAILURES_PER_SOURCE: u32 = 5;
/// RFC 7592 calls per client a minute.
pub const MANAGEMENT_CALLS_PER_CLIENT: u32 = 30;
/// Keys tracked at most. Each key that stays costs a password check (which is bounded), so a window
/// cannot fill the table; were it full of live keys, a new key would go uncounted rather than lock anyone.
pub const CAPACITY: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Window {
    start: i64,
    count: u32,
}

/// The counters.
#[derive(Debug)]
pub struct Throttle {
    windows: Mutex<HashMap<u64, Window>>,
    hasher: std::collections::hash_map::RandomState,
    window_seconds: i64,
    capacity: usize,
}

/// A counted attempt: what to give back if it turns out not to be a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "an attempt is a failure unless given back"]
pub struct Attempt {
    keys: Vec<u64>,
    counted_at: i64,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(WINDOW_SECONDS, CAPACITY)
    }
}

impl Throttle {
    /// Windows of `window_seconds`, at most `capacity` keys.
    pub fn new(window_seconds: i64, capacity: usize) -> Self {
        Self {
            windows: Mutex::new(HashMap::new()),
            hasher: std::collections::hash_map::RandomState::new(),
            window_seconds,
            capacity,
        }
    }

    fn key(&self, parts: impl Hash) -> u64 {
        self.hasher.hash_one(parts)
    }

    /// The keys and limits of a login attempt.
    fn login_keys(&self, username: &str, source: IpAddr) -> [(u64, u32); 2] {
        [
            (
                self.key(("login", username, source)),
                LOGIN_FAILURES_PER_USER_AND_SOURCE,
            ),
            (self.key(("login", source)), LOGIN_FAILURES_PER_SOURCE),
        ]
    }

    /// Counts a login attempt for `username` from `source`, unless either limit is reached: then
    /// `Err(seconds until the fuller window ends)`.
    pub fn count_login(&self, username: &str, source: IpAddr, now: i64) -> Result<Attempt, i64> {
        self.count(&self.login_keys(username, source), now)
    }

    /// Forgets the failures of `username` from `source` (a successful sign-in there).
    pub fn forgive_login(&self, username: &str, source: IpAddr) {
        let [(user_key, _), _] = self.login_keys(username, source);
        if let Ok(mut windows) = self.windows.lock() {
            windows.remove(&user_key);
        }
    }

    /// Counts a push by public client `client_id` from `source`, unless the limit is reached: then
    /// `Err(seconds until the window ends)`.
    pub fn count_push(&self, client_id: &str, source: IpAddr, now: i64) -> Result<(), i64> {
        self.count(
            &[(
                self.key(("par", client_id, source)),
                PUSHES_PER_PUBLIC_CLIENT_AND_SOURCE,
            )],
            now,
        )
        .map(|_| ())
    }

    /// Counts an open registration from `source` (RFC 7591), unless its limit is reached: then
    /// `Err(seconds until the window ends)`.
    pub fn count_registration(&self, source: IpAddr, now: i64) -> Result<(), i64> {
        self.count(
            &[(self.key(("register", "", source)), REGISTRATIONS_PER_SOURCE)],
            now,
        )
        .map(|_| ())
    }

    /// Counts an uncached fetch of a client ID metadata document for `source`, unless its limit is reached.
    pub fn count_document_fetch(&self, source: IpAddr, now: i64) -> Result<(), i64> {
        self.count(
            &[(
                self.key(("document", "", source)),
                DOCUMENT_FETCHES_PER_SOURCE,
            )],
            now,
        )
        .map(|_| ())
    }

    /// Counts a device authorization request of `client_id` from `source`, unless its limit is reached.
    pub fn count_device_authorization(
        &self,
        client_id: &str,
        source: IpAddr,
        now: i64,
    ) -> Result<(), i64> {
        self.count(
            &[(
                self.key(("device", client_id, source)),
                DEVICE_AUTHORIZATIONS_PER_CLIENT_AND_SOURCE,
            )],
            now,
        )
        .map(|_| ())
    }

    /// Counts a user-code lookup from `source` before it runs, unless the limit is reached; a lookup that
    /// finds a pending code gives its attempt back.
    pub fn count_user_code(&self, source: IpAddr, now: i64) -> Result<Attempt, i64> {
        self.count(
            &[(
                self.key(("user_code", "", source)),
                USER_CODE_FAILURES_PER_SOURCE,
            )],
            now,
        )
    }

    /// Counts an RFC 7592 call for `client_id` whose token was right, unless its limit is reached.
    pub fn count_management(&self, client_id: &str, now: i64) -> Result<(), i64> {
        let nowhere = IpAddr::from([0, 0, 0, 0]);
        self.count(
            &[(
                self.key(("manage", client_id, nowhere)),
                MANAGEMENT_CALLS_PER_CLIENT,
            )],
            now,
        )
        .map(|_| ())
    }

    /// Counts one attempt against every key at once (all or nothing), unless one is at its limit.
    fn count(&self, keys: &[(u64, u32)], now: i64) -> Result<Attempt, i64> {
        let Ok(mut windows) = self.windows.lock() else {
            // A poisoned lock means a panic elsewhere; counting nothing is better than refusing everyone.
            return Ok(Attempt {
                keys: Vec::new(),
                counted_at: now,
            });
        };
        let window = self.window_seconds;
        let mut retry_after = None;
        for (key, limit) in keys {
            if let Some(current) = windows.get(key)
                && now < current.start + window
                && current.count >= *limit
            {
                let wait = current.start + window - now;
                retry_after = Some(retry_after.map_or(wait, |other: i64| other.max(wait)));
            }
        }
        if let Some(retry_after) = retry_after {
            return Err(retry_after.max(1));
        }
        if windows.len() + keys.len() > self.capacity {
            windows.retain(|_, current| now < current.start + window);
        }
        let mut counted = Vec::with_capacity(keys.len());
        for (key, _) in keys {
            let fresh = Window {
                start: now,
                count: 0,
            };
            if !windows.contains_key(key) {
                if windows.len() >= self.capacity {
                    continue;
                }
                windows.insert(*key, fresh);
            }
            let Some(current) = windows.get_mut(key) else {
                continue;
            };
            if now >= current.start + window {
                *current = fresh;
            }
            current.count = current.count.saturating_add(1);
            counted.push(*key);
        }
        Ok(Attempt {
            keys: counted,
            counted_at: now,
        })
    }

    /// Takes back an attempt that was not a failure (it succeeded, or its check never ran).
    pub fn give_back(&self, attempt: Attempt) {
        let Ok(mut windows) = self.windows.lock() else {
            return;
        };
        for key in attempt.keys {
            if let Some(current) = windows.get_mut(&key)
                && attempt.counted_at >= current.start
                && attempt.counted_at < current.start + self.window_seconds
            {
                current.count = current.count.saturating_sub(1);
                if current.count == 0 {
                    windows.remove(&key);
                }
            }
        }
    }

    /// Keys tracked now.
    pub fn tracked(&self) -> usize {
        self.windows
            .lock()
            .map(|windows| windows.len())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const THERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));

    #[test]
    fn five_failures_per_user_and_source_then_the_window_must_end() {
        let throttle = Throttle::default();
        for _ in 0..5 {
            let _failure = throttle.count_login("alice", HERE, 100).unwrap();
        }
        assert_eq!(throttle.count_login("alice", HERE, 110), Err(50));
        // The same user from another source, and another user from this one, are not held back.
        assert!(throttle.count_login("alice", THERE, 110).is_ok());
        assert!(throttle.count_login("bob", HERE, 110).is_ok());
        // A new window.
        assert!(throttle.count_login("alice", HERE, 160).is_ok());
    }

    #[test]
    fn twenty_failures_per_source_whatever_the_usernames() {
        let throttle = Throttle::default();
        for i in 0..20 {
            let _failure = throttle
                .count_login(&format!("user-{i}"), HERE, 100)
                .unwrap();
        }
        assert_eq!(throttle.count_login("anyone", HERE, 100), Err(60));
        assert!(throttle.count_login("anyone", THERE, 100).is_ok());
    }

    #[test]
    fn an_attempt_given_back_does_not_count_and_a_success_forgives() {
        let throttle = Throttle::default();
        for _ in 0..4 {
            let _failure = throttle.count_login("alice", HERE, 100).unwrap();
        }
        // Attempts that never got their check (the server was busy) do not count.
        for _ in 0..10 {
            let attempt = throttle.count_login("alice", HERE, 100).unwrap();
            throttle.give_back(attempt);
        }
        let success = throttle.count_login("alice", HERE, 100).unwrap();
        throttle.give_back(success);
        throttle.forgive_login("alice", HERE);
        for _ in 0..5 {
            let _failure = throttle.count_login("alice", HERE, 100).unwrap();
        }
        assert!(throttle.count_login("alice", HERE, 100).is_err());
        // The source still counts its failures: 4 + 5 of 20.
        assert!(throttle.count_login("bob", HERE, 100).is_ok());
    }

    #[test]
    fn the_table_never_holds_more_than_its_capacity_and_a_full_table_locks_nobody() {
        let throttle = Throttle::new(60, 100);
        for i in 0..1_000u32 {
            let source = IpAddr::from(i.to_be_bytes());
            let _failure = throttle.count_login("mallory", source, 100).unwrap();
        }
        assert!(throttle.tracked() <= 100, "{}", throttle.tracked());
        // Expired windows make room.
        assert!(throttle.count_login("alice", HERE, 200).is_ok());
        assert!(throttle.tracked() <= 100);
    }
}
