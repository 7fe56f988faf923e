//! A private Postfix instance (the relay behind mmp's SMTP proxy), a fake MTA that does not
//! offer XCLIENT, and a dead relay port.
//!
//! The Postfix instance has its own config, queue and data directories, maillog and Maildir under
//! one temp dir, listens on 127.0.0.1 (a free port) only, accepts `XCLIENT` from 127.0.0.0/8, and
//! relays only for SASL-authenticated sessions (an `XCLIENT ... LOGIN=user` counts: Cyrus SASL is
//! switched on with an empty private sasldb, so nobody can `AUTH` at Postfix itself). `mynetworks`
//! does not contain 127.0.0.1, so mmp's own address earns no trust: only the `ADDR`/`LOGIN` that
//! mmp passes decide. Every recipient (domains `a.test`, `b.test`, and foreign domains when
//! relaying is permitted) is delivered by virtual(8) into one Maildir, `DIR/mail/inbox/`, which
//! the tests read back; cases tell their messages apart by a unique token in the Subject.

use super::*;
use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;

pub struct Postfix {
    pub dir: PathBuf,
    /// The SMTP port on 127.0.0.1.
    pub port: u16,
    etc: PathBuf,
    running: bool,
}

impl Postfix {
    /// Write the config under a fresh temp dir and start the instance on a free 127.0.0.1 port
    /// (three ports at most); ready once it greets and offers AUTH (SASL is usable).
    pub fn start() -> Result<Postfix, String> {
        if !have_program("postfix") {
            return Err(
                "postfix not found: install postfix and libsasl2-modules (see .ci/run)".into(),
            );
        }
        if !is_root() {
            return Err("the private Postfix instance must be started as root".into());
        }
        let dir = temp_dir("postfix");
        let etc = dir.join("etc");
        for sub in ["etc", "queue", "data", "mail", "sasl"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| e.to_string())?;
        }
        let (pf_uid, pf_gid) =
            passwd_ids("postfix").ok_or("no `postfix` user in /etc/passwd (install postfix)")?;
        std::os::unix::fs::chown(dir.join("data"), Some(pf_uid), Some(pf_gid))
            .map_err(|e| format!("chown data: {e}"))?;
        std::os::unix::fs::chown(dir.join("mail"), Some(65534), Some(65534))
            .map_err(|e| format!("chown mail: {e}"))?;
        write_file(
            &dir.join("sasl").join("smtpd.conf"),
            format!(
                "pwcheck_method: auxprop\nauxprop_plugin: sasldb\nsasldb_path: {}\nmech_list: PLAIN LOGIN\n",
                dir.join("sasl").join("sasldb2").display()
            ),
        );
        write_file(&etc.join("main.cf"), main_cf(&dir));
        let master_cf = std::fs::read_to_string("/etc/postfix/master.cf")
            .map_err(|e| format!("read /etc/postfix/master.cf: {e}"))?;
        let mut pf = Postfix {
            dir,
            port: 0,
            etc,
            running: false,
        };
        let mut last = String::new();
        for _ in 0..3 {
            pf.port = free_port("127.0.0.1");
            write_file(
                &pf.etc.join("master.cf"),
                private_master_cf(&master_cf, pf.port),
            );
            match pf.try_start() {
                Ok(()) => return Ok(pf),
                Err(e) => {
                    last = e;
                    pf.stop();
                }
            }
        }
        Err(format!("Postfix did not start after 3 ports: {last}"))
    }

    fn try_start(&mut self) -> Result<(), String> {
        let out = run(
            Command::new("postfix")
                .arg("-c")
                .arg(&self.etc)
                .arg("start"),
            Duration::from_secs(60),
        );
        self.running = true;
        if !out.status.success() {
            return Err(format!(
                "postfix start: {}; {}{}\nmaillog:\n{}\n(for the reason of a silent exit run: \
                 script -qc \"postfix -c {} check\" /dev/null)",
                out.status,
                out.stdout,
                out.stderr,
                tail(&self.maillog_path(), 20),
                self.etc.display()
            ));
        }
        let a = self.addr();
        let mut last = String::new();
        let ready = wait_until(Duration::from_secs(30), || match SmtpClient::connect(a) {
            Ok(mut c) => {
                let g = c.read_reply();
                if !matches!(&g, Ok(Some(r)) if r.code == 220) {
                    last = format!("greeting {g:?}");
                    return false;
                }
                c.send_line("EHLO ready.test");
                match c.read_reply() {
                    Ok(Some(r)) => {
                        let ok = r.code == 250
                            && r.ehlo_keywords().iter().any(|k| k.starts_with("AUTH"))
                            && r.ehlo_keywords().iter().any(|k| k.starts_with("XCLIENT"));
                        last = r.text();
                        let _ = c.send_raw(b"QUIT\r\n");
                        ok
                    }
                    other => {
                        last = format!("EHLO {other:?}");
                        false
                    }
                }
            }
            Err(e) => {
                last = e.to_string();
                false
            }
        });
        if ready {
            Ok(())
        } else {
            Err(format!(
                "Postfix on {a} not ready (want 220 and EHLO with AUTH and XCLIENT; AUTH needs \
                 libsasl2-modules): {last}\nmaillog:\n{}",
                tail(&self.maillog_path(), 20)
            ))
        }
    }

    pub fn addr(&self) -> SocketAddr {
        addr("127.0.0.1", self.port)
    }

    /// `127.0.0.1:PORT`, as `SmtpRelays` wants it.
    pub fn relay(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn maillog_path(&self) -> PathBuf {
        self.dir.join("maillog")
    }

    /// Everything Postfix has logged so far.
    pub fn maillog(&self) -> String {
        std::fs::read(self.maillog_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Maillog lines containing `pattern`.
    pub fn maillog_lines_with(&self, pattern: &str) -> Vec<String> {
        self.maillog()
            .lines()
            .filter(|l| l.contains(pattern))
            .map(str::to_string)
            .collect()
    }

    /// Wait until some maillog line contains every one of `patterns`; returns that line.
    pub fn wait_for_log_line(&self, patterns: &[&str], timeout: Duration) -> Option<String> {
        let mut found = None;
        wait_until(timeout, || {
            found = self
                .maillog()
                .lines()
                .find(|l| patterns.iter().all(|p| l.contains(p)))
                .map(str::to_string);
            found.is_some()
        });
        found
    }

    /// The Maildir every message is delivered to.
    pub fn maildir(&self) -> PathBuf {
        self.dir.join("mail").join("inbox")
    }

    /// Every delivered message (files of `new/` and `cur/`), as text.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(rd) = std::fs::read_dir(self.maildir().join(sub)) else {
                continue;
            };
            for e in rd.flatten().take(100_000) {
                if let Ok(b) = std::fs::read(e.path()) {
                    out.push(String::from_utf8_lossy(&b).into_owned());
                }
            }
        }
        out
    }

    /// A delivered message for which `pred` holds, if any (no waiting).
    pub fn find_message(&self, pred: impl Fn(&str) -> bool) -> Option<String> {
        self.messages().into_iter().find(|m| pred(m))
    }

    /// Wait until a message for which `pred` holds has been delivered.
    pub fn wait_for_message(
        &self,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Option<String> {
        let mut found = None;
        wait_until(timeout, || {
            found = self.find_message(&pred);
            found.is_some()
        });
        found
    }

    /// The master's PID from `queue/pid/master.pid`, if that process is alive and is a master.
    pub fn master_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.dir.join("queue/pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        (pid_alive(pid) && comm.trim() == "master").then_some(pid)
    }

    /// `postfix -c DIR stop`, then make sure the master (by its PID) is gone: bounded wait, then
    /// SIGKILL.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.running = false;
        let pid = self.master_pid();
        let _ = std::panic::catch_unwind(|| {
            run(
                Command::new("postfix").arg("-c").arg(&self.etc).arg("stop"),
                Duration::from_secs(30),
            )
        });
        if let Some(pid) = pid {
            if !wait_until(Duration::from_secs(20), || !pid_alive(pid)) {
                signal(pid, SIGKILL);
                wait_until(Duration::from_secs(5), || !pid_alive(pid));
            }
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.stop();
    }
}

/// uid and gid of `user` from /etc/passwd.
fn passwd_ids(user: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = text.lines().find(|l| l.split(':').next() == Some(user))?;
    let f: Vec<&str> = line.split(':').collect();
    Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
}

fn main_cf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "# private Postfix for the mmp integration tests
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mta.test
mydestination =
# Not 127.0.0.1: every proxied session comes from mmp's 127.0.0.1, so only the XCLIENT ADDR and
# LOGIN that mmp passes may decide.
mynetworks = 192.0.2.1/32
relay_domains =
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_sasl_authenticated_header = yes
# SASL must be on for an XCLIENT LOGIN to count as authenticated; the private sasldb is empty.
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = {d}/sasl
virtual_mailbox_domains = a.test b.test
virtual_transport = virtual
# Foreign domains (accepted only when relaying is permitted) land in the same Maildir.
default_transport = virtual
virtual_mailbox_base = {d}/mail
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
maillog_file = {d}/maillog
maillog_file_prefixes = /var, {d}
alias_maps =
alias_database =
biff = no
"
    )
}

/// Debian's master.cf with the `smtp inet` service on `127.0.0.1:port` and chroot off everywhere
/// (the private queue directory has no chroot files).
fn private_master_cf(system: &str, port: u16) -> String {
    let mut out = String::from("# private Postfix for the mmp integration tests\n");
    for line in system.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with('#') || line.starts_with(char::is_whitespace) || fields.len() < 8 {
            out += line;
        } else {
            let mut f: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
            if f[0] == "smtp" && f[1] == "inet" {
                f[0] = format!("127.0.0.1:{port}");
            }
            f[4] = "n".to_string();
            out += &f.join(" ");
        }
        out.push('\n');
    }
    out
}

/// The header block of a message with folded lines joined (one logical header per line).
pub fn unfolded_headers(msg: &str) -> String {
    let mut out = String::new();
    for l in msg.lines() {
        let l = l.trim_end_matches('\r');
        if l.is_empty() {
            break;
        }
        if l.starts_with([' ', '\t']) {
            out.push(' ');
            out.push_str(l.trim_start());
        } else {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(l);
        }
    }
    out
}

/// The first `Received:` header of a message, unfolded.
pub fn first_received(msg: &str) -> String {
    unfolded_headers(msg)
        .lines()
        .find(|l| l.starts_with("Received:"))
        .unwrap_or("")
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// An MTA without XCLIENT, and a dead port

/// A minimal SMTP server on 127.0.0.1 that does NOT offer XCLIENT: `220`, an EHLO reply with
/// PIPELINING and 8BITMIME only, `502` to anything else, `221` to QUIT. It records every command
/// line it receives. Stopped (accept loop ended, thread joined) on drop; each session is bounded.
pub struct FakeMta {
    pub port: u16,
    stop: Arc<AtomicBool>,
    received: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl FakeMta {
    #[track_caller]
    pub fn start() -> FakeMta {
        let l = TcpListener::bind(("127.0.0.1", 0)).expect("bind fake MTA");
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (s2, r2, c2) = (stop.clone(), received.clone(), connections.clone());
        let thread = std::thread::Builder::new()
            .name("fake-mta".into())
            .spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(600);
                while !s2.load(Ordering::SeqCst) && Instant::now() < deadline {
                    match l.accept() {
                        Ok((s, _)) => {
                            c2.fetch_add(1, Ordering::SeqCst);
                            let r = r2.clone();
                            let _ = std::thread::Builder::new()
                                .name("fake-mta-session".into())
                                .spawn(move || fake_session(s, r));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
            .expect("spawn fake MTA");
        FakeMta {
            port,
            stop,
            received,
            connections,
            thread: Some(thread),
        }
    }

    pub fn relay(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        addr("127.0.0.1", self.port)
    }

    /// Every command line received so far (all sessions).
    pub fn received(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for FakeMta {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn fake_session(s: TcpStream, received: Arc<Mutex<Vec<String>>>) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let Ok(rs) = s.try_clone() else { return };
    let mut r = BufReader::new(rs);
    let mut w = s;
    if w.write_all(b"220 fake.test ESMTP without XCLIENT\r\n")
        .is_err()
    {
        return;
    }
    for _ in 0..100 {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = line.trim_end().to_string();
        received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line.clone());
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-fake.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
            "HELO" => b"250 fake.test\r\n",
            "QUIT" => {
                let _ = w.write_all(b"221 2.0.0 Bye\r\n");
                return;
            }
            _ => b"502 5.5.2 Error: command not recognized\r\n",
        };
        if w.write_all(reply).is_err() {
            return;
        }
    }
}

/// A 127.0.0.1 port where nothing listens (free a moment ago): a relay that refuses at once.
pub fn dead_port() -> u16 {
    free_port("127.0.0.1")
}
