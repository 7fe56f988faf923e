//! mmp with its POP3 and SMTP proxies: a config directory whose `ServiceList` names any of
//! `ImapProxyAService`, `PopProxyAService` and `SmtpProxyAService` (each on its own free
//! 127.0.0.1 port), and the running process. The IMAP-only [`Mmp`] stays as it is.

use super::*;
use std::fs::File;

pub use super::mmp::{BANNER, SERVER_DOWN_ALERT};

pub type Kvs = Vec<(String, String)>;

fn kv(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

fn set_kv(kvs: &mut Kvs, key: &str, value: &str) {
    match kvs.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
        Some(slot) => slot.1 = value.to_string(),
        None => kvs.push(kv(key, value)),
    }
}

/// `PopProxyAService.cfg` for a directory at `ldap_url` and stores whose POP3 port is
/// `pop3_port`: the IMAP file's keys with POP values. `PreAuth`/`AuthService` are off here;
/// [`pop_before_smtp`] switches them on.
pub fn pop_kvs(ldap_url: &str, pop3_port: u16) -> Kvs {
    vec![
        kv("LdapUrl", ldap_url),
        kv("BindDN", BIND_DN),
        kv("BindPass", BIND_PW),
        kv("SearchFormat", "(uid=%s)"),
        kv("HostedDomains", "no"),
        kv("DefaultDomain", "a.test"),
        kv("BacksidePort", &pop3_port.to_string()),
        kv("ReplayFormat", "%s"),
        kv("Timeout", "600"),
        kv("Banner", BANNER),
        kv("ServerDownAlert", SERVER_DOWN_ALERT),
        kv("BacksideTimeout", "3"),
        kv("LoginTimeout", "60"),
        kv("MaxLineBytes", "8192"),
        kv("MaxBadCommands", "10"),
        kv("LogLevel", "5"),
    ]
}

/// The three POP options of the sample file (reference §1.7) that record POP logins for
/// POP-before-SMTP.
pub fn pop_before_smtp(kvs: &mut Kvs) {
    set_kv(kvs, "PreAuth", "yes");
    set_kv(kvs, "AuthService", "yes");
    set_kv(kvs, "AuthServiceTTL", "900");
}

/// Longest SMTP command line in the standard test config.
pub const SMTP_MAX_LINE: usize = 2048;

/// `SmtpProxyAService.cfg` for a directory at `ldap_url` relaying to `relays`.
pub fn smtp_kvs(ldap_url: &str, relays: &str) -> Kvs {
    vec![
        kv("LdapUrl", ldap_url),
        kv("BindDN", BIND_DN),
        kv("BindPass", BIND_PW),
        kv("SearchFormat", "(uid=%s)"),
        kv("HostedDomains", "no"),
        kv("DefaultDomain", "a.test"),
        kv("SmtpRelays", relays),
        kv("MmpSmtpClientInfo", "xclient"),
        kv("FailoverTimeout", "10"),
        kv("Timeout", "600"),
        kv("Banner", BANNER),
        kv("BacksideTimeout", "3"),
        kv("LoginTimeout", "60"),
        kv("MaxLineBytes", &SMTP_MAX_LINE.to_string()),
        kv("MaxBadCommands", "10"),
        kv("LogLevel", "5"),
    ]
}

/// Which services an mmp runs and each one's options.
#[derive(Clone, Debug)]
pub struct ServicesConfig {
    /// `AService.cfg` options and the IMAP file (written always; listed only if `imap`).
    pub base: MmpConfig,
    pub imap: bool,
    pub pop: Option<Kvs>,
    pub smtp: Option<Kvs>,
}

impl ServicesConfig {
    /// Set an option of `PopProxyAService.cfg` (the POP service must be on).
    #[track_caller]
    pub fn pop(mut self, key: &str, value: &str) -> ServicesConfig {
        set_kv(
            self.pop.as_mut().expect("POP service not configured"),
            key,
            value,
        );
        self
    }

    /// Set an option of `SmtpProxyAService.cfg` (the SMTP service must be on).
    #[track_caller]
    pub fn smtp(mut self, key: &str, value: &str) -> ServicesConfig {
        set_kv(
            self.smtp.as_mut().expect("SMTP service not configured"),
            key,
            value,
        );
        self
    }

    /// Set an option of `AService.cfg`.
    pub fn aservice(mut self, key: &str, value: &str) -> ServicesConfig {
        self.base = self.base.set_aservice(key, value);
        self
    }

    /// Write the config dir with the services on the given ports.
    pub fn write(&self, dir: &Path, ports: &Ports) -> ConfigDir {
        let mut list = Vec::new();
        if let Some(p) = ports.imap {
            list.push(format!("ImapProxyAService@127.0.0.1:{p}"));
        }
        if let Some(p) = ports.pop {
            list.push(format!("PopProxyAService@127.0.0.1:{p}"));
        }
        if let Some(p) = ports.smtp {
            list.push(format!("SmtpProxyAService@127.0.0.1:{p}"));
        }
        let config = self
            .base
            .clone()
            .set_aservice("ServiceList", &list.join(" "))
            .write(dir);
        let header = "# written by the mmp integration tests\n";
        for (file, kvs) in [
            ("PopProxyAService.cfg", &self.pop),
            ("SmtpProxyAService.cfg", &self.smtp),
        ] {
            if let Some(kvs) = kvs {
                let body: String = kvs
                    .iter()
                    .map(|(k, v)| format!("default:{k} {}\n", quote_value(v)))
                    .collect();
                write_file(&dir.join(file), format!("{header}{body}"));
            }
        }
        config
    }
}

fn quote_value(v: &str) -> String {
    if (v.contains(' ') || v.contains('\t') || v.is_empty()) && !v.starts_with('"') {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        v.to_string()
    }
}

/// The listening ports of the services an mmp runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ports {
    pub imap: Option<u16>,
    pub pop: Option<u16>,
    pub smtp: Option<u16>,
}

impl Ports {
    fn all(&self) -> Vec<u16> {
        [self.imap, self.pop, self.smtp]
            .into_iter()
            .flatten()
            .collect()
    }
}

impl Env {
    /// The shared private Postfix, started on first use (and stopped when `Env` drops).
    #[track_caller]
    pub fn postfix(&self) -> &Postfix {
        match self.postfix.get_or_init(Postfix::start) {
            Ok(p) => p,
            Err(e) => panic!("Postfix fixture: {e}"),
        }
    }

    /// The POP3 port shared by both stores.
    pub fn store_pop3_port(&self) -> u16 {
        self.store2.pop3_port
    }

    /// mmp with the POP3 proxy only, standard options.
    pub fn pop_config(&self) -> ServicesConfig {
        ServicesConfig {
            base: self.config(),
            imap: false,
            pop: Some(pop_kvs(&self.slapd.url(), self.store_pop3_port())),
            smtp: None,
        }
    }

    /// mmp with the SMTP proxy only, relaying to the shared Postfix (started if needed).
    #[track_caller]
    pub fn smtp_config(&self) -> ServicesConfig {
        self.smtp_config_with_relays(&self.postfix().relay())
    }

    /// mmp with the SMTP proxy only, relaying to `relays`.
    pub fn smtp_config_with_relays(&self, relays: &str) -> ServicesConfig {
        ServicesConfig {
            base: self.config(),
            imap: false,
            pop: None,
            smtp: Some(smtp_kvs(&self.slapd.url(), relays)),
        }
    }

    /// mmp with both proxies, POP-before-SMTP on (PreAuth, AuthService, AuthServiceTTL 900).
    #[track_caller]
    pub fn pop_smtp_config(&self) -> ServicesConfig {
        let mut c = self.smtp_config();
        let mut pop = pop_kvs(&self.slapd.url(), self.store_pop3_port());
        pop_before_smtp(&mut pop);
        c.pop = Some(pop);
        c
    }
}

/// A running mmp with any of its three services (`mmp -f -c DIR`, output in `mmp.log`).
pub struct MmpServices {
    pub ports: Ports,
    pub config: ConfigDir,
    pub log_path: PathBuf,
    child: Option<Child>,
}

impl MmpServices {
    /// Write `cfg` with free 127.0.0.1 ports and start mmp; waits until every service port
    /// accepts. Fails with the log tail if mmp exits first (three tries if a port was taken).
    #[track_caller]
    pub fn start(cfg: &ServicesConfig) -> MmpServices {
        let dir = temp_dir("mmp-svc");
        let log_path = dir.join("mmp.log");
        let mut why = String::new();
        for attempt in 0..3 {
            let mut used = Vec::new();
            let mut pick = |on: bool| {
                on.then(|| {
                    let p = (0..20)
                        .map(|_| free_port("127.0.0.1"))
                        .find(|p| !used.contains(p))
                        .expect("free port");
                    used.push(p);
                    p
                })
            };
            let ports = Ports {
                imap: pick(cfg.imap),
                pop: pick(cfg.pop.is_some()),
                smtp: pick(cfg.smtp.is_some()),
            };
            assert!(!ports.all().is_empty(), "no service configured");
            let config = cfg.write(&dir.join("config"), &ports);
            let log = File::options()
                .create(true)
                .append(true)
                .open(&log_path)
                .unwrap();
            let child = Command::new(mmp::mmp_bin())
                .arg("-f")
                .arg("-c")
                .arg(&config.dir)
                .env("RUST_BACKTRACE", "1")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", mmp::mmp_bin()));
            let mut m = MmpServices {
                ports,
                config,
                log_path: log_path.clone(),
                child: Some(child),
            };
            let mut exited = false;
            let up = wait_until(Duration::from_secs(10), || {
                if !m.is_running() {
                    exited = true;
                    return true;
                }
                ports
                    .all()
                    .iter()
                    .all(|p| port_accepts(addr("127.0.0.1", *p)))
            });
            if up && !exited {
                return m;
            }
            why = format!(
                "attempt {}: mmp {} (ports {ports:?}); log tail:\n{}",
                attempt + 1,
                if exited {
                    "exited before accepting"
                } else {
                    "did not accept on every port within 10s"
                },
                tail(&log_path, 30)
            );
            drop(m);
            if !exited || !tail(&log_path, 30).to_lowercase().contains("in use") {
                break;
            }
        }
        panic!("{why}");
    }

    #[track_caller]
    pub fn pop_addr(&self) -> SocketAddr {
        addr("127.0.0.1", self.ports.pop.expect("no POP service"))
    }

    #[track_caller]
    pub fn smtp_addr(&self) -> SocketAddr {
        addr("127.0.0.1", self.ports.smtp.expect("no SMTP service"))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Everything mmp has logged so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        tail(&self.log_path, 30)
    }

    pub fn wait_for_log(&self, pattern: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.log().contains(pattern))
    }

    /// A greeted POP3 client (from 127.0.0.1).
    #[track_caller]
    pub fn pop(&self) -> PopClient {
        PopClient::connect_greeted(self.pop_addr()).0
    }

    /// A greeted POP3 client connecting from `src`.
    #[track_caller]
    pub fn pop_from(&self, src: &str) -> PopClient {
        PopClient::greeted_from(src, self.pop_addr()).0
    }

    /// A greeted SMTP client connecting from `src`.
    #[track_caller]
    pub fn smtp_from(&self, src: &str) -> SmtpClient {
        SmtpClient::greeted_from(src, self.smtp_addr()).0
    }

    /// mmp is alive and its log shows no panic.
    #[track_caller]
    pub fn assert_alive_without_panic(&mut self) {
        assert!(
            self.is_running(),
            "mmp died; log tail:\n{}",
            self.log_tail()
        );
        let log = self.log();
        assert!(
            !log.contains("panicked"),
            "mmp log shows a panic:\n{}",
            self.log_tail()
        );
    }
}

impl Drop for MmpServices {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, Duration::from_secs(10));
        }
    }
}
