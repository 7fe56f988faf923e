//! Shared harness of the integration tests: private slapd and Dovecot stores, the mmp binary
//! driven through its legacy config directory, and a small IMAP client.
//!
//! Rules kept everywhere here: every wait is on a condition with a deadline (never a fixed sleep),
//! every loop is bounded in count and time, every address is 127.0.0.x, and every process we start
//! is stopped by its PID (SIGTERM, bounded wait, then SIGKILL) in `Drop`.
#![allow(dead_code)]

pub mod domain_tree;
pub mod dovecot;
pub mod imap_client;
pub mod mmp;
pub mod pop_client;
pub mod postfix;
pub mod services;
pub mod slapd;
pub mod smtp_client;
pub mod tls;

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use dovecot::Dovecot;
pub use imap_client::ImapClient;
#[allow(unused_imports)]
pub use mmp::{ConfigDir, Mmp, MmpConfig};
pub use pop_client::PopClient;
#[allow(unused_imports)] // the benchmark uses only part of the fixtures
pub use postfix::{FakeMta, Postfix};
#[allow(unused_imports)]
pub use services::{MmpServices, ServicesConfig};
pub use slapd::Slapd;
pub use smtp_client::SmtpClient;

/// Address of the first store (users with `mailHost: 127.0.0.2`).
pub const STORE2_IP: &str = "127.0.0.2";
/// Address of the second store (users with `mailHost: 127.0.0.3`).
pub const STORE3_IP: &str = "127.0.0.3";
/// A mailHost where nothing listens (the "store down" user).
pub const DEAD_STORE_IP: &str = "127.0.0.4";
/// The directory suffix, bind DN and bind password mmp uses.
pub const SUFFIX: &str = "o=isp";
pub const BIND_DN: &str = "cn=admin,o=isp";
pub const BIND_PW: &str = "bind-S3cret-77";

// ---------------------------------------------------------------------------------------------
// Temp dirs

static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);
static CREATED_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A fresh directory `$TMPDIR/mmp-test-<pid>-<counter>-<tag>` (mode 0755 so that Dovecot's
/// unprivileged processes can traverse it). Registered for removal by [`remove_temp_dirs`].
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = DIR_COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("mmp-test-{}-{}-{}", std::process::id(), n, tag));
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    set_mode(&dir, 0o755);
    CREATED_DIRS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(dir.clone());
    dir
}

/// Remove `mmp-test-<pid>-*` directories left by earlier runs whose process is gone (runs with
/// failures keep theirs for inspection). Only our own naming pattern is touched.
pub fn remove_stale_temp_dirs() {
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in rd.flatten().take(10_000) {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("mmp-test-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !pid_alive(pid) && e.path().is_dir() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Directories made by [`temp_dir`] so far.
pub fn temp_dirs() -> Vec<PathBuf> {
    CREATED_DIRS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

/// Remove every directory made by [`temp_dir`] (call once all processes are stopped).
pub fn remove_temp_dirs() {
    for d in CREATED_DIRS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
    {
        let _ = std::fs::remove_dir_all(d);
    }
}

pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
}

pub fn write_file(p: &Path, contents: impl AsRef<[u8]>) {
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
    }
    std::fs::write(p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

/// Last `n` lines of a text file, for failure messages.
pub fn tail(p: &Path, n: usize) -> String {
    let text = std::fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Poll `cond` until it holds or `timeout` passes; returns whether it held. The poll interval grows
/// from 2 ms to 100 ms, so the number of polls is bounded too.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if cond() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// [`wait_until`], panicking with `what` when the condition never held.
#[track_caller]
pub fn must_wait_until(timeout: Duration, what: &str, cond: impl FnMut() -> bool) {
    if !wait_until(timeout, cond) {
        panic!("timed out after {timeout:?} waiting for {what}");
    }
}

// ---------------------------------------------------------------------------------------------
// Ports and addresses

/// A port that was free on `ip` a moment ago (bind port 0, read it, release it).
pub fn free_port(ip: &str) -> u16 {
    let l = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
    l.local_addr().unwrap().port()
}

/// A port free on every address in `ips` at once (bounded number of tries).
pub fn free_port_on_all(ips: &[&str]) -> u16 {
    for _ in 0..50 {
        let first =
            TcpListener::bind((ips[0], 0)).unwrap_or_else(|e| panic!("bind {}:0: {e}", ips[0]));
        let port = first.local_addr().unwrap().port();
        let others: Vec<_> = ips[1..]
            .iter()
            .map(|ip| TcpListener::bind((*ip, port)))
            .collect();
        if others.iter().all(|r| r.is_ok()) {
            return port;
        }
    }
    panic!("no port free on all of {ips:?} after 50 tries");
}

pub fn addr(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().unwrap()
}

/// Whether something accepts TCP connections on `addr` right now.
pub fn port_accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
}

// ---------------------------------------------------------------------------------------------
// Processes

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}
pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;

/// Send `sig` to `pid` (never to a group, never by name).
pub fn signal(pid: u32, sig: i32) -> bool {
    // SAFETY: kill(2) with a positive pid only sends a signal; no memory is involved.
    pid > 1 && unsafe { kill(pid as i32, sig) } == 0
}

/// Whether `pid` is a live (not zombie) process.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            // "pid (comm) S ...": the state follows the last ')'.
            let state = s
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

/// Stop a child we spawned: SIGTERM, wait up to `grace`, then SIGKILL and reap.
pub fn stop_child(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    signal(child.id(), SIGTERM);
    if !wait_until(grace, || matches!(child.try_wait(), Ok(Some(_)))) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Run a command to completion with a time bound (killed by PID when over time).
#[track_caller]
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let done = wait_until(timeout, || matches!(child.try_wait(), Ok(Some(_))));
    if !done {
        let _ = child.kill();
    }
    let status = child.wait().unwrap_or_else(|e| panic!("wait {desc}: {e}"));
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    if !done {
        panic!("{desc} did not finish within {timeout:?}; stderr:\n{stderr}");
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Whether this process runs as root (the Dovecot stores need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Whether `prog` is found in PATH (or the sbin directories, which non-root PATHs may lack).
pub fn have_program(prog: &str) -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin"])
        .any(|d| Path::new(d).join(prog).is_file());
    found
}

// ---------------------------------------------------------------------------------------------
// Test users

/// One directory user. Every user exists in LDAP and on BOTH stores (same password), but each
/// store's messages carry a subject naming the store, so a wrong routing shows in the subject.
#[derive(Clone, Debug)]
pub struct User {
    /// Full login id and LDAP `uid` (`user@domain`).
    pub uid: String,
    /// Safe RDN value for the entry's DN (`cn=<label>,ou=<domain>,o=isp`).
    pub label: String,
    pub password: String,
    /// `mailHost` in LDAP.
    pub host: &'static str,
    pub inet_status: &'static str,
    pub mail_status: &'static str,
    /// Position in [`users`]; drives the message counts.
    pub index: usize,
}

impl User {
    pub fn local(&self) -> &str {
        self.uid
            .split_once('@')
            .map(|(u, _)| u)
            .unwrap_or(&self.uid)
    }
    pub fn domain(&self) -> &str {
        self.uid.split_once('@').map(|(_, d)| d).unwrap_or("")
    }
    /// Name of the store this user is routed to ("store2", "store3", or "dead").
    pub fn store(&self) -> &'static str {
        store_name(self.host)
    }
    /// Number of messages in this user's INBOX on `store`.
    pub fn count_on(&self, store: &str) -> usize {
        match store {
            "store2" => 1 + self.index % 7,
            _ => 11 + self.index % 7,
        }
    }
    /// The Subject header of every message of this user on `store`.
    pub fn subject_on(&self, store: &str) -> String {
        format!("{} on {}", self.uid, store)
    }
    /// Expected INBOX size when reached through mmp (the user's own store).
    pub fn expected_count(&self) -> usize {
        self.count_on(self.store())
    }
    pub fn expected_subject(&self) -> String {
        self.subject_on(self.store())
    }
}

pub fn store_name(ip: &str) -> &'static str {
    match ip {
        STORE2_IP => "store2",
        STORE3_IP => "store3",
        _ => "dead",
    }
}

/// Number of `loadNN@a.test` users for the concurrency test.
pub const LOAD_USERS: usize = 50;

/// Every test user. Passwords are distinctive so the log can be grepped for them.
pub fn users() -> Vec<User> {
    let mut v: Vec<(
        String,
        String,
        String,
        &'static str,
        &'static str,
        &'static str,
    )> = vec![
        // (uid, label, password, mailHost, inetUserStatus, mailUserStatus)
        u("alice@a.test", "alice", "alice-Pw-41", STORE2_IP),
        u("bob@a.test", "bob", "bob-Pw-42", STORE3_IP),
        u("carol@b.test", "carol", "carol-Pw-43", STORE3_IP),
        u("dave@b.test", "dave", "dave-Pw-44", STORE2_IP),
        u("down@a.test", "down", "down-Pw-45", DEAD_STORE_IP),
        // LDAP filter metacharacters. `star@a.test` is the decoy that an unescaped
        // `(uid=st*r@a.test)` would also match; it lives on the other store, has the same
        // password, and is loaded first so that "take the first entry" picks it.
        u("star@a.test", "star", "star-Pw-46", STORE3_IP),
        u("st*r@a.test", "st-r", "star-Pw-46", STORE2_IP),
        u("pa(re)n@a.test", "paren", "paren-Pw-47", STORE3_IP),
        u(
            "back\\slash@a.test",
            "backslash",
            "backslash-Pw-48",
            STORE2_IP,
        ),
    ];
    let mut ivan = u("ivan@a.test", "ivan", "ivan-Pw-49", STORE2_IP);
    ivan.4 = "inactive";
    v.push(ivan);
    let mut mia = u("mia@a.test", "mia", "mia-Pw-50", STORE3_IP);
    mia.5 = "inactive";
    v.push(mia);
    for i in 0..LOAD_USERS {
        let host = if i % 2 == 0 { STORE2_IP } else { STORE3_IP };
        v.push((
            format!("load{i:02}@a.test"),
            format!("load{i:02}"),
            format!("load{i:02}-Pw-5x"),
            host,
            "active",
            "active",
        ));
    }
    // Users of the hosted domains of the domain-tree directory (`domain_tree`), appended so
    // that the indexes (and so the message counts) of the users above do not change. They are
    // not in the shared directory; on the stores they are known by their full address.
    for (uid, pw, host) in domain_tree::HOSTED_USERS {
        v.push(u(uid, uid.split('@').next().unwrap_or(uid), pw, host));
    }
    // A user whose own access filter (mailAllowedServiceAccess, see `slapd::ldif`) admits
    // POP3 and SMTP but not IMAP.
    v.push(u("popper@a.test", "popper", "popper-Pw-71", STORE2_IP));
    v.into_iter()
        .enumerate()
        .map(
            |(index, (uid, label, password, host, inet_status, mail_status))| User {
                uid,
                label,
                password,
                host,
                inet_status,
                mail_status,
                index,
            },
        )
        .collect()
}

fn u(
    uid: &str,
    label: &str,
    pw: &str,
    host: &'static str,
) -> (
    String,
    String,
    String,
    &'static str,
    &'static str,
    &'static str,
) {
    (
        uid.to_string(),
        label.to_string(),
        pw.to_string(),
        host,
        "active",
        "active",
    )
}

/// The user with this uid; panics if there is none.
#[track_caller]
pub fn user(uid: &str) -> User {
    users()
        .into_iter()
        .find(|u| u.uid == uid)
        .unwrap_or_else(|| panic!("no test user {uid}"))
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// Standard base64 (for SASL PLAIN).
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        s.push(T[(n >> 18) as usize & 63] as char);
        s.push(T[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}

/// Read everything available on a raw stream until EOF or `timeout`; for tests that look at bytes.
pub fn read_all_until_eof(stream: &mut TcpStream, timeout: Duration) -> io::Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..100_000 {
        let now = Instant::now();
        if now >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no EOF before deadline",
            ));
        }
        stream.set_read_timeout(Some(deadline - now))?;
        match stream.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(out),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The shared fixtures

/// What every case gets: one directory and two stores, started once per run. Cases that need to
/// stop the directory start their own [`Slapd`].
pub struct Env {
    pub slapd: Slapd,
    pub store2: Dovecot,
    pub store3: Dovecot,
    /// The private Postfix of the SMTP cases, started on first use ([`Env::postfix`]).
    postfix: OnceLock<Result<Postfix, String>>,
    /// The stores' IMAPS/POP3S listeners and store administrator ([`tls::StoreTls`]); set by
    /// [`Env::start`], `None` with [`Env::start_with_store_conf`].
    pub store_tls: Option<tls::StoreTls>,
}

impl Env {
    /// The integration tests' fixtures: [`Env::start_with_store_conf`] plus TLS listeners
    /// and a store administrator on both stores ([`tls::StoreTls`]).
    #[track_caller]
    pub fn start() -> Env {
        let st = tls::StoreTls::prepare();
        let mut env = Env::start_with_store_conf(&st.dovecot_conf());
        if let Err(e) = st.wait_ready() {
            panic!("store TLS: {e}");
        }
        env.store_tls = Some(st);
        env
    }

    /// [`Env::start`] with `extra_conf` appended to both stores' `dovecot.conf` (see
    /// [`Dovecot::start_pair_with`]); the benchmark uses it to raise Dovecot's limits.
    #[track_caller]
    pub fn start_with_store_conf(extra_conf: &str) -> Env {
        let slapd = Slapd::start_new();
        let (store2, store3) = Dovecot::start_pair_with(extra_conf);
        Env {
            slapd,
            store2,
            store3,
            postfix: OnceLock::new(),
            store_tls: None,
        }
    }

    /// The BacksidePort shared by both stores.
    pub fn store_port(&self) -> u16 {
        self.store2.port
    }

    /// The standard mmp config for these fixtures (callers override with `.set(..)`).
    pub fn config(&self) -> MmpConfig {
        MmpConfig::new(&self.slapd.url(), self.store_port())
    }

    /// An mmp started with the standard config.
    #[track_caller]
    pub fn mmp(&self) -> Mmp {
        Mmp::start(&self.config())
    }

    pub fn store(&self, name: &str) -> &Dovecot {
        match name {
            "store2" => &self.store2,
            _ => &self.store3,
        }
    }
}

/// Text of a panic payload.
pub fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic)".to_string()
    }
}

/// Run python3 with `script` and `args` (bounded).
#[track_caller]
pub fn python(script: &str, args: &[&str], timeout: Duration) -> Output {
    run(
        Command::new("python3").arg("-c").arg(script).args(args),
        timeout,
    )
}

/// A real client: Python's imaplib logs in, selects INBOX, fetches the first Subject, lists
/// mailboxes and logs out. Prints `EXISTS n`, `SUBJECT ...` lines.
pub const PY_IMAPLIB: &str = r#"
import imaplib, sys
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
m = imaplib.IMAP4(host, port, timeout=15)
print("GREETING", m.welcome.decode())
typ, data = m.login(user, pw)
print("LOGIN", typ)
typ, data = m.select("INBOX")
print("EXISTS", data[0].decode())
typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
print("SUBJECT", data[0][1].decode().strip())
typ, data = m.list()
print("LIST", typ, [d.decode() for d in data])
typ, data = m.logout()
print("LOGOUT", typ)
"#;
