//! Fetching client ID metadata documents (draft-ietf-oauth-client-id-metadata-document §4) under the
//! bounds of a fetch whose URL a stranger chose: no redirects, 64 KiB, 5 s, only a 200 with a JSON object,
//! never an RFC 6890 special-use address (checked on the addresses the connection may use: the resolver
//! hands the connector only permitted ones, so a name that resolves to an inside address at the second
//! lookup cannot slip through), 32 fetches in flight in all and 4 per source, and a bounded cache of which
//! documents are fresh (per `Cache-Control`, clamped to 5 minutes–24 hours; failures never cached).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde_json::{Map, Value};

/// The largest document read.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// How long a fetch may take, connection included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The shortest and longest time a document is used before it is fetched again (seconds).
pub const MIN_FRESH_SECONDS: i64 = 300;
pub const MAX_FRESH_SECONDS: i64 = 86_400;
/// Documents remembered as fresh at most; the least recently used is dropped.
pub const MAX_CACHED: usize = 10_000;
/// Fetches in flight at once, in all and per source.
pub const MAX_IN_FLIGHT: usize = 32;
pub const MAX_IN_FLIGHT_PER_SOURCE: usize = 4;

/// Whether `client_id` names a metadata document: an https URL (http too on a loopback host when
/// `loopback` allows it) with a host and a path, without userinfo, fragment or dot segment, written
/// exactly as a URL parser writes it (so the document's `client_id` can be compared as a string).
pub fn is_document_url(client_id: &str, loopback: bool) -> bool {
    let Ok(url) = url::Url::parse(client_id) else {
        return false;
    };
    let scheme_ok = match url.scheme() {
        "https" => true,
        "http" => loopback && is_loopback_host(&url),
        _ => false,
    };
    scheme_ok
        && client_id.len() <= auth_core::id::MAX_CLIENT_ID_BYTES
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.fragment().is_none()
        && url.path() != "/"
        && url.as_str() == client_id
}

/// A loopback host as RFC 8252 §7.3 and this server name them: `127.0.0.1`, `[::1]` or `localhost`.
pub fn is_loopback_host(url: &url::Url) -> bool {
    matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"))
}

/// RFC 6890 (and its successors in the IANA special-purpose registries): addresses a fetch for a stranger
/// never reaches. IPv4-mapped, IPv4-compatible and NAT64 IPv6 addresses are judged by their IPv4 address.
pub fn is_special_use(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return special_v4(v4);
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) and IPv4-translated (::ffff:0:0:0/96) addresses: the IPv4 address they
            // stand for.
            if (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0])
                || (s[0..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0)
            {
                let v4 =
                    Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
                return special_v4(v4);
            }
            v6.is_unspecified()
                || v6.is_loopback()
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // local-use NAT64 64:ff9b:1::/48 (RFC 8215)
                || s[0] & 0xfe00 == 0xfc00 // unique local fc00::/7
                || s[0] & 0xffc0 == 0xfe80 // link-local fe80::/10
                || s[0] & 0xffc0 == 0xfec0 // site-local fec0::/10 (deprecated)
                || s[0] & 0xff00 == 0xff00 // multicast
                || (s[0] == 0x2001 && s[1] < 0x0200) // IETF protocol assignments 2001::/23 (Teredo, ORCHID…)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || s[0] == 0x2002 // 6to4
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]) // discard-only 100::/64
                || (s[0] == 0 && s[1..6] == [0, 0, 0, 0, 0]) // IPv4-compatible ::/96 (and ::, ::1)
        }
    }
}

fn special_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0 // "this network"
        || a == 10
        || (a == 100 && (64..128).contains(&b)) // shared address space
        || a == 127
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // documentation
        || (a == 203 && b == 0 && c == 113) // documentation
        || a >= 224 // multicast, reserved, broadcast
}

/// Whether a fetch may connect to `ip`: never a special-use address, but `127.0.0.1` or `::1` when
/// `loopback` (`--insecure-loopback-metadata`, tests only, and only for the hosts `127.0.0.1`, `[::1]` and
/// `localhost`).
pub fn may_connect(ip: IpAddr, loopback: bool) -> bool {
    !is_special_use(ip)
        || (loopback
            && (ip == IpAddr::from(Ipv4Addr::LOCALHOST)
                || ip == IpAddr::from(std::net::Ipv6Addr::LOCALHOST)))
}

/// An HTTP client for URLs a stranger chose (documents, and the back-channel logout URIs of self-registered
/// clients): no redirects, no proxy, `timeout` for the whole exchange, and a resolver that hands the
/// connector only addresses [`may_connect`] permits. A URL with an address written in it is judged by
/// [`literal_permitted`] first (it is never resolved).
pub fn guarded_client(loopback: bool, timeout: std::time::Duration) -> Option<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        // Hosts are strangers' and unbounded in number: no idle connection is kept for any of them.
        .pool_max_idle_per_host(0)
        .dns_resolver(Arc::new(GuardedResolver { loopback }))
        .build()
        .ok()
}

/// Whether the address written in `url`, if any, may be connected to.
pub fn literal_permitted(url: &url::Url, loopback: bool) -> bool {
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    };
    literal.is_none_or(|ip| may_connect(ip, loopback && is_loopback_host(url)))
}

/// The resolver of document fetches: only permitted addresses reach the connector.
struct GuardedResolver {
    loopback: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        // The test flag lifts the rule for `localhost` only, not for any name that resolves to loopback.
        let loopback = self.loopback && name.as_str().eq_ignore_ascii_case("localhost");
        Box::pin(async move {
            let addresses = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let permitted: Vec<SocketAddr> = addresses
                .filter(|address| may_connect(address.ip(), loopback))
                .collect();
            if permitted.is_empty() {
                return Err(Box::new(SpecialUseOnly) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The resolver's refusal: every address of the host is a special-use one.
#[derive(Debug, thiserror::Error)]
#[error("the document's host resolves only to special-use addresses")]
struct SpecialUseOnly;

/// Whether `error` (or an error it wraps) is the resolver's refusal.
fn refused_by_resolver(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<SpecialUseOnly>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// The answer to every network failure (unreachable, too slow, not a 200, a redirect, cut off).
const UNFETCHABLE: &str = "the document could not be fetched (only a 200 within 5 seconds is one; redirects are not followed)";

/// Why a document could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

/// A fetched document: its JSON object and how long it stays fresh (seconds).
#[derive(Debug)]
pub struct Fetched {
    pub document: Map<String, Value>,
    pub fresh_for: i64,
}

#[derive(Debug)]
struct Cached {
    fresh_until: i64,
    used: u64,
}

#[derive(Debug, Default)]
struct Cache {
    documents: HashMap<String, Cached>,
    clock: u64,
}

/// The fetcher, its in-flight gates and its cache of fresh documents.
#[derive(Debug)]
pub struct DocumentFetcher {
    loopback: bool,
    /// Built at the first fetch (loading root certificates costs milliseconds of every start); `None` if
    /// it could not be built, and then nothing is fetched.
    http: OnceLock<Option<reqwest::Client>>,
    all: Arc<tokio::sync::Semaphore>,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    cache: Mutex<Cache>,
}

/// A fetch's place in the in-flight gates, given back when dropped.
pub struct InFlight<'a> {
    fetcher: &'a DocumentFetcher,
    source: IpAddr,
    _all: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut per_source = lock(&self.fetcher.per_source);
        if let Some(count) = per_source.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                per_source.remove(&self.source);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl DocumentFetcher {
    /// `loopback`: `--insecure-loopback-metadata`.
    pub fn new(loopback: bool) -> Self {
        Self {
            loopback,
            http: OnceLock::new(),
            all: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            per_source: Mutex::new(HashMap::new()),
            cache: Mutex::new(Cache::default()),
        }
    }

    /// Whether loopback documents are allowed (tests only).
    pub fn loopback(&self) -> bool {
        self.loopback
    }

    /// Whether the document at `url` was fetched and is fresh at `now` (and then it counts as used).
    pub fn fresh(&self, url: &str, now: i64) -> bool {
        let mut cache = lock(&self.cache);
        cache.clock += 1;
        let clock = cache.clock;
        match cache.documents.get_mut(url) {
            Some(cached) if now < cached.fresh_until => {
                cached.used = clock;
                true
            }
            _ => false,
        }
    }

    /// Remembers that the document at `url` is fresh until `fresh_until`, dropping the least recently used
    /// document when the cache is full.
    pub fn remember(&self, url: &str, fresh_until: i64) {
        let mut cache = lock(&self.cache);
        cache.clock += 1;
        let used = cache.clock;
        if !cache.documents.contains_key(url)
            && cache.documents.len() >= MAX_CACHED
            && let Some(oldest) = cache
                .documents
                .iter()
                .min_by_key(|(_, cached)| cached.used)
                .map(|(url, _)| url.clone())
        {
            cache.documents.remove(&oldest);
        }
        cache
            .documents
            .insert(url.to_owned(), Cached { fresh_until, used });
    }

    /// A place for one fetch from `source`, if one is free (32 in all, 4 per source).
    pub fn enter(&self, source: IpAddr) -> Option<InFlight<'_>> {
        let mut per_source = lock(&self.per_source);
        let count = per_source.get(&source).copied().unwrap_or(0);
        if count >= MAX_IN_FLIGHT_PER_SOURCE {
            return None;
        }
        let all = self.all.clone().try_acquire_owned().ok()?;
        per_source.insert(source, count + 1);
        Some(InFlight {
            fetcher: self,
            source,
            _all: all,
        })
    }

    fn http(&self) -> Option<&reqwest::Client> {
        self.http
            .get_or_init(|| guarded_client(self.loopback, FETCH_TIMEOUT))
            .as_ref()
    }

    /// Fetches the document at `url` (already known to be a document URL).
    pub async fn fetch(&self, url: &str) -> Result<Fetched, FetchError> {
        let fail = |why: &str| FetchError(why.to_owned());
        let parsed = url::Url::parse(url).map_err(|_| fail("not a URL"))?;
        // An address written in the URL is never resolved: judge it here.
        if !literal_permitted(&parsed, self.loopback) {
            return Err(fail("the document's address is a special-use address"));
        }
        let http = self
            .http()
            .ok_or_else(|| fail("documents cannot be fetched here (no HTTP client)"))?;
        let mut response = http
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|error| {
                // One answer for every network failure: the fetch is no port scanner for the caller.
                if refused_by_resolver(&error) {
                    fail("the document's host resolves only to special-use addresses")
                } else {
                    fail(UNFETCHABLE)
                }
            })?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(fail(UNFETCHABLE));
        }
        let json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|media| {
                let media = media.trim().to_ascii_lowercase();
                media == "application/json" || media.ends_with("+json")
            });
        if !json {
            return Err(fail("the document is not served as application/json"));
        }
        if response
            .content_length()
            .is_some_and(|length| length > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(fail("the document is larger than 64 KiB"));
        }
        let fresh_for = fresh_for(response.headers());
        let mut body = Vec::new();
        loop {
            let chunk = match tokio::time::timeout(FETCH_TIMEOUT, response.chunk()).await {
                Ok(Ok(Some(chunk))) => chunk,
                Ok(Ok(None)) => break,
                Ok(Err(_)) | Err(_) => return Err(fail(UNFETCHABLE)),
            };
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(fail("the document is larger than 64 KiB"));
            }
            body.extend_from_slice(&chunk);
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(document)) => Ok(Fetched {
                document,
                fresh_for,
            }),
            _ => Err(fail("the document is not a JSON object")),
        }
    }
}

/// How long a response stays fresh: its `Cache-Control` `max-age` (none, `no-cache` or `no-store`: the
/// least), clamped to 5 minutes–24 hours.
fn fresh_for(headers: &reqwest::header::HeaderMap) -> i64 {
    let max_age = headers
        .get_all(reqwest::header::CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|directive| {
            let (name, value) = directive.trim().split_once('=')?;
            name.eq_ignore_ascii_case("max-age")
                .then(|| value.trim().parse::<i64>().ok())
                .flatten()
        });
    max_age
        .unwrap_or(MIN_FRESH_SECONDS)
        .clamp(MIN_FRESH_SECONDS, MAX_FRESH_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_url_is_https_with_a_path_and_nothing_to_normalize() {
        for url in [
            "https://app.example/client.json",
            "https://app.example:8443/oauth/client",
            "https://app.example/client.json?v=2",
        ] {
            assert!(is_document_url(url, false), "{url}");
        }
        for url in [
            "https://app.example/",
            "https://app.example",
            "http://app.example/client.json",
            "https://user@app.example/client.json",
            "https://app.example/client.json#f",
            "https://app.example/a/../client.json",
            "https://app.example/./client.json",
            "https://APP.example/client.json",
            "https://app.example:443/client.json",
            "http://127.0.0.1:8080/client.json",
            "urn:example:client",
            "client-id",
        ] {
            assert!(!is_document_url(url, false), "{url}");
        }
        assert!(is_document_url("http://127.0.0.1:8080/client.json", true));
        assert!(is_document_url("http://localhost:8080/client.json", true));
        assert!(!is_document_url("http://app.example/client.json", true));
    }

    #[test]
    fn special_use_addresses_are_never_connected_to_but_loopback_with_the_test_flag() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a00:1",
            "::ffff:0:a00:1",
            "2001:db8::1",
            "ff02::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(is_special_use(ip), "{ip}");
            assert!(!may_connect(ip, false), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "8.8.8.8",
        ] {
            assert!(!is_special_use(ip.parse().unwrap()), "{ip}");
        }
        assert!(may_connect("127.0.0.1".parse().unwrap(), true));
        assert!(may_connect("::1".parse().unwrap(), true));
        assert!(!may_connect("127.0.0.2".parse().unwrap(), true));
        assert!(!may_connect("10.0.0.1".parse().unwrap(), true));
    }

    #[test]
    fn freshness_follows_max_age_within_five_minutes_and_a_day() {
        let headers = |value: &str| {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::CACHE_CONTROL, value.parse().unwrap());
            headers
        };
        assert_eq!(fresh_for(&reqwest::header::HeaderMap::new()), 300);
        assert_eq!(fresh_for(&headers("max-age=3600")), 3600);
        assert_eq!(fresh_for(&headers("public, max-age=10")), 300);
        assert_eq!(fresh_for(&headers("max-age=9999999")), 86_400);
        assert_eq!(fresh_for(&headers("no-store")), 300);
    }

    #[test]
    fn the_cache_drops_the_least_recently_used_and_in_flight_places_are_bounded() {
        let fetcher = DocumentFetcher::new(false);
        fetcher.remember("https://a.example/c", 100);
        assert!(fetcher.fresh("https://a.example/c", 99));
        assert!(!fetcher.fresh("https://a.example/c", 100));
        let source: IpAddr = "192.0.2.1".parse().unwrap();
        let places: Vec<_> = (0..MAX_IN_FLIGHT_PER_SOURCE)
            .map(|_| fetcher.enter(source).unwrap())
            .collect();
        assert!(fetcher.enter(source).is_none(), "a fifth from one source");
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(fetcher.enter(other).is_some(), "another source");
        drop(places);
        assert!(fetcher.enter(source).is_some());
        // 32 in flight in all: eight sources of four, and a ninth source waits.
        let all: Vec<_> = (0..MAX_IN_FLIGHT)
            .map(|n| {
                let source = IpAddr::from([198, 51, 100, (n / MAX_IN_FLIGHT_PER_SOURCE) as u8]);
                fetcher.enter(source).unwrap()
            })
            .collect();
        assert!(fetcher.enter("203.0.113.9".parse().unwrap()).is_none());
        drop(all);
    }

    #[test]
    fn a_full_cache_drops_the_document_used_longest_ago() {
        let fetcher = DocumentFetcher::new(false);
        let url = |n: usize| format!("https://app.example/{n}");
        for n in 0..MAX_CACHED {
            fetcher.remember(&url(n), 1_000);
        }
        // The first is used again: the second is now the one used longest ago.
        assert!(fetcher.fresh(&url(0), 0));
        fetcher.remember(&url(MAX_CACHED), 1_000);
        assert!(fetcher.fresh(&url(0), 0));
        assert!(!fetcher.fresh(&url(1), 0), "the least recently used stays");
        assert!(fetcher.fresh(&url(2), 0));
        assert!(fetcher.fresh(&url(MAX_CACHED), 0));
        assert_eq!(lock(&fetcher.cache).documents.len(), MAX_CACHED);
    }
}
