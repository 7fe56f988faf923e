//! Warnings for an operator migrating a Sun MMP instance: settings that load fine but do
//! not do what a Sun administrator would expect of them. They are warnings, not errors,
//! because each one can be deliberate. No I/O.
//!
//! Not here: a well-known TLS port missing from `SSLPorts` (the TLS checks own it), and a
//! service `LogDir` (the logging set-up decides whether it has an effect).

use super::file::Settings;
use super::options::{FileKind, Opt};
use super::types::{Service, ServiceEntry};
use super::Report;
use std::path::Path;

/// The port MTAs deliver to; the SMTP proxy takes only authenticated submission.
const MTA_PORT: u16 = 25;

/// Adds the migration warnings for one built service.
pub fn service(
    kind: FileKind,
    entry: &ServiceEntry,
    s: &Service,
    settings: &Settings,
    report: &mut Report,
) {
    if kind != FileKind::Smtp {
        return;
    }
    if s.listen.iter().any(|l| l.port == MTA_PORT) {
        report.warn(
            Path::new(FileKind::AService.file_name()),
            entry.line,
            format!(
                "ServiceList: the SMTP proxy listens on port {MTA_PORT}, but it serves only \
                 authenticated submission (a sender that does not log in gets 530), so other \
                 MTAs cannot deliver mail there; leave port {MTA_PORT} to the MTA and list \
                 587 (and 465 with SSLPorts) instead"
            ),
        );
    }
    if let Some(line) = settings.get(Opt::SmtpProxyPassword) {
        report.warn(
            Path::new(kind.file_name()),
            line.line,
            format!(
                "{}: has no effect in mmp: only the Sun client-information command carried \
                 it, and mmp sends XCLIENT or a PROXY header instead (MmpSmtpClientInfo), \
                 which the MTA trusts by mmp's address (e.g. Postfix \
                 smtpd_authorized_xclient_hosts)",
                line.def.name
            ),
        );
    }
}
