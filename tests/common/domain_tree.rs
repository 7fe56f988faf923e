//! A second directory layout: a Sun-style domain tree under `o=isp` (Schema 1 DC tree and a
//! Schema 2 organization), in a private slapd that logs every operation (`-d 256`, the
//! `stats` level), so that a case counts the searches and binds mmp made from slapd's own log.
//!
//! ```text
//! o=isp
//! ├─ cn=mmp6              a second service identity (BindDN of a vdmap entry)
//! ├─ dc=test
//! │  ├─ dc=h1             inetDomainBaseDN o=h1.test,o=isp; mailAccessProxyReplay %A[mail]
//! │  ├─ dc=h2             inetDomainBaseDN o=h2.test,o=isp; inetDomainSearchFilter (mail=%s)
//! │  ├─ dc=alias          inetCanonicalDomainName h1.test
//! │  ├─ dc=alias2         an alias entry: aliasedObjectName dc=h1,dc=test,o=isp
//! │  ├─ dc=off            inetDomainStatus inactive
//! │  ├─ dc=hold           mailDomainStatus hold
//! │  └─ dc=pre            mailAccessProxyPreAuth yes
//! ├─ o=h1.test            users uid=<local> (hana, hugo, hilda, hans, hazel, hedy, heinz, hermes)
//! ├─ o=h2.test            users uid=h2-<local>, found only by the domain's filter (mail=...)
//! ├─ o=off.test, o=hold.test, o=pre.test
//! └─ o=s2.test            Schema 2: sunManagedOrganization, sunPreferredDomain s2.test
//! ```
//!
//! The users are [`HOSTED_USERS`]; [`super::users`] appends them, so both stores know them by
//! their full address (with the usual store-specific messages).

use super::*;
use std::collections::HashMap;

/// (login id = store user = `mail`, password, mailHost) of every hosted-domain user.
pub const HOSTED_USERS: &[(&str, &str, &str)] = &[
    ("hana@h1.test", "hana-Pw-61", STORE2_IP),
    ("hugo@h1.test", "hugo-Pw-62", STORE3_IP),
    ("hilda@h1.test", "hilda-Pw-63", STORE2_IP),
    ("hans@h1.test", "hans-Pw-64", STORE3_IP),
    ("hazel@h1.test", "hazel-Pw-65", STORE2_IP),
    ("hedy@h1.test", "hedy-Pw-66", STORE3_IP),
    ("heinz@h1.test", "heinz-Pw-72", STORE2_IP),
    ("hermes@h1.test", "hermes-Pw-73", STORE3_IP),
    // Same local part as hana@h1.test, another person on the other store.
    ("hana@h2.test", "hana2-Pw-67", STORE3_IP),
    ("olga@off.test", "olga-Pw-68", STORE2_IP),
    ("holly@hold.test", "holly-Pw-69", STORE2_IP),
    ("pia@pre.test", "pia-Pw-70", STORE2_IP),
    ("sam@s2.test", "sam-Pw-71", STORE3_IP),
];

/// DN and password of the second service identity.
pub const MMP6_DN: &str = "cn=mmp6,o=isp";
pub const MMP6_PW: &str = "mmp6-S3cret-88";

/// The domain attributes of Sun's schema, with private OIDs, on top of [`slapd::TEST_SCHEMA`].
const DOMAIN_SCHEMA: &str = "\
attributetype ( 1.3.6.1.4.1.99999.1.10
\tNAME 'inetDomainBaseDN'
\tDESC 'mmp test: where the users of a hosted domain live'
\tEQUALITY distinguishedNameMatch
\tSYNTAX 1.3.6.1.4.1.1466.115.121.1.12
\tSINGLE-VALUE )

attributetype ( 1.3.6.1.4.1.99999.1.11
\tNAME 'inetDomainStatus'
\tDESC 'mmp test: domain status (active, inactive, deleted)'
\tEQUALITY caseIgnoreMatch
\tSYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256}
\tSINGLE-VALUE )

attributetype ( 1.3.6.1.4.1.99999.1.12
\tNAME 'mailDomainStatus'
\tDESC 'mmp test: mail service status of a domain'
\tEQUALITY caseIgnoreMatch
\tSYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256}
\tSINGLE-VALUE )

attributetype ( 1.3.6.1.4.1.99999.1.13
\tNAME 'inetDomainSearchFilter'
\tDESC 'mmp test: the filter that finds a user of this domain'
\tEQUALITY caseExactMatch
\tSYNTAX 1.3.6.1.4.1.1466.115.121.1.15{1024}
\tSINGLE-VALUE )

attributetype ( 1.3.6.1.4.1.99999.1.14
\tNAME 'mailAccessProxyReplay'
\tDESC 'mmp test: the domain replay format'
\tEQUALITY caseExactMatch
\tSYNTAX 1.3.6.1.4.1.1466.115.121.1.15{1024}
\tSINGLE-VALUE )

attributetype ( 1.3.6.1.4.1.99999.1.15
\tNAME 'mailAccessProxyPreAuth'
\tDESC 'mmp test: the domain PreAuth setting'
\tEQUALITY caseIgnoreMatch
\tSYNTAX 1.3.6.1.4.1.1466.115.121.1.15{16}
\tSINGLE-VALUE )

attributetype ( 1.3.6.1.4.1.99999.1.16
\tNAME 'inetCanonicalDomainName'
\tDESC 'mmp test: the domain this one is an alias of'
\tEQUALITY caseIgnoreMatch
\tSYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256}
\tSINGLE-VALUE )

attributetype ( 1.3.6.1.4.1.99999.1.17
\tNAME 'sunPreferredDomain'
\tDESC 'mmp test: the DNS domain of a Schema 2 organization'
\tEQUALITY caseIgnoreMatch
\tSYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256}
\tSINGLE-VALUE )

objectclass ( 1.3.6.1.4.1.99999.2.10
\tNAME 'inetDomain'
\tDESC 'mmp test: a hosted domain of a Schema 1 DC tree'
\tSUP top AUXILIARY
\tMAY ( inetDomainBaseDN $ inetDomainStatus $ mailDomainStatus $ inetDomainSearchFilter $
\t      mailAccessProxyReplay $ mailAccessProxyPreAuth $ inetCanonicalDomainName ) )

objectclass ( 1.3.6.1.4.1.99999.2.11
\tNAME 'sunManagedOrganization'
\tDESC 'mmp test: a hosted domain of Schema 2'
\tSUP top AUXILIARY
\tMAY ( sunPreferredDomain $ associatedDomain $ inetDomainStatus $ mailDomainStatus $
\t      inetDomainSearchFilter $ mailAccessProxyReplay $ mailAccessProxyPreAuth ) )
";

/// The `uid` attribute of a hosted user's entry: the local part, except in h2.test, whose
/// users can be found only by the domain's own filter `(mail=%s)`.
pub fn tree_uid(login: &str) -> String {
    let (local, domain) = login.split_once('@').unwrap_or((login, ""));
    match domain {
        "h2.test" => format!("h2-{local}"),
        _ => local.to_string(),
    }
}

/// DN of a hosted user's entry.
pub fn tree_dn(login: &str) -> String {
    let domain = login.split_once('@').map(|(_, d)| d).unwrap_or("");
    format!("uid={},o={domain},{SUFFIX}", tree_uid(login))
}

/// The LDIF of the domain tree.
pub fn tree_ldif() -> String {
    let mut s = format!("dn: {SUFFIX}\nobjectClass: organization\no: isp\n\n");
    s += &format!(
        "dn: {MMP6_DN}\nobjectClass: person\ncn: mmp6\nsn: mmp6\nuserPassword: {MMP6_PW}\n\n"
    );
    s += &format!("dn: dc=test,{SUFFIX}\nobjectClass: domain\ndc: test\n\n");
    let dc = |label: &str, extra: &str| {
        format!(
            "dn: dc={label},dc=test,{SUFFIX}\nobjectClass: domain\nobjectClass: inetDomain\ndc: {label}\n{extra}\n"
        )
    };
    let base = |d: &str| format!("inetDomainBaseDN: o={d},{SUFFIX}\n");
    s += &dc(
        "h1",
        &format!(
            "{}inetDomainStatus: active\nmailDomainStatus: active\nmailAccessProxyReplay: %A[mail]\n",
            base("h1.test")
        ),
    );
    s += &dc(
        "h2",
        &format!(
            "{}inetDomainStatus: active\ninetDomainSearchFilter: (mail=%s)\n",
            base("h2.test")
        ),
    );
    s += &dc("alias", "inetCanonicalDomainName: h1.test\n");
    s += &format!(
        "dn: dc=alias2,dc=test,{SUFFIX}\nobjectClass: alias\nobjectClass: dcObject\ndc: alias2\naliasedObjectName: dc=h1,dc=test,{SUFFIX}\n\n"
    );
    s += &dc(
        "off",
        &format!("{}inetDomainStatus: inactive\n", base("off.test")),
    );
    s += &dc(
        "hold",
        &format!(
            "{}inetDomainStatus: active\nmailDomainStatus: hold\n",
            base("hold.test")
        ),
    );
    s += &dc(
        "pre",
        &format!("{}mailAccessProxyPreAuth: yes\n", base("pre.test")),
    );
    for d in ["h1.test", "h2.test", "off.test", "hold.test", "pre.test"] {
        s += &format!("dn: o={d},{SUFFIX}\nobjectClass: organization\no: {d}\n\n");
    }
    s += &format!(
        "dn: o=s2.test,{SUFFIX}\nobjectClass: organization\nobjectClass: sunManagedOrganization\no: s2.test\nsunPreferredDomain: s2.test\ninetDomainStatus: active\n\n"
    );
    for (login, pw, host) in HOSTED_USERS {
        let local = login.split('@').next().unwrap_or(login);
        s += &format!(
            "dn: {dn}
objectClass: inetOrgPerson
objectClass: inetLocalMailRecipient
objectClass: mmpTestUser
cn: {local}
sn: {local}
uid: {uid}
mail: {login}
mailHost: {host}
userPassword: {pw}
inetUserStatus: active
mailUserStatus: active

",
            dn = tree_dn(login),
            uid = tree_uid(login),
        );
    }
    s
}

/// One operation slapd logged (`-d 256`): a search or a bind, with its result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub conn: u64,
    pub op: u64,
    pub kind: OpKind,
    /// The LDAP result code, once slapd logged the RESULT line.
    pub err: Option<u32>,
    /// The DN the connection was bound as (successfully) when this operation arrived; empty
    /// for anonymous.
    pub bound_as: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    Search {
        base: String,
        scope: u32,
        filter: String,
    },
    Bind {
        dn: String,
    },
}

impl Op {
    pub fn is_search(&self) -> bool {
        matches!(self.kind, OpKind::Search { .. })
    }
    pub fn search_base(&self) -> Option<&str> {
        match &self.kind {
            OpKind::Search { base, .. } => Some(base),
            _ => None,
        }
    }
    pub fn filter(&self) -> Option<&str> {
        match &self.kind {
            OpKind::Search { filter, .. } => Some(filter),
            _ => None,
        }
    }
    pub fn bind_dn(&self) -> Option<&str> {
        match &self.kind {
            OpKind::Bind { dn } => Some(dn),
            _ => None,
        }
    }
}

/// `key="value"` or `key=value` out of a slapd stats line.
fn field(line: &str, key: &str) -> Option<String> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[at..];
    if let Some(q) = rest.strip_prefix('"') {
        // Values are quoted; a quote inside is not expected in our data.
        let end = q.find("\" ").or_else(|| q.rfind('"'))?;
        Some(q[..end].to_string())
    } else {
        Some(rest.split_whitespace().next().unwrap_or("").to_string())
    }
}

/// The operations in a slapd `-d 256` log, in order.
pub fn parse_ops(log: &str) -> Vec<Op> {
    let mut ops: Vec<Op> = Vec::new();
    let mut index: HashMap<(u64, u64), usize> = HashMap::new();
    // Per connection: the DN of a bind in progress, and the identity in force.
    let mut pending_bind: HashMap<(u64, u64), String> = HashMap::new();
    let mut identity: HashMap<u64, String> = HashMap::new();
    for line in log.lines().take(2_000_000) {
        let Some(at) = line.find("conn=") else {
            continue;
        };
        let owned = format!(" {}", &line[at..]);
        let line = owned.as_str();
        let (Some(conn), Some(op)) = (
            field(line, "conn").and_then(|v| v.parse::<u64>().ok()),
            field(line, "op").and_then(|v| v.parse::<u64>().ok()),
        ) else {
            continue;
        };
        let bound_as = identity.get(&conn).cloned().unwrap_or_default();
        if line.contains(" SRCH base=") {
            let kind = OpKind::Search {
                base: field(line, "base").unwrap_or_default(),
                scope: field(line, "scope")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(99),
                filter: field(line, "filter").unwrap_or_default(),
            };
            index.insert((conn, op), ops.len());
            ops.push(Op {
                conn,
                op,
                kind,
                err: None,
                bound_as,
            });
        } else if line.contains(" BIND dn=") && line.contains(" method=") {
            let dn = field(line, "dn").unwrap_or_default();
            pending_bind.insert((conn, op), dn.clone());
            // A new bind drops the old identity whatever its outcome.
            identity.remove(&conn);
            index.insert((conn, op), ops.len());
            ops.push(Op {
                conn,
                op,
                kind: OpKind::Bind { dn },
                err: None,
                bound_as,
            });
        } else if line.contains(" RESULT ") {
            let err = field(line, "err").and_then(|v| v.parse::<u32>().ok());
            if let Some(&i) = index.get(&(conn, op)) {
                if ops[i].err.is_none() {
                    ops[i].err = err;
                }
            }
            if let Some(dn) = pending_bind.remove(&(conn, op)) {
                if err == Some(0) {
                    identity.insert(conn, dn);
                }
            }
        }
    }
    ops
}

/// The domain-tree directory: a private slapd with [`tree_ldif`], logging every operation.
pub struct DomainTree {
    pub slapd: Slapd,
}

impl DomainTree {
    #[track_caller]
    pub fn start() -> DomainTree {
        let schema = format!("{}\n{DOMAIN_SCHEMA}", slapd::TEST_SCHEMA);
        DomainTree {
            slapd: Slapd::start_custom(&schema, &tree_ldif(), "256"),
        }
    }

    /// `ldap://127.0.0.1:PORT/o=isp`.
    pub fn url(&self) -> String {
        self.slapd.url()
    }

    /// Every search and bind slapd logged so far.
    pub fn ops(&self) -> Vec<Op> {
        parse_ops(&self.slapd.log_text())
    }

    /// How many operations slapd has logged so far (a mark for [`DomainTree::ops_since`]).
    pub fn mark(&self) -> usize {
        self.ops().len()
    }

    /// The operations logged after `mark`. slapd may log an operation's RESULT line just
    /// after sending the result, so this waits (up to 2 s) until every one has its result.
    pub fn ops_since(&self, mark: usize) -> Vec<Op> {
        let mut ops = Vec::new();
        wait_until(Duration::from_secs(2), || {
            ops = self.ops().into_iter().skip(mark).collect();
            ops.iter().all(|o| o.err.is_some())
        });
        ops
    }

    /// Searches after `mark` whose base is `base` (case-insensitive).
    pub fn searches_under(&self, mark: usize, base: &str) -> Vec<Op> {
        self.ops_since(mark)
            .into_iter()
            .filter(|o| {
                o.search_base()
                    .is_some_and(|b| b.eq_ignore_ascii_case(base))
            })
            .collect()
    }

    /// Binds after `mark` as `dn` (case-insensitive).
    pub fn binds_as(&self, mark: usize, dn: &str) -> Vec<Op> {
        self.ops_since(mark)
            .into_iter()
            .filter(|o| o.bind_dn().is_some_and(|d| d.eq_ignore_ascii_case(dn)))
            .collect()
    }

    /// Failure message context: the last operations.
    pub fn describe(&self, mark: usize) -> String {
        self.ops_since(mark)
            .iter()
            .map(|o| format!("{o:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Run `ldapsearch` bound as the admin (base scope when `base_only`).
    #[track_caller]
    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> String {
        let out = run(
            Command::new("ldapsearch")
                .args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H"])
                .arg(self.slapd.host_url())
                .args(["-D", BIND_DN, "-w", BIND_PW, "-b", base])
                .arg(filter)
                .args(attrs),
            Duration::from_secs(20),
        );
        assert!(
            out.status.success(),
            "ldapsearch -b {base} {filter} failed ({}): {}",
            out.status,
            out.stderr
        );
        out.stdout
    }
}

/// The PreAuth line of the seed (reference §5.1) for `user`, as a whole log line:
/// `^\d{8} \d{6} \(sid 0x[0-9a-f]+\) USER pre-authenticated - client 127\.0\.0\.\d+, server
/// 127\.0\.0\.\d+$` (the regex, hand-written: the tests take no regex dependency). Returns the
/// server address of the line when it matches.
pub fn preauth_line_server(line: &str, user: &str) -> Option<String> {
    fn digits(s: &str, n: usize) -> Option<&str> {
        let d = s.get(..n)?;
        d.bytes().all(|b| b.is_ascii_digit()).then(|| &s[n..])
    }
    fn ip_127(s: &str) -> Option<(&str, &str)> {
        let rest = s.strip_prefix("127.0.0.")?;
        let n = rest.bytes().take_while(u8::is_ascii_digit).count();
        (n > 0).then(|| (&s[..8 + n], &rest[n..]))
    }
    let rest = digits(line, 8)?.strip_prefix(' ')?;
    let rest = digits(rest, 6)?.strip_prefix(" (sid 0x")?;
    let hex = rest
        .bytes()
        .take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        .count();
    if hex == 0 {
        return None;
    }
    let rest = rest[hex..].strip_prefix(") ")?;
    let rest = rest.strip_prefix(user)?;
    let rest = rest.strip_prefix(" pre-authenticated - client ")?;
    let (_, rest) = ip_127(rest)?;
    let rest = rest.strip_prefix(", server ")?;
    let (server, rest) = ip_127(rest)?;
    rest.is_empty().then(|| server.to_string())
}

/// Lines of `log` that are the PreAuth line of `user`.
pub fn preauth_lines(log: &str, user: &str) -> Vec<String> {
    log.lines()
        .filter(|l| preauth_line_server(l, user).is_some())
        .map(str::to_string)
        .collect()
}

/// Lines of a Dovecot store's log that name `uid` (its logins and its failed attempts).
pub fn store_lines_of(store: &Dovecot, uid: &str) -> Vec<String> {
    let text = std::fs::read(store.log_path())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let a = format!("<{uid}>");
    let b = format!("({uid},");
    text.lines()
        .filter(|l| l.contains(&a) || l.contains(&b))
        .map(str::to_string)
        .collect()
}

/// A listener on 127.0.0.1 that accepts connections and never says anything (a directory
/// that hangs). Holds at most 64 connections; stops (and closes them) when dropped.
pub struct SilentListener {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl SilentListener {
    pub fn start() -> SilentListener {
        let l = TcpListener::bind(("127.0.0.1", 0)).expect("bind silent listener");
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            let mut accepted = 0;
            // Bounded: at most 10 minutes, then it stops by itself.
            let deadline = Instant::now() + Duration::from_secs(600);
            while !flag.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                match l.accept() {
                    Ok((s, _)) if held.len() < 64 => {
                        accepted += 1;
                        held.push(s);
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            accepted
        });
        SilentListener {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// `ldap://127.0.0.1:PORT/o=isp`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}/{SUFFIX}", self.port)
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
