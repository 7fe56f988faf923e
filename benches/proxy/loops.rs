//! Logins/s and TLS logins/s with `LoopThreads 1` and `LoopThreads 2`: two mmp instances,
//! identical but for the loop count, running at once and measured in paired rounds (plain
//! IMAP and IMAPS with resumed sessions on each). Besides the rates it prints how busy the
//! busiest loop thread was (its CPU time / wall time): a loop near 100 % is the ceiling.
//!
//! On a 2-core box the clients and the stores share the cores with mmp, so a login cannot
//! show what a second loop buys. The loops' own ceiling is measured with cheap clients:
//! two more mmps (1 and 2 loops) with an RSA-2048 certificate, as most operators have, and
//! clients that make a full handshake, read the greeting and close. The server's RSA
//! signature costs about thirty times the client's verification, so the clients take little
//! of the two cores and the loops are the bottleneck.

use super::common::tls::{set_all, Proto, TlsMmp};
use super::common::*;
use super::cost::CostBook;
use super::rounds::{paired, paired_ratio, Mode, Tally};
use super::tls::{client_config, thread_users, tls_mmp_config};
use super::wire::imap_login;
use super::{row, Row, Settings};
use rustls::ClientConfig;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

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
    measure_handshakes(s, env, rows);
}

/// Full IMAPS handshakes/s with an RSA-2048 certificate, `LoopThreads 1` against `2`.
fn measure_handshakes(s: &Settings, env: &Env, rows: &mut Vec<Row>) {
    let Some(rsa) = RsaPki::make() else {
        println!("  (no openssl: the RSA handshake measurement is skipped)");
        return;
    };
    let config = |n| {
        let cfg = tls_mmp_config(env, Some(n));
        let cfg = set_all(cfg, "SSLCertFile", &rsa.cert.display().to_string());
        set_all(cfg, "SSLKeyFile", &rsa.key.display().to_string())
    };
    let one = TlsMmp::start(&config(1), true);
    let two = TlsMmp::start(&config(2), true);
    let client = rsa.client_config();
    let c = &client;
    let modes: Vec<Mode> = [(1, &one), (2, &two)]
        .into_iter()
        .map(|(n, m)| {
            let ssl = m.ssl_addr(Proto::Imap);
            Mode {
                name: format!("IMAPS handshakes (RSA), LoopThreads {n}"),
                op: Box::new(move |_| super::wire::imaps_greeting(ssl, c)),
                mmp_pid: m.pid(),
            }
        })
        .collect();
    let t = paired(&modes, s.clients, s.round_secs, s.rounds);
    for x in &t {
        let c = x.cpu_per_op();
        println!(
            "  {:<40}: {:.0}/s, mmp CPU/handshake {:.1} us (loops {:.1}); busiest loop thread {}",
            x.name,
            x.rate(),
            c.total,
            c.loops,
            busiest(x)
        );
    }
    let ratio = paired_ratio(&t[1], &t[0]);
    rows.push(row(
        "IMAPS full handshakes/s (RSA-2048, cheap clients), LoopThreads 2 vs 1",
        format!("1 loop {:.0}/s (busiest {})", t[0].rate(), busiest(&t[0])),
        format!("2 loops {:.0}/s (busiest {})", t[1].rate(), busiest(&t[1])),
        format!("{ratio:.2}x"),
        ">= 1.60x",
        Some(ratio >= 1.6 && t[0].failures + t[1].failures == 0),
    ));
}

/// A CA and an RSA-2048 server certificate for 127.0.0.1, made with the openssl command.
struct RsaPki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl RsaPki {
    fn make() -> Option<RsaPki> {
        let dir = temp_dir("rsa-pki");
        let p = |name: &str| dir.join(name);
        let ext = p("ext.cnf");
        write_file(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        );
        let steps: [&[&str]; 3] = [
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=mmp bench RSA CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
                "-out",
                "leaf.pem",
            ],
        ];
        for args in steps {
            let ok = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .ok()?;
            if !ok.status.success() {
                println!(
                    "  openssl {}: {}",
                    args[0],
                    String::from_utf8_lossy(&ok.stderr)
                );
                return None;
            }
        }
        Some(RsaPki {
            ca: p("ca.pem"),
            cert: p("leaf.pem"),
            key: p("leaf.key"),
        })
    }

    /// A verifying client trusting the CA, without resumption: every connection makes a
    /// full handshake.
    fn client_config(&self) -> Arc<ClientConfig> {
        super::tls::client_config_trusting(&self.ca, false)
    }
}
