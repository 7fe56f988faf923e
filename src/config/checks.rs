//! Checks that look at several options of one service file at once: required options,
//! `StoreAdmin` needs (reference §5.4), `SSLPorts` against `ServiceList` and `SSLEnable`, the NSS database
//! refusal and the other §7 decisions that depend on a value, and the two side files
//! (`VirtualDomainFile`, `CertMapFile`) that must exist. Their contents are parsed
//! elsewhere; the only I/O here is opening those two files to see that they are readable.

use super::options::FileKind;
use super::options::Opt;
use super::service::Cx;
use super::types::{Service, ServiceEntry};
use crate::protocol::Protocol;
use std::fs::File;
use std::path::Path;
use std::time::Duration;

/// File names of NSS databases (possibly after an `SSLCertPrefix`).
const NSS_DATABASES: &[&str] = &["cert7.db", "cert8.db", "cert9.db", "key3.db", "key4.db"];

/// Runs every check on the built service `s`, which `entry` of `ServiceList` started.
pub fn check(cx: &mut Cx<'_>, entry: &ServiceEntry, s: &Service) {
    let settings = cx.settings;
    let line = |opt| settings.get(opt);
    required(cx, s);
    store_admin(cx, s);
    tls(cx, s);
    well_known_tls_ports(cx, entry, s);
    unsupported(cx, s);
    for opt in [Opt::VirtualDomainFile, Opt::CertMapFile] {
        let path = match opt {
            Opt::VirtualDomainFile => &s.virtual_domain_file,
            _ => &s.cert_map_file,
        };
        if let (Some(path), Some(at)) = (path, line(opt)) {
            if let Err(e) = readable(path) {
                cx.error(at, format!("cannot read {}: {e}", path.display()));
            }
        }
    }
    if let Some(at) = line(Opt::PopBeforeSmtpKludgeChannel) {
        cx.warn(
            at,
            "has no effect in mmp: switching the MTA channel needs the Sun MMP's private \
             client-information command, which mmp does not send (MmpSmtpClientInfo sun)"
                .to_string(),
        );
    }
    if let (Some(at), Some(_)) = (line(Opt::SslKeyPasswdFile), &s.tls.key_passwd_file) {
        cx.warn(
            at,
            "has no effect in mmp: it unlocks NSS tokens only; SSLKeyFile must be an \
             unencrypted PEM key"
                .to_string(),
        );
    }
    if let Some(at) = line(Opt::AuthService).filter(|_| s.auth_service) {
        if s.auth_service_ttl.is_zero() {
            cx.warn(at, "has no effect while AuthServiceTTL is 0".to_string());
        }
        if !s.preauth {
            cx.warn(
                at,
                "records only pre-authenticated logins; set PreAuth yes".to_string(),
            );
        }
    }
    let rfc_minimum = match s.protocol {
        Protocol::Imap => Some((1800, "RFC 3501 asks IMAP servers for at least 30 minutes")),
        Protocol::Pop => Some((600, "RFC 1939 asks POP3 servers for at least 10 minutes")),
        Protocol::Smtp => None,
    };
    if let (Some((secs, why)), Some(at)) = (rfc_minimum, line(Opt::Timeout)) {
        if s.timeout < Duration::from_secs(secs) {
            cx.warn(
                at,
                format!("{} seconds is short: {why}", s.timeout.as_secs()),
            );
        }
    }
}

fn required(cx: &mut Cx<'_>, s: &Service) {
    let has = |opt| cx.settings.get(opt).is_some();
    match s.protocol {
        Protocol::Imap | Protocol::Pop if !has(Opt::LdapUrl) => cx.missing(
            Opt::LdapUrl,
            format!(
                "missing; the {} proxy finds each user's mail store in this directory \
                 (e.g. default:LdapUrl ldap://ldap.example.com/o=internet)",
                s.protocol.name()
            ),
        ),
        Protocol::Smtp if !has(Opt::SmtpRelays) => cx.missing(
            Opt::SmtpRelays,
            "missing; the SMTP proxy relays every session to one of these MTAs \
             (e.g. default:SmtpRelays mta1.example.com mta2.example.com:25)"
                .to_string(),
        ),
        _ => {}
    }
}

/// Values mmp cannot honour, refused rather than ignored (each with what to do instead).
fn unsupported(cx: &mut Cx<'_>, s: &Service) {
    let settings = cx.settings;
    if let Some(at) = settings.get(Opt::Crams).filter(|_| s.crams) {
        cx.refuse(
            at,
            "CRAM-MD5 and APOP need every user's clear-text password in the directory and an \
             MD5 implementation mmp does not carry; set CRAMs no and let clients use PLAIN \
             over TLS (RestrictPlainPasswords yes)"
                .to_string(),
        );
    }
    if let Some(at) = settings
        .get(Opt::AdminPolicy)
        .filter(|_| s.admin_policy == super::types::AdminPolicy::Group)
    {
        cx.refuse(
            at,
            "the group policy needs the stores' administrator group, which mmp cannot read; \
             use AdminPolicy simple (only StoreAdmin may log in on a user's behalf)"
                .to_string(),
        );
    }
    if let Some(at) = settings
        .get(Opt::ClientLookup)
        .filter(|_| s.smtp.client_lookup)
    {
        cx.refuse(
            at,
            "mmp does no reverse DNS look-ups; set ClientLookup no (the MTA is given the \
             client's address and can look its name up itself)"
                .to_string(),
        );
    }
}

fn store_admin(cx: &mut Cx<'_>, s: &Service) {
    let settings = cx.settings;
    if s.store_admin.is_none() {
        if let Some(at) = settings
            .get(Opt::CertMapFile)
            .filter(|_| s.cert_map_file.is_some())
        {
            cx.error(
                at,
                "needs StoreAdmin and StoreAdminPass: a certificate login has no password, \
                 so mmp logs in to the store as the store administrator on the user's behalf"
                    .to_string(),
            );
        }
    } else if s.store_admin_pass.is_none() {
        if let Some(at) = settings.get(Opt::StoreAdmin) {
            cx.error(at, "needs StoreAdminPass".to_string());
        }
    }
}

fn tls(cx: &mut Cx<'_>, s: &Service) {
    let settings = cx.settings;
    let t = &s.tls;
    if let Some(at) = settings.get(Opt::SslPorts) {
        let listed: Vec<u16> = s.listen.iter().map(|l| l.port).collect();
        for port in t.ports.iter().filter(|p| !listed.contains(p)) {
            let listed: Vec<String> = listed.iter().map(u16::to_string).collect();
            cx.error(
                at,
                format!(
                    "port {port} is not among the ports ServiceList gives this service ({})",
                    listed.join(", ")
                ),
            );
        }
        if !t.enable && !t.ports.is_empty() {
            // Issue 9 item 9: a warning here left 993 serving plaintext to clients that
            // expect TLS from the first byte (and send their password at once).
            cx.error(
                at,
                "needs SSLEnable yes: without it these ports would serve plaintext to \
                 clients that expect TLS from the first byte"
                    .to_string(),
            );
        }
    }
    for (opt, path) in [
        (Opt::SslCertFile, &t.cert_file),
        (Opt::SslKeyFile, &t.key_file),
    ] {
        if let (Some(at), Some(path)) = (settings.get(opt), path) {
            if is_nss_database(path) {
                cx.refuse(at, nss_hint(path, t.cert_nicknames.as_deref()));
            }
        }
    }
    if let Some(at) = settings.get(Opt::SslEnable).filter(|_| t.enable) {
        if t.cert_file.is_none() || t.key_file.is_none() {
            cx.error(
                at,
                "needs SSLCertFile and SSLKeyFile naming PEM files (the Sun default, \
                 cert8.db/key3.db, is an NSS database mmp cannot read)"
                    .to_string(),
            );
        }
    }
    crl_needs_ca(cx, t);
    if let Some(at) = settings
        .get(Opt::CertMapFile)
        .filter(|_| s.cert_map_file.is_some())
    {
        if !t.enable {
            cx.error(
                at,
                "needs SSLEnable yes: client certificates come with TLS".to_string(),
            );
        }
        if t.ca_cert_file.is_none() {
            cx.error(
                at,
                "needs SSLCACertFile, the PEM bundle of the CAs whose client certificates \
                 are accepted (the Sun MMP kept them in its NSS database)"
                    .to_string(),
            );
        }
    }
}

/// `SSLCRLFile` is checked against client certificates, which need `SSLCACertFile`.
fn crl_needs_ca(cx: &mut Cx<'_>, t: &super::types::Tls) {
    if let Some(at) = cx
        .settings
        .get(Opt::SslCrlFile)
        .filter(|_| t.crl_file.is_some() && t.ca_cert_file.is_none())
    {
        cx.error(
            at,
            "needs SSLCACertFile: the CRLs are checked against client certificates, which \
             are asked for only when SSLCACertFile names their CAs"
                .to_string(),
        );
    }
}

/// The IANA ports of IMAP, POP3 and SMTP submission over TLS from the first byte.
fn well_known_tls_port(protocol: Protocol) -> u16 {
    match protocol {
        Protocol::Imap => 993,
        Protocol::Pop => 995,
        Protocol::Smtp => 465,
    }
}

/// Warns (at the `ServiceList` line of `AService.cfg`) when the service listens on the
/// well-known TLS port of its protocol but `SSLPorts` does not list it: clients there
/// expect TLS from the first byte and get plaintext.
fn well_known_tls_ports(cx: &mut Cx<'_>, entry: &ServiceEntry, s: &Service) {
    let port = well_known_tls_port(s.protocol);
    let listed = s.listen.iter().any(|l| l.port == port);
    if !listed || s.tls.ports.contains(&port) {
        return;
    }
    cx.report.warn(
        Path::new(FileKind::AService.file_name()),
        entry.line,
        format!(
            "ServiceList: port {port} is the well-known {} port over TLS but is not in \
             SSLPorts of {}: it serves plaintext there",
            s.protocol.name(),
            cx.shown.display()
        ),
    );
}

fn is_nss_database(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    NSS_DATABASES.iter().any(|db| name.ends_with(db))
}

fn nss_hint(path: &Path, nickname: Option<&str>) -> String {
    let dir = path
        .parent()
        .map_or_else(|| ".".to_string(), |d| d.display().to_string());
    format!(
        "{} is an NSS database, which mmp cannot read; export with \
         `pk12util -o server.p12 -n \"{}\" -d {dir}` then \
         `openssl pkcs12 -in server.p12 -nokeys -out cert.pem` and \
         `openssl pkcs12 -in server.p12 -nocerts -nodes -out key.pem`, \
         and point SSLCertFile/SSLKeyFile at the PEM files",
        path.display(),
        nickname.unwrap_or("Server-Cert"),
    )
}

fn readable(path: &Path) -> std::io::Result<()> {
    let file = File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(std::io::Error::other("it is a directory"));
    }
    Ok(())
}
