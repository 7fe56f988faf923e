//! SMTP messages per second through mmp beside the MTA directly, in paired rounds. The MTA is
//! the integration tests' private Postfix (`tests/common/postfix.rs`); mmp is its own SMTP
//! proxy instance relaying to it with XCLIENT, started and stopped by PID here. Through mmp a
//! message is EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT (mmp checks the password against the
//! directory, then passes the login to Postfix with XCLIENT); directly it is the same without
//! AUTH, which this Postfix accepts because the recipients' domain is one it delivers.

use super::common::tls::set_all;
use super::common::*;
use super::cost::CostBook;
use super::rounds::{paired, paired_ratio, Mode};
use super::wire::smtp_message;
use super::{row, Row, Settings};

/// A message of about `bytes` bytes (headers and 76-character lines, CRLF, no leading dots).
fn body(bytes: usize, to: &str) -> Vec<u8> {
    let mut m = format!(
        "From: bench@a.test\r\nTo: {to}\r\nSubject: mmp bench SMTP\r\n\
         Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <smtp@mmp.bench>\r\n\r\n"
    )
    .into_bytes();
    while m.len() + 78 <= bytes.max(200) {
        m.extend_from_slice(&[b'x'; 76]);
        m.extend_from_slice(b"\r\n");
    }
    m
}

/// The measurement; Postfix is started here (through `Env::postfix`) if it is not yet.
pub fn measure_smtp(
    s: &Settings,
    env: &Env,
    out: (&mut Vec<Row>, &mut Vec<String>, &mut CostBook),
) -> Result<(), String> {
    let (rows, notes, book) = out;
    if !have_program("postfix") {
        return Err("postfix is not installed".into());
    }
    let mta = env.postfix().addr();
    let cfg = env.smtp_config();
    let cfg = set_all(cfg, "LogLevel", "1");
    let cfg = set_all(cfg, "BacksideTimeout", "10");
    let cfg = ServicesConfig {
        base: super::bench_config(env),
        ..cfg
    };
    let mmp = MmpServices::start(&cfg);
    let via = mmp.smtp_addr();
    let users = super::tls::thread_users(s.clients);
    let bodies: Vec<Vec<u8>> = users.iter().map(|u| body(s.smtp_bytes, &u.uid)).collect();
    let (u, b) = (&users, &bodies);
    let modes = vec![
        Mode {
            name: "SMTP to the MTA directly".into(),
            op: Box::new(move |i| smtp_message(mta, None, &u[i].uid, &u[i].uid, &b[i])),
            mmp_pid: None,
        },
        Mode {
            name: "SMTP through mmp (AUTH PLAIN)".into(),
            op: Box::new(move |i| {
                let auth = Some((u[i].uid.as_str(), u[i].password.as_str()));
                smtp_message(via, auth, &u[i].uid, &u[i].uid, &b[i])
            }),
            mmp_pid: mmp.pid(),
        },
    ];
    let t = paired(&modes, s.clients, s.round_secs, s.rounds);
    notes.extend(t.iter().filter_map(|x| x.failure_note()));
    let (d, m) = (&t[0], &t[1]);
    book.add(
        "SMTP message through mmp (AUTH PLAIN)",
        "message",
        m.cpu,
        m.ops as f64,
        format!("{} messages of {} bytes", m.ops, s.smtp_bytes),
    );
    let ratio = paired_ratio(m, d);
    rows.push(row(
        &format!(
            "SMTP messages/s ({} clients, ~{} bytes, median of {} paired rounds)",
            s.clients, s.smtp_bytes, s.rounds
        ),
        format!("{:.0}/s", d.rate()),
        format!("{:.0}/s", m.rate()),
        format!("{ratio:.2}x"),
        ">= 0.90x",
        Some(ratio >= 0.9 && m.failures == 0),
    ));
    rows.push(row(
        "  SMTP message latency p50 (connect..250 after DATA)",
        format!("{:.0} us", d.p50_us()),
        format!("{:.0} us", m.p50_us()),
        format!("+{:.0} us", m.p50_us() - d.p50_us()),
        "-",
        None,
    ));
    let log = mmp.log();
    if log.contains("panicked") {
        notes.push(format!(
            "the SMTP mmp's log shows a panic:\n{}",
            mmp.log_tail()
        ));
    }
    Ok(())
}
