//! The directory caches of one service (or virtual domain), shared by all workers:
//!
//! * [`LookupCache`] (`LdapCacheSize`/`LdapCacheTTL`): search filter → the user's route, so
//!   a warm login asks the directory nothing. A store that refuses a cached user removes
//!   the entry. Concurrent first logins of one user make one directory request: the first
//!   worker searches, the others wait for its answer ([`LookupCache::get_or_search`]).
//! * [`AuthCache`] (`AuthCacheSize`/`AuthCacheTTL`): entry DN → a keyed hash (HMAC-SHA-256
//!   with a key made at start-up) of a password the directory accepted, never the password.
//!
//! Both are LRU-bounded and expire entries after their TTL; a size of 0 turns a cache off.
//! Time is a parameter; locks are held only around map operations, never across a search.

use super::{Error, Route};
use crate::metrics;
use lru::LruCache;
use parking_lot::{Condvar, Mutex};
use ring::hmac;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A TTL + LRU map.
#[derive(Debug)]
struct TtlLru<V> {
    map: Option<LruCache<String, (V, Instant)>>,
    ttl: Duration,
    /// Which `mmp_cache_entries` gauge counts this cache's entries (every realm's caches
    /// of a kind add up in one gauge).
    gauge: metrics::Cache,
}

impl<V: Clone> TtlLru<V> {
    fn new(size: usize, ttl: Duration, gauge: metrics::Cache) -> TtlLru<V> {
        let map = NonZeroUsize::new(size)
            .filter(|_| !ttl.is_zero())
            .map(LruCache::new);
        TtlLru { map, ttl, gauge }
    }

    fn len(&self) -> usize {
        self.map.as_ref().map_or(0, LruCache::len)
    }

    /// Runs `change` and moves the gauge by how much it changed the length.
    fn counted<R>(&mut self, change: impl FnOnce(&mut Self) -> R) -> R {
        let before = self.len();
        let result = change(self);
        let after = self.len();
        if after != before {
            crate::metrics::get().add_cache_entries(self.gauge, after as i64 - before as i64);
        }
        result
    }

    fn get(&mut self, key: &str, now: Instant) -> Option<V> {
        self.counted(|this| {
            let map = this.map.as_mut()?;
            match map.get(key) {
                Some((v, until)) if *until > now => Some(v.clone()),
                Some(_) => {
                    map.pop(key);
                    None
                }
                None => None,
            }
        })
    }

    fn put(&mut self, key: String, value: V, now: Instant) {
        let until = now + self.ttl;
        self.counted(|this| {
            if let Some(map) = this.map.as_mut() {
                map.put(key, (value, until));
            }
        });
    }

    fn remove(&mut self, key: &str) {
        self.counted(|this| {
            if let Some(map) = this.map.as_mut() {
                map.pop(key);
            }
        });
    }
}

impl<V> Drop for TtlLru<V> {
    /// A cache replaced by a reload takes its entries out of the gauge.
    fn drop(&mut self) {
        let len = self.map.as_ref().map_or(0, LruCache::len);
        if len > 0 {
            crate::metrics::get().add_cache_entries(self.gauge, -(len as i64));
        }
    }
}

/// One search in progress, which later askers wait for.
#[derive(Debug, Default)]
struct InFlight {
    result: Mutex<Option<Result<Route, Error>>>,
    done: Condvar,
}

/// The search of one key in progress in this worker: dropping it (after the search, or
/// while unwinding from a panic in it) wakes the waiters and forgets the in-flight entry.
struct Leader<'a> {
    cache: &'a LookupCache,
    key: &'a str,
    flight: Arc<InFlight>,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.flight.result.lock().get_or_insert_with(|| {
            Err(Error::Unavailable(
                "the lookup in progress was abandoned".into(),
            ))
        });
        self.flight.done.notify_all();
        self.cache.in_flight.lock().remove(self.key);
    }
}

/// Search filter → route.
#[derive(Debug)]
pub struct LookupCache {
    entries: Mutex<TtlLru<Route>>,
    in_flight: Mutex<HashMap<String, Arc<InFlight>>>,
}

/// Where a route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// This worker asked the directory.
    Directory,
    /// The cache had it.
    Cache,
    /// Another worker asked the directory at the same moment; this one waited for it.
    Shared,
}

impl LookupCache {
    /// A cache of `size` entries, each kept for `ttl`.
    pub fn new(size: usize, ttl: Duration) -> LookupCache {
        LookupCache {
            entries: Mutex::new(TtlLru::new(size, ttl, metrics::Cache::Route)),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// The cached route for `key`, or the result of `search` — run by exactly one of the
    /// workers that ask for `key` at the same time; the others wait up to `wait` for it.
    /// Only successful lookups are cached.
    pub fn get_or_search(
        &self,
        key: &str,
        now: Instant,
        wait: Duration,
        search: impl FnOnce() -> Result<Route, Error>,
    ) -> (Result<Route, Error>, Source) {
        let m = crate::metrics::get();
        if let Some(route) = self.entries.lock().get(key, now) {
            m.cache_lookup(metrics::Cache::Route, metrics::CacheResult::Hit);
            return (Ok(route), Source::Cache);
        }
        m.cache_lookup(metrics::Cache::Route, metrics::CacheResult::Miss);
        let (flight, leader) = {
            let mut in_flight = self.in_flight.lock();
            match in_flight.get(key) {
                Some(f) => (Arc::clone(f), false),
                None => {
                    let f = Arc::new(InFlight::default());
                    in_flight.insert(key.to_string(), Arc::clone(&f));
                    (f, true)
                }
            }
        };
        if !leader {
            let deadline = Instant::now() + wait;
            let mut result = flight.result.lock();
            while result.is_none() {
                if flight.done.wait_until(&mut result, deadline).timed_out() {
                    break;
                }
            }
            return match result.clone() {
                Some(r) => (r, Source::Shared),
                None => (
                    Err(Error::Unavailable(
                        "timed out waiting for a lookup in progress".into(),
                    )),
                    Source::Shared,
                ),
            };
        }
        // Released however the search ends: when it panics (the worker catches the
        // unwind), the waiters hear "unavailable" and the next login of the user searches
        // again instead of waiting for an answer that never comes.
        let leader = Leader {
            cache: self,
            key,
            flight,
        };
        let result = search();
        if let Ok(route) = &result {
            self.entries.lock().put(key.to_string(), route.clone(), now);
        }
        *leader.flight.result.lock() = Some(result.clone());
        drop(leader);
        (result, Source::Directory)
    }

    /// Forgets `key` (the store refused the user it routed).
    pub fn invalidate(&self, key: &str) {
        self.entries.lock().remove(key);
    }
}

/// DN → keyed hash of an accepted password.
pub struct AuthCache {
    entries: Mutex<TtlLru<hmac::Tag>>,
    key: hmac::Key,
}

impl std::fmt::Debug for AuthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthCache { .. }")
    }
}

impl AuthCache {
    /// A cache of `size` entries, each kept for `ttl`, keyed with fresh random bytes.
    pub fn new(size: usize, ttl: Duration) -> Result<AuthCache, ring::error::Unspecified> {
        let rng = ring::rand::SystemRandom::new();
        Ok(AuthCache {
            entries: Mutex::new(TtlLru::new(size, ttl, metrics::Cache::Auth)),
            key: hmac::Key::generate(hmac::HMAC_SHA256, &rng)?,
        })
    }

    fn tag(&self, dn: &str, password: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(dn.as_bytes());
        ctx.update(&[0]);
        ctx.update(password);
        ctx.sign()
    }

    /// True when the directory accepted exactly this password for `dn` within the TTL.
    pub fn is_known(&self, dn: &str, password: &[u8], now: Instant) -> bool {
        let Some(tag) = self.entries.lock().get(dn, now) else {
            let miss = metrics::CacheResult::Miss;
            crate::metrics::get().cache_lookup(metrics::Cache::Auth, miss);
            return false;
        };
        let mut ctx_input = Vec::with_capacity(dn.len() + 1 + password.len());
        ctx_input.extend_from_slice(dn.as_bytes());
        ctx_input.push(0);
        ctx_input.extend_from_slice(password);
        let ok = hmac::verify(&self.key, &ctx_input, tag.as_ref()).is_ok();
        // Wipe the copy that held the password.
        ctx_input.iter_mut().for_each(|b| *b = 0);
        let result = match ok {
            true => metrics::CacheResult::Hit,
            false => metrics::CacheResult::Miss,
        };
        crate::metrics::get().cache_lookup(metrics::Cache::Auth, result);
        ok
    }

    /// Remembers that the directory accepted `password` for `dn`.
    pub fn remember(&self, dn: &str, password: &[u8], now: Instant) {
        let tag = self.tag(dn, password);
        self.entries.lock().put(dn.to_string(), tag, now);
    }

    /// Forgets `dn` (its password was refused somewhere).
    pub fn forget(&self, dn: &str) {
        self.entries.lock().remove(dn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn route(host: &str) -> Route {
        Route {
            dn: "uid=a,o=isp".into(),
            mail_host: Some(host.into()),
            attrs: Vec::new(),
            replay: None,
            preauth: None,
            access: None,
        }
    }

    #[test]
    fn hits_until_the_ttl_then_asks_again() {
        let cache = LookupCache::new(10, Duration::from_secs(60));
        let t = Instant::now();
        let wait = Duration::from_secs(1);
        let (r, src) = cache.get_or_search("(uid=a)", t, wait, || Ok(route("s1")));
        assert_eq!(
            (r.unwrap().mail_host.unwrap().as_str(), src),
            ("s1", Source::Directory)
        );
        let (r, src) = cache.get_or_search("(uid=a)", t, wait, || Ok(route("s2")));
        assert_eq!(
            (r.unwrap().mail_host.unwrap().as_str(), src),
            ("s1", Source::Cache)
        );
        let later = t + Duration::from_secs(61);
        let (r, src) = cache.get_or_search("(uid=a)", later, wait, || Ok(route("s2")));
        assert_eq!(
            (r.unwrap().mail_host.unwrap().as_str(), src),
            ("s2", Source::Directory)
        );
        cache.invalidate("(uid=a)");
        let (_, src) = cache.get_or_search("(uid=a)", later, wait, || Ok(route("s3")));
        assert_eq!(
            src,
            Source::Directory,
            "invalidated entries are searched again"
        );
    }

    #[test]
    fn failures_and_size_zero_are_not_cached() {
        let t = Instant::now();
        let wait = Duration::from_secs(1);
        let cache = LookupCache::new(10, Duration::from_secs(60));
        let (r, _) = cache.get_or_search("k", t, wait, || Err(Error::NotFound));
        assert_eq!(r, Err(Error::NotFound));
        let (_, src) = cache.get_or_search("k", t, wait, || Ok(route("s")));
        assert_eq!(src, Source::Directory);
        let off = LookupCache::new(0, Duration::from_secs(60));
        let _ = off.get_or_search("k", t, wait, || Ok(route("s")));
        assert_eq!(
            off.get_or_search("k", t, wait, || Ok(route("s"))).1,
            Source::Directory
        );
    }

    #[test]
    fn concurrent_first_lookups_make_one_search() {
        let cache = Arc::new(LookupCache::new(10, Duration::from_secs(60)));
        let searches = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (cache, searches, barrier) = (cache.clone(), searches.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let (r, _) = cache.get_or_search(
                        "(uid=b)",
                        Instant::now(),
                        Duration::from_secs(5),
                        || {
                            searches.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(200));
                            Ok(route("s1"))
                        },
                    );
                    r.unwrap().mail_host.unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), "s1");
        }
        assert_eq!(searches.load(Ordering::SeqCst), 1);
    }

    /// Issue 9 item 4: a search that panicked left its in-flight entry behind, so every
    /// later login of that user waited for it and failed until restart.
    #[test]
    fn a_panicking_search_releases_its_key() {
        let cache = Arc::new(LookupCache::new(10, Duration::from_secs(60)));
        let started = Arc::new(std::sync::Barrier::new(2));
        let leader = {
            let (cache, started) = (cache.clone(), started.clone());
            std::thread::spawn(move || {
                cache.get_or_search("(uid=p)", Instant::now(), Duration::from_secs(5), || {
                    started.wait();
                    std::thread::sleep(Duration::from_millis(100));
                    panic!("search panicked");
                })
            })
        };
        started.wait();
        let t = Instant::now();
        let (waiter, src) =
            cache.get_or_search("(uid=p)", Instant::now(), Duration::from_secs(5), || {
                Ok(route("s9"))
            });
        assert!(leader.join().is_err(), "the leader's search panicked");
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "the waiter heard of the panic at once, not after its wait"
        );
        assert!(
            matches!((&waiter, src), (Err(Error::Unavailable(_)), Source::Shared))
                || src == Source::Directory,
            "{waiter:?} {src:?}"
        );
        let (r, src) =
            cache.get_or_search("(uid=p)", Instant::now(), Duration::from_secs(5), || {
                Ok(route("s1"))
            });
        assert!(
            src != Source::Shared && r.is_ok(),
            "the key is free again: {r:?} {src:?}"
        );
    }

    #[test]
    fn auth_cache_knows_only_the_accepted_password() {
        let cache = AuthCache::new(10, Duration::from_secs(60)).unwrap();
        let t = Instant::now();
        assert!(!cache.is_known("uid=a", b"pw", t));
        cache.remember("uid=a", b"pw", t);
        assert!(cache.is_known("uid=a", b"pw", t));
        assert!(!cache.is_known("uid=a", b"pw2", t));
        assert!(!cache.is_known("uid=b", b"pw", t));
        assert!(!cache.is_known("uid=a", b"pw", t + Duration::from_secs(61)));
        cache.remember("uid=a", b"pw", t);
        cache.forget("uid=a");
        assert!(!cache.is_known("uid=a", b"pw", t));
        assert!(!format!("{cache:?}").contains("pw"));
    }
}
