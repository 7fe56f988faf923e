//! A private OpenLDAP server: `o=isp` with domains `ou=a.test` and `ou=b.test`, the test users of
//! [`super::users`], and a small test schema for `inetUserStatus` / `mailUserStatus`.

use super::*;
use std::fs::OpenOptions;

/// Test schema with private OIDs (1.3.6.1.4.1.99999): the two status attributes Sun's schema
/// defines, and an auxiliary class to hang them on.
pub const TEST_SCHEMA: &str = "\
attributetype ( 1.3.6.1.4.1.99999.1.1
\tNAME 'inetUserStatus'
\tDESC 'mmp test: account status (active, inactive, deleted)'
\tEQUALITY caseIgnoreMatch
\tSUBSTR caseIgnoreSubstringsMatch
\tSYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256}
\tSINGLE-VALUE )

attributetype ( 1.3.6.1.4.1.99999.1.2
\tNAME 'mailUserStatus'
\tDESC 'mmp test: mail service status (active, inactive, hold, removed, ...)'
\tEQUALITY caseIgnoreMatch
\tSUBSTR caseIgnoreSubstringsMatch
\tSYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256}
\tSINGLE-VALUE )

attributetype ( 1.3.6.1.4.1.99999.1.3
\tNAME 'mailDomain'
\tDESC 'mmp test: domain part of the login id'
\tEQUALITY caseIgnoreMatch
\tSYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256}
\tSINGLE-VALUE )

attributetype ( 1.3.6.1.4.1.99999.1.4
\tNAME 'mailAllowedServiceAccess'
\tDESC 'mmp test: own TCPAccess filter of a user (Sun syntax)'
\tEQUALITY caseIgnoreMatch
\tSYNTAX 1.3.6.1.4.1.1466.115.121.1.15{1024}
\tSINGLE-VALUE )

objectclass ( 1.3.6.1.4.1.99999.2.1
\tNAME 'mmpTestUser'
\tDESC 'mmp test: status attributes of a mail user'
\tSUP top AUXILIARY
\tMAY ( inetUserStatus $ mailUserStatus $ mailDomain $ mailAllowedServiceAccess ) )
";

pub struct Slapd {
    pub dir: PathBuf,
    pub port: u16,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    /// slapd's `-d` level: "0" for the shared directory, "256" (stats: one line per
    /// operation) for the domain-tree directories whose logs the cases read.
    debug: &'static str,
}

impl Slapd {
    /// Write config + data under a fresh temp dir, load it with slapadd, and start slapd on a
    /// free 127.0.0.1 port (retrying with another port if that one was taken meanwhile).
    #[track_caller]
    pub fn start_new() -> Slapd {
        Slapd::start_custom(TEST_SCHEMA, &ldif(&users()), "0")
    }

    /// A slapd with the same suffix, admin and access rules as [`Slapd::start_new`], but
    /// with `schema` as its private schema file, `data` as its content and `debug` as its
    /// `-d` level (`"256"` logs every operation to [`Slapd::log_path`]).
    #[track_caller]
    pub fn start_custom(schema: &str, data: &str, debug: &'static str) -> Slapd {
        for tool in ["slapd", "slapadd", "ldapsearch"] {
            assert!(
                have_program(tool),
                "{tool} not found: install slapd and ldap-utils (see .ci/run)"
            );
        }
        let dir = temp_dir("slapd");
        let conf = dir.join("slapd.conf");
        let log = dir.join("slapd.log");
        std::fs::create_dir_all(dir.join("db")).unwrap();
        write_file(&dir.join("mmp-test.schema"), schema);
        write_file(&conf, slapd_conf(&dir));
        write_file(&dir.join("data.ldif"), data);
        let out = run(
            Command::new("slapadd")
                .arg("-f")
                .arg(&conf)
                .arg("-l")
                .arg(dir.join("data.ldif")),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "slapadd failed ({}):\n{}{}",
            out.status,
            out.stdout,
            out.stderr
        );
        let mut s = Slapd {
            dir,
            port: 0,
            conf,
            log,
            child: None,
            debug,
        };
        let mut last = String::new();
        for _ in 0..5 {
            s.port = free_port("127.0.0.1");
            match s.try_start() {
                Ok(()) => return s,
                Err(e) => last = e,
            }
        }
        panic!("slapd did not start after 5 ports: {last}");
    }

    /// `ldap://127.0.0.1:PORT/o=isp`, the LdapUrl for mmp.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}/{}", self.port, SUFFIX)
    }

    /// `ldap://127.0.0.1:PORT` without base (for ldapsearch -H).
    pub fn host_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        addr("127.0.0.1", self.port)
    }

    /// slapd's own output (with `-d 256`, one line per operation).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything slapd has written to its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// PID of the running slapd, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Stop slapd (SIGTERM by PID, bounded wait, SIGKILL). The port then refuses connections.
    #[track_caller]
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, Duration::from_secs(10));
        }
        must_wait_until(Duration::from_secs(10), "slapd port to close", || {
            !port_accepts(self.addr())
        });
    }

    /// Start slapd again on the same port (after [`Slapd::stop`]).
    #[track_caller]
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "slapd already running");
        let mut last = String::new();
        // The port was ours a moment ago; retry briefly in case the old socket lingers.
        let ok = wait_until(Duration::from_secs(10), || match self.try_start() {
            Ok(()) => true,
            Err(e) => {
                last = e;
                false
            }
        });
        assert!(ok, "slapd did not restart on port {}: {last}", self.port);
    }

    fn try_start(&mut self) -> Result<(), String> {
        let logf = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| e.to_string())?;
        let child = Command::new("slapd")
            .arg("-h")
            .arg(format!("ldap://127.0.0.1:{}/", self.port))
            .arg("-f")
            .arg(&self.conf)
            .arg("-d")
            .arg(self.debug)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().map_err(|e| e.to_string())?)
            .stderr(logf)
            .spawn()
            .map_err(|e| format!("spawn slapd: {e}"))?;
        self.child = Some(child);
        let addr = self.addr();
        let mut exited = false;
        let up = wait_until(Duration::from_secs(15), || {
            if !self.is_running() {
                exited = true;
                return true;
            }
            port_accepts(addr)
        });
        if up && !exited {
            return Ok(());
        }
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, Duration::from_secs(5));
        }
        Err(format!(
            "slapd on port {} {}; log tail:\n{}",
            self.port,
            if exited { "exited" } else { "never accepted" },
            tail(&self.log, 20)
        ))
    }

    /// Run `ldapsearch` bound as the admin; returns its LDIF output (panics on failure).
    #[track_caller]
    pub fn search(&self, filter: &str, attrs: &[&str]) -> String {
        let out = run(
            Command::new("ldapsearch")
                .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H"])
                .arg(self.host_url())
                .args(["-D", BIND_DN, "-w", BIND_PW, "-b", SUFFIX])
                .arg(filter)
                .args(attrs),
            Duration::from_secs(20),
        );
        assert!(
            out.status.success(),
            "ldapsearch {filter} failed ({}): {}",
            out.status,
            out.stderr
        );
        out.stdout
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, Duration::from_secs(10));
        }
    }
}

fn slapd_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/misc.schema
include {d}/mmp-test.schema
pidfile {d}/slapd.pid
argsfile {d}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 10485760
suffix \"{SUFFIX}\"
rootdn \"{BIND_DN}\"
rootpw {BIND_PW}
directory {d}/db
index objectClass,uid eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
"
    )
}

/// The directory content: `o=isp`, one `ou` per domain, one entry per user.
pub fn ldif(users: &[User]) -> String {
    let mut s = format!("dn: {SUFFIX}\nobjectClass: organization\no: isp\n\n");
    for dom in ["a.test", "b.test"] {
        s += &format!("dn: ou={dom},{SUFFIX}\nobjectClass: organizationalUnit\nou: {dom}\n\n");
    }
    // Users of the hosted domains (see `domain_tree`) live only in the domain-tree directory.
    for u in users
        .iter()
        .filter(|u| matches!(u.domain(), "a.test" | "b.test"))
    {
        s += &format!(
            "dn: cn={label},ou={dom},{SUFFIX}
objectClass: inetOrgPerson
objectClass: inetLocalMailRecipient
objectClass: mmpTestUser
cn: {label}
sn: {label}
uid: {uid}
mail: {uid}
mailHost: {host}
mailDomain: {dom}
userPassword: {pw}
inetUserStatus: {is}
mailUserStatus: {ms}
{access}
",
            access = if u.label == "popper" {
                "mailAllowedServiceAccess: +pop:ALL$+smtp:ALL\n"
            } else {
                ""
            },
            label = u.label,
            dom = u.domain(),
            uid = u.uid,
            host = u.host,
            pw = u.password,
            is = u.inet_status,
            ms = u.mail_status,
        );
    }
    s
}
