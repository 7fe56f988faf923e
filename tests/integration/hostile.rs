//! Hostile clients against the real process: random bytes on every port (plain, implicit
//! TLS, after STARTTLS), 1 000 clients stalled mid-handshake, a 100 MB literal announcement,
//! a 1 MB AUTHENTICATE response, 10 000 pipelined commands, lines without end. Throughout,
//! a probe logs a real user in every 250 ms and each login must take under 2 s; afterwards
//! mmp is alive and, after a grace period of 15 s at most, its descriptors are back within
//! 5 of the baseline and its RSS within +20 MB.

use crate::cases;
use crate::common::imap_client::ImapClient;
use crate::common::tls::*;
use crate::common::*;
use crate::Case;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// "Near the baseline": descriptors.
const FD_SLACK: usize = 5;
/// "Near the baseline": resident memory, kB.
const RSS_SLACK_KB: u64 = 20 * 1024;
/// Each probe login must complete within this.
const PROBE_LIMIT: Duration = Duration::from_secs(2);

pub fn cases() -> Vec<Case> {
    let mut v = cases![hostile_clients_leave_mmp_serving_and_at_baseline];
    // The soak, listed only when MMP_SOAK_MINUTES is set (tests/soak.sh).
    v.extend(crate::soak::cases());
    v
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn connect(a: SocketAddr) -> Option<TcpStream> {
    let s = TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    Some(s)
}

/// Writes up to `total` bytes from `gen` until the peer stops taking them or closes.
fn pour(s: &mut TcpStream, total: usize, deadline: Instant, mut gen: impl FnMut(&mut [u8])) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0;
    let mut sink = [0u8; 4096];
    while sent < total && Instant::now() < deadline {
        gen(&mut buf);
        let n = buf.len().min(total - sent);
        match s.write(&buf[..n]) {
            Ok(0) | Err(_) => return,
            Ok(k) => sent += k,
        }
        let _ = s.set_nonblocking(true);
        let _ = s.read(&mut sink);
        let _ = s.set_nonblocking(false);
    }
}

/// A probe thread: logs alice in every 250 ms until `stop`; returns the slowest login
/// and the failures.
fn probe(addr: SocketAddr, stop: Arc<AtomicBool>) -> thread::JoinHandle<(Duration, Vec<String>)> {
    thread::spawn(move || {
        let alice = user("alice@a.test");
        let mut worst = Duration::ZERO;
        let mut failures = Vec::new();
        for i in 0..400 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let t = Instant::now();
            let r = ImapClient::connect(addr).map(|mut c| {
                c.set_read_timeout(PROBE_LIMIT * 2);
                let _ = c.read_line();
                c.login("p1", &alice.uid, &alice.password)
            });
            let took = t.elapsed();
            worst = worst.max(took);
            match r {
                Ok(l) if l.starts_with("p1 OK") && took <= PROBE_LIMIT => {}
                other => failures.push(format!("probe {i}: {other:?} after {took:?}")),
            }
            thread::sleep(Duration::from_millis(250));
        }
        (worst, failures)
    })
}

fn random_bytes_everywhere(m: &TlsMmp, rng: &mut Rng) {
    let deadline = Instant::now() + Duration::from_secs(6);
    for p in [Proto::Imap, Proto::Pop, Proto::Smtp] {
        for round in 0..10 {
            // Plain port.
            if let Some(mut s) = connect(m.plain_addr(p)) {
                pour(&mut s, 16 * 1024, deadline, |b| rng.fill(b));
            }
            // Implicit TLS port: random bytes instead of a handshake.
            if let Some(mut s) = connect(m.ssl_addr(p)) {
                pour(&mut s, 16 * 1024, deadline, |b| rng.fill(b));
            }
            // After STARTTLS: random bytes inside the TLS session.
            if round % 3 == 0 {
                if let Ok(mut c) = LineClient::plain(m.plain_addr(p)) {
                    c.set_read_timeout(Duration::from_secs(3));
                    let _ = c.read_line();
                    let cmd = match p {
                        Proto::Imap => "s STARTTLS",
                        Proto::Pop => "STLS",
                        Proto::Smtp => "STARTTLS",
                    };
                    if p == Proto::Smtp {
                        let _ = c.smtp("EHLO hostile.test");
                    }
                    c.send_line(cmd);
                    let _ = c.read_line();
                    if c.starttls(&client_config(None)).is_ok() {
                        let mut buf = vec![0u8; 8 * 1024];
                        for _ in 0..4 {
                            rng.fill(&mut buf);
                            if c.send_raw(&buf).is_err() {
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A TLS record header announcing a 512-byte ClientHello, and only its first bytes.
const PARTIAL_HELLO: &[u8] = &[
    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
];

fn stalled_handshakes(m: &TlsMmp, n: usize) -> Vec<TcpStream> {
    let mut v = Vec::with_capacity(n);
    let protos = [Proto::Imap, Proto::Pop, Proto::Smtp];
    for i in 0..n {
        if let Some(mut s) = connect(m.ssl_addr(protos[i % 3])) {
            let _ = s.write_all(PARTIAL_HELLO);
            v.push(s);
        }
    }
    v
}

fn big_inputs(m: &TlsMmp) {
    let imap = m.plain_addr(Proto::Imap);
    let deadline = Instant::now() + Duration::from_secs(10);
    // A 100 MB literal announcement, then bytes.
    if let Some(mut s) = connect(imap) {
        let _ = s.write_all(b"a LOGIN {104857600}\r\n");
        pour(&mut s, 8 << 20, deadline, |b| b.fill(b'x'));
    }
    // A 1 MB base64 AUTHENTICATE response.
    if let Some(mut s) = connect(imap) {
        let _ = s.write_all(b"a AUTHENTICATE PLAIN\r\n");
        pour(&mut s, 1 << 20, deadline, |b| b.fill(b'A'));
        let _ = s.write_all(b"\r\n");
    }
    // 10 000 pipelined commands, read while written.
    if let Some(s) = connect(imap) {
        let mut r = s.try_clone().unwrap();
        let reader = thread::spawn(move || {
            let mut n = 0usize;
            let mut buf = [0u8; 16384];
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(10) {
                match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => break,
                }
            }
            n
        });
        let mut w = s;
        let mut all = Vec::new();
        for i in 0..10_000 {
            all.extend_from_slice(format!("c{i} NOOP\r\n").as_bytes());
        }
        let _ = w.write_all(&all);
        let _ = w.shutdown(std::net::Shutdown::Write);
        let got = reader.join().unwrap();
        assert!(got > 0, "10 000 pipelined NOOPs got no answer at all");
    }
    // Lines without end on every plain port (a pre-login line, an SMTP header).
    for p in [Proto::Imap, Proto::Pop, Proto::Smtp] {
        if let Some(mut s) = connect(m.plain_addr(p)) {
            pour(&mut s, 4 << 20, deadline, |b| b.fill(b'h'));
        }
    }
    let alice = user("alice@a.test");
    if let Ok(mut c) = LineClient::plain(m.plain_addr(Proto::Smtp)) {
        c.set_read_timeout(Duration::from_secs(5));
        let _ = c.smtp_reply();
        let _ = c.smtp("EHLO hostile.test");
        let ir = base64(format!("\0{}\0{}", alice.uid, alice.password).as_bytes());
        if c.smtp(&format!("AUTH PLAIN {ir}")).code == 235 {
            let _ = c.smtp(&format!("MAIL FROM:<{}>", alice.uid));
            let _ = c.smtp("RCPT TO:<bob@a.test>");
            if c.smtp("DATA").code == 354 {
                let mut line = b"X-Endless: ".to_vec();
                line.resize(256 * 1024, b'h');
                for _ in 0..16 {
                    if c.send_raw(&line).is_err() {
                        break;
                    }
                }
            }
        }
    }
}

fn hostile_clients_leave_mmp_serving_and_at_baseline(env: &Env) {
    let mut cfg = env.pop_smtp_config();
    cfg.imap = true;
    let cfg = with_ssl(cfg);
    let mut m = TlsMmp::start(&cfg, true);
    let pid = m.pid().expect("mmp pid");
    // Warm up (first login, TLS, worker stacks) before the baseline.
    let alice = user("alice@a.test");
    // Logins in parallel, so that every worker has its directory connection.
    let addr = m.plain_addr(Proto::Imap);
    let warm: Vec<_> = (0..8)
        .map(|_| {
            let (uid, pw) = (alice.uid.clone(), alice.password.clone());
            thread::spawn(move || {
                let mut c = ImapClient::connect(addr).unwrap();
                let _ = c.read_line();
                assert!(c.login("w", &uid, &pw).starts_with("w OK"));
                thread::sleep(Duration::from_millis(300));
            })
        })
        .collect();
    for w in warm {
        w.join().expect("warm-up login");
    }
    // And every other service once per worker (each opens its directory connection).
    let (pop, smtp) = (m.plain_addr(Proto::Pop), m.plain_addr(Proto::Smtp));
    let warm: Vec<_> = (0..8)
        .map(|i| {
            let (uid, pw) = (alice.uid.clone(), alice.password.clone());
            thread::spawn(move || {
                let mut c = LineClient::plain(if i % 2 == 0 { pop } else { smtp }).unwrap();
                c.set_read_timeout(Duration::from_secs(5));
                let _ = c.read_line();
                if i % 2 == 0 {
                    c.send_line(&format!("USER {uid}"));
                    let _ = c.read_line();
                    c.send_line(&format!("PASS {pw}"));
                    let _ = c.read_line();
                } else {
                    let _ = c.smtp("EHLO warm.test");
                    let _ = c.smtp(&format!(
                        "AUTH PLAIN {}",
                        base64(format!("\0{uid}\0{pw}").as_bytes())
                    ));
                }
                thread::sleep(Duration::from_millis(300));
            })
        })
        .collect();
    for w in warm {
        w.join().expect("warm-up login");
    }
    // The baseline: once the warm-up sessions are gone (no change for 1 s, 8 s at most).
    let mut last = usize::MAX;
    let _ = wait_until(Duration::from_secs(8), || {
        thread::sleep(Duration::from_secs(1));
        let now = fd_count(pid);
        std::mem::replace(&mut last, now) == now
    });
    let (fd0, rss0) = (fd_count(pid), rss_kb(pid));
    let stop = Arc::new(AtomicBool::new(false));
    let probe = probe(m.plain_addr(Proto::Imap), stop.clone());
    let peak = Arc::new(Mutex::new((fd0, rss0)));

    let mut rng = Rng(0x5eed_1234_abcd_0001);
    random_bytes_everywhere(&m, &mut rng);
    let stalled = stalled_handshakes(&m, 1000);
    thread::sleep(Duration::from_secs(2));
    *peak.lock().unwrap() = (fd_count(pid), rss_kb(pid));
    let n_stalled = stalled.len();
    drop(stalled);
    big_inputs(&m);

    stop.store(true, Ordering::Relaxed);
    let (worst, failures) = probe.join().expect("probe thread");
    assert!(m.is_running(), "mmp died; log:\n{}", m.log_tail());
    let back = wait_until(Duration::from_secs(15), || {
        fd_count(pid) <= fd0 + FD_SLACK && rss_kb(pid) <= rss0 + RSS_SLACK_KB
    });
    let (fd1, rss1) = (fd_count(pid), rss_kb(pid));
    let (fdp, rssp) = *peak.lock().unwrap();
    eprintln!(
        "hostile: fds {fd0} -> peak {fdp} -> {fd1}; RSS {rss0} kB -> peak {rssp} kB -> {rss1} kB; \
         {n_stalled} stalled handshakes; slowest probe login {worst:?}"
    );
    assert!(failures.is_empty(), "probe logins failed: {failures:?}");
    assert!(
        n_stalled >= 990,
        "only {n_stalled} stalled handshakes connected"
    );
    let sockets = run(
        std::process::Command::new("ss").args(["-tanp"]),
        Duration::from_secs(5),
    );
    let mine: Vec<&str> = sockets
        .stdout
        .lines()
        .filter(|l| l.contains(&format!("pid={pid},")))
        .collect();
    assert!(
        back,
        "{mine:#?}\nnot back near the baseline: fds {fd0} -> {fd1} (slack {FD_SLACK}), RSS {rss0} -> {rss1} kB (slack {RSS_SLACK_KB})"
    );
    m.assert_alive_without_panic();
}
