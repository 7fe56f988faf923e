//! A private Dovecot IMAP store on 127.0.0.2 or 127.0.0.3, with every test user in a passwd-file
//! and a pre-filled Maildir whose messages say which user and which store they belong to.

use super::*;

pub struct Dovecot {
    /// "store2" or "store3".
    pub name: &'static str,
    pub ip: &'static str,
    pub port: u16,
    /// The POP3 listener (same port on both stores, free on [`DEAD_STORE_IP`]).
    pub pop3_port: u16,
    pub dir: PathBuf,
    conf: PathBuf,
    child: Option<Child>,
}

impl Dovecot {
    /// Start the two stores on the same port (mmp has one BacksidePort), a port that is also
    /// free on [`DEAD_STORE_IP`] so the "store down" user really finds nothing there.
    #[track_caller]
    pub fn start_pair() -> (Dovecot, Dovecot) {
        Dovecot::start_pair_with("")
    }

    /// [`Dovecot::start_pair`] with `extra_conf` appended to both stores' `dovecot.conf`
    /// (a later setting overrides the test default, a repeated section such as
    /// `service imap { … }` merges into it). The benchmark raises limits this way; the
    /// integration tests pass nothing.
    #[track_caller]
    pub fn start_pair_with(extra_conf: &str) -> (Dovecot, Dovecot) {
        assert!(
            have_program("dovecot"),
            "dovecot not found: install dovecot-imapd (see .ci/run)"
        );
        assert!(
            is_root(),
            "the Dovecot stores must be started as root (default_login_user=dovenull)"
        );
        let users = users();
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port_on_all(&[STORE2_IP, STORE3_IP, DEAD_STORE_IP]);
            let pop3_port = free_port_on_all_but(&[STORE2_IP, STORE3_IP, DEAD_STORE_IP], port);
            let s2 =
                match Dovecot::start_full("store2", STORE2_IP, port, pop3_port, &users, extra_conf)
                {
                    Ok(s) => s,
                    Err(e) => {
                        last = e;
                        continue;
                    }
                };
            match Dovecot::start_full("store3", STORE3_IP, port, pop3_port, &users, extra_conf) {
                Ok(s3) => match s2.wait_pop3_ready().and_then(|_| s3.wait_pop3_ready()) {
                    Ok(()) => return (s2, s3),
                    Err(e) => last = e,
                },
                Err(e) => last = e,
            }
        }
        panic!("Dovecot stores did not start after 5 ports: {last}");
    }

    pub fn addr(&self) -> SocketAddr {
        addr(self.ip, self.port)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("dovecot.log")
    }

    /// One store with every user of `users`. Errors (with the log tail) if it does not greet.
    pub fn start(
        name: &'static str,
        ip: &'static str,
        port: u16,
        users: &[User],
    ) -> Result<Dovecot, String> {
        let pop3_port = free_port_on_all_but(&[ip], port);
        Dovecot::start_full(name, ip, port, pop3_port, users, "")
    }

    /// [`Dovecot::start`] with the POP3 listener on `pop3_port`.
    pub fn start_with_pop3(
        name: &'static str,
        ip: &'static str,
        port: u16,
        pop3_port: u16,
        users: &[User],
    ) -> Result<Dovecot, String> {
        Dovecot::start_full(name, ip, port, pop3_port, users, "")
    }

    /// [`Dovecot::start`] with `extra_conf` appended to the generated `dovecot.conf`.
    pub fn start_with(
        name: &'static str,
        ip: &'static str,
        port: u16,
        users: &[User],
        extra_conf: &str,
    ) -> Result<Dovecot, String> {
        let pop3_port = free_port_on_all_but(&[ip], port);
        Dovecot::start_full(name, ip, port, pop3_port, users, extra_conf)
    }

    /// One store: IMAP on `port`, POP3 on `pop3_port`, `extra_conf` appended to its config.
    pub fn start_full(
        name: &'static str,
        ip: &'static str,
        port: u16,
        pop3_port: u16,
        users: &[User],
        extra_conf: &str,
    ) -> Result<Dovecot, String> {
        let dir = temp_dir(name);
        let conf = dir.join("dovecot.conf");
        let mut passwd = String::new();
        for u in users {
            // Dovecot escapes `\` in the lookup key (auth_request_str_escape), so write it doubled.
            passwd += &format!(
                "{}:{{PLAIN}}{}::::::\n",
                u.uid.replace('\\', "\\\\"),
                u.password
            );
            let md = dir.join("home").join(&u.uid).join("Maildir");
            for sub in ["cur", "new", "tmp"] {
                std::fs::create_dir_all(md.join(sub)).map_err(|e| e.to_string())?;
            }
            let subject = u.subject_on(name);
            for i in 1..=u.count_on(name) {
                let msg = format!(
                    "From: fixture@a.test\r\nTo: {uid}\r\nSubject: {subject}\r\nDate: Mon, 1 Jan 2024 00:00:{i:02} +0000\r\nMessage-ID: <{i}.{idx}.{name}@mmp.test>\r\n\r\nMessage {i} of {uid} on {name}.\r\n",
                    uid = u.uid,
                    idx = u.index,
                );
                write_file(
                    &md.join("cur")
                        .join(format!("170000{i:04}.M{i}P{idx}.{name}:2,S", idx = u.index)),
                    msg,
                );
            }
        }
        write_file(&dir.join("passwd"), passwd);
        chown_tree(&dir.join("home"), 8, 8)?;
        let mut text = dovecot_conf(&dir, name, ip, port, pop3_port);
        if !extra_conf.is_empty() {
            text += "# extra settings of this run (override the defaults above)\n";
            text += extra_conf;
            text += "\n";
        }
        write_file(&conf, text);

        let out = std::fs::File::create(dir.join("dovecot.stderr")).map_err(|e| e.to_string())?;
        // -F keeps the master in the foreground as our child, so we stop and reap it by PID; its
        // PID is also what it writes to <base_dir>/master.pid.
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(|e| e.to_string())?)
            .stderr(out)
            .spawn()
            .map_err(|e| format!("spawn dovecot: {e}"))?;
        let mut d = Dovecot {
            name,
            ip,
            port,
            pop3_port,
            dir,
            conf,
            child: Some(child),
        };
        let a = d.addr();
        let mut exited = false;
        let mut greeting = String::new();
        let ok = wait_until(Duration::from_secs(20), || {
            if !matches!(d.child.as_mut().unwrap().try_wait(), Ok(None)) {
                exited = true;
                return true;
            }
            match ImapClient::connect(a) {
                Ok(mut c) => match c.read_line() {
                    Ok(Some(l)) => {
                        greeting = l;
                        greeting.starts_with("* OK")
                    }
                    _ => false,
                },
                Err(_) => false,
            }
        });
        if ok && !exited {
            // Warm up: the first login of a fresh instance takes seconds (auth process start-up),
            // more than mmp's BacksideTimeout; do it here, bounded, so cases see a ready store.
            let u = &users[0];
            let mut last = String::new();
            let warm = wait_until(Duration::from_secs(30), || match ImapClient::connect(a) {
                Ok(mut c) => {
                    let _ = c.read_line();
                    c.send_line(&format!(
                        "w1 LOGIN {} {}",
                        imap_client::quote(&u.uid),
                        imap_client::quote(&u.password)
                    ));
                    last = c
                        .read_until_tagged("w1")
                        .map(|mut l| l.pop().unwrap_or_default())
                        .unwrap_or_else(|e| e.to_string());
                    last.starts_with("w1 OK")
                }
                Err(e) => {
                    last = e.to_string();
                    false
                }
            });
            if warm {
                return Ok(d);
            }
            let why = format!(
                "{name}: warm-up login of {} failed: {last}; log:\n{}",
                u.uid,
                tail(&d.log_path(), 20)
            );
            drop(d);
            return Err(why);
        }
        let why = format!(
            "{name} on {ip}:{port} {}; stderr:\n{}\nlog:\n{}",
            if exited { "exited" } else { "never greeted" },
            tail(&d.dir.join("dovecot.stderr"), 20),
            tail(&d.log_path(), 20)
        );
        drop(d);
        Err(why)
    }

    /// Address of the POP3 listener.
    pub fn pop3_addr(&self) -> SocketAddr {
        addr(self.ip, self.pop3_port)
    }

    /// Wait (bounded) until the POP3 listener greets with `+OK`.
    pub fn wait_pop3_ready(&self) -> Result<(), String> {
        let a = self.pop3_addr();
        let mut last = String::new();
        let ok = wait_until(
            Duration::from_secs(20),
            || match super::pop_client::PopClient::connect(a) {
                Ok(mut c) => {
                    last = c.read_line().ok().flatten().unwrap_or_default();
                    last.starts_with("+OK")
                }
                Err(e) => {
                    last = e.to_string();
                    false
                }
            },
        );
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{}: POP3 on {a} never greeted: {last}; log:\n{}",
                self.name,
                tail(&self.log_path(), 20)
            ))
        }
    }

    /// PID of the master process (our child), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// PID recorded in `<base_dir>/master.pid`, if any.
    pub fn master_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("run").join("master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, Duration::from_secs(15));
        }
    }
}

/// A port free on every address in `ips` other than `avoid` (bounded number of tries).
fn free_port_on_all_but(ips: &[&str], avoid: u16) -> u16 {
    for _ in 0..20 {
        let p = free_port_on_all(ips);
        if p != avoid {
            return p;
        }
    }
    panic!("no port other than {avoid} free on all of {ips:?}");
}

fn chown_tree(p: &Path, uid: u32, gid: u32) -> Result<(), String> {
    std::os::unix::fs::chown(p, Some(uid), Some(gid))
        .map_err(|e| format!("chown {}: {e}", p.display()))?;
    if p.is_dir() {
        for e in std::fs::read_dir(p).map_err(|e| e.to_string())? {
            chown_tree(&e.map_err(|e| e.to_string())?.path(), uid, gid)?;
        }
    }
    Ok(())
}

fn dovecot_conf(dir: &Path, name: &str, ip: &str, port: u16, pop3_port: u16) -> String {
    let d = dir.display();
    format!(
        "# private mmp test store {name}
instance_name = mmp-test-{name}-{pid}-{port}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
listen = {ip}
protocols = imap pop3
ssl = no
default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 8
first_valid_gid = 8
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_username_chars =
auth_verbose = yes
login_trusted_networks = 127.0.0.0/8
mail_location = maildir:~/Maildir
mail_fsync = never
default_process_limit = 500
default_client_limit = 2000
passdb {{
  driver = passwd-file
  args = {d}/passwd
}}
userdb {{
  driver = static
  args = uid=8 gid=8 home={d}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  service_count = 0
  process_min_avail = 1
  client_limit = 1000
}}
service imap {{
  process_limit = 500
}}
protocol imap {{
  mail_max_userip_connections = 1000
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
  service_count = 0
  process_min_avail = 1
  client_limit = 1000
}}
service pop3 {{
  process_limit = 500
}}
protocol pop3 {{
  mail_max_userip_connections = 1000
}}
# No per-IP auth penalty: every login comes from 127.0.0.1 (mmp, or a forwarded client address)
# and the failure cases would otherwise slow every later login past mmp's BacksideTimeout.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
",
        pid = std::process::id()
    )
}
