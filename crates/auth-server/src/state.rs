//! Application state shared by every handler: settings, the store (behind its traits), the clock, the key
//! ring, the client cache, the password hasher and the failure throttle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use auth_core::clock::SharedClock;
use auth_core::keys::KeyEncryptionKey;
use auth_core::secret::PasswordHasher;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::keyring::KeyRing;
use crate::store::{ClientRecord, Store, StoreError};

/// Settings derived from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The issuer identifier, exactly as configured.
    pub issuer: String,
    /// The issuer without a trailing slash: the base of every endpoint URL.
    pub base_url: String,
    /// The issuer's path (`/p` for `https://host/p`), when it has one.
    pub issuer_path: Option<String>,
    /// Access-token lifetime.
    pub access_token_ttl: i64,
    /// Refresh-token lifetime.
    pub refresh_token_ttl: i64,
    /// Authorization-code lifetime.
    pub auth_code_ttl: i64,
    /// Login-session lifetime.
    pub session_ttl: i64,
    /// Audience for clients registered without one.
    pub default_audience: String,
    /// Cookies get `Secure` when the issuer is https.
    pub secure_cookies: bool,
}

/// Client records by id, so issuing a token reads no database row. Dropped whole when any replica changes
/// a client (the config-version poll).
#[derive(Debug, Default)]
pub struct ClientCache {
    clients: RwLock<HashMap<String, Arc<ClientRecord>>>,
}

impl ClientCache {
    /// The client, from memory or else from the store.
    pub async fn get(
        &self,
        store: &dyn Store,
        client_id: &str,
    ) -> Result<Option<Arc<ClientRecord>>, StoreError> {
        if let Some(client) = self
            .clients
            .read()
            .ok()
            .and_then(|clients| clients.get(client_id).cloned())
        {
            return Ok(Some(client));
        }
        let Some(client) = store.find_client(client_id).await? else {
            return Ok(None);
        };
        let client = Arc::new(client);
        if let Ok(mut clients) = self.clients.write() {
            // Unknown ids are not cached, so the map holds only registered clients.
            clients.insert(client_id.to_owned(), client.clone());
        }
        Ok(Some(client))
    }

    /// Forgets every client.
    pub fn clear(&self) {
        if let Ok(mut clients) = self.clients.write() {
            clients.clear();
        }
    }
}

/// Fixed-window failure counters per key (`user:NAME`, `addr:IP`, `client:ID`): after `limit` failures in
/// a window the key is refused until the window ends. Counters are per replica.
#[derive(Debug)]
pub struct Throttle {
    windows: Mutex<HashMap<String, (i64, u32)>>,
    /// How many keys `windows` holds, readable without the lock: with no recorded failures (the normal
    /// case) checks and resets cost one atomic load instead of a mutex and a key allocation.
    tracked: AtomicUsize,
    window_seconds: i64,
}

/// The most keys a throttle remembers before it drops expired windows.
const THROTTLE_MAX_KEYS: usize = 100_000;

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

/// Failed logins allowed per username per window.
pub const LOGIN_FAILURES_PER_USER: u32 = 5;
/// Failed logins allowed per client address per window.
pub const LOGIN_FAILURES_PER_ADDRESS: u32 = 20;
/// Failed client authentications allowed per client id per window.
pub const CLIENT_AUTH_FAILURES_PER_CLIENT: u32 = 10;

/// Everything handlers share.
pub struct AppInner {
    /// Settings.
    pub settings: Settings,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Time.
    pub clock: SharedClock,
    /// Signing keys.
    pub keys: KeyRing,
    /// Cached clients.
    pub clients: ClientCache,
    /// argon2id.
    pub hasher: PasswordHasher,
    /// Failure throttle.
    pub throttle: Throttle,
    /// Prometheus.
    pub metrics: PrometheusHandle,
    /// Key-encryption key, when configured.
    pub kek: Option<KeyEncryptionKey>,
}

/// The state handed to handlers; cheap to clone.
pub type AppState = Arc<AppInner>;

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
