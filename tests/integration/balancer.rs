//! Behind a load balancer and on a dashboard (issue 12): the PROXY protocol on listeners
//! (v1 and v2, IPv4 and IPv6 sources, TLVs, LOCAL, untrusted senders, garbage, truncated and
//! split headers), TCPAccess / ConnLimits / the store's view (Dovecot's `rip=`) acting on the
//! header's address, the HAProxy scale-out with two mmp instances and a SIGTERM drain, and
//! the status listener (`/metrics` parsed by `prometheus_client`, `/health`).
//!
//! Each case starts its own mmp with two IMAP ports on 127.0.0.1: a plain one and a
//! `ProxyProtocolPorts` one, `ProxyProtocolTrusted 127.0.0.1 127.0.0.120/32`. Client source addresses of
//! these cases are 127.0.0.120–127.0.0.149; header addresses are documentation or private
//! ranges that only these cases use (10.77.x.x, 10.8.x.x, 10.9.x.x, 2001:db8::77:x), so the
//! shared stores' logs can be searched for them. The cases whose names end in
//! `` check login counters and the directory health rule, which the
//! loop does not feed yet: they fail until it does.

mod haproxy;
mod proxy;
mod status;

use crate::cases;
use crate::common::*;
use crate::Case;
use haproxy::*;
use proxy::*;
use status::*;
use std::fs::File;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub fn cases() -> Vec<Case> {
    cases![
        lb_proxy_v1_v2_ipv4_ipv6_tlvs_from_trusted_balancer_reach_store_with_header_address,
        lb_proxy_v2_local_and_untrusted_sender_closed_with_nothing_sent,
        lb_proxy_garbage_truncated_and_split_headers,
        lb_tcp_access_and_conn_limits_act_on_header_source,
        lb_pop3_xclient_carries_header_address_to_store,
        lb_proxy_header_then_tls_handshake_on_ssl_port,
        lb_haproxy_scale_out_two_instances_and_sigterm_drain,
        lb_status_metrics_count_connections_refusals_sessions_and_bytes,
        lb_status_logins_by_outcome,
        lb_status_health_503_while_slapd_down,
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

/// What the `ProxyProtocolPorts` port of an [`LbMmp`] speaks after the header.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ProxyPort {
    Plain,
    /// Also in `SSLPorts` (mmp's test certificate): the TLS handshake follows the header.
    ImplicitTls,
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
        LbMmp::start_with(cfg, status, ProxyPort::Plain)
    }

    #[track_caller]
    fn start_with(cfg: MmpConfig, status: bool, kind: ProxyPort) -> LbMmp {
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
        if kind == ProxyPort::ImplicitTls {
            let p = tls::pki();
            cfg = cfg
                .set("SSLEnable", "yes")
                .set("SSLCertFile", &p.mmp.cert.display().to_string())
                .set("SSLKeyFile", &p.mmp.key.display().to_string())
                .set("SSLPorts", &proxied.to_string());
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
