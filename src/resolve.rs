//! Host-name resolution bounded in time. The system resolver (`getaddrinfo`, behind std's
//! `ToSocketAddrs`) takes as long as resolv.conf's timeouts and retries allow, which can
//! be far longer than a login may wait; so a name is resolved on a short-lived helper
//! thread and the worker waits for it at most the login's timeout. A helper that outlives
//! its wait finishes on its own; at most [`MAX_PENDING`] run at once, so a resolver that
//! hangs cannot pile up threads. Addresses written as IP literals are used directly.
//!
//! What a name resolved to is kept for [`CACHE_TTL`] (at most [`CACHE_ENTRIES`] names):
//! a `mailHost` written as a host name, the usual case, would otherwise cost every login
//! a thread and a resolver round trip. Failures are not kept, so a name that failed is
//! asked again at the next login.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, LazyLock};
use std::time::{Duration, Instant};

/// How long the addresses of a name are used before it is looked up again.
pub const CACHE_TTL: Duration = Duration::from_secs(60);

/// Names kept at most; when full, the expired ones go, and if none had, all.
pub const CACHE_ENTRIES: usize = 4096;

static CACHE: LazyLock<Cache> = LazyLock::new(Cache::default);

/// Helper threads resolving at once, at most.
pub const MAX_PENDING: usize = 64;

static PENDING: AtomicUsize = AtomicUsize::new(0);

/// The addresses of `host:port`, or an error after at most `timeout` (`TimedOut`).
pub fn resolve(host: &str, port: u16, timeout: Duration) -> io::Result<Vec<SocketAddr>> {
    if let Some(found) = CACHE.get(host, port, Instant::now()) {
        return Ok(found);
    }
    let found = resolve_with(host, port, timeout, |host, port| {
        (host, port).to_socket_addrs().map(Iterator::collect)
    })?;
    CACHE.put(host, port, &found, Instant::now());
    Ok(found)
}

/// Names and the addresses they resolved to, with when.
#[derive(Default)]
struct Cache {
    entries: Mutex<HashMap<(String, u16), Found>>,
}

/// When a name was looked up, and its addresses.
type Found = (Instant, Vec<SocketAddr>);

impl Cache {
    /// The addresses of `host:port` found less than [`CACHE_TTL`] before `now`.
    fn get(&self, host: &str, port: u16, now: Instant) -> Option<Vec<SocketAddr>> {
        let entries = self.entries.lock();
        let (found_at, addrs) = entries.get(&(host.to_string(), port))?;
        (now.saturating_duration_since(*found_at) < CACHE_TTL).then(|| addrs.clone())
    }

    fn put(&self, host: &str, port: u16, addrs: &[SocketAddr], now: Instant) {
        if host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() || addrs.is_empty() {
            return; // literals need no look-up; an empty answer is a failure
        }
        let mut entries = self.entries.lock();
        if entries.len() >= CACHE_ENTRIES {
            entries.retain(|_, (found_at, _)| now.saturating_duration_since(*found_at) < CACHE_TTL);
            if entries.len() >= CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert((host.to_string(), port), (now, addrs.to_vec()));
    }
}

/// [`resolve`] with the look-up itself given (tests use a slow one).
fn resolve_with(
    host: &str,
    port: u16,
    timeout: Duration,
    look_up: fn(&str, u16) -> io::Result<Vec<SocketAddr>>,
) -> io::Result<Vec<SocketAddr>> {
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if PENDING.fetch_add(1, Ordering::SeqCst) >= MAX_PENDING {
        PENDING.fetch_sub(1, Ordering::SeqCst);
        return Err(io::Error::other(format!(
            "{MAX_PENDING} host-name look-ups already in progress"
        )));
    }
    let (tx, rx) = mpsc::channel();
    let name = host.to_string();
    let spawned = std::thread::Builder::new()
        .name("mmp-resolve".into())
        .spawn(move || {
            let found = look_up(&name, port);
            PENDING.fetch_sub(1, Ordering::SeqCst);
            let _ = tx.send(found);
        });
    if let Err(e) = spawned {
        PENDING.fetch_sub(1, Ordering::SeqCst);
        return Err(e);
    }
    match rx.recv_timeout(timeout) {
        Ok(found) => found,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {timeout:?}"),
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(io::Error::other("the look-up ended without an answer"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn literals_need_no_look_up() {
        let slow: fn(&str, u16) -> io::Result<Vec<SocketAddr>> = |_, _| panic!("looked up");
        let v4 = resolve_with("127.0.0.2", 143, Duration::ZERO, slow).unwrap();
        assert_eq!(v4, ["127.0.0.2:143".parse().unwrap()]);
        let v6 = resolve_with("[::1]", 993, Duration::ZERO, slow).unwrap();
        assert_eq!(v6, ["[::1]:993".parse().unwrap()]);
    }

    /// Issue 9 item 4: a mailHost or LdapUrl name whose resolver hangs held the worker for
    /// as long as the system resolver liked.
    #[test]
    fn a_hanging_look_up_ends_at_the_timeout() {
        let hangs: fn(&str, u16) -> io::Result<Vec<SocketAddr>> = |_, _| {
            std::thread::sleep(Duration::from_secs(3));
            Ok(Vec::new())
        };
        let t = Instant::now();
        let e = resolve_with("store.invalid", 143, Duration::from_millis(200), hangs)
            .expect_err("timed out");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[test]
    fn a_name_is_kept_for_the_ttl_and_literals_and_failures_are_not() {
        let cache = Cache::default();
        let t0 = Instant::now();
        let addrs: Vec<SocketAddr> = vec!["127.0.0.2:143".parse().unwrap()];
        assert_eq!(cache.get("store1.example", 143, t0), None);
        cache.put("store1.example", 143, &addrs, t0);
        let later = t0 + CACHE_TTL - Duration::from_secs(1);
        assert_eq!(cache.get("store1.example", 143, later), Some(addrs.clone()));
        assert_eq!(cache.get("store1.example", 993, later), None, "per port");
        assert_eq!(
            cache.get("store1.example", 143, t0 + CACHE_TTL),
            None,
            "expired"
        );
        cache.put("127.0.0.3", 143, &addrs, t0);
        cache.put("store2.example", 143, &[], t0);
        assert_eq!(cache.entries.lock().len(), 1);
    }

    #[test]
    fn a_full_cache_drops_the_expired_names_first() {
        let cache = Cache::default();
        let t0 = Instant::now();
        let addrs: Vec<SocketAddr> = vec!["127.0.0.2:143".parse().unwrap()];
        cache.put("old.example", 143, &addrs, t0);
        let t1 = t0 + CACHE_TTL;
        for i in 1..CACHE_ENTRIES {
            cache.put(&format!("s{i}.example"), 143, &addrs, t1);
        }
        cache.put("new.example", 143, &addrs, t1);
        let entries = cache.entries.lock();
        assert_eq!(entries.len(), CACHE_ENTRIES);
        assert!(!entries.contains_key(&("old.example".to_string(), 143)));
        assert!(entries.contains_key(&("new.example".to_string(), 143)));
    }

    #[test]
    fn names_are_resolved() {
        let found = resolve("localhost", 25, Duration::from_secs(5)).unwrap();
        assert!(found.iter().all(|a| a.port() == 25 && a.ip().is_loopback()));
    }
}
