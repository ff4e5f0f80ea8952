//! Recently verified tokens by the SHA-256 digest of the exact token text, so a repeated token costs a
//! lookup instead of a signature check. Bounded; an entry never outlives its token.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use auth_core::secret::SecretDigest;
use auth_core::token::AccessTokenClaims;

/// The cache, in shards: an insert, and the eviction a full shard needs, lock one shard, so lookups of
/// other tokens go on and an eviction scans 1/SHARDS of the entries (one map behind one lock made every
/// fresh token take the global write lock; see docs/benchmarks.md).
pub struct VerifiedCache {
    shards: Box<[Shard]>,
    shard_capacity: usize,
}

type Shard = RwLock<HashMap<SecretDigest, Arc<AccessTokenClaims>>>;

const SHARDS: usize = 16;

impl VerifiedCache {
    /// A cache of about `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            shard_capacity: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, digest: &SecretDigest) -> &Shard {
        // SHA-256 is uniform: any byte spreads tokens evenly over the shards.
        &self.shards[usize::from(digest.as_bytes()[31]) % SHARDS]
    }

    /// The claims of a token verified before (the caller still checks `exp`).
    pub fn get(&self, digest: &SecretDigest) -> Option<Arc<AccessTokenClaims>> {
        self.shard(digest)
            .read()
            .ok()
            .and_then(|shard| shard.get(digest).cloned())
    }

    /// Remembers a verified token. A full shard drops its expired entries first, and starts over if
    /// every entry is still live, rather than grow without bound.
    pub fn insert(
        &self,
        digest: SecretDigest,
        claims: Arc<AccessTokenClaims>,
        now: i64,
        leeway: i64,
    ) {
        let Ok(mut shard) = self.shard(&digest).write() else {
            return;
        };
        if shard.len() >= self.shard_capacity {
            shard.retain(|_, cached| now <= cached.exp + leeway);
            if shard.len() >= self.shard_capacity {
                shard.clear();
            }
        }
        shard.insert(digest, claims);
    }

    #[cfg(test)]
    fn shard_sizes(&self) -> Vec<usize> {
        self.shards
            .iter()
            .map(|shard| shard.read().map(|shard| shard.len()).unwrap_or(0))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Arc<AccessTokenClaims> {
        Arc::new(AccessTokenClaims {
            iss: "https://as.example".into(),
            sub: "alice".into(),
            aud: auth_core::token::Audience::One("resource-api".into()),
            client_id: "app".into(),
            scope: auth_core::scope::ScopeSet::empty(),
            iat: exp - 900,
            exp,
            nbf: None,
            jti: "j".into(),
            auth_time: None,
            fam: None,
            cnf: None,
            act: None,
            may_act: None,
        })
    }

    #[test]
    fn the_cache_stays_bounded_and_sweeps_expired_entries_first() {
        let cache = VerifiedCache::new(160);
        let now = 1_000;
        let live = SecretDigest::of("live");
        cache.insert(live, claims(now + 900), now, 60);
        // Far more expired entries than the cache holds: every full shard sweeps them, and the live
        // entry survives every sweep of its shard.
        for i in 0..10_000 {
            cache.insert(
                SecretDigest::of(&format!("old-{i}")),
                claims(now - 100),
                now,
                60,
            );
        }
        let sizes = cache.shard_sizes();
        assert!(
            sizes.iter().all(|size| *size <= 10),
            "bounded per shard: {sizes:?}"
        );
        assert_eq!(cache.get(&live).map(|claims| claims.exp), Some(now + 900));
        assert!(cache.get(&SecretDigest::of("never-inserted")).is_none());
    }
}
