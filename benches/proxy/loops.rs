//! Logins/s and TLS logins/s with `LoopThreads 1` and `LoopThreads 2`: two mmp instances,
//! identical but for the loop count, running at once and measured in paired rounds (plain
//! IMAP and IMAPS with resumed sessions on each). Besides the rates it prints how busy the
//! busiest loop thread was (its CPU time / wall time): a loop near 100 % is the ceiling.

use super::common::tls::{Proto, TlsMmp};
use super::common::*;
use super::cost::CostBook;
use super::rounds::{paired, paired_ratio, Mode, Tally};
use super::tls::{client_config, thread_users, tls_mmp_config};
use super::wire::imap_login;
use super::{row, Row, Settings};

fn busiest(t: &Tally) -> String {
    format!(
        "{:.0} %",
        t.cpu.busiest_loop as f64 / 1e9 / t.secs.max(1e-9) * 100.0
    )
}

pub fn measure_loops(
    s: &Settings,
    env: &Env,
    out: (&mut Vec<Row>, &mut Vec<String>, &mut CostBook),
) {
    let (rows, notes, book) = out;
    let one = TlsMmp::start(&tls_mmp_config(env, Some(1)), true);
    let two = TlsMmp::start(&tls_mmp_config(env, Some(2)), true);
    let users = thread_users(s.clients);
    // One client config (so one session cache) per mmp: both listen on 127.0.0.1, the name
    // rustls keys its cache by, and one mmp cannot resume the other's sessions.
    let resume = [client_config(true), client_config(true)];
    let u = &users;
    let mut modes = Vec::new();
    for (n, m, resume) in [(1, &one, &resume[0]), (2, &two, &resume[1])] {
        let (plain, ssl, pid) = (m.plain_addr(Proto::Imap), m.ssl_addr(Proto::Imap), m.pid());
        modes.push(Mode {
            name: format!("IMAP, LoopThreads {n}"),
            op: Box::new(move |i| imap_login(plain, None, &u[i].uid, &u[i].password)),
            mmp_pid: pid,
        });
        modes.push(Mode {
            name: format!("IMAPS resumed, LoopThreads {n}"),
            op: Box::new(move |i| imap_login(ssl, Some(resume), &u[i].uid, &u[i].password)),
            mmp_pid: pid,
        });
    }
    let t = paired(&modes, s.clients, s.round_secs, s.rounds);
    notes.extend(t.iter().filter_map(Tally::failure_note));
    let (p1, t1, p2, t2) = (&t[0], &t[1], &t[2], &t[3]);
    for x in [p1, t1, p2, t2] {
        let c = x.cpu_per_op();
        println!(
            "  {:<30}: mmp CPU/login {:.1} us (loops {:.1}, workers {:.1}, other {:.1}); busiest loop thread {}",
            x.name, c.total, c.loops, c.workers, c.other, busiest(x)
        );
    }
    let (rp, rt) = (paired_ratio(p2, p1), paired_ratio(t2, t1));
    book.loops_scaling = Some((rp, rt));
    rows.push(row(
        "IMAP logins/s, LoopThreads 2 vs 1",
        format!("1 loop {:.0}/s (busiest {})", p1.rate(), busiest(p1)),
        format!("2 loops {:.0}/s (busiest {})", p2.rate(), busiest(p2)),
        format!("{rp:.2}x"),
        "-",
        Some(p1.failures + p2.failures == 0),
    ));
    rows.push(row(
        "IMAPS logins/s (resumed), LoopThreads 2 vs 1",
        format!("1 loop {:.0}/s (busiest {})", t1.rate(), busiest(t1)),
        format!("2 loops {:.0}/s (busiest {})", t2.rate(), busiest(t2)),
        format!("{rt:.2}x"),
        ">= 1.60x (clients elsewhere)",
        Some(rt >= 1.6 && t1.failures + t2.failures == 0),
    ));
    drop(one);
    drop(two);
}
