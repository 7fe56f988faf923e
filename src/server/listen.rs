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
use crate::socket;
use mio::net::TcpListener;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

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

/// A non-blocking listening socket on `addr` with `SO_REUSEADDR`, `SO_REUSEPORT` and
/// `TCP_NODELAY`.
fn reuse_port_listener(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let fd = socket::open(addr, libc::SOCK_NONBLOCK)?;
    for option in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        socket::set_flag(&fd, libc::SOL_SOCKET, option)?;
    }
    // Replies are small and each one is awaited: no Nagle delay behind the peer's delayed
    // ACK (40 ms per TLS flight otherwise). Linux gives accepted sockets the listener's
    // TCP_NODELAY, which saves a system call per connection.
    socket::set_flag(&fd, libc::IPPROTO_TCP, libc::TCP_NODELAY)?;
    socket::bind(&fd, addr)?;
    socket::listen(&fd, backlog)?;
    Ok(TcpListener::from_std(std::net::TcpListener::from(fd)))
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

    /// The accept path no longer sets TCP_NODELAY itself: without it on the listener every
    /// TLS flight waits 40 ms for a delayed ACK.
    #[test]
    fn accepted_sockets_inherit_nodelay() {
        let bound = bind("127.0.0.1:0".parse().unwrap(), Protocol::Imap, 1, 16).unwrap();
        let _client = std::net::TcpStream::connect(bound.addr).unwrap();
        for _ in 0..200 {
            match bound.sockets[0].accept() {
                Ok((stream, _)) => {
                    assert!(stream.nodelay().unwrap());
                    assert_eq!(stream.local_addr().unwrap(), bound.addr);
                    return;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
        panic!("no connection accepted within a second");
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
