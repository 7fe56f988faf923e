//! Host-name resolution bounded in time. The system resolver (`getaddrinfo`, behind std's
//! `ToSocketAddrs`) takes as long as resolv.conf's timeouts and retries allow, which can
//! be far longer than a login may wait; so a name is resolved on a short-lived helper
//! thread and the worker waits for it at most the login's timeout. A helper that outlives
//! its wait finishes on its own; at most [`MAX_PENDING`] run at once, so a resolver that
//! hangs cannot pile up threads. Addresses written as IP literals are used directly.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Helper threads resolving at once, at most.
pub const MAX_PENDING: usize = 64;

static PENDING: AtomicUsize = AtomicUsize::new(0);

/// The addresses of `host:port`, or an error after at most `timeout` (`TimedOut`).
pub fn resolve(host: &str, port: u16, timeout: Duration) -> io::Result<Vec<SocketAddr>> {
    resolve_with(host, port, timeout, |host, port| {
        (host, port).to_socket_addrs().map(Iterator::collect)
    })
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
    fn names_are_resolved() {
        let found = resolve("localhost", 25, Duration::from_secs(5)).unwrap();
        assert!(found.iter().all(|a| a.port() == 25 && a.ip().is_loopback()));
    }
}
