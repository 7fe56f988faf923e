//! TLS fixtures: a test PKI made with rcgen ([`Pki`], once per run), the stores' TLS listeners
//! and store administrator ([`StoreTls`], added to the shared Dovecot stores by [`Env::start`]),
//! an mmp with SSL ports for any of its services ([`TlsMmp`]), and a line client that speaks
//! plain TCP, implicit TLS or STARTTLS with rustls ([`LineClient`]).
//!
//! The PKI (PEM files under one temp dir):
//!
//! | file | subject | signed by | use |
//! |---|---|---|---|
//! | `ca.pem` | `O=mmp test, CN=mmp test CA` | itself | trusted for clients, mmp's and the stores' certificates |
//! | `evil-ca.pem` | `O=mmp test, CN=mmp evil CA` | itself | trusted by nobody |
//! | `mmp.pem`/`.key` | `CN=localhost`, SAN `localhost`, IP `127.0.0.1` | test CA | mmp's server certificate |
//! | `store.pem`/`.key` | `CN=mmp test store`, SAN `localhost`, IP `127.0.0.2`, `127.0.0.3` | test CA | both stores |
//! | `alice.pem` | `CN=alice, emailAddress=alice@a.test` | test CA | maps to alice (store2) |
//! | `carol.pem` | `CN=carol, emailAddress=carol@b.test` | test CA | maps to carol (store3) |
//! | `expired.pem` | as alice, valid 2000..2001 | test CA | handshake must fail |
//! | `untrusted.pem` | as alice | evil CA | handshake must fail |
//! | `nobody.pem` | `CN=nobody, emailAddress=nobody@a.test` | test CA | maps to no entry |
//! | `twousers.pem` | `CN=b.test users, OU=b.test` | test CA | maps to carol AND dave |
//! | `imap-a.pem`/`.key` | `CN=imap.a.test`, SAN `imap.a.test` | test CA | `SSLServerNameCert` for SNI `imap.a.test` |
//! | `imap-b.pem`/`.key` | `CN=imap.b.test`, SAN `imap.b.test` | test CA | `SSLServerNameCert` for SNI `imap.b.test` |
//!
//! [`CERTMAP`] maps `e` (emailAddress) to `mail` and `OU` to `mailDomain`, so `twousers.pem`
//! gives `(mailDomain=b.test)`, which matches both b.test users of the directory.

use super::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io::Write;
use std::sync::Arc;

/// The store administrator known to both stores (a Dovecot master user).
pub const STORE_ADMIN: &str = "mmpstore";
pub const STORE_ADMIN_PASS: &str = "mmpstore-Adm1n-66";

/// certmap.conf of the certificate-login cases.
pub const CERTMAP: &str = "# written by the mmp TLS tests
certmap default default
default:DNComps
default:FilterComps e=mail,ou=mailDomain
";

/// PKCS#9 emailAddress.
const EMAIL_OID: &[u64] = &[1, 2, 840, 113549, 1, 9, 1];

/// A certificate and its key as PEM files.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The subject as `openssl x509 -subject -nameopt RFC2253` would print it (for messages).
    pub subject: String,
}

/// Every certificate the TLS cases use (see the module doc).
pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub evil_ca: PathBuf,
    pub mmp: Leaf,
    pub store: Leaf,
    pub alice: Leaf,
    pub carol: Leaf,
    pub expired: Leaf,
    pub untrusted: Leaf,
    pub nobody: Leaf,
    pub two_users: Leaf,
    /// mmp's certificate for clients asking for `imap.a.test` (SNI).
    pub sni_a: Leaf,
    /// mmp's certificate for clients asking for `imap.b.test` (SNI).
    pub sni_b: Leaf,
    /// `certmap.conf` with [`CERTMAP`].
    pub certmap: PathBuf,
    /// Dovecot master-user passwd-file holding [`STORE_ADMIN`].
    pub master_passwd: PathBuf,
}

static PKI: OnceLock<Pki> = OnceLock::new();

/// The run's PKI, made on first use.
pub fn pki() -> &'static Pki {
    PKI.get_or_init(Pki::make)
}

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

enum Kind {
    Server,
    Client,
}

impl Ca {
    fn new(cn: &str) -> Ca {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "mmp test");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    /// A leaf for `dn` (`("CN", v)`, `("OU", v)`, `("e", v)`), written as `DIR/name.pem|key`.
    fn leaf(
        &self,
        dir: &Path,
        name: &str,
        sans: &[&str],
        dn: &[(&str, &str)],
        kind: Kind,
        expired: bool,
    ) -> Leaf {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("SANs");
        params.distinguished_name = DistinguishedName::new();
        let mut subject = Vec::new();
        for (attr, value) in dn {
            match *attr {
                "CN" => params.distinguished_name.push(DnType::CommonName, *value),
                "OU" => params
                    .distinguished_name
                    .push(DnType::OrganizationalUnitName, *value),
                "O" => params
                    .distinguished_name
                    .push(DnType::OrganizationName, *value),
                "e" => params.distinguished_name.push(
                    DnType::CustomDnType(EMAIL_OID.to_vec()),
                    rcgen::DnValue::Ia5String(
                        rcgen::string::Ia5String::try_from(*value).expect("ASCII e-mail"),
                    ),
                ),
                other => panic!("no DN attribute {other} in the test PKI"),
            }
            let shown = if *attr == "e" { "emailAddress" } else { attr };
            subject.insert(0, format!("{shown}={value}"));
        }
        params.extended_key_usages = vec![match kind {
            Kind::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Kind::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        } else {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2099, 1, 1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        write_file(&c, cert.pem());
        write_file(&k, key.serialize_pem());
        Leaf {
            cert: c,
            key: k,
            subject: subject.join(","),
        }
    }
}

impl Pki {
    fn make() -> Pki {
        let dir = temp_dir("pki");
        let ca = Ca::new("mmp test CA");
        let evil = Ca::new("mmp evil CA");
        write_file(&dir.join("ca.pem"), ca.issuer.pem());
        write_file(&dir.join("evil-ca.pem"), evil.issuer.pem());
        let alice = [("CN", "alice"), ("e", "alice@a.test")];
        let (s, c) = (Kind::Server, Kind::Client);
        let mmp = ca.leaf(
            &dir,
            "mmp",
            &["localhost", "127.0.0.1"],
            &[("CN", "localhost")],
            s,
            false,
        );
        let store = ca.leaf(
            &dir,
            "store",
            &["localhost", STORE2_IP, STORE3_IP],
            &[("CN", "mmp test store")],
            Kind::Server,
            false,
        );
        let pki = Pki {
            ca: dir.join("ca.pem"),
            evil_ca: dir.join("evil-ca.pem"),
            mmp,
            store,
            alice: ca.leaf(&dir, "alice", &[], &alice, c, false),
            carol: ca.leaf(
                &dir,
                "carol",
                &[],
                &[("CN", "carol"), ("e", "carol@b.test")],
                Kind::Client,
                false,
            ),
            expired: ca.leaf(&dir, "expired", &[], &alice, Kind::Client, true),
            untrusted: evil.leaf(&dir, "untrusted", &[], &alice, Kind::Client, false),
            nobody: ca.leaf(
                &dir,
                "nobody",
                &[],
                &[("CN", "nobody"), ("e", "nobody@a.test")],
                Kind::Client,
                false,
            ),
            two_users: ca.leaf(
                &dir,
                "twousers",
                &[],
                &[("CN", "b.test users"), ("OU", "b.test")],
                Kind::Client,
                false,
            ),
            sni_a: ca.leaf(
                &dir,
                "imap-a",
                &["imap.a.test"],
                &[("CN", "imap.a.test")],
                Kind::Server,
                false,
            ),
            sni_b: ca.leaf(
                &dir,
                "imap-b",
                &["imap.b.test"],
                &[("CN", "imap.b.test")],
                Kind::Server,
                false,
            ),
            certmap: dir.join("certmap.conf"),
            master_passwd: dir.join("master-users"),
            dir,
        };
        write_file(&pki.certmap, CERTMAP);
        write_file(
            &pki.master_passwd,
            format!("{STORE_ADMIN}:{{PLAIN}}{STORE_ADMIN_PASS}::::::\n"),
        );
        pki
    }
}

// ---------------------------------------------------------------------------------------------
// The stores' TLS side

/// What the shared stores get on top of their plain config: `ssl = yes` with `store.pem`, an
/// IMAPS and a POP3S listener (same ports on both stores, free on the dead store's address
/// too), and [`STORE_ADMIN`] as a master user: SASL PLAIN with authzid = user and authcid =
/// admin. No `auth_master_user_separator`: with `*` the test user `st*r@a.test` would be read
/// as user `st` logging in through master `r@a.test`.
#[derive(Clone, Debug)]
pub struct StoreTls {
    pub imaps_port: u16,
    pub pop3s_port: u16,
}

impl StoreTls {
    /// Make the PKI (if needed) and choose the ports.
    pub fn prepare() -> StoreTls {
        pki();
        let ips = [STORE2_IP, STORE3_IP, DEAD_STORE_IP];
        let imaps_port = free_port_on_all(&ips);
        let pop3s_port = (0..20)
            .map(|_| free_port_on_all(&ips))
            .find(|p| *p != imaps_port)
            .expect("a second free port");
        StoreTls {
            imaps_port,
            pop3s_port,
        }
    }

    /// The lines appended to both stores' `dovecot.conf`.
    pub fn dovecot_conf(&self) -> String {
        let p = pki();
        let dh = Path::new("/usr/share/dovecot/dh.pem");
        let dh_line = if dh.is_file() {
            format!("ssl_dh = <{}\n", dh.display())
        } else {
            String::new()
        };
        format!(
            "# TLS and the store administrator (tests/common/tls.rs)
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
{dh_line}passdb {{
  driver = passwd-file
  args = {master}
  master = yes
  pass = yes
}}
service imap-login {{
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3s {{
    port = {pop3s}
    ssl = yes
  }}
}}
",
            cert = p.store.cert.display(),
            key = p.store.key.display(),
            master = p.master_passwd.display(),
            imaps = self.imaps_port,
            pop3s = self.pop3s_port,
        )
    }

    /// Wait (bounded) until both stores greet over IMAPS and POP3S.
    pub fn wait_ready(&self) -> Result<(), String> {
        for ip in [STORE2_IP, STORE3_IP] {
            for (port, greeting) in [(self.imaps_port, "* OK"), (self.pop3s_port, "+OK")] {
                let a = addr(ip, port);
                let mut last = String::new();
                let ok = wait_until(Duration::from_secs(20), || {
                    match LineClient::tls(a, &client_config(None)) {
                        Ok(mut c) => match c.read_line() {
                            Ok(Some(l)) => {
                                last = l;
                                last.starts_with(greeting)
                            }
                            other => {
                                last = format!("{other:?}");
                                false
                            }
                        },
                        Err(e) => {
                            last = e.to_string();
                            false
                        }
                    }
                });
                if !ok {
                    return Err(format!("TLS listener {a} never greeted: {last}"));
                }
            }
        }
        Ok(())
    }
}

impl Env {
    /// The stores' TLS listeners and administrator (set by [`Env::start`]).
    #[track_caller]
    pub fn store_tls(&self) -> &StoreTls {
        self.store_tls
            .as_ref()
            .expect("these fixtures were started without store TLS")
    }
}

// ---------------------------------------------------------------------------------------------
// rustls client configurations

fn roots(ca: &Path) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("CA PEM") {
        roots.add(c.expect("CA certificate")).expect("CA accepted");
    }
    roots
}

/// A client trusting the test CA, presenting `cert` if given.
pub fn client_config(cert: Option<&Leaf>) -> Arc<ClientConfig> {
    client_config_trusting(&pki().ca, cert)
}

/// A client trusting the CA(s) in `ca`, presenting `cert` if given.
pub fn client_config_trusting(ca: &Path, cert: Option<&Leaf>) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots(ca));
    Arc::new(match cert {
        None => builder.with_no_client_auth(),
        Some(leaf) => {
            let chain = CertificateDer::pem_file_iter(&leaf.cert)
                .expect("cert PEM")
                .collect::<Result<Vec<_>, _>>()
                .expect("cert");
            let key = PrivateKeyDer::from_pem_file(&leaf.key).expect("key PEM");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client certificate")
        }
    })
}

/// The (first) certificate of a PEM file, as DER.
#[track_caller]
pub fn certificate_der(pem: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(pem)
        .expect("cert PEM")
        .next()
        .expect("a certificate")
        .expect("cert")
        .as_ref()
        .to_vec()
}

// ---------------------------------------------------------------------------------------------
// A line client over plain TCP or TLS

/// Bound on one read.
pub const TLS_READ_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_LINES: usize = 10_000;
const MAX_LINE: usize = 1 << 20;

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Gone,
}

/// One connection, plain or TLS, read line by line (IMAP, POP3 and SMTP helpers on top).
pub struct LineClient {
    stream: Stream,
    buf: Vec<u8>,
    pub transcript: Vec<String>,
}

fn server_name(a: SocketAddr) -> ServerName<'static> {
    ServerName::IpAddress(a.ip().into())
}

fn tcp(s: TcpStream) -> io::Result<TcpStream> {
    s.set_read_timeout(Some(TLS_READ_TIMEOUT))?;
    s.set_write_timeout(Some(TLS_READ_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Run the TLS handshake over `sock` (bounded); the client's side of it is over when this
/// returns Ok. In TLS 1.3 a server that refuses the client certificate says so only with an
/// alert the client reads later.
fn handshake(
    sock: TcpStream,
    cfg: &Arc<ClientConfig>,
    name: ServerName<'static>,
) -> io::Result<StreamOwned<ClientConnection, TcpStream>> {
    let mut conn = ClientConnection::new(cfg.clone(), name).map_err(io::Error::other)?;
    let mut sock = sock;
    for _ in 0..100 {
        if !conn.is_handshaking() {
            break;
        }
        let (rd, wr) = conn.complete_io(&mut sock)?;
        if rd == 0 && wr == 0 && conn.is_handshaking() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "peer closed during the TLS handshake",
            ));
        }
    }
    if conn.is_handshaking() {
        return Err(io::Error::other("TLS handshake did not finish"));
    }
    Ok(StreamOwned::new(conn, sock))
}

impl LineClient {
    /// A plain TCP connection (nothing read).
    pub fn plain(a: SocketAddr) -> io::Result<LineClient> {
        let s = tcp(TcpStream::connect_timeout(&a, Duration::from_secs(5))?)?;
        Ok(LineClient {
            stream: Stream::Plain(s),
            buf: Vec::new(),
            transcript: Vec::new(),
        })
    }

    /// A plain connection from source address `src`.
    pub fn plain_from(src: &str, a: SocketAddr) -> io::Result<LineClient> {
        let s = tcp(smtp_client::connect_from(src, a)?)?;
        Ok(LineClient {
            stream: Stream::Plain(s),
            buf: Vec::new(),
            transcript: Vec::new(),
        })
    }

    /// Implicit TLS: connect and run the handshake (nothing read after it).
    pub fn tls(a: SocketAddr, cfg: &Arc<ClientConfig>) -> io::Result<LineClient> {
        let mut c = LineClient::plain(a)?;
        c.upgrade(cfg, server_name(a))?;
        Ok(c)
    }

    /// [`LineClient::tls`] from source address `src`.
    pub fn tls_from(src: &str, a: SocketAddr, cfg: &Arc<ClientConfig>) -> io::Result<LineClient> {
        let mut c = LineClient::plain_from(src, a)?;
        c.upgrade(cfg, server_name(a))?;
        Ok(c)
    }

    /// Implicit TLS asking for the server name `name` (SNI); an IP address sends no SNI.
    pub fn tls_named(a: SocketAddr, cfg: &Arc<ClientConfig>, name: &str) -> io::Result<LineClient> {
        let name = ServerName::try_from(name.to_string()).map_err(io::Error::other)?;
        let mut c = LineClient::plain(a)?;
        c.upgrade(cfg, name)?;
        Ok(c)
    }

    /// The server's certificate (DER), `None` on plain connections.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        match &self.stream {
            Stream::Tls(t) => t
                .conn
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.as_ref().to_vec()),
            _ => None,
        }
    }

    /// After the server's "go ahead" to STARTTLS/STLS: the handshake on the same socket. Bytes
    /// the server sent after its answer in plain text are an error (never kept).
    pub fn starttls(&mut self, cfg: &Arc<ClientConfig>) -> io::Result<()> {
        if !self.buf.is_empty() {
            return Err(io::Error::other(format!(
                "the server sent plain text after its STARTTLS answer: {:?}",
                String::from_utf8_lossy(&self.buf)
            )));
        }
        let a = self.tcp().peer_addr()?;
        self.upgrade(cfg, server_name(a))
    }

    fn upgrade(&mut self, cfg: &Arc<ClientConfig>, name: ServerName<'static>) -> io::Result<()> {
        let Stream::Plain(s) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(io::Error::other("not a plain connection"));
        };
        self.stream = Stream::Tls(Box::new(handshake(s, cfg, name)?));
        Ok(())
    }

    /// Bytes received but not yet read as lines (lossy UTF-8).
    pub fn buffered(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match &self.stream {
            Stream::Plain(s) => s,
            Stream::Tls(t) => t.get_ref(),
            Stream::Gone => panic!("connection gone"),
        }
    }

    /// The negotiated protocol version, for messages (`None` on plain connections).
    pub fn tls_version(&self) -> Option<String> {
        match &self.stream {
            Stream::Tls(t) => t.conn.protocol_version().map(|v| format!("{v:?}")),
            _ => None,
        }
    }

    pub fn set_read_timeout(&self, t: Duration) {
        let _ = self.tcp().set_read_timeout(Some(t));
    }

    fn read_some(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 8192];
        let n = match &mut self.stream {
            Stream::Plain(s) => s.read(&mut tmp)?,
            Stream::Tls(t) => t.read(&mut tmp)?,
            Stream::Gone => 0,
        };
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// One line without CRLF (lossy UTF-8); `None` at EOF or reset.
    pub fn read_line(&mut self) -> io::Result<Option<String>> {
        for _ in 0..100_000 {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                while matches!(line.last(), Some(b'\n') | Some(b'\r')) {
                    line.pop();
                }
                let l = String::from_utf8_lossy(&line).into_owned();
                self.transcript.push(l.clone());
                return Ok(Some(l));
            }
            if self.buf.len() > MAX_LINE {
                return Err(io::Error::other("line too long"));
            }
            match self.read_some() {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("no line after 100000 reads"))
    }

    /// A line that must arrive.
    #[track_caller]
    pub fn expect_line(&mut self) -> String {
        match self.read_line() {
            Ok(Some(l)) => l,
            Ok(None) => panic!("connection closed; transcript: {:#?}", self.transcript),
            Err(e) => panic!("read failed: {e}; transcript: {:#?}", self.transcript),
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.stream {
            Stream::Plain(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
            Stream::Tls(t) => {
                t.write_all(bytes)?;
                t.flush()
            }
            Stream::Gone => Err(io::Error::other("connection gone")),
        }
    }

    #[track_caller]
    pub fn send_line(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes())
            .unwrap_or_else(|e| panic!("send {line:?}: {e}; transcript {:#?}", self.transcript));
    }

    /// Every line that arrives until EOF (true) or until `timeout` passes (false).
    pub fn lines_within(&mut self, timeout: Duration) -> (Vec<String>, bool) {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        for _ in 0..MAX_LINES {
            let now = Instant::now();
            if now >= deadline {
                return (out, false);
            }
            self.set_read_timeout(deadline - now);
            match self.read_line() {
                Ok(Some(l)) => out.push(l),
                Ok(None) => return (out, true),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return (out, false)
                }
                // A TLS alert or a broken connection: closed.
                Err(_) => return (out, true),
            }
        }
        (out, false)
    }

    // --- IMAP

    /// Send `tag text`, read until the tagged reply; all lines, tagged one last.
    #[track_caller]
    pub fn imap(&mut self, tag: &str, text: &str) -> Vec<String> {
        self.send_line(&format!("{tag} {text}"));
        self.imap_until(tag)
    }

    /// Read until the line tagged `tag` (literals are not interpreted: tests avoid them).
    #[track_caller]
    pub fn imap_until(&mut self, tag: &str) -> Vec<String> {
        let prefix = format!("{tag} ");
        let mut out = Vec::new();
        for _ in 0..MAX_LINES {
            let l = self.expect_line();
            let done = l.starts_with(&prefix);
            out.push(l);
            if done {
                return out;
            }
        }
        panic!("no tagged reply {tag} in {MAX_LINES} lines");
    }

    /// The tagged reply of `tag text`.
    #[track_caller]
    pub fn imap_tagged(&mut self, tag: &str, text: &str) -> String {
        self.imap(tag, text).pop().unwrap()
    }

    /// The words of the `* CAPABILITY` line (upper case).
    #[track_caller]
    pub fn imap_capabilities(&mut self, tag: &str) -> Vec<String> {
        let lines = self.imap(tag, "CAPABILITY");
        assert!(
            lines
                .last()
                .is_some_and(|l| l.starts_with(&format!("{tag} OK"))),
            "CAPABILITY: {lines:?}"
        );
        lines
            .iter()
            .find_map(|l| l.strip_prefix("* CAPABILITY "))
            .unwrap_or_else(|| panic!("no * CAPABILITY in {lines:?}"))
            .split_whitespace()
            .map(|w| w.to_ascii_uppercase())
            .collect()
    }

    /// `tag LOGIN "user" "pass"`; the tagged reply.
    #[track_caller]
    pub fn imap_login(&mut self, tag: &str, user: &str, pass: &str) -> String {
        self.imap_tagged(
            tag,
            &format!(
                "LOGIN {} {}",
                imap_client::quote(user),
                imap_client::quote(pass)
            ),
        )
    }

    /// INBOX has `u`'s own message count and subject (the user's own store).
    #[track_caller]
    pub fn assert_imap_own_mailbox(&mut self, u: &User) {
        let lines = self.imap("s1", "SELECT INBOX");
        imap_client::assert_ok(&lines, "s1");
        let n = imap_client::exists_count(&lines).unwrap_or_else(|| panic!("no EXISTS: {lines:?}"));
        let lines = self.imap("f1", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])");
        imap_client::assert_ok(&lines, "f1");
        let subject = lines
            .iter()
            .find(|l| l.starts_with("Subject:"))
            .cloned()
            .unwrap_or_else(|| panic!("no Subject in {lines:?}"));
        assert_eq!(
            (subject.trim_end(), n),
            (
                format!("Subject: {}", u.expected_subject()).as_str(),
                u.expected_count()
            ),
            "reached the wrong mailbox for {} (want its mailbox on {})",
            u.uid,
            u.store()
        );
    }

    // --- POP3

    /// One command, its status line.
    #[track_caller]
    pub fn pop(&mut self, line: &str) -> String {
        self.send_line(line);
        self.expect_line()
    }

    /// A command with a multi-line answer: (status, body without the final dot).
    #[track_caller]
    pub fn pop_multi(&mut self, line: &str) -> (String, Vec<String>) {
        let st = self.pop(line);
        if !st.starts_with("+OK") {
            return (st, Vec::new());
        }
        let mut body = Vec::new();
        for _ in 0..MAX_LINES {
            let l = self.expect_line();
            if l == "." {
                return (st, body);
            }
            body.push(l.strip_prefix('.').map(str::to_string).unwrap_or(l));
        }
        panic!("multi-line reply to {line} too long");
    }

    /// CAPA's capability lines (upper case).
    #[track_caller]
    pub fn pop_capa(&mut self) -> Vec<String> {
        let (st, body) = self.pop_multi("CAPA");
        assert!(st.starts_with("+OK"), "CAPA: {st:?}");
        body.iter().map(|l| l.to_ascii_uppercase()).collect()
    }

    /// STAT and TOP 1 0 show `u`'s own mailbox.
    #[track_caller]
    pub fn assert_pop_own_mailbox(&mut self, u: &User) {
        let st = self.pop("STAT");
        let (n, _) = pop_client::parse_stat(&st).unwrap_or_else(|| panic!("STAT: {st:?}"));
        let (st, body) = self.pop_multi("TOP 1 0");
        assert!(st.starts_with("+OK"), "TOP 1 0: {st:?}");
        let subject = pop_client::subject_of(&body).unwrap_or_default();
        assert_eq!(
            (subject.as_str(), n),
            (
                format!("Subject: {}", u.expected_subject()).as_str(),
                u.expected_count()
            ),
            "reached the wrong POP3 mailbox for {} (want its mailbox on {})",
            u.uid,
            u.store()
        );
    }

    // --- SMTP

    /// One reply (all its lines).
    #[track_caller]
    pub fn smtp_reply(&mut self) -> smtp_client::Reply {
        let mut r = smtp_client::Reply::default();
        for _ in 0..1000 {
            let l = self.expect_line();
            let code = l.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            let more = l.as_bytes().get(3) == Some(&b'-');
            r.code = code;
            r.lines.push(l);
            if !more {
                return r;
            }
        }
        panic!("SMTP reply longer than 1000 lines");
    }

    #[track_caller]
    pub fn smtp(&mut self, line: &str) -> smtp_client::Reply {
        self.send_line(line);
        self.smtp_reply()
    }

    /// MAIL, RCPT, DATA, `body` (dot-stuffed), `.`; the first refusal or the final reply.
    #[track_caller]
    pub fn smtp_send_mail(&mut self, from: &str, to: &str, body: &str) -> smtp_client::Reply {
        for cmd in [format!("MAIL FROM:<{from}>"), format!("RCPT TO:<{to}>")] {
            let r = self.smtp(&cmd);
            if r.code != 250 && r.code != 251 {
                return r;
            }
        }
        let r = self.smtp("DATA");
        if r.code != 354 {
            return r;
        }
        let mut data = String::new();
        for l in body.lines() {
            if l.starts_with('.') {
                data.push('.');
            }
            data.push_str(l);
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        self.send_raw(data.as_bytes())
            .unwrap_or_else(|e| panic!("DATA: {e}"));
        self.smtp_reply()
    }
}

// ---------------------------------------------------------------------------------------------
// mmp with SSL ports

/// Which of mmp's services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Imap,
    Pop,
    Smtp,
}

impl Proto {
    pub fn service(self) -> &'static str {
        match self {
            Proto::Imap => "ImapProxyAService",
            Proto::Pop => "PopProxyAService",
            Proto::Smtp => "SmtpProxyAService",
        }
    }
}

/// The services `cfg` runs.
pub fn protos(cfg: &ServicesConfig) -> Vec<Proto> {
    let mut v = Vec::new();
    if cfg.imap {
        v.push(Proto::Imap);
    }
    if cfg.pop.is_some() {
        v.push(Proto::Pop);
    }
    if cfg.smtp.is_some() {
        v.push(Proto::Smtp);
    }
    v
}

/// Set `key` in the file of `p`.
pub fn set_in(cfg: ServicesConfig, p: Proto, key: &str, value: &str) -> ServicesConfig {
    match p {
        Proto::Imap => ServicesConfig {
            base: cfg.base.clone().set(key, value),
            ..cfg
        },
        Proto::Pop => cfg.pop(key, value),
        Proto::Smtp => cfg.smtp(key, value),
    }
}

/// Set `key` in the file of every service `cfg` runs.
pub fn set_all(cfg: ServicesConfig, key: &str, value: &str) -> ServicesConfig {
    protos(&cfg)
        .into_iter()
        .fold(cfg, |c, p| set_in(c, p, key, value))
}

/// `SSLEnable yes` with mmp's certificate in every service of `cfg`.
pub fn with_ssl(cfg: ServicesConfig) -> ServicesConfig {
    let p = pki();
    let cfg = set_all(cfg, "SSLEnable", "yes");
    let cfg = set_all(cfg, "SSLCertFile", &p.mmp.cert.display().to_string());
    set_all(cfg, "SSLKeyFile", &p.mmp.key.display().to_string())
}

/// [`with_ssl`] plus certificate login: `SSLCACertFile` (test CA), `CertMapFile` ([`CERTMAP`]),
/// `StoreAdmin`/`StoreAdminPass`.
pub fn with_cert_login(cfg: ServicesConfig) -> ServicesConfig {
    let p = pki();
    let cfg = with_ssl(cfg);
    let cfg = set_all(cfg, "SSLCACertFile", &p.ca.display().to_string());
    let cfg = set_all(cfg, "CertMapFile", &p.certmap.display().to_string());
    let cfg = set_all(cfg, "StoreAdmin", STORE_ADMIN);
    set_all(cfg, "StoreAdminPass", STORE_ADMIN_PASS)
}

/// TLS towards the stores (IMAPS / POP3S ports of the stores), trusting the CA in `ca`.
pub fn with_store_tls(env: &Env, cfg: ServicesConfig, ca: &Path) -> ServicesConfig {
    let st = env.store_tls();
    let mut cfg = cfg;
    if cfg.imap {
        cfg = set_in(
            cfg,
            Proto::Imap,
            "SSLBacksidePort",
            &st.imaps_port.to_string(),
        );
        cfg = set_in(
            cfg,
            Proto::Imap,
            "SSLBacksideCACertFile",
            &ca.display().to_string(),
        );
    }
    if cfg.pop.is_some() {
        cfg = set_in(
            cfg,
            Proto::Pop,
            "SSLBacksidePort",
            &st.pop3s_port.to_string(),
        );
        cfg = set_in(
            cfg,
            Proto::Pop,
            "SSLBacksideCACertFile",
            &ca.display().to_string(),
        );
    }
    cfg
}

/// STARTTLS towards the stores (`SSLBacksideStartTLS yes`: their plain IMAP / POP3 ports,
/// upgraded before the login), trusting the CA in `ca`.
pub fn with_store_starttls(cfg: ServicesConfig, ca: &Path) -> ServicesConfig {
    let mut cfg = cfg;
    for p in [Proto::Imap, Proto::Pop] {
        if protos(&cfg).contains(&p) {
            cfg = set_in(cfg, p, "SSLBacksideStartTLS", "yes");
            cfg = set_in(cfg, p, "SSLBacksideCACertFile", &ca.display().to_string());
        }
    }
    cfg
}

impl Env {
    /// IMAP only, as a [`ServicesConfig`] (so that TLS options apply alike to every service).
    pub fn imap_services_config(&self) -> ServicesConfig {
        ServicesConfig {
            base: self.config(),
            imap: true,
            pop: None,
            smtp: None,
        }
    }
}

/// A running mmp whose services each listen on a plain port and (with `ssl`) an SSL port
/// (`Svc@127.0.0.1:P|127.0.0.1:S` in `ServiceList`, `SSLPorts S` in the service's file).
pub struct TlsMmp {
    pub plain: services::Ports,
    pub ssl: services::Ports,
    pub config: ConfigDir,
    pub log_path: PathBuf,
    child: Option<Child>,
}

impl TlsMmp {
    /// Write `cfg` with free ports and start mmp; waits until every port accepts (three tries
    /// if a port was taken meanwhile).
    #[track_caller]
    pub fn start(cfg: &ServicesConfig, ssl: bool) -> TlsMmp {
        let dir = temp_dir("mmp-tls");
        let log_path = dir.join("mmp.log");
        let which = protos(cfg);
        assert!(!which.is_empty(), "no service configured");
        let mut why = String::new();
        for attempt in 0..3 {
            let mut used: Vec<u16> = Vec::new();
            let mut pick = || {
                let p = (0..20)
                    .map(|_| free_port("127.0.0.1"))
                    .find(|p| !used.contains(p))
                    .expect("free port");
                used.push(p);
                p
            };
            let mut plain = services::Ports::default();
            let mut sslp = services::Ports::default();
            let mut list = Vec::new();
            let mut c = cfg.clone();
            for p in &which {
                let pp = pick();
                let sp = ssl.then(&mut pick);
                let slot = |ports: &mut services::Ports, v: Option<u16>| match p {
                    Proto::Imap => ports.imap = v,
                    Proto::Pop => ports.pop = v,
                    Proto::Smtp => ports.smtp = v,
                };
                slot(&mut plain, Some(pp));
                slot(&mut sslp, sp);
                match sp {
                    Some(s) => {
                        list.push(format!("{}@127.0.0.1:{pp}|127.0.0.1:{s}", p.service()));
                        c = set_in(c, *p, "SSLPorts", &s.to_string());
                    }
                    None => list.push(format!("{}@127.0.0.1:{pp}", p.service())),
                }
            }
            let cdir = dir.join("config");
            c.write(&cdir, &plain);
            let config = c
                .base
                .clone()
                .set_aservice("ServiceList", &list.join(" "))
                .write(&cdir);
            let log = std::fs::File::options()
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
            let mut m = TlsMmp {
                plain,
                ssl: sslp,
                config,
                log_path: log_path.clone(),
                child: Some(child),
            };
            let all: Vec<u16> = used.clone();
            let mut exited = false;
            let up = wait_until(Duration::from_secs(10), || {
                if !m.is_running() {
                    exited = true;
                    return true;
                }
                all.iter().all(|p| port_accepts(addr("127.0.0.1", *p)))
            });
            if up && !exited {
                return m;
            }
            why = format!(
                "attempt {}: mmp {} (ServiceList {}); log tail:\n{}",
                attempt + 1,
                if exited {
                    "exited before accepting"
                } else {
                    "did not accept on every port within 10s"
                },
                list.join(" "),
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
    fn port(ports: &services::Ports, p: Proto) -> SocketAddr {
        let port = match p {
            Proto::Imap => ports.imap,
            Proto::Pop => ports.pop,
            Proto::Smtp => ports.smtp,
        };
        addr("127.0.0.1", port.unwrap_or_else(|| panic!("no {p:?} port")))
    }

    /// The plain (STARTTLS) port of `p`.
    #[track_caller]
    pub fn plain_addr(&self, p: Proto) -> SocketAddr {
        TlsMmp::port(&self.plain, p)
    }

    /// The SSL (implicit TLS) port of `p`.
    #[track_caller]
    pub fn ssl_addr(&self, p: Proto) -> SocketAddr {
        TlsMmp::port(&self.ssl, p)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

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

    /// mmp is alive and its log shows no panic.
    #[track_caller]
    pub fn assert_alive_without_panic(&mut self) {
        assert!(
            self.is_running(),
            "mmp died; log tail:\n{}",
            self.log_tail()
        );
        assert!(
            !self.log().contains("panicked"),
            "mmp log shows a panic:\n{}",
            self.log_tail()
        );
    }
}

impl Drop for TlsMmp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, Duration::from_secs(10));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// External tools

/// Run `cmd` with `input` on its stdin (then closed), bounded by `timeout` (killed by PID).
#[track_caller]
pub fn run_with_input(cmd: &mut Command, input: &[u8], timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {desc}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let t_in = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
        // Keep stdin open a little so that a client reading it does not quit before the
        // server's answers arrive; dropping it closes it.
        std::thread::sleep(Duration::from_millis(1500));
    });
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
    let _ = t_in.join();
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned();
    if !done {
        panic!("{desc} did not finish within {timeout:?}; stdout:\n{stdout}\nstderr:\n{stderr}");
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Size of a log file now (a window starts here; see [`log_since`]).
pub fn log_len(p: &Path) -> usize {
    std::fs::metadata(p).map(|m| m.len() as usize).unwrap_or(0)
}

/// What a log file gained since it was `start` bytes long.
pub fn log_since(p: &Path, start: usize) -> String {
    let b = std::fs::read(p).unwrap_or_default();
    String::from_utf8_lossy(b.get(start..).unwrap_or(&[])).into_owned()
}

/// Python helpers for the TLS cases: `ctx(cafile, cert, key)` builds an SSLContext trusting
/// the CA (and presenting a client certificate when `cert` is not "-").
pub const PY_TLS_PRELUDE: &str = r#"
import ssl, sys
def ctx(cafile, cert, key):
    c = ssl.create_default_context(cafile=cafile)
    if cert != "-":
        c.load_cert_chain(cert, key)
    return c
"#;
