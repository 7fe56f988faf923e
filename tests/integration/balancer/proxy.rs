//! PROXY headers against one mmp: v1 and v2 (IPv4, IPv6, TLVs, UNKNOWN/UNSPEC, LOCAL) from a
//! trusted balancer, untrusted senders, garbage, truncated and split headers; TCPAccess,
//! ConnLimits and the stores' view (Dovecot's `rip=`/`lip=`, IMAP ID and POP3 XCLIENT) on
//! the header's addresses.

use super::*;
use crate::common::services::Ports;
use std::net::Shutdown;

// ---------------------------------------------------------------------------------------------
// 1. Headers accepted, refused, malformed, split

pub(super) fn lb_proxy_v1_v2_ipv4_ipv6_tlvs_from_trusted_balancer_reach_store_with_header_address(
    env: &Env,
) {
    let mut m = LbMmp::start(env.config(), false);
    let to = m.proxy_addr();
    let alice = user("alice@a.test");
    let tlvs = sample_tlvs();
    // (what, header, client address in mmp's log, rip= and lip= in Dovecot's log)
    let cases: Vec<(&str, Vec<u8>, &str, &str, &str)> = vec![
        (
            "v1 TCP4",
            v1("10.77.1.1:40001", "10.77.0.2:143"),
            "client 10.77.1.1:40001 ",
            "rip=10.77.1.1,",
            "lip=10.77.0.2,",
        ),
        (
            "v1 TCP6",
            v1("[2001:db8::77:1]:40002", "[2001:db8::77:2]:143"),
            "client [2001:db8::77:1]:40002 ",
            "rip=2001:db8::77:1,",
            "lip=2001:db8::77:2,",
        ),
        (
            "v2 TCP4 with TLVs",
            v2("10.77.1.3:40003", "10.77.0.4:143", &tlvs),
            "client 10.77.1.3:40003 ",
            "rip=10.77.1.3,",
            "lip=10.77.0.4,",
        ),
        (
            "v2 TCP6 with TLVs",
            v2("[2001:db8::77:3]:40004", "[2001:db8::77:4]:143", &tlvs),
            "client [2001:db8::77:3]:40004 ",
            "rip=2001:db8::77:3,",
            "lip=2001:db8::77:4,",
        ),
    ];
    for (what, header, in_log, rip, lip) in &cases {
        let mut c = imap_via(BALANCER, to, header);
        login_own_mailbox(&mut c, &alice, what);
        assert!(
            m.proc
                .log()
                .lines()
                .any(|l| l.contains(in_log) && l.contains("logged in to store")),
            "{what}: mmp's log does not name the header's client ({in_log}):\n{}",
            m.proc.tail()
        );
        assert_store_log(&env.store2, &["Login: user=<alice@a.test>", rip, lip]);
    }
    // v1 UNKNOWN and v2 PROXY with family UNSPEC: served with the connection's own addresses.
    for (what, header) in [
        ("v1 UNKNOWN", b"PROXY UNKNOWN\r\n".to_vec()),
        (
            "v1 UNKNOWN with addresses",
            b"PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n".to_vec(),
        ),
        ("v2 UNSPEC", v2_raw(0x21, 0x00, b"")),
    ] {
        let mut c = imap_via("127.0.0.120", to, &header);
        login_own_mailbox(&mut c, &alice, what);
    }
    assert!(
        has_line(&m.log(), &["client 127.0.0.120:", "logged in to store"]),
        "UNKNOWN: the connection's own address is not the client's:\n{}",
        m.proc.tail()
    );
    m.assert_still_serving();
}

pub(super) fn lb_proxy_v2_local_and_untrusted_sender_closed_with_nothing_sent(env: &Env) {
    let mut m = LbMmp::start(env.config(), false);
    let to = m.proxy_addr();
    // v2 LOCAL (the balancer's health check), with and without an address block.
    let s = send_header(BALANCER, to, &v2_raw(0x20, 0x00, b""));
    assert_closed_silently(s, Duration::from_secs(3), "v2 LOCAL");
    let mut local = v2("10.77.2.1:1", "10.77.2.2:2", &[]);
    local[12] = 0x20;
    let s = send_header(BALANCER, to, &local);
    assert_closed_silently(s, Duration::from_secs(3), "v2 LOCAL with addresses");
    // From outside ProxyProtocolTrusted: closed before anything is said, valid header or not.
    for (what, header) in [
        ("v1", v1("10.77.2.3:1000", "10.77.2.4:143")),
        ("v2", v2("10.77.2.3:1000", "10.77.2.4:143", &sample_tlvs())),
        ("nothing", Vec::new()),
    ] {
        let s = send_header("127.0.0.121", to, &header);
        assert_closed_silently(
            s,
            Duration::from_secs(3),
            &format!("untrusted 127.0.0.121 sending {what}"),
        );
    }
    assert!(
        m.proc.log().contains("not in ProxyProtocolTrusted"),
        "no log line for the untrusted balancer:\n{}",
        m.proc.tail()
    );
    assert!(
        !m.log().contains("10.77.2.3"),
        "the untrusted sender's header was believed:\n{}",
        m.proc.tail()
    );
    // The same address on the plain port is an ordinary client.
    let mut c = ImapClient::connect_from("127.0.0.121", m.plain_addr()).unwrap();
    login_own_mailbox(&mut c, &user("bob@a.test"), "127.0.0.121 on the plain port");
    m.assert_still_serving();
}

pub(super) fn lb_proxy_garbage_truncated_and_split_headers(env: &Env) {
    let mut m = LbMmp::start(env.config(), false);
    let to = m.proxy_addr();
    let alice = user("alice@a.test");
    let mut long_v1 = b"PROXY TCP4 ".to_vec();
    long_v1.extend(std::iter::repeat_n(b'1', 200));
    let mut huge_v2 = v2_raw(0x21, 0x11, b"");
    huge_v2[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("an HTTP request", b"GET / HTTP/1.0\r\n\r\n".to_vec()),
        ("an IMAP command", b"a1 LOGIN alice x\r\n".to_vec()),
        (
            "v1 with an extra field",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n".to_vec(),
        ),
        (
            "v1 with a bad address",
            b"PROXY TCP4 999.1.1.1 1.1.1.1 1 2\r\n".to_vec(),
        ),
        (
            "v1 TCP4 with IPv6 addresses",
            b"PROXY TCP4 ::1 ::2 1 2\r\n".to_vec(),
        ),
        ("v1 without CRLF, too long", long_v1),
        ("v2 version 3", {
            let mut h = v2("10.77.3.1:1", "10.77.3.2:2", &[]);
            h[12] = 0x31;
            h
        }),
        ("v2 AF_UNIX", v2_raw(0x21, 0x31, &[0u8; 216])),
        ("v2 length over the limit", huge_v2),
        (
            "v2 TCP4 with a short address block",
            v2_raw(0x21, 0x11, &[10, 77, 3, 1]),
        ),
        ("binary noise", (0u8..=255).rev().collect()),
    ];
    for (what, bytes) in &garbage {
        let s = send_header(BALANCER, to, bytes);
        let took = assert_closed_silently(s, Duration::from_secs(8), what);
        assert!(
            took < Duration::from_secs(4),
            "{what}: closed only after {took:?} (the 5 s header timeout, not the parser)"
        );
    }
    // Truncated, then the balancer half-closes or goes away: closed (by the parser's
    // end-of-input or by the header timeout), never served.
    let truncated: Vec<(&str, Vec<u8>)> = vec![
        ("v1 cut", b"PROXY TCP4 10.77.3.1 10.".to_vec()),
        ("v2 cut in the signature", V2_SIG[..7].to_vec()),
        ("v2 cut in the addresses", {
            let h = v2("10.77.3.1:1", "10.77.3.2:2", &sample_tlvs());
            h[..h.len() - 5].to_vec()
        }),
    ];
    for (what, bytes) in &truncated {
        let s = send_header(BALANCER, to, bytes);
        s.shutdown(Shutdown::Write).unwrap();
        assert_closed_silently(s, Duration::from_secs(8), what);
    }
    // No header at all: closed after the 5 s header timeout.
    let s = send_header(BALANCER, to, b"");
    let took = assert_closed_silently(s, Duration::from_secs(9), "no header");
    assert!(
        took >= Duration::from_secs(4),
        "no header: closed after {took:?}, before the 5 s timeout"
    );
    // A header in several writes: v2 with TLVs one byte at a time, v1 in three pieces.
    let header = v2("10.77.3.5:40005", "10.77.3.6:143", &sample_tlvs());
    let mut s = smtp_client::connect_from(BALANCER, to).unwrap();
    s.set_nodelay(true).unwrap();
    for b in &header {
        s.write_all(std::slice::from_ref(b)).unwrap();
        std::thread::sleep(Duration::from_millis(3));
    }
    let mut c = ImapClient::from_stream(s).unwrap();
    login_own_mailbox(&mut c, &alice, "v2 byte by byte");
    let header = v1("[2001:db8::77:35]:40035", "[2001:db8::77:36]:143");
    let mut s = smtp_client::connect_from(BALANCER, to).unwrap();
    s.set_nodelay(true).unwrap();
    for b in &header {
        s.write_all(std::slice::from_ref(b)).unwrap();
        std::thread::sleep(Duration::from_millis(3));
    }
    let mut c = ImapClient::from_stream(s).unwrap();
    login_own_mailbox(&mut c, &alice, "v1 TCP6 byte by byte");
    let header = v1("10.77.3.7:40007", "10.77.3.8:143");
    let mut s = smtp_client::connect_from(BALANCER, to).unwrap();
    s.set_nodelay(true).unwrap();
    for part in [&header[..3], &header[3..20], &header[20..]] {
        s.write_all(part).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut c = ImapClient::from_stream(s).unwrap();
    login_own_mailbox(&mut c, &alice, "v1 in three writes");
    // The header and the first command in one write: the command is not lost.
    let mut both = v1("10.77.3.9:40009", "10.77.3.10:143");
    both.extend_from_slice(b"p1 CAPABILITY\r\n");
    let mut c = imap_via(BALANCER, to, &both);
    let g = c.expect_line();
    assert!(g.starts_with("* OK"), "pipelined: greeting {g:?}");
    let caps = c
        .read_until_tagged("p1")
        .unwrap_or_else(|e| panic!("pipelined CAPABILITY lost: {e}"));
    assert!(
        caps.last().unwrap().starts_with("p1 OK"),
        "pipelined CAPABILITY: {caps:?}"
    );
    let log = m.log();
    for src in [
        "10.77.3.5:40005",
        "[2001:db8::77:35]:40035",
        "10.77.3.7:40007",
    ] {
        assert!(
            has_line(&log, &[&format!("client {src} "), "logged in to store"]),
            "split header: {src} not the client in mmp's log:\n{}",
            m.proc.tail()
        );
    }
    m.assert_still_serving();
}

// ---------------------------------------------------------------------------------------------
// 2. Per-address controls and the store's view

pub(super) fn lb_tcp_access_and_conn_limits_act_on_header_source(env: &Env) {
    let mut m = LbMmp::start(
        env.config()
            .set("TCPAccess", "\"+imap:ALL EXCEPT 10.9.9.9\"")
            .set(
                "ConnLimits",
                "0.0.0.0|0.0.0.0:50,10.8.8.8|255.255.255.255:1",
            ),
        false,
    );
    let to = m.proxy_addr();
    let alice = user("alice@a.test");
    for header in [
        v1("10.9.9.9:41000", "10.77.0.2:143"),
        v2("10.9.9.9:41001", "10.77.0.2:143", &sample_tlvs()),
    ] {
        let mut c = imap_via(BALANCER, to, &header);
        let l = c.read_line().ok().flatten().unwrap_or_default();
        assert!(
            l.starts_with("* BYE") && l.contains("Access denied"),
            "10.9.9.9 behind the balancer was let in: {l:?}"
        );
        assert!(c.closes_within(Duration::from_secs(5)), "not closed");
    }
    assert!(
        has_line(&m.log(), &["10.9.9.9:41000", "refused by TCPAccess"]),
        "no TCPAccess refusal naming 10.9.9.9:\n{}",
        m.proc.tail()
    );
    let mut c = imap_via(BALANCER, to, &v1("10.9.9.10:41002", "10.77.0.2:143"));
    login_own_mailbox(&mut c, &alice, "10.9.9.10 (allowed)");
    // ConnLimits: one connection for 10.8.8.8, wherever the balancer is.
    let mut first = imap_via(BALANCER, to, &v1("10.8.8.8:42000", "10.77.0.2:143"));
    let g = first.expect_line();
    assert!(g.starts_with("* OK"), "first from 10.8.8.8: {g:?}");
    let mut second = imap_via(BALANCER, to, &v2("10.8.8.8:42001", "10.77.0.2:143", &[]));
    let l = second.read_line().ok().flatten().unwrap_or_default();
    assert!(
        l.starts_with("* BYE") && l.contains("Too many connections"),
        "second from 10.8.8.8: {l:?}"
    );
    assert!(second.closes_within(Duration::from_secs(5)));
    // Other header addresses through the same balancer are not limited.
    let mut others = Vec::new();
    for i in 0..3 {
        let mut c = imap_via(
            BALANCER,
            to,
            &v1(&format!("10.8.8.{}:4300{i}", 20 + i), "10.77.0.2:143"),
        );
        let g = c.expect_line();
        assert!(g.starts_with("* OK"), "10.8.8.{}: {g:?}", 20 + i);
        others.push(c);
    }
    assert!(
        has_line(&m.log(), &["10.8.8.8:42001", "ConnLimits allows 1"]),
        "no ConnLimits refusal naming 10.8.8.8:\n{}",
        m.proc.tail()
    );
    // The first one leaves: a new connection from 10.8.8.8 gets its place.
    first.command("z", "LOGOUT");
    assert!(first.closes_within(Duration::from_secs(5)));
    let freed = wait_until(Duration::from_secs(5), || {
        let mut c = imap_via(BALANCER, to, &v1("10.8.8.8:42002", "10.77.0.2:143"));
        c.read_line()
            .ok()
            .flatten()
            .unwrap_or_default()
            .starts_with("* OK")
    });
    assert!(freed, "10.8.8.8's place was not freed when it logged out");
    drop(others);
    m.assert_still_serving();
}

pub(super) fn lb_pop3_xclient_carries_header_address_to_store(env: &Env) {
    let dir = temp_dir("lb-pop");
    let port = free_port(BALANCER);
    let cfg = env
        .pop_config()
        .pop("ProxyProtocolPorts", &port.to_string())
        .pop("ProxyProtocolTrusted", BALANCER);
    let ports = Ports {
        imap: None,
        pop: Some(port),
        smtp: None,
    };
    let config = cfg.write(&dir.join("config"), &ports);
    let mut proc = Proc::spawn(
        Command::new(mmp::mmp_bin())
            .arg("-f")
            .arg("-c")
            .arg(&config.dir),
        dir.join("mmp.log"),
    );
    let to = addr(BALANCER, port);
    proc.wait_ready(&[to], "mmp (POP3)");
    let bob = user("bob@a.test");
    for (header, rip) in [
        (v1("10.77.4.1:44001", "10.77.4.2:110"), "rip=10.77.4.1,"),
        (
            v2(
                "[2001:db8::77:41]:44002",
                "[2001:db8::77:42]:110",
                &sample_tlvs(),
            ),
            "rip=2001:db8::77:41,",
        ),
    ] {
        let s = send_header(BALANCER, to, &header);
        let (n, _) =
            pop_stat(s, &bob).unwrap_or_else(|e| panic!("POP3 via header: {e}\n{}", proc.tail()));
        assert_eq!(n, bob.expected_count(), "POP3: not bob's own maildrop");
        assert_store_log(&env.store3, &["pop3-login", "user=<bob@a.test>", rip]);
    }
    assert!(
        has_line(
            &proc.log(),
            &["client 10.77.4.1:44001", "logged in to store"]
        ),
        "mmp's POP3 log does not name the header's client:\n{}",
        proc.tail()
    );
}

pub(super) fn lb_proxy_header_then_tls_handshake_on_ssl_port(env: &Env) {
    let mut m = LbMmp::start_with(env.config(), true, ProxyPort::ImplicitTls);
    let (to, st) = (m.proxy_addr(), m.status.unwrap());
    let tls_cfg = tls::client_config(None);
    let alice = user("alice@a.test");
    let before = status::quiet(st);
    // The header, a pause (mmp must not start TLS before it), then the handshake.
    for (what, header) in [
        ("v2", v2("10.77.7.1:47001", "10.77.7.2:993", &sample_tlvs())),
        ("v1", v1("[2001:db8::77:71]:47002", "[2001:db8::77:72]:993")),
    ] {
        let mut c = tls::LineClient::plain_from(BALANCER, to).unwrap();
        c.send_raw(&header).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        c.starttls(&tls_cfg)
            .unwrap_or_else(|e| panic!("{what}: TLS after the header: {e}\n{}", m.proc.tail()));
        let g = c.expect_line();
        assert!(g.starts_with("* OK"), "{what}: greeting over TLS {g:?}");
        let r = c.imap_login("a1", &alice.uid, &alice.password);
        assert!(r.starts_with("a1 OK"), "{what}: {r}");
        c.assert_imap_own_mailbox(&alice);
    }
    for src in ["client 10.77.7.1:47001 ", "client [2001:db8::77:71]:47002 "] {
        assert!(
            has_line(&m.log(), &[src, "logged in to store"]),
            "TLS after the header: {src} not in mmp's log:\n{}",
            m.proc.tail()
        );
    }
    // Not TLS after the header: the handshake fails, nothing in clear text is answered.
    let mut s = send_header(BALANCER, to, &v1("10.77.7.3:47003", "10.77.7.4:993"));
    s.write_all(b"a1 LOGIN alice x\r\n").unwrap();
    let got = read_all_until_eof(&mut s, Duration::from_secs(8)).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&got).contains("OK"),
        "plain IMAP answered on the TLS port: {got:?}"
    );
    // From an untrusted address: closed before the handshake.
    let s = send_header("127.0.0.122", to, &v1("10.77.7.5:47005", "10.77.7.6:993"));
    assert_closed_silently(s, Duration::from_secs(3), "untrusted on the TLS port");
    let after = status::quiet(st);
    let hs = "mmp_tls_handshakes_total{service=\"imap\"}";
    let failed = "mmp_tls_handshake_failures_total{service=\"imap\"}";
    assert_eq!(
        (
            status::val(&after, hs) - status::val(&before, hs),
            status::val(&after, failed) - status::val(&before, failed)
        ),
        (3.0, 1.0),
        "TLS handshakes (ended, failed): two clients and one plain-text speaker"
    );
    m.assert_still_serving();
}

/// A POP3 dialogue on a connected stream: greeting, USER/PASS, STAT, QUIT; the STAT figures.
fn pop_stat(s: TcpStream, u: &User) -> Result<(usize, usize), String> {
    use std::io::BufRead;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = std::io::BufReader::new(s);
    let line = |r: &mut std::io::BufReader<TcpStream>| -> Result<String, String> {
        let mut l = String::new();
        match r.read_line(&mut l) {
            Ok(0) => Err("closed".into()),
            Ok(_) => Ok(l.trim_end().to_string()),
            Err(e) => Err(e.to_string()),
        }
    };
    let g = line(&mut r)?;
    if !g.starts_with("+OK") {
        return Err(format!("greeting {g:?}"));
    }
    for cmd in [format!("USER {}", u.uid), format!("PASS {}", u.password)] {
        w.write_all(format!("{cmd}\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let l = line(&mut r)?;
        if !l.starts_with("+OK") {
            return Err(format!("{} -> {l:?}", cmd.split(' ').next().unwrap_or("")));
        }
    }
    w.write_all(b"STAT\r\n").map_err(|e| e.to_string())?;
    let l = line(&mut r)?;
    let stat = pop_client::parse_stat(&l).ok_or(format!("STAT -> {l:?}"))?;
    w.write_all(b"QUIT\r\n").map_err(|e| e.to_string())?;
    let _ = line(&mut r);
    Ok(stat)
}
