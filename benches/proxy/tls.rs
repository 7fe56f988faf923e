//! Logins per second over TLS and over POP3, each beside its baseline in paired rounds:
//! IMAP direct to the store, through mmp's plain port, through its IMAPS port (resumed TLS
//! sessions, and full handshakes); POP3 direct, through mmp's plain port, through its POP3S
//! port. The mmp here is its own instance (IMAP and POP3, `SSLEnable yes`, `SSLPorts`, the
//! certificates of `tests/common/tls.rs`), started and stopped by PID by the caller; the store
//! leg stays plain. The mmp CPU of each mode goes to the cost table.

use super::common::services::pop_kvs;
use super::common::tls::{pki, set_all, with_ssl, Proto, TlsMmp};
use super::common::*;
use super::cost::CostBook;
use super::rounds::{paired, paired_ratio, Mode, Tally};
use super::wire::{imap_login, pop_login};
use super::{row, Row, Settings};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use std::sync::Arc;

/// A client trusting the test CA. With `resume`, rustls's default resumption: an in-memory
/// cache (256 sessions) in the `ClientConfig`, shared by every thread that uses this `Arc`
/// (TLS 1.3 tickets, TLS 1.2 session IDs and tickets); without, every handshake is full.
pub fn client_config(resume: bool) -> Arc<ClientConfig> {
    client_config_trusting(&pki().ca, resume)
}

/// A verifying client trusting the CAs in the PEM file `ca`; `resume` off makes every
/// connection a full handshake.
pub fn client_config_trusting(ca: &std::path::Path, resume: bool) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca)
        .expect("the CA's PEM file")
        .flatten()
    {
        let _ = roots.add(c);
    }
    let mut cfg =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("rustls protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    if !resume {
        cfg.resumption = Resumption::disabled();
    }
    Arc::new(cfg)
}

/// IMAP and POP3 on plain and SSL ports, low logging, `LoopThreads loops` when given.
pub fn tls_mmp_config(env: &Env, loops: Option<usize>) -> ServicesConfig {
    let mut base = super::bench_config(env);
    if let Some(n) = loops {
        base = base.set_aservice("LoopThreads", &n.to_string());
    }
    let cfg = ServicesConfig {
        base,
        imap: true,
        pop: Some(pop_kvs(&env.slapd.url(), env.store_pop3_port())),
        smtp: None,
    };
    let cfg = set_all(cfg, "LogLevel", "1");
    with_ssl(set_all(cfg, "BacksideTimeout", "10"))
}

/// The load users the client threads log in as (one each, round robin).
pub fn thread_users(clients: usize) -> Vec<User> {
    let load: Vec<User> = users()
        .into_iter()
        .filter(|u| u.uid.starts_with("load") && u.uid != super::FETCH_USER)
        .collect();
    (0..clients).map(|i| load[i % load.len()].clone()).collect()
}

fn notes_of(t: &[Tally], notes: &mut Vec<String>) {
    notes.extend(t.iter().filter_map(Tally::failure_note));
}

/// A note when TLS logins take 30 ms or more longer than plain ones: far beyond a handshake's
/// CPU, the signature of Nagle's algorithm on the server meeting the client's delayed ACK
/// (the server writes its session tickets and its greeting separately without TCP_NODELAY).
fn stall_note(tls: &Tally, plain: &Tally, notes: &mut Vec<String>) {
    let extra = tls.p50_us() - plain.p50_us();
    if extra >= 30_000.0 && tls.ops > 0 {
        notes.push(format!(
            "{}: p50 {:.0} us over plain, far beyond its CPU ({:.0} us mmp CPU/login): a delayed-ACK \
             stall, e.g. no TCP_NODELAY on mmp's accepted sockets",
            tls.name,
            extra,
            tls.cpu_per_op().total
        ));
    }
}

fn resumed_share(t: &Tally) -> String {
    format!("{} of {} resumed", t.resumed, t.tls_ops)
}

/// IMAP: direct, mmp plain, IMAPS resumed, IMAPS full handshakes.
pub fn measure_imap(
    s: &Settings,
    env: &Env,
    mmp: &TlsMmp,
    out: (&mut Vec<Row>, &mut Vec<String>, &mut CostBook),
) {
    let (rows, notes, book) = out;
    let users = thread_users(s.clients);
    let (resume, full) = (client_config(true), client_config(false));
    let (plain, ssl) = (mmp.plain_addr(Proto::Imap), mmp.ssl_addr(Proto::Imap));
    let pid = mmp.pid();
    let u = &users;
    let modes = vec![
        Mode {
            name: "IMAP direct".into(),
            op: Box::new(move |i| {
                imap_login(
                    super::store_addr(env, &u[i]),
                    None,
                    &u[i].uid,
                    &u[i].password,
                )
            }),
            mmp_pid: None,
        },
        Mode {
            name: "IMAP through mmp".into(),
            op: Box::new(move |i| imap_login(plain, None, &u[i].uid, &u[i].password)),
            mmp_pid: pid,
        },
        Mode {
            name: "IMAPS through mmp, resumed".into(),
            op: Box::new(|i| imap_login(ssl, Some(&resume), &u[i].uid, &u[i].password)),
            mmp_pid: pid,
        },
        Mode {
            name: "IMAPS through mmp, full handshake".into(),
            op: Box::new(|i| imap_login(ssl, Some(&full), &u[i].uid, &u[i].password)),
            mmp_pid: pid,
        },
    ];
    let t = paired(&modes, s.clients, s.round_secs, s.rounds);
    notes_of(&t, notes);
    stall_note(&t[2], &t[1], notes);
    book_imap(book, &t, s.clients);
    imap_rows(rows, &t, s);
}

/// The IMAP login costs of the modes of [`measure_imap`], and the store's login latency.
fn book_imap(book: &mut CostBook, t: &[Tally], clients: usize) {
    let [d, p, r, f] = [&t[0], &t[1], &t[2], &t[3]];
    book.store_login_us = Some(d.p50_us());
    let basis = |x: &Tally| format!("{} logins, {} clients", x.ops, clients);
    book.plain_login = Some(book.add("login, IMAP plain", "login", p.cpu, p.ops as f64, basis(p)));
    book.tls_login = Some(book.add(
        "login, IMAPS resumed",
        "login",
        r.cpu,
        r.ops as f64,
        basis(r),
    ));
    book.tls_full_login = Some(book.add(
        "login, IMAPS full handshake",
        "login",
        f.cpu,
        f.ops as f64,
        basis(f),
    ));
}

/// The table rows of [`measure_imap`].
fn imap_rows(rows: &mut Vec<Row>, t: &[Tally], s: &Settings) {
    let [d, p, r, f] = [&t[0], &t[1], &t[2], &t[3]];
    let ratio = paired_ratio(p, d);
    rows.push(row(
        &format!(
            "IMAP logins/s ({} clients, median of {} paired rounds)",
            s.clients, s.rounds
        ),
        format!("{:.0}/s", d.rate()),
        format!("{:.0}/s", p.rate()),
        format!("{ratio:.2}x"),
        ">= 0.90x",
        Some(ratio >= 0.9 && p.failures == 0),
    ));
    for (x, target) in [(r, Some(0.8)), (f, None)] {
        let ratio = paired_ratio(x, p);
        rows.push(row(
            &format!("{} logins/s vs mmp plain", x.name),
            format!("mmp plain {:.0}/s", p.rate()),
            format!("{:.0}/s ({})", x.rate(), resumed_share(x)),
            format!("{ratio:.2}x"),
            if target.is_some() { ">= 0.80x" } else { "-" },
            Some(target.is_none_or(|g| ratio >= g) && x.failures == 0 && x.ops > 0),
        ));
    }
    rows.push(row(
        "  login latency p50: direct / mmp / IMAPS resumed / full",
        format!("{:.0} us", d.p50_us()),
        format!(
            "{:.0} / {:.0} / {:.0} us",
            p.p50_us(),
            r.p50_us(),
            f.p50_us()
        ),
        format!("+{:.0} us plain", p.p50_us() - d.p50_us()),
        "-",
        None,
    ));
}

/// POP3: direct, mmp plain, POP3S resumed.
pub fn measure_pop(
    s: &Settings,
    env: &Env,
    mmp: &TlsMmp,
    out: (&mut Vec<Row>, &mut Vec<String>, &mut CostBook),
) {
    let (rows, notes, book) = out;
    let users = thread_users(s.clients);
    let resume = client_config(true);
    let (plain, ssl) = (mmp.plain_addr(Proto::Pop), mmp.ssl_addr(Proto::Pop));
    let pid = mmp.pid();
    let u = &users;
    let modes = vec![
        Mode {
            name: "POP3 direct".into(),
            op: Box::new(move |i| {
                let a = env.store(u[i].store()).pop3_addr();
                pop_login(a, None, &u[i].uid, &u[i].password)
            }),
            mmp_pid: None,
        },
        Mode {
            name: "POP3 through mmp".into(),
            op: Box::new(move |i| pop_login(plain, None, &u[i].uid, &u[i].password)),
            mmp_pid: pid,
        },
        Mode {
            name: "POP3S through mmp, resumed".into(),
            op: Box::new(|i| pop_login(ssl, Some(&resume), &u[i].uid, &u[i].password)),
            mmp_pid: pid,
        },
    ];
    let t = paired(&modes, s.clients, s.round_secs, s.rounds);
    notes_of(&t, notes);
    let [d, p, r] = [&t[0], &t[1], &t[2]];
    stall_note(r, p, notes);
    let basis = |x: &Tally| format!("{} logins, {} clients", x.ops, s.clients);
    book.add("login, POP3 plain", "login", p.cpu, p.ops as f64, basis(p));
    book.add(
        "login, POP3S resumed",
        "login",
        r.cpu,
        r.ops as f64,
        basis(r),
    );
    let ratio = paired_ratio(p, d);
    rows.push(row(
        &format!(
            "POP3 logins/s ({} clients, median of {} paired rounds)",
            s.clients, s.rounds
        ),
        format!("{:.0}/s", d.rate()),
        format!("{:.0}/s", p.rate()),
        format!("{ratio:.2}x"),
        ">= 0.90x",
        Some(ratio >= 0.9 && p.failures == 0),
    ));
    let ratio = paired_ratio(r, p);
    rows.push(row(
        "POP3S through mmp, resumed logins/s vs mmp plain",
        format!("mmp plain {:.0}/s", p.rate()),
        format!("{:.0}/s ({})", r.rate(), resumed_share(r)),
        format!("{ratio:.2}x"),
        "-",
        Some(r.failures == 0 && r.ops > 0),
    ));
}
