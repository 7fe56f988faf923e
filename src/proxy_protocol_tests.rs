//! Unit tests of the PROXY header parser and `TrustedNets`: v1 and v2 headers, every
//! split, garbage, caps, and a bounded random-bytes loop.

use super::*;

fn sa(text: &str) -> SocketAddr {
    text.parse().expect("test address")
}

fn proxied(src: &str, dst: &str) -> Header {
    Header::Proxied {
        source: sa(src),
        destination: sa(dst),
    }
}

/// A v2 header: command (0 LOCAL, 1 PROXY), family byte, payload.
fn v2(command: u8, family: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(0x20 | command);
    out.push(family);
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn v2_inet4() -> Vec<u8> {
    let mut p = vec![192, 0, 2, 7, 10, 0, 0, 1];
    p.extend_from_slice(&50123u16.to_be_bytes());
    p.extend_from_slice(&143u16.to_be_bytes());
    p
}

fn v2_inet6_with_tlvs() -> Vec<u8> {
    let src: Ipv6Addr = "2001:db8::7".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let mut p = src.octets().to_vec();
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&40000u16.to_be_bytes());
    p.extend_from_slice(&993u16.to_be_bytes());
    // PP2_TYPE_ALPN "imap", PP2_TYPE_UNIQUE_ID, then PP2_TYPE_NOOP padding.
    p.extend_from_slice(&[0x01, 0x00, 0x04]);
    p.extend_from_slice(b"imap");
    p.extend_from_slice(&[0x05, 0x00, 0x03, 1, 2, 3]);
    p.extend_from_slice(&[0x04, 0x00, 0x02, 0, 0]);
    p
}

/// (header bytes, expected header) for every accepted form.
fn good_cases() -> Vec<(Vec<u8>, Header)> {
    vec![
        (
            b"PROXY TCP4 192.0.2.7 10.0.0.1 50123 143\r\n".to_vec(),
            proxied("192.0.2.7:50123", "10.0.0.1:143"),
        ),
        (
            b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 993\r\n".to_vec(),
            proxied("[2001:db8::7]:40000", "[2001:db8::1]:993"),
        ),
        // Port 0 is a port (one digit, no leading zero to refuse).
        (
            b"PROXY TCP4 192.0.2.7 10.0.0.1 0 25\r\n".to_vec(),
            proxied("192.0.2.7:0", "10.0.0.1:25"),
        ),
        (b"PROXY UNKNOWN\r\n".to_vec(), Header::Unspecified),
        (
            b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n".to_vec(),
            Header::Unspecified,
        ),
        (
            v2(1, 0x11, &v2_inet4()),
            proxied("192.0.2.7:50123", "10.0.0.1:143"),
        ),
        (
            v2(1, 0x21, &v2_inet6_with_tlvs()),
            proxied("[2001:db8::7]:40000", "[2001:db8::1]:993"),
        ),
        (v2(0, 0x00, &[]), Header::Local),
        // LOCAL ignores the family and whatever payload comes with it.
        (v2(0, 0x11, &v2_inet4()), Header::Local),
        (v2(1, 0x00, &[1, 2, 3]), Header::Unspecified),
    ]
}

#[test]
fn accepts_v1_and_v2_headers() {
    for (bytes, want) in good_cases() {
        let got = parse(&bytes);
        let want = Ok(Parsed::Header {
            consumed: bytes.len(),
            header: want,
        });
        assert_eq!(got, want, "{bytes:?}");
    }
}

#[test]
fn every_split_is_incomplete_then_the_header() {
    for (bytes, want) in good_cases() {
        for cut in 0..bytes.len() {
            assert_eq!(
                parse(&bytes[..cut]),
                Ok(Parsed::Incomplete),
                "cut at {cut} of {bytes:?}"
            );
        }
        let whole = Parsed::Header {
            consumed: bytes.len(),
            header: want,
        };
        assert_eq!(parse(&bytes), Ok(whole));
    }
}

#[test]
fn trailing_application_bytes_are_left_alone() {
    let tail = b"a1 CAPABILITY\r\n\r\n\r\n";
    for (bytes, want) in good_cases() {
        let mut input = bytes.clone();
        input.extend_from_slice(tail);
        let Ok(Parsed::Header { consumed, header }) = parse(&input) else {
            panic!("no header in {input:?}");
        };
        assert_eq!((consumed, header), (bytes.len(), want));
        assert_eq!(&input[consumed..], tail);
    }
}

#[test]
fn refuses_garbage_and_malformed_headers() {
    let mut bad_version = v2(1, 0x11, &v2_inet4());
    bad_version[12] = 0x11;
    let mut bad_command = v2(1, 0x11, &v2_inet4());
    bad_command[12] = 0x2f;
    let cases: Vec<(Vec<u8>, Error)> = vec![
        (b"a1 LOGIN alice secret\r\n".to_vec(), Error::NotProxy),
        (b"GET / HTTP/1.0\r\n".to_vec(), Error::NotProxy),
        (b"\x16\x03\x01\x02\x00".to_vec(), Error::NotProxy),
        (
            b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
            Error::NotProxy,
        ),
        (b"\r\n\r\n\0\r\nQUIX\n".to_vec(), Error::NotProxy),
        (
            b"PROXY TCP4 192.0.2.7 10.0.0.1 50123\r\n".to_vec(),
            Error::V1Malformed("expected 5 fields"),
        ),
        (
            b"PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n".to_vec(),
            Error::V1Malformed("bad address"),
        ),
        (
            b"PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n".to_vec(),
            Error::V1Malformed("bad address"),
        ),
        (
            b"PROXY TCP4 192.0.2.7 10.0.0.1 65536 143\r\n".to_vec(),
            Error::V1Malformed("bad port"),
        ),
        (
            b"PROXY TCP4 192.0.2.7 10.0.0.1 0143 143\r\n".to_vec(),
            Error::V1Malformed("bad port"),
        ),
        (
            b"PROXY TCP4 192.0.2.7 10.0.0.1 +1 143\r\n".to_vec(),
            Error::V1Malformed("bad port"),
        ),
        (
            b"PROXY TCP4  192.0.2.7 10.0.0.1 1 143\r\n".to_vec(),
            Error::V1Malformed("expected 5 fields"),
        ),
        (
            b"PROXY UDP4 192.0.2.7 10.0.0.1 1 143\r\n".to_vec(),
            Error::V1Malformed("protocol not TCP4, TCP6 or UNKNOWN"),
        ),
        (
            b"PROXY TCP4 192.0.2.7 10.0.0.1 1 143\rX".to_vec(),
            Error::V1Malformed("CR not followed by LF"),
        ),
        (
            b"PROXY TCP4 192.0.2.7 10.0.0.1 1 143\n".to_vec(),
            Error::V1Malformed("LF without CR"),
        ),
        (bad_version, Error::V2Version(1)),
        (bad_command, Error::V2Command(0xf)),
        // AF_UNIX stream, UDP over IPv4, and an unknown family.
        (v2(1, 0x31, &[0; 216]), Error::V2Unsupported(0x31)),
        (v2(1, 0x12, &v2_inet4()), Error::V2Unsupported(0x12)),
        (v2(1, 0x41, &[0; 12]), Error::V2Unsupported(0x41)),
        // Lengths that lie: too short for the family.
        (v2(1, 0x11, &[0; 11]), Error::V2LengthTooShort(11)),
        (v2(1, 0x21, &[0; 35]), Error::V2LengthTooShort(35)),
    ];
    for (bytes, want) in cases {
        assert_eq!(parse(&bytes), Err(want), "{bytes:?}");
    }
}

#[test]
fn caps_are_enforced() {
    // v1: a line that has not ended by byte 107 is refused, even without more bytes.
    let mut long = b"PROXY UNKNOWN ".to_vec();
    long.resize(120, b'x');
    assert_eq!(parse(&long), Err(Error::V1TooLong));
    assert_eq!(parse(&long[..106]), Err(Error::V1TooLong));
    assert_eq!(parse(&long[..105]), Ok(Parsed::Incomplete));
    // Exactly 107 bytes with the CRLF is the longest accepted line.
    let mut longest = long[..105].to_vec();
    longest.extend_from_slice(b"\r\n");
    assert_eq!(
        parse(&longest),
        Ok(Parsed::Header {
            consumed: 107,
            header: Header::Unspecified
        })
    );
    let mut too_long = long[..106].to_vec();
    too_long.extend_from_slice(b"\r\n");
    assert_eq!(parse(&too_long), Err(Error::V1TooLong));
    // v2: the 16-bit length is checked against the cap from the 16 fixed bytes alone.
    let mut huge = v2(1, 0x11, &[]);
    huge[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    assert_eq!(parse(&huge), Err(Error::V2TooLong(16 + 0xffff)));
    let at_cap = v2(1, 0x11, &vec![0; MAX_HEADER_BYTES - 16]);
    assert!(
        matches!(parse(&at_cap), Ok(Parsed::Header { consumed, .. }) if consumed == MAX_HEADER_BYTES)
    );
    let over = v2(1, 0x11, &vec![0; MAX_HEADER_BYTES - 15]);
    assert_eq!(parse(&over), Err(Error::V2TooLong(MAX_HEADER_BYTES + 1)));
}

#[test]
fn truncated_headers_stay_incomplete_until_the_length_arrives() {
    // A length promising more than was sent: the loop's deadline closes it, not the parser.
    let full = v2(1, 0x21, &v2_inet6_with_tlvs());
    assert_eq!(parse(&full[..full.len() - 1]), Ok(Parsed::Incomplete));
    assert_eq!(parse(b"PROXY TCP4 192.0.2.7"), Ok(Parsed::Incomplete));
    assert_eq!(parse(b""), Ok(Parsed::Incomplete));
    assert_eq!(parse(b"\r\n\r"), Ok(Parsed::Incomplete));
    assert_eq!(parse(b"PRO"), Ok(Parsed::Incomplete));
    assert_eq!(parse(b"PRX"), Err(Error::NotProxy));
    // A bad version byte is refused before the length arrives.
    assert_eq!(parse(b"\r\n\r\n\0\r\nQUIT\n\x10"), Err(Error::V2Version(1)));
}

#[test]
fn random_bytes_never_panic_nor_overconsume() {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let prefixes: [&[u8]; 3] = [b"", b"PROXY ", b"\r\n\r\n\0\r\nQUIT\n"];
    let mut headers = 0;
    for round in 0..20_000u32 {
        let len = (next() % 300) as usize;
        let mut buf = prefixes[round as usize % 3].to_vec();
        buf.extend((0..len).map(|_| next() as u8));
        if round % 3 == 2 && buf.len() > 13 {
            buf[12] = 0x20 | (buf[12] & 1);
            buf[13] = [0x00, 0x11, 0x21][(next() % 3) as usize];
            if buf.len() > 15 {
                buf[14] = 0;
            }
        }
        if let Ok(Parsed::Header { consumed, .. }) = parse(&buf) {
            assert!(consumed <= buf.len(), "{buf:?}");
            headers += 1;
        }
    }
    // The loop reaches the header path, not only the early refusals.
    assert!(headers > 100, "only {headers} headers parsed");
}

#[test]
fn trusted_nets_match_addresses_and_networks() {
    let nets = TrustedNets::parse("10.0.0.0/8, 192.0.2.7 | 2001:db8::/32 ::1").unwrap();
    let yes = [
        "10.1.2.3",
        "192.0.2.7",
        "2001:db8::9",
        "::1",
        "::ffff:10.9.9.9",
    ];
    let no = [
        "11.0.0.1",
        "192.0.2.8",
        "2001:db9::1",
        "::2",
        "::ffff:192.0.2.8",
    ];
    for a in yes {
        assert!(nets.contains(a.parse().unwrap()), "{a}");
    }
    for a in no {
        assert!(!nets.contains(a.parse().unwrap()), "{a}");
    }
    let mapped = TrustedNets::parse("::ffff:127.0.0.0/104").unwrap();
    assert!(mapped.contains("127.0.0.9".parse().unwrap()));
    assert!(!mapped.contains("128.0.0.1".parse().unwrap()));
    // A prefix of the full length is one address; ::ffff:0.0.0.0/96 is every IPv4 address.
    let hosts = TrustedNets::parse("192.0.2.7/32 2001:db8::1/128").unwrap();
    assert!(hosts.contains("192.0.2.7".parse().unwrap()));
    assert!(hosts.contains("2001:db8::1".parse().unwrap()));
    assert!(!hosts.contains("192.0.2.6".parse().unwrap()));
    let v4 = TrustedNets::parse("::ffff:0.0.0.0/96").unwrap();
    assert!(v4.contains("198.51.100.1".parse().unwrap()));
    assert!(!v4.contains("2001:db8::1".parse().unwrap()));
    let all = TrustedNets::parse("0.0.0.0/0").unwrap();
    assert!(all.contains("203.0.113.1".parse().unwrap()));
    assert!(!all.contains("2001:db8::1".parse().unwrap()));
}

#[test]
fn trusted_nets_errors() {
    let cases = [
        ("", "expected one or more addresses or networks (CIDR)"),
        (
            "10.0.0.0/33",
            "prefix longer than 32 bits in \"10.0.0.0/33\"",
        ),
        (
            "10.0.0.1/8",
            "\"10.0.0.1/8\" has host bits set after the prefix",
        ),
        (
            "host.example",
            "expected an address or ADDRESS/PREFIX, got \"host.example\"",
        ),
        (
            "10.0.0.0/",
            "expected an address or ADDRESS/PREFIX, got \"10.0.0.0/\"",
        ),
        (
            "10.0.0.0/x",
            "expected an address or ADDRESS/PREFIX, got \"10.0.0.0/x\"",
        ),
        ("::/129", "prefix longer than 128 bits in \"::/129\""),
        // `parse` would take the sign.
        (
            "10.0.0.0/+8",
            "expected an address or ADDRESS/PREFIX, got \"10.0.0.0/+8\"",
        ),
        // A mapped network shorter than the mapping prefix is no IPv4 network.
        (
            "::ffff:0.0.0.0/80",
            "expected an address or ADDRESS/PREFIX, got \"::ffff:0.0.0.0/80\"",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(TrustedNets::parse(text), Err(want.to_string()), "{text:?}");
    }
}

#[test]
fn v2_cap_is_the_documented_16_kib() {
    // Written out rather than taken from the constant: a balancer's header of 16 KiB,
    // TLVs included, passes; one byte more is refused.
    let cap = 16 * 1024;
    assert_eq!(MAX_HEADER_BYTES, cap);
    let at_cap = v2(1, 0x11, &vec![0; cap - 16]);
    assert!(matches!(parse(&at_cap), Ok(Parsed::Header { consumed, .. }) if consumed == cap));
    let over = v2(1, 0x11, &vec![0; cap - 15]);
    assert_eq!(parse(&over), Err(Error::V2TooLong(cap + 1)));
}

#[test]
fn errors_say_what_was_wrong() {
    // These texts end up in the log line of a refused connection.
    let cases = [
        (Error::NotProxy, "not a PROXY protocol header"),
        (Error::V1TooLong, "PROXY v1 line longer than 107 bytes"),
        (
            Error::V1Malformed("bad port"),
            "malformed PROXY v1 header: bad port",
        ),
        (Error::V2Version(3), "PROXY v2 header with version 3"),
        (
            Error::V2Command(5),
            "PROXY v2 header with unknown command 5",
        ),
        (
            Error::V2Unsupported(0x31),
            "PROXY v2 address family/transport 0x31 not supported",
        ),
        (
            Error::V2TooLong(20000),
            "PROXY v2 header of 20000 bytes is larger than 16384",
        ),
        (
            Error::V2LengthTooShort(4),
            "PROXY v2 length 4 too short for its addresses",
        ),
    ];
    for (e, want) in cases {
        assert_eq!(e.to_string(), want);
    }
}
