//! Lifecycle cases (issues 11 and 10): SIGHUP reloads without dropping sessions or refusing
//! connections; [`drain`] has SIGTERM (the drain until the last session ends or
//! `DrainTimeout`, a second one stops at once), [`scale`] the descriptor limit,
//! `LoopThreads` and `MaxSessions`. Each case starts its own mmp (`-f -p PIDFILE`) on
//! 127.0.0.1 and stops it by PID; the helpers here serve all three files.

mod drain;
mod scale;

use crate::cases;
use crate::common::imap_client::{assert_ok, assert_own_mailbox, quote};
use crate::common::mmp::{mmp_bin, BANNER};
use crate::common::pop_client::assert_own_pop_mailbox;
use crate::common::postfix::dead_port;
use crate::common::services::{pop_kvs, smtp_kvs, Ports};
use crate::common::*;
use crate::Case;
use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub fn cases() -> Vec<Case> {
    let mut all = cases![
        lifecycle_hup_new_banner_for_new_connections_old_sessions_complete,
        lifecycle_hup_broken_file_keeps_serving_and_names_file_line,
        lifecycle_hup_adds_and_removes_listeners,
        lifecycle_hup_moves_a_port_to_another_protocol,
        lifecycle_hup_twenty_reloads_under_login_load_refuse_nothing,
    ];
    all.extend(drain::cases());
    all.extend(scale::cases());
    all
}

const SIGHUP: i32 = libc::SIGHUP;
const NEW_BANNER: &str = "lifecycle reloaded banner";

/// The IMAP service alone, standard options.
fn imap_only(env: &Env) -> ServicesConfig {
    ServicesConfig {
        base: env.config(),
        imap: true,
        pop: None,
        smtp: None,
    }
}

/// IMAP, POP3 and SMTP; SMTP relays to a port where nothing listens (no case here gets
/// past the SMTP greeting, so no MTA is needed).
fn all_three(env: &Env) -> ServicesConfig {
    let relay = format!("127.0.0.1:{}", dead_port());
    ServicesConfig {
        base: env.config(),
        imap: true,
        pop: Some(pop_kvs(&env.slapd.url(), env.store_pop3_port())),
        smtp: Some(smtp_kvs(&env.slapd.url(), &relay)),
    }
}

/// A running `mmp -f -c DIR -p PIDFILE`, its output in `mmp.log`; stopped by PID on drop.
struct Proc {
    child: Child,
    ports: Ports,
    dir: PathBuf,
    log_path: PathBuf,
    pidfile: PathBuf,
}

impl Proc {
    /// Writes `cfg` on free ports and starts mmp; waits until every port accepts and the
    /// start is logged (the pidfile is written after the ports are bound); three tries when
    /// a port was taken meanwhile.
    #[track_caller]
    fn start(cfg: &ServicesConfig) -> Proc {
        let base = temp_dir("life");
        let (dir, log_path, pidfile) =
            (base.join("config"), base.join("mmp.log"), base.join("pid"));
        let mut why = String::new();
        for attempt in 1..=3 {
            let mut used: Vec<u16> = Vec::new();
            let mut pick = |on: bool| {
                on.then(|| {
                    let p = (0..20)
                        .map(|_| free_port("127.0.0.1"))
                        .find(|p| !used.contains(p))
                        .expect("a free port");
                    used.push(p);
                    p
                })
            };
            let ports = Ports {
                imap: pick(cfg.imap),
                pop: pick(cfg.pop.is_some()),
                smtp: pick(cfg.smtp.is_some()),
            };
            cfg.write(&dir, &ports);
            let log = File::options()
                .create(true)
                .append(true)
                .open(&log_path)
                .unwrap();
            let child = Command::new(mmp_bin())
                .arg("-f")
                .arg("-c")
                .arg(&dir)
                .arg("-p")
                .arg(&pidfile)
                .env("RUST_BACKTRACE", "1")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", mmp_bin()));
            let mut p = Proc {
                child,
                ports,
                dir: dir.clone(),
                log_path: log_path.clone(),
                pidfile: pidfile.clone(),
            };
            let up = wait_until(Duration::from_secs(15), || {
                !p.running()
                    || (p.addrs().iter().all(|a| port_accepts(*a))
                        && p.log().contains("started from"))
            });
            if up && p.running() {
                return p;
            }
            why = format!(
                "attempt {attempt}: mmp did not serve {ports:?}:\n{}",
                tail(&log_path, 30)
            );
            drop(p);
            if !tail(&log_path, 30).to_lowercase().contains("in use") {
                break;
            }
        }
        panic!("{why}");
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        [self.ports.imap, self.ports.pop, self.ports.smtp]
            .into_iter()
            .flatten()
            .map(|p| addr("127.0.0.1", p))
            .collect()
    }

    fn imap(&self) -> SocketAddr {
        addr("127.0.0.1", self.ports.imap.expect("IMAP configured"))
    }

    fn pop(&self) -> SocketAddr {
        addr("127.0.0.1", self.ports.pop.expect("POP configured"))
    }

    fn smtp(&self) -> SocketAddr {
        addr("127.0.0.1", self.ports.smtp.expect("SMTP configured"))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn signal(&self, sig: i32) {
        assert!(signal(self.pid(), sig), "kill({}, {sig})", self.pid());
    }

    fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn tail(&self) -> String {
        tail(&self.log_path, 30)
    }

    /// Waits until the log contains `pattern`; panics with the log tail if it never does.
    #[track_caller]
    fn must_log(&self, pattern: &str, limit: Duration) {
        if !wait_until(limit, || self.log().contains(pattern)) {
            panic!(
                "no {pattern:?} in the log within {limit:?}:\n{}",
                self.tail()
            );
        }
    }

    /// Rewrites the configuration directory (`ports` in `ServiceList`).
    fn rewrite(&self, cfg: &ServicesConfig, ports: &Ports) -> ConfigDir {
        cfg.write(&self.dir, ports)
    }

    /// SIGHUP, then waits for "configuration reloaded ... (generation N)".
    #[track_caller]
    fn reload(&self, generation: u64) {
        self.signal(SIGHUP);
        let want = format!("(generation {generation})");
        let ok = wait_until(Duration::from_secs(15), || {
            self.log()
                .lines()
                .any(|l| l.contains("configuration reloaded from") && l.contains(&want))
        });
        assert!(
            ok,
            "reload to generation {generation} not logged:\n{}",
            self.tail()
        );
    }

    /// The exit code, once mmp has exited within `limit` (`None`: still running, or killed
    /// by a signal).
    fn exit_within(&mut self, limit: Duration) -> Option<Option<i32>> {
        let mut code = None;
        wait_until(limit, || match self.child.try_wait() {
            Ok(Some(s)) => {
                code = Some(s.code());
                true
            }
            _ => false,
        });
        code
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(10));
    }
}

/// A greeted IMAP client logged in as `u` with its INBOX selected.
#[track_caller]
fn relayed(at: SocketAddr, u: &User) -> ImapClient {
    let mut c = ImapClient::connect_greeted(at).0;
    let r = c.login("a1", &u.uid, &u.password);
    assert!(r.starts_with("a1 OK"), "login {}: {r}", u.uid);
    assert_eq!(c.select_inbox("a2"), u.expected_count());
    c
}

/// The relayed session still answers NOOP and SELECT from `u`'s own store.
#[track_caller]
fn still_relays(c: &mut ImapClient, u: &User, what: &str) {
    let lines = c.command("n1", "NOOP");
    assert_ok(&lines, "n1");
    let n = c.select_inbox("n2");
    assert_eq!(n, u.expected_count(), "{what}: SELECT after the signal");
}

fn lifecycle_hup_new_banner_for_new_connections_old_sessions_complete(env: &Env) {
    let cfg = imap_only(env);
    let m = Proc::start(&cfg);
    let (alice, bob) = (user("alice@a.test"), user("bob@a.test"));
    let mut old = relayed(m.imap(), &alice);
    let (mut mid, greeting) = ImapClient::connect_greeted(m.imap());
    assert!(greeting.ends_with(BANNER), "{greeting}");
    // The new generation: another banner, and stores on a port where nothing listens, so
    // that only a session that kept the configuration it started with can still log in.
    let mut new = cfg.clone();
    new.base = new
        .base
        .set("Banner", NEW_BANNER)
        .set("BacksidePort", &dead_port().to_string());
    m.rewrite(&new, &m.ports);
    m.reload(2);
    let (mut fresh, greeting) = ImapClient::connect_greeted(m.imap());
    assert!(greeting.ends_with(NEW_BANNER), "new connection: {greeting}");
    let r = fresh.login("f1", &alice.uid, &alice.password);
    assert!(
        !r.starts_with("f1 OK"),
        "a new session used the old stores: {r}"
    );
    still_relays(&mut old, &alice, "relayed session");
    let r = mid.login("m1", &bob.uid, &bob.password);
    assert!(
        r.starts_with("m1 OK"),
        "mid-login session after the reload: {r}\n{}",
        m.tail()
    );
    assert_own_mailbox(&mut mid, &bob);
    assert_ok(&old.command("z1", "LOGOUT"), "z1");
}

fn lifecycle_hup_broken_file_keeps_serving_and_names_file_line(env: &Env) {
    let cfg = imap_only(env);
    let m = Proc::start(&cfg);
    let mut broken = cfg.clone();
    broken.base = broken
        .base
        .set("Banner", NEW_BANNER)
        .set("LoginTimeout", "soon");
    let written = m.rewrite(&broken, &m.ports);
    let line = written.line_of("ImapProxyAService.cfg", "LoginTimeout");
    m.signal(SIGHUP);
    m.must_log("reload failed (", Duration::from_secs(15));
    let log = m.log();
    assert!(log.contains("SIGHUP: reloading"), "{log}");
    let place = format!("ImapProxyAService.cfg:{line}");
    assert!(
        log.contains(&place),
        "the error names {place}:\n{}",
        m.tail()
    );
    let (mut c, greeting) = ImapClient::connect_greeted(m.imap());
    assert!(greeting.ends_with(BANNER), "old banner kept: {greeting}");
    let alice = user("alice@a.test");
    let r = c.login("a1", &alice.uid, &alice.password);
    assert!(r.starts_with("a1 OK"), "{r}");
    assert_own_mailbox(&mut c, &alice);
    // Repaired, the next reload applies: the failed one used up no generation.
    let mut fixed = cfg.clone();
    fixed.base = fixed.base.set("Banner", NEW_BANNER);
    m.rewrite(&fixed, &m.ports);
    m.reload(2);
    let greeting = ImapClient::connect_greeted(m.imap()).1;
    assert!(greeting.ends_with(NEW_BANNER), "{greeting}");
}

fn lifecycle_hup_adds_and_removes_listeners(env: &Env) {
    let mut cfg = all_three(env);
    cfg.smtp = None;
    let m = Proc::start(&cfg);
    let (imap, old_pop) = (m.imap(), m.pop());
    // A session on the port about to be removed: it keeps its service and completes.
    let mut on_removed = PopClient::connect_greeted(old_pop).0;
    // POP3 leaves ServiceList, SMTP joins on a new port, IMAP stays on its own.
    let smtp_port = (0..20)
        .map(|_| free_port("127.0.0.1"))
        .find(|p| Some(*p) != m.ports.imap && Some(*p) != m.ports.pop)
        .unwrap();
    let mut new = all_three(env);
    new.pop = None;
    let ports = Ports {
        imap: m.ports.imap,
        pop: None,
        smtp: Some(smtp_port),
    };
    m.rewrite(&new, &ports);
    m.reload(2);
    let smtp = addr("127.0.0.1", smtp_port);
    must_wait_until(Duration::from_secs(5), "the added SMTP port", || {
        port_accepts(smtp)
    });
    let mut s = SmtpClient::connect(smtp).unwrap();
    let g = s.expect_reply();
    assert_eq!(g.code, 220, "the added port speaks SMTP: {:?}", g.lines);
    assert!(g.text().contains(BANNER), "{:?}", g.lines);
    let refused = wait_until(Duration::from_secs(5), || {
        matches!(TcpStream::connect_timeout(&old_pop, Duration::from_secs(1)),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
    });
    assert!(
        refused,
        "the removed POP3 port still accepts:\n{}",
        m.tail()
    );
    let (mut c, g) = ImapClient::connect_greeted(imap);
    assert!(g.ends_with(BANNER), "{g}");
    let alice = user("alice@a.test");
    assert!(c
        .login("a1", &alice.uid, &alice.password)
        .starts_with("a1 OK"));
    let bob = user("bob@a.test");
    let r = on_removed.user_pass(&bob.uid, &bob.password);
    assert!(
        r.starts_with("+OK"),
        "POP3 session of a removed port: {r}\n{}",
        m.tail()
    );
    assert_own_pop_mailbox(&mut on_removed, &bob);
    let log = m.log();
    assert!(log.contains(&format!("now listening on {smtp}")), "{log}");
    assert!(
        log.contains(&format!("no longer listening on {old_pop}")),
        "{log}"
    );
}

/// The IMAP port becomes the POP3 port (and IMAP moves): once the reload is done, every
/// new connection on the old IMAP port hears POP3, on every loop.
fn lifecycle_hup_moves_a_port_to_another_protocol(env: &Env) {
    let cfg = imap_only(env);
    let m = Proc::start(&cfg);
    let port = m.ports.imap.unwrap();
    let other = (0..20)
        .map(|_| free_port("127.0.0.1"))
        .find(|p| *p != port)
        .unwrap();
    let mut swapped = all_three(env);
    swapped.smtp = None;
    let ports = Ports {
        imap: Some(other),
        pop: Some(port),
        smtp: None,
    };
    m.rewrite(&swapped, &ports);
    m.reload(2);
    let at = addr("127.0.0.1", port);
    let greeting = |a: SocketAddr| {
        let mut c = PopClient::connect(a).ok()?;
        c.read_line().ok().flatten()
    };
    must_wait_until(Duration::from_secs(5), "POP3 on the old IMAP port", || {
        greeting(at).is_some_and(|g| g.starts_with("+OK"))
    });
    let heard: Vec<String> = (0..30).map(|_| greeting(at).unwrap_or_default()).collect();
    assert!(
        heard.iter().all(|g| g.starts_with("+OK")),
        "after the reload the port answered: {heard:?}\n{}",
        m.tail()
    );
    let (_, g) = ImapClient::connect_greeted(addr("127.0.0.1", other));
    assert!(g.ends_with(BANNER), "{g}");
}

/// One IMAP login and logout; any failure as text (no panic: the load thread counts).
fn one_login(at: SocketAddr, u: &User) -> Result<(), String> {
    let s = TcpStream::connect_timeout(&at, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    let mut c = ImapClient::from_stream(s).map_err(|e| format!("setup: {e}"))?;
    match c.read_line() {
        Ok(Some(g)) if g.starts_with("* OK") => {}
        other => return Err(format!("greeting: {other:?}")),
    }
    let login = format!("l1 LOGIN {} {}\r\n", quote(&u.uid), quote(&u.password));
    c.send_raw(login.as_bytes())
        .map_err(|e| format!("send LOGIN: {e}"))?;
    let lines = c
        .read_until_tagged("l1")
        .map_err(|e| format!("LOGIN: {e}"))?;
    match lines.last() {
        Some(l) if l.starts_with("l1 OK") => {}
        other => return Err(format!("LOGIN answered {other:?}")),
    }
    c.send_raw(b"l2 LOGOUT\r\n")
        .map_err(|e| format!("send LOGOUT: {e}"))?;
    c.read_until_tagged("l2")
        .map(|_| ())
        .map_err(|e| format!("LOGOUT: {e}"))
}

fn lifecycle_hup_twenty_reloads_under_login_load_refuse_nothing(env: &Env) {
    let cfg = imap_only(env);
    let m = Proc::start(&cfg);
    let load: Vec<User> = users()
        .into_iter()
        .filter(|u| u.uid.starts_with("load"))
        .take(10)
        .collect();
    let (stop, done) = (AtomicBool::new(false), AtomicUsize::new(0));
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let at = m.imap();
    std::thread::scope(|s| {
        // Three clients log in and out, a fourth only connects and reads the greeting (the
        // probe most sensitive to a listener closed and reopened).
        for t in 0..4usize {
            let (stop, done, failures, load) = (&stop, &done, &failures, &load);
            s.spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(120);
                for i in 0..20_000 {
                    if stop.load(Ordering::SeqCst) || Instant::now() > deadline {
                        break;
                    }
                    let r = match t {
                        3 => greeted_socket(at).map(drop),
                        _ => one_login(at, &load[(i * 3 + t) % load.len()]),
                    };
                    match r {
                        Ok(()) => done.fetch_add(1, Ordering::SeqCst),
                        Err(e) => {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("client {t}, try {i}: {e}"));
                            0
                        }
                    };
                }
            });
        }
        let run = || {
            for generation in 2..=21u64 {
                // Each reload lands while the clients are busy: wait for a few more tries.
                let before = done.load(Ordering::SeqCst);
                let more = wait_until(Duration::from_secs(20), || {
                    done.load(Ordering::SeqCst) >= before + 4
                });
                assert!(
                    more,
                    "the load stalled before reload {generation}; failures: {:#?}",
                    failures.lock().unwrap()
                );
                let mut c = cfg.clone();
                c.base = c.base.set("Banner", &format!("{BANNER} {generation}"));
                m.rewrite(&c, &m.ports);
                m.reload(generation);
            }
        };
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
        stop.store(true, Ordering::SeqCst);
        if let Err(p) = result {
            std::panic::resume_unwind(p);
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed tries during 20 reloads ({} ok): {failures:#?}\n{}",
        failures.len(),
        done.load(Ordering::SeqCst),
        m.tail()
    );
    assert!(
        done.load(Ordering::SeqCst) >= 80,
        "too few tries to mean anything"
    );
    let g = ImapClient::connect_greeted(at).1;
    assert!(g.ends_with(&format!("{BANNER} 21")), "{g}");
}

/// Connects and reads the one-line greeting on a bare socket (one descriptor per client).
fn greeted_socket(at: SocketAddr) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect_timeout(&at, Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.ends_with(b"\r\n") && got.len() < 4096 {
        match s.read(&mut buf) {
            Ok(0) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&got))),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    if !got.starts_with(b"* OK") {
        return Err(format!("greeting {:?}", String::from_utf8_lossy(&got)));
    }
    Ok(s)
}
