//! The PROXY protocol header (HAProxy's "PROXY protocol" v1 and v2) that a load balancer
//! sends before the client's first byte, and the `ProxyProtocolTrusted` matcher. No I/O.
//!
//! # Use from the loop
//!
//! On a `ProxyProtocolPorts` port the session starts in a phase that reads into a small
//! buffer (at most [`MAX_HEADER_BYTES`]) and calls [`parse`] after every read:
//!
//! - [`Parsed::Incomplete`]: read more (the deadline of a few seconds still runs); when
//!   the buffer is full or the client closes, the connection is refused (`proxy_header`).
//! - [`Parsed::Header`] `{ consumed, header }`: drop the first `consumed` bytes; the rest
//!   (if any) is the client's first application data (or TLS ClientHello) and goes to the
//!   front end as if just read. [`Header::Proxied`] gives the addresses that stand for the
//!   client everywhere; [`Header::Local`] is the balancer's own health check (close it
//!   quietly); [`Header::Unspecified`] is a client whose address the balancer does not
//!   know (serve it with the connection's own addresses).
//! - `Err(`[`Error`]`)`: close and log; nothing is sent first.
//!
//! Before reading, the loop checks the peer against [`TrustedNets::contains`].
//!
//! The parser looks only at the bytes of the header: it never returns a `consumed`
//! larger than the header, so a client that pipelines its first command loses nothing.
//! v1 is `PROXY TCP4|TCP6|UNKNOWN ... \r\n`, at most 107 bytes with the CRLF; v2 is the
//! 12-byte signature, version/command, family/transport, a 16-bit length and that many
//! bytes of addresses and TLVs. TLVs are skipped (their contents are not needed), and
//! AF_UNIX addresses are refused since mmp has no use for them.

use crate::config::net::{prefix_v4, prefix_v6, NetMask};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature: `\r\n\r\n\0\r\nQUIT\n`.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The fixed part of a v2 header (signature, version/command, family, length).
const V2_FIXED: usize = 16;
/// The longest v1 header, CRLF included (the specification's figure).
const V1_MAX: usize = 107;
/// The largest v2 address-and-TLV area mmp accepts. The 16-bit length allows 64 KiB, but
/// a balancer's TLVs (ALPN, authority, SSL details, unique id) stay far below this.
const V2_MAX_PAYLOAD: usize = 16 * 1024 - V2_FIXED;
/// The largest header [`parse`] accepts; a buffer of this size is always enough.
pub const MAX_HEADER_BYTES: usize = V2_FIXED + V2_MAX_PAYLOAD;

/// What [`parse`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// The bytes so far are a valid beginning; read more.
    Incomplete,
    /// A whole header: the first `consumed` bytes of the buffer are the header.
    Header {
        /// Length of the header; bytes after it belong to the client's protocol.
        consumed: usize,
        /// What it says.
        header: Header,
    },
}

/// A complete header's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A relayed connection: the client's address and the address it connected to.
    Proxied {
        /// The client.
        source: SocketAddr,
        /// The address the client connected to (picks the vdmap realm).
        destination: SocketAddr,
    },
    /// v2 LOCAL: the balancer's own connection (a health check), not a client's. Close it
    /// quietly (or serve it with the connection's own addresses).
    Local,
    /// A relayed client whose addresses the balancer does not know or cannot express
    /// (v1 `UNKNOWN`, v2 PROXY with family UNSPEC): serve it with the connection's own
    /// addresses, as the specification asks.
    Unspecified,
}

/// Why the bytes are not an acceptable header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Neither the v1 `PROXY ` prefix nor the v2 signature.
    NotProxy,
    /// A v1 line longer than 107 bytes.
    V1TooLong,
    /// A v1 line that does not follow the grammar (the text says which part).
    V1Malformed(&'static str),
    /// A v2 version other than 2.
    V2Version(u8),
    /// A v2 command other than LOCAL or PROXY.
    V2Command(u8),
    /// A v2 address family or transport mmp does not take (AF_UNIX, UDP, …).
    V2Unsupported(u8),
    /// A v2 length larger than the cap.
    V2TooLong(usize),
    /// A v2 length too short for its address family.
    V2LengthTooShort(usize),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotProxy => f.write_str("not a PROXY protocol header"),
            Error::V1TooLong => write!(f, "PROXY v1 line longer than {V1_MAX} bytes"),
            Error::V1Malformed(what) => write!(f, "malformed PROXY v1 header: {what}"),
            Error::V2Version(v) => write!(f, "PROXY v2 header with version {v}"),
            Error::V2Command(c) => write!(f, "PROXY v2 header with unknown command {c}"),
            Error::V2Unsupported(fam) => {
                write!(
                    f,
                    "PROXY v2 address family/transport 0x{fam:02x} not supported"
                )
            }
            Error::V2TooLong(n) => write!(
                f,
                "PROXY v2 header of {n} bytes is larger than {MAX_HEADER_BYTES}"
            ),
            Error::V2LengthTooShort(n) => {
                write!(f, "PROXY v2 length {n} too short for its addresses")
            }
        }
    }
}

impl std::error::Error for Error {}

/// Parses the PROXY header at the start of `buf` (v1 or v2, told apart by the first
/// bytes). Never looks at or consumes bytes after the header.
pub fn parse(buf: &[u8]) -> Result<Parsed, Error> {
    const V1_PREFIX: &[u8] = b"PROXY ";
    let is_prefix_of = |whole: &[u8]| whole.starts_with(&buf[..buf.len().min(whole.len())]);
    if buf.len() >= V2_SIGNATURE.len() && buf.starts_with(&V2_SIGNATURE) {
        parse_v2(buf)
    } else if buf.len() >= V1_PREFIX.len() && buf.starts_with(V1_PREFIX) {
        parse_v1(buf)
    } else if is_prefix_of(&V2_SIGNATURE) || is_prefix_of(V1_PREFIX) {
        Ok(Parsed::Incomplete)
    } else {
        Err(Error::NotProxy)
    }
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, Error> {
    // The CR of a 107-byte line is its 106th byte.
    let window = &buf[..buf.len().min(V1_MAX - 1)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        if window.contains(&b'\n') {
            return Err(Error::V1Malformed("LF without CR"));
        }
        if buf.len() >= V1_MAX - 1 {
            return Err(Error::V1TooLong);
        }
        return Ok(Parsed::Incomplete);
    };
    match buf.get(cr + 1) {
        None => return Ok(Parsed::Incomplete),
        Some(b'\n') => {}
        Some(_) => return Err(Error::V1Malformed("CR not followed by LF")),
    }
    let line = std::str::from_utf8(&buf[6..cr]).map_err(|_| Error::V1Malformed("not ASCII"))?;
    let header = v1_fields(line)?;
    Ok(Parsed::Header {
        consumed: cr + 2,
        header,
    })
}

fn v1_fields(line: &str) -> Result<Header, Error> {
    let words: Vec<&str> = line.split(' ').collect();
    let family = words[0];
    if family == "UNKNOWN" {
        return Ok(Header::Unspecified);
    }
    let [_, src, dst, sport, dport] = words[..] else {
        return Err(Error::V1Malformed("expected 5 fields"));
    };
    let (src, dst): (IpAddr, IpAddr) = match family {
        "TCP4" => (IpAddr::V4(v1_addr(src)?), IpAddr::V4(v1_addr(dst)?)),
        "TCP6" => (IpAddr::V6(v1_addr(src)?), IpAddr::V6(v1_addr(dst)?)),
        _ => return Err(Error::V1Malformed("protocol not TCP4, TCP6 or UNKNOWN")),
    };
    Ok(Header::Proxied {
        source: SocketAddr::new(src, v1_port(sport)?),
        destination: SocketAddr::new(dst, v1_port(dport)?),
    })
}

fn v1_addr<T: std::str::FromStr>(text: &str) -> Result<T, Error> {
    text.parse().map_err(|_| Error::V1Malformed("bad address"))
}

fn v1_port(text: &str) -> Result<u16, Error> {
    // The specification forbids leading zeros and signs; `parse` would take "+1".
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return Err(Error::V1Malformed("bad port"));
    }
    text.parse().map_err(|_| Error::V1Malformed("bad port"))
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, Error> {
    if buf.len() < V2_FIXED {
        // Check what is already there so that garbage fails early.
        if let Some(&vc) = buf.get(12) {
            check_version_command(vc)?;
        }
        return Ok(Parsed::Incomplete);
    }
    let local = check_version_command(buf[12])?;
    let family = buf[13];
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > V2_MAX_PAYLOAD {
        return Err(Error::V2TooLong(V2_FIXED + len));
    }
    // LOCAL ignores the family and the payload (the specification says so), but they
    // are still part of the header.
    let need = match (local, family) {
        (true, _) | (false, 0x00) => 0,
        (false, 0x11) => 12,
        (false, 0x21) => 36,
        (false, other) => return Err(Error::V2Unsupported(other)),
    };
    if len < need {
        return Err(Error::V2LengthTooShort(len));
    }
    let consumed = V2_FIXED + len;
    if buf.len() < consumed {
        return Ok(Parsed::Incomplete);
    }
    let a = &buf[V2_FIXED..consumed];
    let header = match (local, family) {
        (true, _) => Header::Local,
        (false, 0x00) => Header::Unspecified,
        (false, 0x11) => {
            let ip = |i: usize| IpAddr::V4(Ipv4Addr::new(a[i], a[i + 1], a[i + 2], a[i + 3]));
            proxied(ip(0), ip(4), &a[8..12])
        }
        _ => {
            let ip = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&a[i..i + 16]);
                IpAddr::V6(Ipv6Addr::from(o))
            };
            proxied(ip(0), ip(16), &a[32..36])
        }
    };
    Ok(Parsed::Header { consumed, header })
}

/// `true` for LOCAL, `false` for PROXY.
fn check_version_command(byte: u8) -> Result<bool, Error> {
    match (byte >> 4, byte & 0x0f) {
        (2, 0) => Ok(true),
        (2, 1) => Ok(false),
        (2, c) => Err(Error::V2Command(c)),
        (v, _) => Err(Error::V2Version(v)),
    }
}

fn proxied(src: IpAddr, dst: IpAddr, ports: &[u8]) -> Header {
    Header::Proxied {
        source: SocketAddr::new(src, u16::from_be_bytes([ports[0], ports[1]])),
        destination: SocketAddr::new(dst, u16::from_be_bytes([ports[2], ports[3]])),
    }
}

/// `ProxyProtocolTrusted`: the addresses and networks allowed to send a PROXY header.
/// IPv4-mapped IPv6 addresses are compared as IPv4.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedNets {
    nets: Vec<NetMask>,
}

impl TrustedNets {
    /// Parses addresses and CIDRs (`192.0.2.7`, `10.0.0.0/8`, `::1`, `2001:db8::/32`)
    /// separated by white space, commas or `|`. Host bits set under a prefix are an
    /// error (they usually mean a typo); an empty list too.
    pub fn parse(text: &str) -> Result<TrustedNets, String> {
        let mut nets = Vec::new();
        for item in text.split([' ', '\t', ',', '|']).filter(|i| !i.is_empty()) {
            nets.push(parse_net(item)?);
        }
        if nets.is_empty() {
            return Err("expected one or more addresses or networks (CIDR)".to_string());
        }
        Ok(TrustedNets { nets })
    }

    /// Whether `addr` lies in one of the networks.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(addr))
    }
}

fn parse_net(item: &str) -> Result<NetMask, String> {
    let bad = || format!("expected an address or ADDRESS/PREFIX, got {item:?}");
    let (addr, len) = match item.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (item, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let max: u32 = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => {
            let n = u32::from(l.parse::<u8>().map_err(|_| bad())?);
            // A mapped network is one under ::ffff:0:0/96: ::ffff:10.0.0.0/104 is 10.0.0.0/8.
            if addr != addr.to_canonical() && n < 96 {
                return Err(bad());
            }
            if n > max {
                return Err(format!("prefix longer than {max} bits in {item:?}"));
            }
            n
        }
        Some(_) => return Err(bad()),
    };
    let host_bits = match addr {
        IpAddr::V4(a) => u32::from(a) & !prefix_v4(len) != 0,
        IpAddr::V6(a) => u128::from(a) & !prefix_v6(len) != 0,
    };
    if host_bits {
        return Err(format!("{item:?} has host bits set after the prefix"));
    }
    NetMask::with_prefix(addr, len).ok_or_else(bad)
}

#[cfg(test)]
#[path = "proxy_protocol_tests.rs"]
mod tests;
