//! One address-range matcher for every option that names client addresses: `ConnLimits`
//! and `BGExcluded` (`IP|MASK`), `ProxyProtocolTrusted` (addresses and CIDR prefixes) and
//! the address patterns of `TCPAccess` and `mailAllowedServiceAccess` (masks, prefixes and
//! the tcp_wrappers wildcard forms, which all come down to a net and a mask). The option
//! parsers keep their own syntax and messages and build a [`NetMask`]; matching lives here.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`, what a dual-stack socket reports for an
//! IPv4 peer) are IPv4 addresses here: a client address is compared as its canonical form,
//! and a mapped network whose mask covers the `::ffff:0:0/96` prefix becomes the IPv4
//! network. No I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The addresses `a` with `a & mask == net` (`net` is stored already masked), of one
/// family. Masks need not be contiguous (`IP|MASK` accepts any mask, as Sun's did).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetMask {
    /// An IPv4 range.
    V4 {
        /// The network, masked.
        net: u32,
        /// The mask.
        mask: u32,
    },
    /// An IPv6 range.
    V6 {
        /// The network, masked.
        net: u128,
        /// The mask.
        mask: u128,
    },
}

/// The address and the mask of an `IP|MASK` pair are of different families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MixedFamilies;

impl fmt::Display for MixedFamilies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("address and mask of different families")
    }
}

impl NetMask {
    /// The IPv4 range `net & mask`.
    pub fn v4(net: u32, mask: u32) -> NetMask {
        NetMask::V4 {
            net: net & mask,
            mask,
        }
    }

    /// The IPv6 range `net & mask`, or the IPv4 one when `net` is IPv4-mapped and `mask`
    /// covers the mapped prefix.
    pub fn v6(net: u128, mask: u128) -> NetMask {
        const MAPPED_PREFIX: u128 = !(u32::MAX as u128);
        let mapped = Ipv6Addr::from(net).to_ipv4_mapped();
        match mapped {
            Some(v4) if mask & MAPPED_PREFIX == MAPPED_PREFIX => {
                NetMask::v4(u32::from(v4), mask as u32)
            }
            _ => NetMask::V6 {
                net: net & mask,
                mask,
            },
        }
    }

    /// `IP|MASK` (`ConnLimits`, `BGExcluded`); the two must be of one family.
    pub fn with_mask(net: IpAddr, mask: IpAddr) -> Result<NetMask, MixedFamilies> {
        match (net, mask) {
            (IpAddr::V4(n), IpAddr::V4(m)) => Ok(NetMask::v4(n.into(), m.into())),
            (IpAddr::V6(n), IpAddr::V6(m)) => Ok(NetMask::v6(n.into(), m.into())),
            _ => Err(MixedFamilies),
        }
    }

    /// `ADDRESS/LEN` (CIDR). `None` when `len` is longer than the address family allows.
    pub fn with_prefix(net: IpAddr, len: u32) -> Option<NetMask> {
        match net {
            IpAddr::V4(n) if len <= 32 => Some(NetMask::v4(n.into(), prefix_v4(len))),
            IpAddr::V6(n) if len <= 128 => Some(NetMask::v6(n.into(), prefix_v6(len))),
            _ => None,
        }
    }

    /// One address (every bit of the mask set).
    pub fn host(ip: IpAddr) -> NetMask {
        match ip {
            IpAddr::V4(a) => NetMask::v4(a.into(), u32::MAX),
            IpAddr::V6(a) => NetMask::v6(a.into(), u128::MAX),
        }
    }

    /// Whether `ip` (IPv4-mapped IPv6 compared as IPv4) lies in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (*self, ip.to_canonical()) {
            (NetMask::V4 { net, mask }, IpAddr::V4(a)) => u32::from(a) & mask == net,
            (NetMask::V6 { net, mask }, IpAddr::V6(a)) => u128::from(a) & mask == net,
            _ => false,
        }
    }

    /// How many bits the mask has set: the more, the more specific the range.
    pub fn mask_bits(&self) -> u32 {
        match self {
            NetMask::V4 { mask, .. } => mask.count_ones(),
            NetMask::V6 { mask, .. } => mask.count_ones(),
        }
    }
}

impl fmt::Display for NetMask {
    /// `IP|MASK`, the legacy spelling of `ConnLimits` and `BGExcluded`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NetMask::V4 { net, mask } => {
                write!(f, "{}|{}", Ipv4Addr::from(net), Ipv4Addr::from(mask))
            }
            NetMask::V6 { net, mask } => {
                write!(f, "{}|{}", Ipv6Addr::from(net), Ipv6Addr::from(mask))
            }
        }
    }
}

/// The IPv4 mask of a `len`-bit prefix (`len` ≤ 32).
pub fn prefix_v4(len: u32) -> u32 {
    u32::MAX.checked_shl(32 - len).unwrap_or(0)
}

/// The IPv6 mask of a `len`-bit prefix (`len` ≤ 128).
pub fn prefix_v6(len: u32) -> u128 {
    u128::MAX.checked_shl(128 - len).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn pair(net: &str, mask: &str) -> NetMask {
        NetMask::with_mask(ip(net), ip(mask)).unwrap()
    }

    #[test]
    fn ip_mask_pairs_match_by_family() {
        let cases: &[(NetMask, &str, bool)] = &[
            (pair("10.1.0.0", "255.255.0.0"), "10.1.9.9", true),
            (pair("10.1.0.0", "255.255.0.0"), "10.2.0.1", false),
            (pair("10.1.0.0", "255.255.0.0"), "::ffff:10.1.2.3", true),
            (pair("10.1.0.0", "255.255.0.0"), "2001:db8::1", false),
            (pair("0.0.0.0", "0.0.0.0"), "192.0.2.1", true),
            (pair("0.0.0.0", "0.0.0.0"), "::1", false),
            (pair("10.0.3.0", "255.0.255.0"), "10.9.3.7", true),
            (pair("10.0.3.0", "255.0.255.0"), "10.9.4.7", false),
            (pair("2001:db8::", "ffff:ffff::"), "2001:db8::7", true),
            (pair("2001:db8::", "ffff:ffff::"), "2001:db9::7", false),
            (pair("2001:db8::", "ffff:ffff::"), "10.0.0.1", false),
            // A mapped network with a mask over the mapped prefix is the IPv4 network.
            (
                pair("::ffff:10.1.0.0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:0"),
                "10.1.0.9",
                true,
            ),
        ];
        for (net, client, want) in cases {
            assert_eq!(net.contains(ip(client)), *want, "{net} ∋ {client}");
        }
        assert_eq!(
            NetMask::with_mask(ip("10.0.0.0"), ip("ffff::")),
            Err(MixedFamilies)
        );
    }

    #[test]
    fn prefixes_hosts_and_mapped_networks() {
        let net = NetMask::with_prefix(ip("10.0.0.0"), 8).unwrap();
        assert!(net.contains(ip("10.255.0.1")) && !net.contains(ip("11.0.0.1")));
        assert_eq!(net, pair("10.0.0.0", "255.0.0.0"));
        assert_eq!(
            NetMask::with_prefix(ip("::ffff:10.0.0.0"), 104),
            Some(net),
            "a mapped /104 is the IPv4 /8"
        );
        assert_eq!(NetMask::with_prefix(ip("10.0.0.0"), 33), None);
        assert_eq!(NetMask::with_prefix(ip("::"), 129), None);
        let all = NetMask::with_prefix(ip("0.0.0.0"), 0).unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        let host = NetMask::host(ip("::ffff:192.0.2.7"));
        assert_eq!(host, NetMask::host(ip("192.0.2.7")));
        assert!(host.contains(ip("192.0.2.7")) && !host.contains(ip("192.0.2.8")));
        let v6 = NetMask::with_prefix(ip("2001:db8::"), 32).unwrap();
        assert!(v6.contains(ip("2001:db8:1::1")) && !v6.contains(ip("2001:db9::1")));
    }

    #[test]
    fn mask_bits_and_display() {
        assert_eq!(pair("10.1.0.0", "255.255.0.0").mask_bits(), 16);
        assert_eq!(NetMask::host(ip("::1")).mask_bits(), 128);
        assert_eq!(
            pair("10.1.2.3", "255.255.0.0").to_string(),
            "10.1.0.0|255.255.0.0"
        );
        assert_eq!(
            NetMask::with_prefix(ip("2001:db8::"), 32)
                .unwrap()
                .to_string(),
            "2001:db8::|ffff:ffff::"
        );
    }
}
