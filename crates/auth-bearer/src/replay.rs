//! Proof `jti`s seen recently (RFC 9449 §11.1), so a captured proof cannot be sent again while it is fresh.
//! Sharded, each shard a map from the digest of (key thumbprint, jti) to when it may be forgotten, bounded in
//! size: expired entries are dropped as a shard fills.

use std::collections::HashMap;
use std::sync::Mutex;

use auth_core::secret::SecretDigest;

const SHARDS: usize = 16;

/// The replay cache of one process (a proof is bound to this server's URI and the token it carries, so a
/// replica that did not see it can only be fooled within the proof's freshness window).
pub(crate) struct ReplayCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

#[derive(Default)]
struct Shard {
    seen: HashMap<SecretDigest, i64>,
    /// The earliest time any entry may be forgotten: a full shard is swept only once something in it has
    /// expired, so a shard full of fresh proofs refuses in constant time instead of rescanning on every request.
    earliest: i64,
}

impl ReplayCache {
    /// At most `capacity` proofs remembered at once.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    /// `Some(true)` the first time `jti` of `jkt` is seen, `Some(false)` for a replay, `None` when the cache is
    /// full of proofs that are all still fresh (the caller refuses the proof: better than forgetting one).
    pub(crate) fn first_use(&self, jkt: &str, jti: &str, forget_at: i64, now: i64) -> Option<bool> {
        let digest = SecretDigest::of(&format!("{jkt}\u{0}{jti}"));
        let shard = usize::from(digest.as_bytes()[0]) % SHARDS;
        let mut shard = self.shards[shard]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(&until) = shard.seen.get(&digest)
            && until >= now
        {
            return Some(false);
        }
        if shard.seen.len() >= self.per_shard {
            if shard.earliest >= now {
                return None;
            }
            shard.seen.retain(|_, until| *until >= now);
            shard.earliest = shard.seen.values().copied().min().unwrap_or(i64::MAX);
            if shard.seen.len() >= self.per_shard {
                return None;
            }
        }
        if shard.seen.is_empty() || forget_at < shard.earliest {
            shard.earliest = forget_at;
        }
        shard.seen.insert(digest, forget_at);
        Some(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_new_once_until_forgotten_and_the_cache_is_bounded() {
        let cache = ReplayCache::new(SHARDS);
        assert_eq!(cache.first_use("k", "a", 100, 0), Some(true));
        assert_eq!(cache.first_use("k", "a", 100, 50), Some(false));
        assert_eq!(
            cache.first_use("other", "a", 100, 50),
            Some(true),
            "per key"
        );
        assert_eq!(cache.first_use("k", "a", 200, 101), Some(true), "forgotten");
        // One entry per shard: a fresh one fills it, an expired one makes room.
        let mut refused = 0;
        for i in 0..200 {
            if cache.first_use("k", &i.to_string(), 1_000, 150).is_none() {
                refused += 1;
            }
        }
        assert!(refused > 0, "a full cache refuses rather than forgets");
        // Once the remembered proofs are stale, a full shard makes room again.
        assert_eq!(cache.first_use("k", "later", 2_000, 1_001), Some(true));
        assert_eq!(cache.first_use("k", "later", 2_000, 1_001), Some(false));
    }
}
