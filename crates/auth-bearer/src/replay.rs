//! Proof `jti`s seen recently (RFC 9449 §11.1), so a captured proof cannot be sent again while it is fresh.
//! Bounded in size, and shared out: one key (a thumbprint) may hold at most 1/64 of the entries and one
//! client at most 1/8, so a client that signs proofs as fast as it can with one key, or with many keys, fills
//! its own share and refuses its own proofs, never everyone else's.
//!
//! Sharded by key thumbprint, so all the entries of a key live in one shard with their count. A full shard,
//! or a key at its share, is swept of expired entries only once something in it has expired, so refusing
//! costs constant time instead of a rescan per request. Client counts are kept in ten-second buckets of the
//! time their entries may be forgotten: an entry lives at most 71 s (a proof dated up to 10 s ahead, kept
//! 61 s after its `iat`), so eight buckets cover it and a bucket in the past no longer counts.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;

use auth_core::secret::SecretDigest;

const SHARDS: usize = 16;

/// Seconds per client-count bucket, and buckets per client.
const BUCKET_SECONDS: i64 = 10;
const BUCKETS: usize = 8;

/// What a proof's first use came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstUse {
    /// Never seen: now remembered.
    New,
    /// Seen before, and still fresh: a replay.
    Replayed,
    /// The cache is full of fresh proofs (better refused than forgotten).
    Full,
    /// This key holds its share of the cache.
    KeyOverShare,
    /// This client holds its share of the cache.
    ClientOverShare,
}

#[derive(Default)]
struct Shard {
    /// Each remembered proof: until when, and the hash of its key.
    seen: HashMap<SecretDigest, (i64, u64)>,
    /// Live entries per key hash.
    per_key: HashMap<u64, usize>,
    /// The earliest time any entry may be forgotten: nothing to sweep before it.
    earliest: i64,
}

impl Shard {
    /// Forgets what has expired at `now`, if anything has.
    fn sweep(&mut self, now: i64) {
        if self.earliest >= now {
            return;
        }
        self.seen.retain(|_, (until, _)| *until >= now);
        self.per_key.clear();
        for (_, key) in self.seen.values() {
            *self.per_key.entry(*key).or_insert(0) += 1;
        }
        self.earliest = self
            .seen
            .values()
            .map(|(until, _)| *until)
            .min()
            .unwrap_or(i64::MAX);
    }
}

/// One client's entries by the ten-second bucket in which they may be forgotten.
#[derive(Default, Clone, Copy)]
struct ClientBuckets([(i64, usize); BUCKETS]);

impl ClientBuckets {
    fn live(&self, now: i64) -> usize {
        let current = now.div_euclid(BUCKET_SECONDS);
        self.0
            .iter()
            .filter(|(bucket, _)| *bucket >= current)
            .map(|(_, count)| count)
            .sum()
    }

    fn add(&mut self, forget_at: i64) {
        let bucket = forget_at.div_euclid(BUCKET_SECONDS);
        let slot = &mut self.0[bucket.rem_euclid(BUCKETS as i64) as usize];
        if slot.0 != bucket {
            *slot = (bucket, 0);
        }
        slot.1 += 1;
    }
}

/// The replay cache of one process (a proof is bound to this server's URI and the token it carries, so a
/// replica that did not see it can only be fooled within the proof's freshness window).
pub(crate) struct ReplayCache {
    shards: Vec<Mutex<Shard>>,
    clients: Vec<Mutex<HashMap<u64, ClientBuckets>>>,
    per_shard: usize,
    key_share: usize,
    client_share: usize,
    hasher: std::collections::hash_map::RandomState,
}

impl ReplayCache {
    /// At most `capacity` proofs remembered at once, 1/64 of them per key and 1/8 per client.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            clients: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            key_share: (capacity / 64).max(1),
            client_share: (capacity / 8).max(1),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn hash(&self, value: impl Hash) -> u64 {
        self.hasher.hash_one(value)
    }

    /// Records `jti` of a proof by key `jkt` for a token of `client_id`, to be remembered until `forget_at`.
    pub(crate) fn first_use(
        &self,
        jkt: &str,
        client_id: &str,
        jti: &str,
        forget_at: i64,
        now: i64,
    ) -> FirstUse {
        let digest = SecretDigest::of(&format!("{jkt}\u{0}{jti}"));
        let key = self.hash(jkt);
        let mut shard = self.shards[(key as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(&(until, _)) = shard.seen.get(&digest)
            && until >= now
        {
            return FirstUse::Replayed;
        }
        let key_count = |shard: &Shard| shard.per_key.get(&key).copied().unwrap_or(0);
        if shard.seen.len() >= self.per_shard || key_count(&shard) >= self.key_share {
            shard.sweep(now);
        }
        if shard.seen.len() >= self.per_shard {
            return FirstUse::Full;
        }
        if key_count(&shard) >= self.key_share {
            return FirstUse::KeyOverShare;
        }
        let client = self.hash(client_id);
        let mut clients = self.clients[(client as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let buckets = clients.entry(client).or_default();
        if buckets.live(now) >= self.client_share {
            return FirstUse::ClientOverShare;
        }
        buckets.add(forget_at);
        // A client whose every bucket is past goes when the map grows: the map holds live clients only.
        if clients.len() > 4 * self.client_share.max(1024) {
            clients.retain(|_, buckets| buckets.live(now) > 0);
        }
        drop(clients);
        if shard.seen.is_empty() || forget_at < shard.earliest {
            shard.earliest = forget_at;
        }
        if let Some((_, previous)) = shard.seen.insert(digest, (forget_at, key)) {
            // An expired entry of the same proof was replaced: its count goes with it.
            if let Some(count) = shard.per_key.get_mut(&previous) {
                *count = count.saturating_sub(1);
            }
        }
        *shard.per_key.entry(key).or_insert(0) += 1;
        FirstUse::New
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_new_once_until_forgotten_and_the_cache_is_bounded() {
        let cache = ReplayCache::new(SHARDS * 64);
        assert_eq!(cache.first_use("k", "c", "a", 100, 0), FirstUse::New);
        assert_eq!(cache.first_use("k", "c", "a", 100, 50), FirstUse::Replayed);
        assert_eq!(
            cache.first_use("other", "c", "a", 100, 50),
            FirstUse::New,
            "per key"
        );
        assert_eq!(
            cache.first_use("k", "c", "a", 200, 101),
            FirstUse::New,
            "forgotten"
        );
    }

    #[test]
    fn one_key_fills_only_its_share_and_every_other_key_is_unaffected() {
        // 6,400 entries: 100 per key, 800 per client.
        let cache = ReplayCache::new(6_400);
        let mut accepted = 0;
        for i in 0..1_000 {
            match cache.first_use("greedy", &format!("c{i}"), &i.to_string(), 1_000, 0) {
                FirstUse::New => accepted += 1,
                FirstUse::KeyOverShare => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(accepted, 100, "one key holds 1/64 of the capacity");
        assert_eq!(
            cache.first_use("modest", "someone", "j", 1_000, 0),
            FirstUse::New
        );
        // Once its proofs are stale, the key may send again.
        assert_eq!(
            cache.first_use("greedy", "c", "later", 2_000, 1_001),
            FirstUse::New
        );
    }

    #[test]
    fn one_client_fills_only_its_share_over_many_keys() {
        let cache = ReplayCache::new(6_400);
        let mut accepted = 0;
        for i in 0..2_000 {
            if cache.first_use(&format!("key{i}"), "greedy", "j", 60, 0) == FirstUse::New {
                accepted += 1;
            }
        }
        assert_eq!(accepted, 800, "one client holds 1/8 of the capacity");
        assert_eq!(
            cache.first_use("fresh-key", "other-client", "j", 60, 0),
            FirstUse::New
        );
        // Its buckets in the past no longer count.
        assert_eq!(
            cache.first_use("key-x", "greedy", "j", 200, 80),
            FirstUse::New
        );
    }

    #[test]
    fn a_full_shard_refuses_rather_than_forgets_and_makes_room_once_stale() {
        let cache = ReplayCache::new(SHARDS);
        let mut full = 0;
        for i in 0..200 {
            if cache.first_use(&format!("k{i}"), &format!("c{i}"), "j", 1_000, 150)
                == FirstUse::Full
            {
                full += 1;
            }
        }
        assert!(full > 0, "a full cache refuses rather than forgets");
        assert_eq!(
            cache.first_use("k0", "c0", "later", 2_000, 1_001),
            FirstUse::New
        );
    }
}
