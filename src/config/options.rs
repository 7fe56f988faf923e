//! The one table of every option name mmp knows (reference §2.1–2.4 and §7), with the
//! files it belongs in, what mmp does with it, and whether repeating it adds to it or
//! replaces it. Names match case-insensitively (reference §1.4: the Sun books themselves
//! write `LdapUrl` and `LdapURL`, and 7.x/8.x write everything in lower case); messages use
//! the spelling of this table. No I/O.

/// Which option, independent of how its name was spelt. Two names may share one `Opt`
/// (`NumThreads`/`MaxThreads`, `DomainDelim`/`CanonicalDomainDelim`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is the option of the same name in the table below
pub enum Opt {
    ServiceList,
    ProxyProtocolPorts,
    ProxyProtocolTrusted,
    StatusListen,
    LogDir,
    LogLevel,
    Threads,
    User,
    Group,
    DrainTimeout,
    LoopThreads,
    ListenBacklog,
    MaxSessions,
    BacksidePort,
    SslBacksidePort,
    Timeout,
    LoginTimeout,
    BacksideTimeout,
    MaxLineBytes,
    MaxLiteralBytes,
    MaxBadCommands,
    Banner,
    Capability,
    ServerDownAlert,
    MaxStoreConnects,
    LdapUrl,
    BindDn,
    BindPass,
    SearchFormat,
    DomainSearchFormat,
    HostedDomains,
    DefaultDomain,
    VirtualDomainDelim,
    CanonicalDomainDelim,
    VirtualDomainFile,
    MailHostAttrs,
    PreAuth,
    AuthCacheSize,
    AuthCacheTtl,
    LdapCacheSize,
    LdapCacheTtl,
    ReplayFormat,
    StoreAdmin,
    StoreAdminPass,
    AdminPolicy,
    Crams,
    RestrictPlainPasswords,
    CertMapFile,
    CertmapDn,
    TcpAccess,
    TcpAccessAttr,
    ConnLimits,
    BgMax,
    BgPenalty,
    BgMaxBadness,
    BgDecay,
    BgLinear,
    BgExcluded,
    AuthenticationServer,
    AuthenticationLdapAttributes,
    AuthService,
    AuthServiceTtl,
    SslEnable,
    SslPorts,
    SslCertFile,
    SslKeyFile,
    SslSecmodFile,
    SslCertPrefix,
    SslCertNicknames,
    SslKeyPasswdFile,
    SslCipherSpecs,
    SslAdjustCipherSuites,
    SslCacheDir,
    SslCaCertFile,
    SslBacksideCaCertFile,
    SslServerNameCert,
    SslBacksideStartTls,
    SslCrlFile,
    SmtpRelays,
    SmtpProxyPassword,
    PopBeforeSmtpKludgeChannel,
    ClientLookup,
    EhloKeywords,
    FailoverTimeout,
    SpoofMessageId,
    MmpSmtpClientInfo,
}

/// The files of an instance directory that take options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `AService.cfg`.
    AService,
    /// `ImapProxyAService.cfg`.
    Imap,
    /// `PopProxyAService.cfg`.
    Pop,
    /// `SmtpProxyAService.cfg`.
    Smtp,
}

impl FileKind {
    /// The file name in the instance directory.
    pub fn file_name(self) -> &'static str {
        match self {
            FileKind::AService => "AService.cfg",
            FileKind::Imap => "ImapProxyAService.cfg",
            FileKind::Pop => "PopProxyAService.cfg",
            FileKind::Smtp => "SmtpProxyAService.cfg",
        }
    }

    /// The installer's template, copied when the file is missing (reference §1.1).
    pub fn def_name(self) -> &'static str {
        match self {
            FileKind::AService => "AService-def.cfg",
            FileKind::Imap => "ImapProxyAService-def.cfg",
            FileKind::Pop => "PopProxyAService-def.cfg",
            FileKind::Smtp => "SmtpProxyAService-def.cfg",
        }
    }
}

/// What mmp does with an option (reference §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Used (possibly with a translation).
    Honour,
    /// Accepted with a start-up warning that gives this reason; no effect.
    Ignore(&'static str),
    /// A load error with this hint.
    Refuse(&'static str),
}

/// What a second line for the same option does (reference §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// The last line wins, with a warning naming both lines.
    LastWins,
    /// Each line adds to a list (failover URLs, relays, realms, keywords), no warning.
    Append,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionDef {
    /// The option.
    pub opt: Opt,
    /// The spelling used in messages.
    pub name: &'static str,
    /// The files in which it has an effect; elsewhere it draws a warning.
    pub files: &'static [FileKind],
    /// What mmp does with it.
    pub decision: Decision,
    /// What repeating it does.
    pub repeat: Repeat,
    /// A password: its value never appears in a message.
    pub secret: bool,
}

use Decision::{Honour, Ignore, Refuse};
use FileKind::{AService as A, Imap as I, Pop as P, Smtp as S};

const ALL: &[FileKind] = &[A, I, P, S];
const IPS: &[FileKind] = &[I, P, S];
const IP: &[FileKind] = &[I, P];

const NSS_ONLY: &str = "it selects inside an NSS database, which mmp does not read; \
                        SSLCertFile and SSLKeyFile name PEM files";
const TPAUTH: &str = "the third-party authentication protocol (tpauth) has no public \
                      specification; use LDAP pre-authentication (PreAuth yes) instead";

const fn row(opt: Opt, name: &'static str, files: &'static [FileKind]) -> OptionDef {
    OptionDef {
        opt,
        name,
        files,
        decision: Honour,
        repeat: Repeat::LastWins,
        secret: false,
    }
}

const fn ignored(
    opt: Opt,
    name: &'static str,
    files: &'static [FileKind],
    why: &'static str,
) -> OptionDef {
    OptionDef {
        decision: Ignore(why),
        ..row(opt, name, files)
    }
}

const fn refused(opt: Opt, name: &'static str, hint: &'static str) -> OptionDef {
    OptionDef {
        decision: Refuse(hint),
        ..row(opt, name, IP)
    }
}

const fn list(opt: Opt, name: &'static str, files: &'static [FileKind]) -> OptionDef {
    OptionDef {
        repeat: Repeat::Append,
        ..row(opt, name, files)
    }
}

const fn secret(opt: Opt, name: &'static str, files: &'static [FileKind]) -> OptionDef {
    OptionDef {
        secret: true,
        ..row(opt, name, files)
    }
}

/// Every known option.
pub const OPTIONS: &[OptionDef] = &[
    // §2.1 AService.cfg (LogDir, LogLevel and the thread count also go in service files).
    row(Opt::ServiceList, "ServiceList", &[A]),
    // mmp extensions for running behind a load balancer (issue 12).
    row(Opt::ProxyProtocolPorts, "ProxyProtocolPorts", IPS),
    row(Opt::ProxyProtocolTrusted, "ProxyProtocolTrusted", IPS),
    row(Opt::StatusListen, "StatusListen", &[A]),
    row(Opt::LogDir, "LogDir", ALL),
    row(Opt::LogLevel, "LogLevel", ALL),
    row(Opt::Threads, "NumThreads", ALL),
    row(Opt::Threads, "MaxThreads", ALL),
    row(Opt::User, "User", &[A]),
    row(Opt::Group, "Group", &[A]),
    row(Opt::DrainTimeout, "DrainTimeout", &[A]),
    // mmp extensions for scaling (issue 10).
    row(Opt::LoopThreads, "LoopThreads", &[A]),
    row(Opt::ListenBacklog, "ListenBacklog", &[A]),
    row(Opt::MaxSessions, "MaxSessions", &[A]),
    // §2.2 the proxies.
    row(Opt::BacksidePort, "BacksidePort", IP),
    row(Opt::SslBacksidePort, "SSLBacksidePort", IPS),
    row(Opt::Timeout, "Timeout", IPS),
    row(Opt::Banner, "Banner", IPS),
    row(Opt::Capability, "Capability", &[I]),
    row(Opt::ServerDownAlert, "ServerDownAlert", IPS),
    // mmp extension (issue 10): logins in flight per store host.
    row(Opt::MaxStoreConnects, "MaxStoreConnects", IPS),
    list(Opt::LdapUrl, "LdapUrl", IPS),
    row(Opt::BindDn, "BindDN", IPS),
    secret(Opt::BindPass, "BindPass", IPS),
    row(Opt::SearchFormat, "SearchFormat", IPS),
    row(Opt::DomainSearchFormat, "DomainSearchFormat", IPS),
    row(Opt::HostedDomains, "HostedDomains", IPS),
    row(Opt::DefaultDomain, "DefaultDomain", IPS),
    row(Opt::VirtualDomainDelim, "VirtualDomainDelim", IPS),
    row(Opt::CanonicalDomainDelim, "DomainDelim", IPS),
    row(Opt::CanonicalDomainDelim, "CanonicalDomainDelim", IPS),
    row(Opt::VirtualDomainFile, "VirtualDomainFile", IPS),
    row(Opt::MailHostAttrs, "MailHostAttrs", IP),
    row(Opt::PreAuth, "PreAuth", IP),
    row(Opt::AuthCacheSize, "AuthCacheSize", IP),
    row(Opt::AuthCacheTtl, "AuthCacheTTL", IP),
    row(Opt::LdapCacheSize, "LdapCacheSize", IPS),
    row(Opt::LdapCacheTtl, "LdapCacheTTL", IPS),
    row(Opt::ReplayFormat, "ReplayFormat", IP),
    row(Opt::StoreAdmin, "StoreAdmin", IPS),
    secret(Opt::StoreAdminPass, "StoreAdminPass", IPS),
    row(Opt::AdminPolicy, "AdminPolicy", IP),
    row(Opt::Crams, "CRAMs", IP),
    row(Opt::RestrictPlainPasswords, "RestrictPlainPasswords", IPS),
    row(Opt::CertMapFile, "CertMapFile", IPS),
    row(Opt::CertmapDn, "CertmapDN", IPS),
    row(Opt::TcpAccess, "TCPAccess", IPS),
    row(Opt::TcpAccessAttr, "TCPAccessAttr", IPS),
    list(Opt::ConnLimits, "ConnLimits", IPS),
    row(Opt::BgMax, "BGMax", IPS),
    row(Opt::BgPenalty, "BGPenalty", IPS),
    row(Opt::BgMaxBadness, "BGMaxBadness", IPS),
    row(Opt::BgDecay, "BGDecay", IPS),
    row(Opt::BgLinear, "BGLinear", IPS),
    row(Opt::BgExcluded, "BGExcluded", IPS),
    refused(Opt::AuthenticationServer, "AuthenticationServer", TPAUTH),
    refused(
        Opt::AuthenticationLdapAttributes,
        "AuthenticationLdapAttributes",
        TPAUTH,
    ),
    row(Opt::AuthService, "AuthService", IP),
    row(Opt::AuthServiceTtl, "AuthServiceTTL", IP),
    row(Opt::SslEnable, "SSLEnable", IPS),
    row(Opt::SslPorts, "SSLPorts", IPS),
    row(Opt::SslCertFile, "SSLCertFile", IPS),
    row(Opt::SslKeyFile, "SSLKeyFile", IPS),
    ignored(Opt::SslSecmodFile, "SSLSecmodFile", IPS, NSS_ONLY),
    ignored(Opt::SslCertPrefix, "SSLCertPrefix", IPS, NSS_ONLY),
    ignored(Opt::SslCertNicknames, "SSLCertNicknames", IPS, NSS_ONLY),
    // Ignored too, but only when it names a file: `""` means "no password file".
    row(Opt::SslKeyPasswdFile, "SSLKeyPasswdFile", IPS),
    row(Opt::SslCipherSpecs, "SSLCipherSpecs", IPS),
    ignored(
        Opt::SslAdjustCipherSuites,
        "SSLAdjustCipherSuites",
        IPS,
        "its adjustments are NSS-specific; mmp uses the rustls default suites",
    ),
    ignored(
        Opt::SslCacheDir,
        "SSLCacheDir",
        IPS,
        "rustls keeps its session cache in memory",
    ),
    row(Opt::SslCaCertFile, "SSLCACertFile", IPS),
    row(Opt::SslBacksideCaCertFile, "SSLBacksideCACertFile", IPS),
    // §2.4 the SMTP proxy.
    list(Opt::SmtpRelays, "SmtpRelays", &[S]),
    secret(Opt::SmtpProxyPassword, "SmtpProxyPassword", &[S]),
    row(
        Opt::PopBeforeSmtpKludgeChannel,
        "PopBeforeSmtpKludgeChannel",
        &[S],
    ),
    row(Opt::ClientLookup, "ClientLookup", &[S]),
    list(Opt::EhloKeywords, "EhloKeywords", &[S]),
    row(Opt::FailoverTimeout, "FailoverTimeout", &[S]),
    ignored(
        Opt::SpoofMessageId,
        "SpoofMessageId",
        &[S],
        "no source documents what it did",
    ),
    // mmp extensions.
    row(Opt::MmpSmtpClientInfo, "MmpSmtpClientInfo", &[S]),
    row(Opt::LoginTimeout, "LoginTimeout", IPS),
    row(Opt::BacksideTimeout, "BacksideTimeout", IPS),
    row(Opt::MaxLineBytes, "MaxLineBytes", IPS),
    row(Opt::MaxLiteralBytes, "MaxLiteralBytes", &[I]),
    row(Opt::MaxBadCommands, "MaxBadCommands", IPS),
    list(Opt::SslServerNameCert, "SSLServerNameCert", IPS),
    row(Opt::SslBacksideStartTls, "SSLBacksideStartTLS", &[I, P]),
    row(Opt::SslCrlFile, "SSLCRLFile", IPS),
];

/// The row for `name`, matched case-insensitively.
pub fn lookup(name: &str) -> Option<&'static OptionDef> {
    OPTIONS.iter().find(|d| d.name.eq_ignore_ascii_case(name))
}

/// The message spelling of `opt` (its first row).
pub fn name_of(opt: Opt) -> &'static str {
    OPTIONS
        .iter()
        .find(|d| d.opt == opt)
        .map_or("?", |d| d.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_ignoring_case() {
        let mut seen = HashSet::new();
        for d in OPTIONS {
            assert!(seen.insert(d.name.to_ascii_lowercase()), "{} twice", d.name);
        }
    }

    #[test]
    fn lookup_ignores_case_and_keeps_table_spelling() {
        let cases = [
            ("LdapUrl", "LdapUrl", Opt::LdapUrl),
            ("LdapURL", "LdapUrl", Opt::LdapUrl),
            ("ldapurl", "LdapUrl", Opt::LdapUrl),
            ("AUTHCACHETTL", "AuthCacheTTL", Opt::AuthCacheTtl),
            ("maxthreads", "MaxThreads", Opt::Threads),
            (
                "canonicaldomaindelim",
                "CanonicalDomainDelim",
                Opt::CanonicalDomainDelim,
            ),
        ];
        for (input, name, opt) in cases {
            let d = lookup(input).unwrap_or_else(|| panic!("{input} not found"));
            assert_eq!((d.name, d.opt), (name, opt), "{input}");
        }
        assert_eq!(lookup("StoreDownAlert"), None);
        assert_eq!(lookup("AuchCacheTTL"), None);
    }

    #[test]
    fn decisions_follow_the_reference() {
        let cases: &[(&str, bool, bool)] = &[
            // (name, refused, ignored)
            ("AuthenticationServer", true, false),
            ("AuthenticationLdapAttributes", true, false),
            ("SSLCacheDir", false, true),
            ("SSLSecmodFile", false, true),
            ("SpoofMessageId", false, true),
            ("User", false, false),
            ("SSLCertFile", false, false),
            ("Timeout", false, false),
        ];
        for (name, refuse, ignore) in cases {
            let d = lookup(name).unwrap_or_else(|| panic!("{name} not found"));
            assert_eq!(matches!(d.decision, Refuse(_)), *refuse, "{name}");
            assert_eq!(matches!(d.decision, Ignore(_)), *ignore, "{name}");
        }
        assert!(!lookup("Capability").is_some_and(|d| d.files.contains(&FileKind::Pop)));
        assert!(!lookup("PreAuth").is_some_and(|d| d.files.contains(&FileKind::Smtp)));
        assert!(lookup("BindPass").is_some_and(|d| d.secret));
        assert_eq!(name_of(Opt::Threads), "NumThreads");
    }
}
