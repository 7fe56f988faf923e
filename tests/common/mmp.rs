//! The mmp binary under test: its legacy config directory and its process.

use super::*;
use std::fs::File;

/// Path of the binary cargo built for this test run, or `$MMP_BIN` when set (to test another
/// build, e.g. a release binary).
pub fn mmp_bin() -> String {
    std::env::var("MMP_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_mmp").to_string())
}

/// Builder for a config directory: `AService.cfg` + `ImapProxyAService.cfg`, every option as
/// `default:Name value`. Values containing a space are written in double quotes.
#[derive(Clone, Debug)]
pub struct MmpConfig {
    pub aservice: Vec<(String, String)>,
    pub imap: Vec<(String, String)>,
    /// Raw lines appended to `ImapProxyAService.cfg` as they are.
    pub imap_raw: Vec<String>,
}

/// Text of `ServerDownAlert` in the default test config.
pub const SERVER_DOWN_ALERT: &str = "mmp test: store temporarily out of service";
pub const BANNER: &str = "mmp test";

impl MmpConfig {
    /// The standard test config for a directory at `ldap_url` and stores on `store_port`.
    /// The listening address is filled in by [`Mmp::start`].
    pub fn new(ldap_url: &str, store_port: u16) -> MmpConfig {
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        MmpConfig {
            aservice: vec![
                kv("ServiceList", "ImapProxyAService@127.0.0.1:0"),
                kv("LogLevel", "5"),
                kv("NumThreads", "4"),
            ],
            imap: vec![
                kv("LdapUrl", ldap_url),
                kv("BindDN", BIND_DN),
                kv("BindPass", BIND_PW),
                kv("SearchFormat", "(uid=%s)"),
                // The test directory has no domain tree: o=isp covers all users.
                kv("HostedDomains", "no"),
                kv("DefaultDomain", "a.test"),
                kv("BacksidePort", &store_port.to_string()),
                kv("ReplayFormat", "%s"),
                kv("Timeout", "1800"),
                kv("Banner", BANNER),
                kv("ServerDownAlert", SERVER_DOWN_ALERT),
                kv("BacksideTimeout", "3"),
                kv("LoginTimeout", "60"),
                kv("MaxLineBytes", "8192"),
                kv("MaxLiteralBytes", "8192"),
                kv("MaxBadCommands", "10"),
                kv("LogLevel", "5"),
                // The cases' own address is trusted, as an operator trusts a webmail host:
                // cases that fail many logins on purpose are not slowed by the bad-guy
                // delay, which bad_guy_delay_* cases test from other addresses.
                kv("BGExcluded", "127.0.0.1|255.255.255.255"),
            ],
            imap_raw: Vec::new(),
        }
    }

    /// Set (replace or append) an option of `ImapProxyAService.cfg`.
    pub fn set(mut self, key: &str, value: &str) -> MmpConfig {
        set_kv(&mut self.imap, key, value);
        self
    }

    /// Set an option of `AService.cfg`.
    pub fn set_aservice(mut self, key: &str, value: &str) -> MmpConfig {
        set_kv(&mut self.aservice, key, value);
        self
    }

    /// Drop an option of `ImapProxyAService.cfg`.
    pub fn without(mut self, key: &str) -> MmpConfig {
        self.imap.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self
    }

    /// Append a raw line to `ImapProxyAService.cfg`.
    pub fn raw_line(mut self, line: &str) -> MmpConfig {
        self.imap_raw.push(line.to_string());
        self
    }

    fn with_port(&self, port: u16) -> MmpConfig {
        self.clone().set_aservice(
            "ServiceList",
            &format!("ImapProxyAService@127.0.0.1:{port}"),
        )
    }

    /// Write the two files into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> ConfigDir {
        std::fs::create_dir_all(dir).unwrap();
        let header = "# written by the mmp integration tests\n";
        let body = |kvs: &[(String, String)]| -> String {
            kvs.iter()
                .map(|(k, v)| format!("default:{k} {}\n", quote_value(v)))
                .collect()
        };
        write_file(
            &dir.join("AService.cfg"),
            format!("{header}{}", body(&self.aservice)),
        );
        let mut imap = format!("{header}{}", body(&self.imap));
        for l in &self.imap_raw {
            imap += l;
            imap += "\n";
        }
        write_file(&dir.join("ImapProxyAService.cfg"), imap);
        ConfigDir {
            dir: dir.to_path_buf(),
        }
    }
}

fn set_kv(kvs: &mut Vec<(String, String)>, key: &str, value: &str) {
    match kvs.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
        Some(slot) => slot.1 = value.to_string(),
        None => kvs.push((key.to_string(), value.to_string())),
    }
}

fn quote_value(v: &str) -> String {
    if (v.contains(' ') || v.contains('\t') || v.is_empty()) && !v.starts_with('"') {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        v.to_string()
    }
}

/// A written config directory.
pub struct ConfigDir {
    pub dir: PathBuf,
}

impl ConfigDir {
    /// 1-based line number of `default:<key>` in `file`.
    #[track_caller]
    pub fn line_of(&self, file: &str, key: &str) -> usize {
        let text = std::fs::read_to_string(self.dir.join(file)).unwrap();
        let want = format!("default:{key} ");
        text.lines()
            .position(|l| l.starts_with(&want))
            .map(|i| i + 1)
            .unwrap_or_else(|| panic!("{key} not in {file}"))
    }

    /// `mmp -t -c DIR`: (exit code, stderr). Bounded.
    #[track_caller]
    pub fn check(&self) -> (Option<i32>, String) {
        let out = run(
            Command::new(mmp_bin()).arg("-t").arg("-c").arg(&self.dir),
            Duration::from_secs(20),
        );
        (out.status.code(), format!("{}{}", out.stderr, out.stdout))
    }
}

/// A running mmp (`mmp -f -c DIR`, stderr and stdout in `DIR/../mmp.log`).
pub struct Mmp {
    pub port: u16,
    pub config: ConfigDir,
    pub log_path: PathBuf,
    child: Option<Child>,
}

impl Mmp {
    /// Write `cfg` (with a free 127.0.0.1 port in ServiceList) and start mmp; waits until the
    /// port accepts. Fails with the log tail if mmp exits first (after 3 ports).
    #[track_caller]
    pub fn start(cfg: &MmpConfig) -> Mmp {
        let dir = temp_dir("mmp");
        let log_path = dir.join("mmp.log");
        let mut why = String::new();
        for attempt in 0..3 {
            let port = free_port("127.0.0.1");
            let config = cfg.with_port(port).write(&dir.join("config"));
            let log = File::options()
                .create(true)
                .append(true)
                .open(&log_path)
                .unwrap();
            let child = Command::new(mmp_bin())
                .arg("-f")
                .arg("-c")
                .arg(&config.dir)
                .env("RUST_BACKTRACE", "1")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", mmp_bin()));
            let mut m = Mmp {
                port,
                config,
                log_path: log_path.clone(),
                child: Some(child),
            };
            let a = m.addr();
            let mut exited = false;
            let up = wait_until(Duration::from_secs(10), || {
                if !m.is_running() {
                    exited = true;
                    return true;
                }
                port_accepts(a)
            });
            if up && !exited {
                return m;
            }
            why = format!(
                "attempt {}: mmp {} (port {port}); log tail:\n{}",
                attempt + 1,
                if exited {
                    "exited before accepting"
                } else {
                    "never accepted within 10s"
                },
                tail(&log_path, 30)
            );
            drop(m);
            if !exited {
                break; // running but not listening: a new port would not help
            }
            if !tail(&log_path, 30).to_lowercase().contains("in use") {
                break; // exited for another reason than a port race
            }
        }
        panic!("{why}");
    }

    pub fn addr(&self) -> SocketAddr {
        addr("127.0.0.1", self.port)
    }

    /// Start mmp with its IMAP service on the same (free) port on each of `ips`
    /// (`ServiceList ImapProxyAService@IP1:PORT|IP2:PORT…`); waits until every address
    /// accepts. [`Mmp::addr`] then names the first address's port on 127.0.0.1, which may
    /// not listen: use [`Mmp::addr_on`].
    #[track_caller]
    pub fn start_on(cfg: &MmpConfig, ips: &[&str]) -> Mmp {
        let dir = temp_dir("mmp");
        let log_path = dir.join("mmp.log");
        let mut why = String::new();
        for attempt in 0..3 {
            let port = free_port_on_all(ips);
            let list: Vec<String> = ips.iter().map(|ip| format!("{ip}:{port}")).collect();
            let config = cfg
                .clone()
                .set_aservice(
                    "ServiceList",
                    &format!("ImapProxyAService@{}", list.join("|")),
                )
                .write(&dir.join("config"));
            let log = File::options()
                .create(true)
                .append(true)
                .open(&log_path)
                .unwrap();
            let child = Command::new(mmp_bin())
                .arg("-f")
                .arg("-c")
                .arg(&config.dir)
                .env("RUST_BACKTRACE", "1")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", mmp_bin()));
            let mut m = Mmp {
                port,
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
                ips.iter().all(|ip| port_accepts(addr(ip, port)))
            });
            if up && !exited {
                return m;
            }
            why = format!(
                "attempt {}: mmp on {ips:?} port {port} {}; log tail:\n{}",
                attempt + 1,
                if exited { "exited" } else { "never accepted" },
                tail(&log_path, 30)
            );
            drop(m);
            if !exited || !tail(&log_path, 30).to_lowercase().contains("in use") {
                break;
            }
        }
        panic!("{why}");
    }

    /// The service's address on `ip` (for an mmp started with [`Mmp::start_on`]).
    pub fn addr_on(&self, ip: &str) -> SocketAddr {
        addr(ip, self.port)
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

    /// Wait until the log contains `pattern`.
    pub fn wait_for_log(&self, pattern: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.log().contains(pattern))
    }

    /// Connect and read mmp's greeting.
    #[track_caller]
    pub fn client(&self) -> ImapClient {
        ImapClient::connect_greeted(self.addr()).0
    }

    /// Connect, log `u` in with LOGIN (must succeed) and return the client.
    #[track_caller]
    pub fn logged_in(&self, u: &User) -> ImapClient {
        let mut c = self.client();
        let r = c.login("a1", &u.uid, &u.password);
        assert!(
            r.starts_with("a1 OK"),
            "login {} through mmp: {r:?}; log tail:\n{}",
            u.uid,
            tail(&self.log_path, 20)
        );
        c
    }

    /// mmp is still running and serves a fresh login of alice into her own mailbox.
    #[track_caller]
    pub fn assert_still_serving(&mut self) {
        assert!(
            self.is_running(),
            "mmp died; log tail:\n{}",
            tail(&self.log_path, 30)
        );
        let alice = user("alice@a.test");
        let mut c = self.logged_in(&alice);
        imap_client::assert_own_mailbox(&mut c, &alice);
    }

    /// The log has no sign of a Rust panic.
    #[track_caller]
    pub fn assert_no_panic_in_log(&self) {
        let log = self.log();
        assert!(
            !log.contains("panicked"),
            "mmp log shows a panic:\n{}",
            tail(&self.log_path, 40)
        );
    }
}

impl Drop for Mmp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, Duration::from_secs(10));
        }
    }
}
