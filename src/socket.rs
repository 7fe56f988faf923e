//! Socket system calls std does not offer: listening sockets with `SO_REUSEPORT` and a
//! chosen backlog (the loops' listeners), and outbound TCP connections bounded in time in
//! the fewest system calls (the stores and MTAs, once per login).
//!
//! std's `TcpStream::connect_timeout` switches the socket to non-blocking, connects, polls
//! and switches back: five system calls and a sleep in `poll`. Linux bounds a blocking
//! `connect` by the socket's send timeout (`SO_SNDTIMEO`), so [`connect`] opens the socket,
//! sets that timeout and `TCP_NODELAY`, and connects: four calls, and the send timeout
//! then bounds the login's writes as well.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// A TCP connection to `addr` with `TCP_NODELAY`, established within `limit` (else
/// `TimedOut`); its writes are bounded by `limit` too. The socket blocks.
pub fn connect(addr: SocketAddr, limit: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::from(open(addr, 0)?);
    // A zero timeout would mean "none" to the kernel; std refuses it.
    stream.set_write_timeout(Some(limit.max(Duration::from_millis(1))))?;
    stream.set_nodelay(true)?;
    let (storage, len) = sockaddr(addr);
    // SAFETY: storage holds a sockaddr of `len` bytes for this family.
    let rc = unsafe { libc::connect(stream.as_raw_fd(), (&raw const storage).cast(), len) };
    if rc == 0 {
        return Ok(stream);
    }
    let e = io::Error::last_os_error();
    Err(match e.raw_os_error() {
        // The send timeout ran out while the handshake was still in flight.
        Some(libc::EINPROGRESS) | Some(libc::EAGAIN) => io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connection not established within {limit:?}"),
        ),
        _ => e,
    })
}

/// A new close-on-exec TCP socket for `addr`'s family, with `flags` (e.g.
/// `SOCK_NONBLOCK`) added to its type.
pub fn open(addr: SocketAddr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let kind = libc::SOCK_STREAM | libc::SOCK_CLOEXEC | flags;
    // SAFETY: socket(2) with plain integer arguments; the result is checked before use.
    let fd = unsafe { libc::socket(family, kind, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor nothing else owns; OwnedFd closes it on every error.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds `fd` to `addr`.
pub fn bind(fd: &OwnedFd, addr: SocketAddr) -> io::Result<()> {
    let (storage, len) = sockaddr(addr);
    // SAFETY: storage holds a sockaddr of `len` bytes for this family.
    check(unsafe { libc::bind(fd.as_raw_fd(), (&raw const storage).cast(), len) })
}

/// Listens on the bound `fd` with `backlog` (clamped to what the C type holds).
pub fn listen(fd: &OwnedFd, backlog: u32) -> io::Result<()> {
    let backlog = libc::c_int::try_from(backlog).unwrap_or(libc::c_int::MAX);
    // SAFETY: listen(2) on a descriptor we own.
    check(unsafe { libc::listen(fd.as_raw_fd(), backlog) })
}

/// Turns the integer option `option` at `level` on.
pub fn set_flag(fd: &OwnedFd, level: libc::c_int, option: libc::c_int) -> io::Result<()> {
    let one: libc::c_int = 1;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: setsockopt(2) reads `len` bytes from `one`, which lives across the call.
    check(unsafe { libc::setsockopt(fd.as_raw_fd(), level, option, (&raw const one).cast(), len) })
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `addr` as a C socket address.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_storage is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Instant;

    #[test]
    fn connects_with_nodelay_and_a_write_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = connect(listener.local_addr().unwrap(), Duration::from_secs(3)).unwrap();
        assert!(stream.nodelay().unwrap());
        assert_eq!(
            stream.write_timeout().unwrap(),
            Some(Duration::from_secs(3))
        );
        assert_eq!(stream.peer_addr().unwrap(), listener.local_addr().unwrap());
        let (_, from) = listener.accept().unwrap();
        assert_eq!(from, stream.local_addr().unwrap());
    }

    #[test]
    fn a_closed_port_is_refused() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = connect(addr, Duration::from_secs(3)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    }

    /// A listener whose accept queue is full drops new SYNs; the connect gives up at its
    /// limit instead of waiting for the kernel's own minutes-long retry budget.
    #[test]
    fn a_connect_that_gets_no_answer_gives_up_at_its_limit() {
        let fd = open("127.0.0.1:0".parse().unwrap(), 0).unwrap();
        bind(&fd, "127.0.0.1:0".parse().unwrap()).unwrap();
        listen(&fd, 0).unwrap();
        let listener = TcpListener::from(fd);
        let addr = listener.local_addr().unwrap();
        // Fill the queue (never accepted) until a connect is left without an answer.
        let mut held = Vec::new();
        for _ in 0..8 {
            let started = Instant::now();
            match connect(addr, Duration::from_millis(300)) {
                Ok(s) => held.push(s),
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
                    let took = started.elapsed();
                    assert!(took >= Duration::from_millis(250), "{took:?}");
                    assert!(took < Duration::from_secs(2), "{took:?}");
                    return;
                }
            }
        }
        panic!("{} connects to a full queue were all answered", held.len());
    }
}
