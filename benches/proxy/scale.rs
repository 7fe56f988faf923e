//! The scaling measurements, run after the original ones: `tls` (IMAP and IMAPS logins),
//! `pop` (POP3 and POP3S logins), `cost` (relay and idle costs), `smtp` (messages through mmp
//! vs the MTA) and `loops` (LoopThreads 1 vs 2). The first three share one TLS mmp (IMAP and
//! POP3, plain and SSL ports, default LoopThreads), started here and stopped by PID when this
//! returns; `smtp` and `loops` start their own. Everything's mmp CPU lands in one cost table.

use super::common::tls::{Proto, TlsMmp};
use super::common::*;
use super::cost::{self, CostBook};
use super::{failed_row, Row, Settings};

/// Run the selected scaling measurements; returns the cost table.
pub fn run(
    s: &Settings,
    env: &Env,
    size: usize,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> CostBook {
    let mut book = CostBook::default();
    if s.runs("tls") || s.runs("pop") || s.runs("cost") {
        let mmp = TlsMmp::start(&super::tls::tls_mmp_config(env, None), true);
        println!(
            "\nTLS mmp: pid {:?}, IMAP {} / IMAPS {}, POP3 {} / POP3S {}, LoopThreads default ({} here), {} threads",
            mmp.pid(),
            mmp.plain_addr(Proto::Imap),
            mmp.ssl_addr(Proto::Imap),
            mmp.plain_addr(Proto::Pop),
            mmp.ssl_addr(Proto::Pop),
            super::sys::nproc(),
            mmp.pid().and_then(super::sys::threads).unwrap_or(0)
        );
        print_tls_params(&mmp);
        if s.runs("tls") {
            println!("\n[6] IMAP/IMAPS logins: {} threads, connect -> greeting -> LOGIN -> LOGOUT -> close; {} paired rounds of {:.1}s per mode", s.clients, s.rounds, s.round_secs);
            super::tls::measure_imap(s, env, &mmp, (rows, notes, &mut book));
        }
        if s.runs("pop") {
            println!("\n[7] POP3/POP3S logins: {} threads, connect -> greeting -> USER -> PASS -> QUIT -> close; {} paired rounds of {:.1}s per mode", s.clients, s.rounds, s.round_secs);
            super::tls::measure_pop(s, env, &mmp, (rows, notes, &mut book));
        }
        if s.runs("cost") {
            measure_cost(s, &mmp, size, &mut book, notes);
        }
        if mmp.log().contains("panicked") {
            notes.push(format!(
                "the TLS mmp's log shows a panic:\n{}",
                mmp.log_tail()
            ));
        }
    }
    if s.runs("smtp") {
        println!("\n[9] SMTP: {} threads, one message per connection, {} paired rounds of {:.1}s per mode", s.clients, s.rounds, s.round_secs);
        if let Err(e) = super::smtp::measure_smtp(s, env, (rows, notes, &mut book)) {
            rows.push(failed_row("SMTP messages/s", &e));
        }
    }
    if s.runs("loops") {
        println!("\n[10] LoopThreads 1 vs 2: two more TLS mmps, {} threads, {} paired rounds of {:.1}s per mode", s.clients, s.rounds, s.round_secs);
        super::loops::measure_loops(s, env, (rows, notes, &mut book));
    }
    book
}

/// Which TLS version and suite the clients get, and whether a second connection resumes.
fn print_tls_params(mmp: &TlsMmp) {
    let cfg = super::tls::client_config(true);
    let a = mmp.ssl_addr(Proto::Imap);
    let mut kinds = Vec::new();
    let mut params = String::from("?");
    for _ in 0..2 {
        match super::wire::Wire::connect(a, Some(&cfg)).and_then(|mut w| {
            w.line()?;
            Ok(w)
        }) {
            Ok(w) => {
                params = w.tls_params().unwrap_or_default();
                let kind = if w.resumed() == Some(true) {
                    "resumed"
                } else {
                    "full"
                };
                kinds.push(kind.to_string());
            }
            Err(e) => kinds.push(format!("failed: {e}")),
        }
    }
    println!(
        "TLS: {params}; client: rustls with its default session cache (one Arc<ClientConfig> shared by all threads); two probe connections: {}",
        kinds.join(", ")
    );
}

/// [8] FETCH relay cost (plain and TLS) and idle session cost (plain and TLS).
fn measure_cost(
    s: &Settings,
    mmp: &TlsMmp,
    size: usize,
    book: &mut CostBook,
    notes: &mut Vec<String>,
) {
    println!(
        "\n[8] cost: {} FETCHes of the {} MiB message per path (plain, IMAPS); {} idle sessions per path held {:.0}s",
        s.cost_fetches,
        size >> 20,
        s.idle_n,
        s.idle_secs
    );
    let tls = super::tls::client_config(true);
    let u = user(super::FETCH_USER);
    if let Err(e) = cost::measure_fetch(mmp, &tls, &u, size, s.cost_fetches, book) {
        notes.push(format!("cost: FETCH: {e}"));
    }
    let users = super::tls::thread_users(50);
    for (label, addr, cfg) in [
        ("IMAP plain", mmp.plain_addr(Proto::Imap), None),
        ("IMAPS", mmp.ssl_addr(Proto::Imap), Some(&tls)),
    ] {
        if let Err(e) =
            cost::measure_idle(mmp, (label, addr, cfg), &users, s.idle_n, s.idle_secs, book)
        {
            notes.push(format!("cost: idle {label}: {e}"));
        }
    }
}

/// The cost table and the projection, printed after the main table.
pub fn print(book: &CostBook) {
    book.print();
    cost::print_projection(book);
}
