//! Listening sockets: every address of every service is bound once per event loop with
//! `SO_REUSEPORT`, so the kernel spreads new connections over the loops (by a hash of the
//! four-tuple) and no loop hands a socket to another. The backlog is `ListenBacklog`.
//!
//! `SO_REUSEPORT` would let a second process bound the same way share the port silently
//! (a second mmp started by mistake would take half the connections). So each address is
//! first bound once without it, as an exclusivity probe that fails with "address in use"
//! when anything listens there, and the port the probe got (for port 0) is the one the
//! loops' sockets take.

use crate::protocol::Protocol;
use mio::net::TcpListener;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd};

/// One address of one service, bound once per loop.
#[derive(Debug)]
pub struct Bound {
    /// The address (its port resolved when 0 was asked for).
    pub addr: SocketAddr,
    /// The service that listens there.
    pub protocol: Protocol,
    /// One socket per loop, in loop order; taken by the loops when they start.
    pub sockets: Vec<TcpListener>,
}

/// The addresses `protocol` listens on, as configured (`None` address: every IPv4
/// address, as the legacy product did).
pub fn wanted(listen: &[crate::config::Listen]) -> Vec<SocketAddr> {
    listen
        .iter()
        .map(|l| SocketAddr::new(l.ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), l.port))
        .collect()
}

/// Binds `addr` for `protocol`, `loops` times, with `backlog`.
pub fn bind(addr: SocketAddr, protocol: Protocol, loops: usize, backlog: u32) -> io::Result<Bound> {
    let probe = std::net::TcpListener::bind(addr)?;
    let addr = probe.local_addr()?;
    drop(probe);
    let sockets = (0..loops.max(1))
        .map(|_| reuse_port_listener(addr, backlog))
        .collect::<io::Result<Vec<_>>>()?;
    Ok(Bound {
        addr,
        protocol,
        sockets,
    })
}

/// A non-blocking listening socket on `addr` with `SO_REUSEADDR` and `SO_REUSEPORT`.
fn reuse_port_listener(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket(2) with constant arguments; the result is checked before use.
    let fd = unsafe { libc::socket(family, kind, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor nothing else owns; OwnedFd closes it on every error.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    use std::os::fd::AsRawFd;
    let raw = fd.as_raw_fd();
    for option in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        set_flag(raw, libc::SOL_SOCKET, option)?;
    }
    let (storage, len) = sockaddr(addr);
    // SAFETY: storage holds a sockaddr of `len` bytes for this family.
    if unsafe { libc::bind(raw, (&raw const storage).cast(), len) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let backlog = libc::c_int::try_from(backlog).unwrap_or(libc::c_int::MAX);
    // SAFETY: listen(2) on the descriptor just bound.
    if unsafe { libc::listen(raw, backlog) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(TcpListener::from_std(std::net::TcpListener::from(fd)))
}

fn set_flag(fd: libc::c_int, level: libc::c_int, option: libc::c_int) -> io::Result<()> {
    let one: libc::c_int = 1;
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: setsockopt(2) reads `len` bytes from `one`, which lives across the call.
    let rc = unsafe { libc::setsockopt(fd, level, option, (&raw const one).cast(), len) };
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

    #[test]
    fn every_loop_gets_a_socket_on_the_same_port() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let bound = bind(addr, Protocol::Imap, 3, 16).unwrap();
        assert_ne!(bound.addr.port(), 0);
        assert_eq!(bound.sockets.len(), 3);
        for s in &bound.sockets {
            assert_eq!(s.local_addr().unwrap(), bound.addr);
        }
        // Each socket accepts: connect until every one has seen a connection (the kernel
        // hashes the source port), bounded.
        let mut seen = [false; 3];
        for _ in 0..200 {
            let _c = std::net::TcpStream::connect(bound.addr).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(1));
            for (i, s) in bound.sockets.iter().enumerate() {
                if s.accept().is_ok() {
                    seen[i] = true;
                }
            }
            if seen.iter().all(|&x| x) {
                break;
            }
        }
        assert_eq!(seen, [true; 3], "connections reach every loop's socket");
    }

    #[test]
    fn an_address_someone_else_listens_on_is_refused() {
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = other.local_addr().unwrap();
        let e = bind(addr, Protocol::Pop, 2, 16).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        // Even another mmp's SO_REUSEPORT sockets: the probe has no SO_REUSEPORT.
        let first = bind("127.0.0.1:0".parse().unwrap(), Protocol::Pop, 1, 16).unwrap();
        let e = bind(first.addr, Protocol::Pop, 1, 16).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }
}
