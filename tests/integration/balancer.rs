//! Behind a load balancer and on a dashboard (issue 12): the PROXY protocol on listeners
//! (v1 and v2, IPv4 and IPv6 sources, TLVs, LOCAL, untrusted senders, garbage, truncated and
//! split headers), TCPAccess / ConnLimits / the store's view (Dovecot's `rip=`) acting on the
//! header's address, the HAProxy scale-out with two mmp instances and a SIGTERM drain, and
//! the status listener (`/metrics` parsed by `prometheus_client`, `/health`).
//!
//! Each case starts its own mmp with two IMAP ports on 127.0.0.1: a plain one and a
//! `ProxyProtocolPorts` one, `ProxyProtocolTrusted 127.0.0.1`. Client source addresses of
//! these cases are 127.0.0.120–127.0.0.149; header addresses are documentation or private
//! ranges that only these cases use (10.77.x.x, 10.8.x.x, 10.9.x.x, 2001:db8::77:x), so the
//! shared stores' logs can be searched for them. The cases whose names end in
//! `_needs_login_metrics` check login counters and the directory health rule, which the
//! loop does not feed yet: they fail until it does.

use crate::cases;
use crate::common::services::Ports;
use crate::common::*;
use crate::Case;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn cases() -> Vec<Case> {
    cases![
        lb_proxy_v1_v2_ipv4_ipv6_tlvs_from_trusted_balancer_reach_store_with_header_address,
        lb_proxy_v2_local_and_untrusted_sender_closed_with_nothing_sent,
        lb_proxy_garbage_truncated_and_split_headers,
        lb_tcp_access_and_conn_limits_act_on_header_source,
        lb_pop3_xclient_carries_header_address_to_store,
        lb_haproxy_scale_out_two_instances_and_sigterm_drain,
        lb_status_metrics_count_connections_refusals_sessions_and_bytes,
        lb_status_logins_by_outcome_needs_login_metrics,
        lb_status_health_503_while_slapd_down_needs_login_metrics,
    ]
}

/// The balancer's address as mmp sees it (trusted in every case here).
const BALANCER: &str = "127.0.0.1";
/// `ProxyProtocolTrusted` of every case: the balancer and one more client address.
const TRUSTED: &str = "127.0.0.1 127.0.0.120/32";

// ---------------------------------------------------------------------------------------------
// PROXY headers

const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// `PROXY TCP4|TCP6 src dst sport dport\r\n`.
fn v1(src: &str, dst: &str) -> Vec<u8> {
    let (s, d) = (sa(src), sa(dst));
    let fam = if s.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {fam} {} {} {} {}\r\n",
        s.ip(),
        d.ip(),
        s.port(),
        d.port()
    )
    .into_bytes()
}

/// A v2 PROXY (command 1) header over TCP with `tlvs` after the addresses.
fn v2(src: &str, dst: &str, tlvs: &[(u8, &[u8])]) -> Vec<u8> {
    let (s, d) = (sa(src), sa(dst));
    let mut body = Vec::new();
    let fam = match (s, d) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            body.extend_from_slice(&s.ip().octets());
            body.extend_from_slice(&d.ip().octets());
            0x11
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            body.extend_from_slice(&s.ip().octets());
            body.extend_from_slice(&d.ip().octets());
            0x21
        }
        _ => panic!("mixed families"),
    };
    body.extend_from_slice(&s.port().to_be_bytes());
    body.extend_from_slice(&d.port().to_be_bytes());
    for (t, v) in tlvs {
        body.push(*t);
        body.extend_from_slice(&(v.len() as u16).to_be_bytes());
        body.extend_from_slice(v);
    }
    v2_raw(0x21, fam, &body)
}

fn v2_raw(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let mut h = V2_SIG.to_vec();
    h.push(ver_cmd);
    h.push(fam);
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(body);
    h
}

/// Some TLVs a balancer sends: ALPN, authority, NOOP (empty), unique id, and an SSL TLV.
fn sample_tlvs() -> Vec<(u8, &'static [u8])> {
    vec![
        (0x01, b"imap"),
        (0x02, b"mail.example.test"),
        (0x04, b""),
        (0x05, b"\x01\x02\x03\x04\x05\x06\x07\x08"),
        (0x20, b"\x01\x00\x00\x00\x00"),
    ]
}

/// A raw connection from `src` that has sent `header`.
#[track_caller]
fn send_header(src: &str, to: SocketAddr, header: &[u8]) -> TcpStream {
    let mut s = smtp_client::connect_from(src, to).unwrap_or_else(|e| panic!("connect {to}: {e}"));
    s.set_nodelay(true).unwrap();
    s.write_all(header).expect("send the header");
    s
}

/// An IMAP client whose connection began with `header` (greeting not read).
#[track_caller]
fn imap_via(src: &str, to: SocketAddr, header: &[u8]) -> ImapClient {
    ImapClient::from_stream(send_header(src, to, header)).expect("client")
}

/// The peer closes without sending a byte within `within`.
#[track_caller]
fn assert_closed_silently(mut s: TcpStream, within: Duration, what: &str) -> Duration {
    let t = Instant::now();
    match read_all_until_eof(&mut s, within) {
        Ok(bytes) => assert!(
            bytes.is_empty(),
            "{what}: mmp sent {:?} before closing",
            String::from_utf8_lossy(&bytes)
        ),
        Err(e) => panic!("{what}: not closed within {within:?}: {e}"),
    }
    t.elapsed()
}

/// Greeting, LOGIN, own mailbox, LOGOUT; panics on any difference.
#[track_caller]
fn login_own_mailbox(c: &mut ImapClient, u: &User, what: &str) {
    let g = c.expect_line();
    assert!(g.starts_with("* OK"), "{what}: greeting {g:?}");
    let r = c.login("a1", &u.uid, &u.password);
    assert!(r.starts_with("a1 OK"), "{what}: login {r:?}");
    imap_client::assert_own_mailbox(c, u);
    c.command("z", "LOGOUT");
}

// ---------------------------------------------------------------------------------------------
// Processes: mmp with a plain and a PROXY port, HAProxy

/// A process we started (mmp or HAProxy), output in `log_path`, stopped by PID on drop.
struct Proc {
    child: Option<std::process::Child>,
    log_path: PathBuf,
}

impl Proc {
    #[track_caller]
    fn spawn(cmd: &mut Command, log_path: PathBuf) -> Proc {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Proc {
            child: Some(child),
            log_path,
        }
    }

    fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn tail(&self) -> String {
        tail(&self.log_path, 30)
    }

    fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Wait until every address accepts, failing with the log tail if the process exits.
    #[track_caller]
    fn wait_ready(&mut self, addrs: &[SocketAddr], what: &str) {
        let mut exited = false;
        let up = wait_until(Duration::from_secs(15), || {
            if !self.running() {
                exited = true;
                return true;
            }
            addrs.iter().all(|a| port_accepts(*a))
        });
        assert!(
            up && !exited,
            "{what} {} on {addrs:?}; log tail:\n{}",
            if exited { "exited" } else { "never accepted" },
            self.tail()
        );
    }

    /// SIGTERM by PID; waits (bounded) for the exit. Whether it exited in time.
    fn terminate(&mut self, within: Duration) -> bool {
        let Some(c) = self.child.as_mut() else {
            return true;
        };
        signal(c.id(), SIGTERM);
        wait_until(within, || matches!(c.try_wait(), Ok(Some(_))))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, Duration::from_secs(10));
        }
    }
}

/// mmp with IMAP on `plain` and `proxied` (a `ProxyProtocolPorts` port), both on 127.0.0.1,
/// and optionally the status listener.
struct LbMmp {
    plain: u16,
    proxied: u16,
    status: Option<SocketAddr>,
    proc: Proc,
}

impl LbMmp {
    #[track_caller]
    fn start(cfg: MmpConfig, status: bool) -> LbMmp {
        let dir = temp_dir("lb-mmp");
        let plain = free_port(BALANCER);
        let proxied = (0..20)
            .map(|_| free_port(BALANCER))
            .find(|p| *p != plain)
            .unwrap();
        let status_addr = status.then(|| {
            let p = (0..20)
                .map(|_| free_port(BALANCER))
                .find(|p| *p != plain && *p != proxied)
                .unwrap();
            addr(BALANCER, p)
        });
        let mut cfg = cfg
            .set_aservice(
                "ServiceList",
                &format!("ImapProxyAService@{BALANCER}:{plain}|{BALANCER}:{proxied}"),
            )
            .set("ProxyProtocolPorts", &proxied.to_string())
            .set("ProxyProtocolTrusted", TRUSTED);
        if let Some(a) = status_addr {
            cfg = cfg.set_aservice("StatusListen", &a.to_string());
        }
        let config = cfg.write(&dir.join("config"));
        let mut proc = Proc::spawn(
            Command::new(mmp::mmp_bin())
                .arg("-f")
                .arg("-c")
                .arg(&config.dir)
                .env("RUST_BACKTRACE", "1"),
            dir.join("mmp.log"),
        );
        let mut addrs = vec![addr(BALANCER, plain), addr(BALANCER, proxied)];
        addrs.extend(status_addr);
        proc.wait_ready(&addrs, "mmp");
        LbMmp {
            plain,
            proxied,
            status: status_addr,
            proc,
        }
    }

    fn plain_addr(&self) -> SocketAddr {
        addr(BALANCER, self.plain)
    }

    fn proxy_addr(&self) -> SocketAddr {
        addr(BALANCER, self.proxied)
    }

    fn log(&self) -> String {
        self.proc.log()
    }

    /// Alive, no panic, and a direct login on the plain port reaches alice's mailbox.
    #[track_caller]
    fn assert_still_serving(&mut self) {
        assert!(self.proc.running(), "mmp died:\n{}", self.proc.tail());
        assert!(
            !self.log().contains("panicked"),
            "mmp log shows a panic:\n{}",
            self.proc.tail()
        );
        let alice = user("alice@a.test");
        let mut c = ImapClient::connect(self.plain_addr()).expect("connect plain port");
        login_own_mailbox(&mut c, &alice, "direct login after the PROXY cases");
    }

    /// Number of successful store logins in the log.
    fn logins(&self) -> usize {
        self.log().matches("logged in to store").count()
    }
}

/// Whether `log` has a line containing every one of `parts`.
fn has_line(log: &str, parts: &[&str]) -> bool {
    log.lines().any(|l| parts.iter().all(|p| l.contains(p)))
}

/// Waits (bounded) until the store's log has a line with every one of `parts`.
#[track_caller]
fn assert_store_log(store: &Dovecot, parts: &[&str]) {
    let ok = wait_until(Duration::from_secs(5), || {
        has_line(
            &std::fs::read_to_string(store.log_path()).unwrap_or_default(),
            parts,
        )
    });
    assert!(
        ok,
        "{}'s log has no line with {parts:?}; tail:\n{}",
        store.name,
        tail(&store.log_path(), 15)
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Headers accepted, refused, malformed, split

fn lb_proxy_v1_v2_ipv4_ipv6_tlvs_from_trusted_balancer_reach_store_with_header_address(env: &Env) {
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

fn lb_proxy_v2_local_and_untrusted_sender_closed_with_nothing_sent(env: &Env) {
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

fn lb_proxy_garbage_truncated_and_split_headers(env: &Env) {
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
    for src in ["10.77.3.5:40005", "10.77.3.7:40007"] {
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

fn lb_tcp_access_and_conn_limits_act_on_header_source(env: &Env) {
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

fn lb_pop3_xclient_carries_header_address_to_store(env: &Env) {
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

// ---------------------------------------------------------------------------------------------
// 3. HAProxy in front of two mmp instances

/// HAProxy's frontend address.
const HAPROXY_IP: &str = "127.0.0.140";
/// Client source addresses of the scale-out.
const CLIENTS: [&str; 5] = [
    "127.0.0.141",
    "127.0.0.142",
    "127.0.0.143",
    "127.0.0.144",
    "127.0.0.145",
];
/// Refused by both instances' TCPAccess.
const DENIED: &str = "127.0.0.149";

/// `haproxy -db -f CONF` in front of `servers` (mmp PROXY ports on 127.0.0.1), `send-proxy-v2`,
/// round robin, health checks every 200 ms. Returns the process and the frontend address.
#[track_caller]
fn start_haproxy(servers: &[u16]) -> (Proc, SocketAddr) {
    assert!(
        have_program("haproxy"),
        "haproxy not found: install it (see .ci/run)"
    );
    let dir = temp_dir("haproxy");
    let fe = addr(HAPROXY_IP, free_port(HAPROXY_IP));
    let mut conf = format!(
        "global\n  maxconn 2000\n\
         defaults\n  mode tcp\n  timeout connect 3s\n  timeout client 60s\n  timeout server 60s\n  \
         retries 3\n  option redispatch\n\
         frontend fe\n  bind {fe}\n  default_backend mmps\n\
         backend mmps\n  balance roundrobin\n"
    );
    for (i, p) in servers.iter().enumerate() {
        conf += &format!(
            "  server mmp{i} {BALANCER}:{p} send-proxy-v2 check inter 200ms fall 2 rise 2\n"
        );
    }
    let path = dir.join("haproxy.cfg");
    write_file(&path, &conf);
    let check = run(
        Command::new("haproxy").arg("-c").arg("-f").arg(&path),
        Duration::from_secs(20),
    );
    assert!(
        check.status.success(),
        "haproxy -c rejects {conf}:\n{}{}",
        check.stdout,
        check.stderr
    );
    let mut p = Proc::spawn(
        Command::new("haproxy").arg("-db").arg("-f").arg(&path),
        dir.join("haproxy.log"),
    );
    p.wait_ready(&[fe], "haproxy");
    (p, fe)
}

/// One login through the balancer from `src`: greeting, LOGIN, SELECT INBOX, FETCH subject,
/// LOGOUT; `Err` says what differed.
fn login_through(fe: SocketAddr, src: &str, u: &User) -> Result<(), String> {
    let mut c = ImapClient::connect_from(src, fe).map_err(|e| format!("connect: {e}"))?;
    let g = c
        .read_line()
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    if !g.starts_with("* OK") {
        return Err(format!("greeting {g:?}"));
    }
    let tagged = |c: &mut ImapClient, tag: &str, cmd: &str| -> Result<Vec<String>, String> {
        c.send_raw(format!("{tag} {cmd}\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let lines = c.read_until_tagged(tag).map_err(|e| e.to_string())?;
        match lines.last() {
            Some(l) if l.starts_with(&format!("{tag} OK")) => Ok(lines),
            other => Err(format!("{cmd:.20}: {other:?}")),
        }
    };
    let login = format!(
        "LOGIN {} {}",
        imap_client::quote(&u.uid),
        imap_client::quote(&u.password)
    );
    tagged(&mut c, "a1", &login)?;
    let sel = tagged(&mut c, "a2", "SELECT INBOX")?;
    let n = imap_client::exists_count(&sel).unwrap_or(usize::MAX);
    let f = tagged(&mut c, "a3", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")?;
    let want = format!("Subject: {}", u.expected_subject());
    let subject_ok = f.iter().any(|l| l.contains(&want));
    let _ = tagged(&mut c, "a4", "LOGOUT");
    if n != u.expected_count() || !subject_ok {
        return Err(format!(
            "{}: wrong mailbox (EXISTS {n}, want {}; subject {want:?} {})",
            u.uid,
            u.expected_count(),
            if subject_ok { "found" } else { "missing" }
        ));
    }
    Ok(())
}

/// `count` logins through `fe` on `threads` threads, users and sources rotating; the
/// failures (at most 10 shown).
fn logins_through(fe: SocketAddr, count: usize, threads: usize) -> Vec<String> {
    let load: Vec<User> = users()
        .into_iter()
        .filter(|u| u.uid.starts_with("load"))
        .collect();
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..threads {
            let (load, failures) = (&load, &failures);
            s.spawn(move || {
                for i in (t..count).step_by(threads) {
                    let (u, src) = (&load[i % load.len()], CLIENTS[i % CLIENTS.len()]);
                    if let Err(e) = login_through(fe, src, u) {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("#{i} {} from {src}: {e}", u.uid));
                    }
                }
            });
        }
    });
    let mut f = failures.into_inner().unwrap();
    f.truncate(10);
    f
}

fn lb_haproxy_scale_out_two_instances_and_sigterm_drain(env: &Env) {
    let cfg = env
        .config()
        .set("TCPAccess", &format!("\"+imap:ALL EXCEPT {DENIED}\""))
        .set_aservice("DrainTimeout", "30");
    let mut a = LbMmp::start(cfg.clone(), false);
    let mut b = LbMmp::start(cfg, false);
    let (mut hap, fe) = start_haproxy(&[a.proxied, b.proxied]);
    let t = Instant::now();
    let failures = logins_through(fe, 200, 8);
    assert!(
        failures.is_empty(),
        "logins through HAProxy failed (first 10): {failures:#?}\nmmp A:\n{}\nmmp B:\n{}",
        a.proc.tail(),
        b.proc.tail()
    );
    let (na, nb) = (a.logins(), b.logins());
    println!(
        "haproxy scale-out: 200 logins in {:.1}s, A {na}, B {nb}",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(na + nb, 200, "store logins in the two mmp logs");
    assert!(
        na >= 50 && nb >= 50,
        "round robin did not spread the logins: A {na}, B {nb}"
    );
    // The real client addresses in mmp's logs and in the stores' (lip = HAProxy's frontend).
    let logs = a.log() + &b.log();
    for src in CLIENTS {
        assert!(
            has_line(&logs, &[&format!("client {src}:"), "logged in to store"]),
            "no login from {src} in mmp's logs"
        );
        let rip = format!("rip={src}, lip={HAPROXY_IP},");
        let in_store = [&env.store2, &env.store3].iter().any(|s| {
            has_line(
                &std::fs::read_to_string(s.log_path()).unwrap_or_default(),
                &["Login:", &rip],
            )
        });
        assert!(in_store, "no store login with {rip}");
    }
    assert!(
        !has_line(
            &logs,
            &[&format!("client {BALANCER}:"), "logged in to store"]
        ),
        "a login was logged with the balancer's address"
    );
    // TCPAccess acts on the real address behind HAProxy, on both instances.
    for _ in 0..4 {
        let mut c = ImapClient::connect_from(DENIED, fe).unwrap();
        let l = c.read_line().ok().flatten().unwrap_or_default();
        assert!(
            l.starts_with("* BYE"),
            "{DENIED} through HAProxy was let in: {l:?}"
        );
    }
    assert!(
        a.log().contains(&format!("connection from {DENIED}:"))
            && b.log().contains(&format!("connection from {DENIED}:")),
        "TCPAccess refusals of {DENIED} not on both instances"
    );

    // A: a session relays, then SIGTERM. New logins keep succeeding through B while A drains.
    let alice = user("alice@a.test");
    let mut held = imap_via(
        BALANCER,
        a.proxy_addr(),
        &v2("127.0.0.146:45000", "127.0.0.140:143", &[]),
    );
    let g = held.expect_line();
    assert!(g.starts_with("* OK"), "{g:?}");
    assert!(held
        .login("h1", &alice.uid, &alice.password)
        .starts_with("h1 OK"));
    let a_pid = a.proc.pid();
    signal(a_pid, SIGTERM);
    must_wait_until(Duration::from_secs(5), "A to close its listeners", || {
        !port_accepts(a.proxy_addr())
    });
    let b_before = b.logins();
    let failures = logins_through(fe, 30, 3);
    assert!(
        failures.is_empty(),
        "logins while A drains: {failures:#?}\nB:\n{}",
        b.proc.tail()
    );
    assert_eq!(
        b.logins() - b_before,
        30,
        "B did not take every login while A drains"
    );
    assert!(a.proc.running(), "A did not wait for its relayed session");
    let r = held.command_tagged("h2", "NOOP");
    assert!(
        r.starts_with("h2 OK"),
        "the draining session was cut: {r:?}"
    );
    held.command("h3", "LOGOUT");
    assert!(
        a.proc.terminate(Duration::from_secs(15)),
        "A did not exit once its last session ended:\n{}",
        a.proc.tail()
    );
    // A is gone: HAProxy notices (health checks) and every login still succeeds.
    let failures = logins_through(fe, 30, 3);
    assert!(failures.is_empty(), "logins after A stopped: {failures:#?}");
    assert_eq!(b.logins() - b_before, 60);
    b.assert_still_serving();
    assert!(hap.running(), "haproxy died:\n{}", hap.tail());
    assert!(
        hap.terminate(Duration::from_secs(10)),
        "haproxy ignored SIGTERM"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. The status listener

/// `GET path` on the status listener: (status code, body).
#[track_caller]
fn http_get(to: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("connect status listener {to}: {e}"));
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let raw = read_all_until_eof(&mut s, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no header end in {text:?}"));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: status line {head:?}"));
    (code, body.to_string())
}

/// `GET /metrics` parsed by `tests/common/metrics_check.py` (prometheus_client's parser):
/// sample (`name{label="v",...}`, labels sorted) → value.
#[track_caller]
fn scrape(to: SocketAddr) -> BTreeMap<String, f64> {
    let (code, body) = http_get(to, "/metrics");
    assert_eq!(code, 200, "GET /metrics: {body}");
    let file = temp_dir("scrape").join("metrics.txt");
    write_file(&file, &body);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/metrics_check.py");
    let out = run(
        Command::new("sh")
            .arg("-c")
            .arg("exec python3 \"$0\" < \"$1\"")
            .arg(&script)
            .arg(&file),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "metrics_check.py rejects /metrics ({}): {}\n{body}",
        out.status,
        out.stderr
    );
    out.stdout
        .lines()
        .filter_map(|l| {
            let (_family, rest) = l.split_once(' ')?;
            let (sample, value) = rest.rsplit_once(' ')?;
            Some((sample.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// A sample's value; panics when the exposition lacks it.
#[track_caller]
fn val(m: &BTreeMap<String, f64>, sample: &str) -> f64 {
    *m.get(sample).unwrap_or_else(|| {
        let names: Vec<&String> = m
            .keys()
            .filter(|k| k.starts_with(&sample[..sample.find('{').unwrap_or(sample.len())]))
            .collect();
        panic!("no sample {sample} in /metrics; same family: {names:?}")
    })
}

fn refused(reason: &str) -> String {
    format!("mmp_connections_refused_total{{reason=\"{reason}\",service=\"imap\"}}")
}

fn sessions(phase: &str) -> String {
    format!("mmp_sessions{{phase=\"{phase}\",service=\"imap\"}}")
}

const ACCEPTED: &str = "mmp_connections_accepted_total{service=\"imap\"}";
const BYTES_UP: &str = "mmp_relayed_bytes_total{direction=\"up\"}";
const BYTES_DOWN: &str = "mmp_relayed_bytes_total{direction=\"down\"}";

/// Waits (bounded) until `sample` reads `want`; returns the last scrape.
#[track_caller]
fn wait_value(to: SocketAddr, sample: &str, want: f64) -> BTreeMap<String, f64> {
    let mut last = BTreeMap::new();
    let ok = wait_until(Duration::from_secs(5), || {
        last = scrape(to);
        last.get(sample) == Some(&want)
    });
    assert!(ok, "{sample} never read {want}: {:?}", last.get(sample));
    last
}

fn lb_status_metrics_count_connections_refusals_sessions_and_bytes(env: &Env) {
    const LIMITED: &str = "127.0.0.130";
    const DENIED_HERE: &str = "127.0.0.131";
    let m = LbMmp::start(
        env.config()
            .set("TCPAccess", &format!("\"+imap:ALL EXCEPT {DENIED_HERE}\""))
            .set(
                "ConnLimits",
                &format!("0.0.0.0|0.0.0.0:50,{LIMITED}|255.255.255.255:1"),
            ),
        true,
    );
    let st = m.status.unwrap();
    assert_eq!(http_get(st, "/health").0, 200, "GET /health");
    for path in [
        "/",
        "/metrics/x",
        "/etc/passwd",
        "/healthz",
        "/../Cargo.toml",
    ] {
        assert_eq!(http_get(st, path).0, 404, "GET {path}");
    }
    // The readiness probes are over (they closed); start from a quiet point.
    let before = wait_value(st, &sessions("prelogin"), 0.0);
    let mut made = 0.0;
    // A session that relays: prelogin, then relay.
    let alice = user("alice@a.test");
    let mut c = ImapClient::connect(m.plain_addr()).unwrap();
    made += 1.0;
    assert!(c.expect_line().starts_with("* OK"));
    wait_value(st, &sessions("prelogin"), 1.0);
    assert!(c
        .login("a1", &alice.uid, &alice.password)
        .starts_with("a1 OK"));
    let relaying = wait_value(st, &sessions("relay"), 1.0);
    assert_eq!(val(&relaying, &sessions("prelogin")), 0.0);
    imap_client::assert_own_mailbox(&mut c, &alice);
    let moved = scrape(st);
    let up = val(&moved, BYTES_UP) - val(&before, BYTES_UP);
    let down = val(&moved, BYTES_DOWN) - val(&before, BYTES_DOWN);
    // SELECT + FETCH went up (at least the two command lines); the mailbox came down.
    assert!(up >= 40.0, "relayed bytes up grew by {up}");
    assert!(
        down >= 200.0 && down > up,
        "relayed bytes down grew by {down} (up {up})"
    );
    c.command("z", "LOGOUT");
    assert!(c.closes_within(Duration::from_secs(5)));
    wait_value(st, &sessions("relay"), 0.0);
    // Refusals by reason.
    let mut held = ImapClient::connect_from(LIMITED, m.plain_addr()).unwrap();
    assert!(held.expect_line().starts_with("* OK"));
    let mut over = ImapClient::connect_from(LIMITED, m.plain_addr()).unwrap();
    assert!(over.expect_line().starts_with("* BYE"));
    let mut denied = ImapClient::connect_from(DENIED_HERE, m.plain_addr()).unwrap();
    assert!(denied.expect_line().starts_with("* BYE"));
    let s = send_header(
        "127.0.0.132",
        m.proxy_addr(),
        &v1("10.77.5.1:1", "10.77.5.2:143"),
    );
    assert_closed_silently(s, Duration::from_secs(3), "untrusted");
    let s = send_header(BALANCER, m.proxy_addr(), b"GET /metrics HTTP/1.0\r\n\r\n");
    assert_closed_silently(s, Duration::from_secs(3), "garbage header");
    made += 5.0;
    let after = wait_value(
        st,
        &refused("proxy_header"),
        val(&before, &refused("proxy_header")) + 1.0,
    );
    for (reason, n) in [
        ("conn_limits", 1.0),
        ("tcp_access", 1.0),
        ("proxy_trust", 1.0),
        ("proxy_header", 1.0),
        ("capacity", 0.0),
    ] {
        assert_eq!(
            val(&after, &refused(reason)) - val(&before, &refused(reason)),
            n,
            "refusals counted for {reason}"
        );
    }
    assert_eq!(
        val(&after, ACCEPTED) - val(&before, ACCEPTED),
        made,
        "accepted connections (the test made {made})"
    );
    drop(held);
    wait_value(st, &sessions("prelogin"), 0.0);
    // Nothing counted for the other services.
    assert_eq!(
        val(&after, "mmp_connections_accepted_total{service=\"pop\"}"),
        0.0
    );
    assert_eq!(http_get(st, "/health").0, 200, "GET /health at the end");
}

fn logins(outcome: &str) -> String {
    format!("mmp_logins_total{{outcome=\"{outcome}\",service=\"imap\"}}")
}

fn lb_status_logins_by_outcome_needs_login_metrics(env: &Env) {
    let m = LbMmp::start(env.config(), true);
    let st = m.status.unwrap();
    let before = scrape(st);
    let (mut ok, mut bad) = (0.0, 0.0);
    for (i, u) in ["alice@a.test", "bob@a.test", "carol@b.test", "dave@b.test"]
        .iter()
        .enumerate()
    {
        let u = user(u);
        // Half through the PROXY port: a login counts the same way.
        let mut c = if i % 2 == 0 {
            ImapClient::connect(m.plain_addr()).unwrap()
        } else {
            imap_via(
                BALANCER,
                m.proxy_addr(),
                &v1(&format!("10.77.6.{i}:46000"), "10.77.6.99:143"),
            )
        };
        login_own_mailbox(&mut c, &u, &u.uid);
        ok += 1.0;
        if i < 3 {
            let mut c = ImapClient::connect(m.plain_addr()).unwrap();
            assert!(c.expect_line().starts_with("* OK"));
            let r = c.login("b1", &u.uid, "wrong-Pw-00");
            assert!(r.starts_with("b1 NO"), "{r}");
            bad += 1.0;
        }
    }
    let after = wait_value(st, &logins("ok"), val(&before, &logins("ok")) + ok);
    assert_eq!(
        val(&after, &logins("bad_credentials")) - val(&before, &logins("bad_credentials")),
        bad,
        "failed logins counted"
    );
    for other in [
        "inactive",
        "directory_unavailable",
        "store_unavailable",
        "policy",
    ] {
        assert_eq!(
            val(&after, &logins(other)),
            val(&before, &logins(other)),
            "{other}"
        );
    }
    let count = "mmp_login_duration_seconds_count";
    assert_eq!(
        val(&after, count) - val(&before, count),
        ok + bad,
        "login histogram count"
    );
    assert_eq!(
        val(&after, "mmp_login_duration_seconds_bucket{le=\"+Inf\"}"),
        val(&after, count)
    );
}

fn lb_status_health_503_while_slapd_down_needs_login_metrics(env: &Env) {
    // A private directory: stopping the shared one would fail the other cases.
    let mut slapd = Slapd::start_new();
    let m = LbMmp::start(
        MmpConfig::new(&slapd.url(), env.store_port()).set("LdapUrl", &slapd.url()),
        true,
    );
    let st = m.status.unwrap();
    assert_eq!(http_get(st, "/health").0, 200, "healthy at start");
    // No login succeeds before the stop: the rule is "the last attempt failed and the last
    // success is older than 60 s (or there never was one)".
    slapd.stop();
    let alice = user("alice@a.test");
    let mut c = ImapClient::connect(m.plain_addr()).unwrap();
    assert!(c.expect_line().starts_with("* OK"));
    let r = c.login("a1", &alice.uid, &alice.password);
    assert!(
        !r.starts_with("a1 OK"),
        "logged in with the directory down: {r}"
    );
    let mut last = (0, String::new());
    let down = wait_until(Duration::from_secs(10), || {
        last = http_get(st, "/health");
        last.0 == 503
    });
    assert!(down, "/health while slapd is down: {last:?}");
    assert!(!last.1.trim().is_empty(), "503 without a reason");
    slapd.start();
    let back = wait_until(Duration::from_secs(20), || {
        let mut c = ImapClient::connect(m.plain_addr()).unwrap();
        c.read_line().ok().flatten().is_some()
            && c.login("a1", &alice.uid, &alice.password)
                .starts_with("a1 OK")
    });
    assert!(back, "no login after slapd came back:\n{}", m.proc.tail());
    let mut last = (0, String::new());
    let healthy = wait_until(Duration::from_secs(10), || {
        last = http_get(st, "/health");
        last.0 == 200
    });
    assert!(healthy, "/health after slapd came back: {last:?}");
}
