//! TLS logins per second: the same K client threads and users log in (connect, greeting,
//! LOGIN, LOGOUT, server closes) directly to the store over plain TCP, through mmp's plain
//! port, and through mmp's IMAPS port (implicit TLS, a full handshake every time: session
//! resumption is off), in two rounds of rotated order within one run. The mmp here is its own
//! instance (`SSLEnable yes`, `SSLPorts`, the test PKI of `tests/common/tls.rs`), started and
//! stopped by PID inside this measurement; the store leg stays plain.

use super::common::tls::{pki, with_ssl, LineClient, Proto, TlsMmp};
use super::common::*;
use super::{percentile, row, us, Row};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use std::net::SocketAddr;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Run {
    logins: u64,
    failures: u64,
    first_error: Option<String>,
    secs: f64,
    latencies: Vec<Duration>,
}

impl Run {
    fn add(&mut self, o: Run) {
        self.logins += o.logins;
        self.failures += o.failures;
        self.secs += o.secs;
        self.latencies.extend(o.latencies);
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }
    fn rate(&self) -> f64 {
        self.logins as f64 / self.secs.max(1e-9)
    }
}

/// A client trusting the test CA, without session resumption (every login pays a full
/// handshake, the worst case for the server).
fn full_handshake_config() -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&pki().ca).expect("CA PEM") {
        roots.add(c.expect("CA")).expect("CA accepted");
    }
    let mut cfg =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    cfg.resumption = Resumption::disabled();
    Arc::new(cfg)
}

/// One cycle; `tls` = implicit TLS. Latency = connect start to LOGIN's tagged OK.
fn login_once(
    addr: SocketAddr,
    u: &User,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<Duration, String> {
    let t = Instant::now();
    let mut c = match tls {
        Some(cfg) => LineClient::tls(addr, cfg),
        None => LineClient::plain(addr),
    }
    .map_err(|e| format!("connect: {e}"))?;
    let g = c
        .read_line()
        .map_err(|e| format!("greeting: {e}"))?
        .unwrap_or_default();
    if !g.starts_with("* OK") {
        return Err(format!("greeting {g:?}"));
    }
    c.send_raw(
        format!(
            "a LOGIN {} {}\r\n",
            super::client::quote(&u.uid),
            super::client::quote(&u.password)
        )
        .as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let lat = until_tagged(&mut c, "a")?;
    let lat = lat.map(|_| t.elapsed())?;
    c.send_raw(b"b LOGOUT\r\n").map_err(|e| e.to_string())?;
    until_tagged(&mut c, "b")?.map_err(|e| format!("LOGOUT: {e}"))?;
    // Wait (bounded) for the server to close.
    let _ = c.lines_within(Duration::from_secs(2));
    Ok(lat)
}

/// Read to the line tagged `tag`: Ok(Ok) for OK, Ok(Err) for another answer.
fn until_tagged(c: &mut LineClient, tag: &str) -> Result<Result<(), String>, String> {
    let prefix = format!("{tag} ");
    for _ in 0..1000 {
        match c.read_line() {
            Ok(Some(l)) if l.starts_with(&prefix) => {
                return Ok(if l.starts_with(&format!("{tag} OK")) {
                    Ok(())
                } else {
                    Err(l)
                })
            }
            Ok(Some(_)) => {}
            Ok(None) => return Err(format!("EOF before {tag}")),
            Err(e) => return Err(format!("{tag}: {e}")),
        }
    }
    Err(format!("no {tag} reply in 1000 lines"))
}

fn run(targets: &[(SocketAddr, User)], dur: Duration, tls: Option<&Arc<ClientConfig>>) -> Run {
    const MAX_PER_THREAD: u64 = 1_000_000;
    const MAX_FAILURES: u64 = 200;
    let barrier = Barrier::new(targets.len() + 1);
    let results = Mutex::new(Run::default());
    std::thread::scope(|s| {
        for (a, u) in targets {
            let (barrier, results) = (&barrier, &results);
            s.spawn(move || {
                let mut r = Run::default();
                barrier.wait();
                let deadline = Instant::now() + dur;
                for _ in 0..MAX_PER_THREAD {
                    if Instant::now() >= deadline || r.failures >= MAX_FAILURES {
                        break;
                    }
                    match login_once(*a, u, tls) {
                        Ok(lat) => {
                            r.logins += 1;
                            r.latencies.push(lat);
                        }
                        Err(e) => {
                            r.failures += 1;
                            r.first_error.get_or_insert(e);
                        }
                    }
                }
                results.lock().unwrap().add(r);
            });
        }
        barrier.wait();
    });
    results.into_inner().unwrap()
}

/// Measure and add the rows: TLS logins/s through mmp next to plain logins through mmp and
/// direct plain logins to the store.
pub fn measure_tls_logins(
    clients: usize,
    login_secs: f64,
    env: &Env,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) {
    let cfg = with_ssl(ServicesConfig {
        base: env
            .config()
            .set_aservice("LogLevel", "1")
            .set("LogLevel", "1")
            .set("BacksideTimeout", "10"),
        imap: true,
        pop: None,
        smtp: None,
    });
    let mmp = TlsMmp::start(&cfg, true);
    let load: Vec<User> = users()
        .into_iter()
        .filter(|u| u.uid.starts_with("load"))
        .collect();
    let users: Vec<User> = (0..clients).map(|i| load[i % load.len()].clone()).collect();
    let direct: Vec<(SocketAddr, User)> = users
        .iter()
        .map(|u| {
            let store = if u.host == STORE2_IP {
                &env.store2
            } else {
                &env.store3
            };
            (store.addr(), u.clone())
        })
        .collect();
    let plain: Vec<_> = users
        .iter()
        .map(|u| (mmp.plain_addr(Proto::Imap), u.clone()))
        .collect();
    let tls: Vec<_> = users
        .iter()
        .map(|u| (mmp.ssl_addr(Proto::Imap), u.clone()))
        .collect();
    let tls_cfg = full_handshake_config();
    let half = Duration::from_secs_f64(login_secs / 2.0);
    let names = ["direct plain", "mmp plain", "mmp TLS (IMAPS)"];
    let mut runs: [Run; 3] = Default::default();
    for round in 0..2 {
        for k in 0..3 {
            let i = (round + k) % 3;
            let t = Instant::now();
            let mut r = match i {
                0 => run(&direct, half, None),
                1 => run(&plain, half, None),
                _ => run(&tls, half, Some(&tls_cfg)),
            };
            r.secs = t.elapsed().as_secs_f64();
            println!(
                "  TLS logins round {} {:<16}: {:>6} in {:.2}s = {:>7.0}/s, {} failed",
                round + 1,
                names[i],
                r.logins,
                r.secs,
                r.rate(),
                r.failures
            );
            runs[i].add(r);
        }
    }
    for (i, r) in runs.iter().enumerate() {
        if r.failures > 0 {
            notes.push(format!(
                "TLS logins, {}: {} failed (first: {})",
                names[i],
                r.failures,
                r.first_error.as_deref().unwrap_or("-")
            ));
        }
    }
    let [mut d, mut p, mut t] = runs;
    d.latencies.sort();
    p.latencies.sort();
    t.latencies.sort();
    let ratio = t.rate() / d.rate().max(1e-9);
    rows.push(row(
        &format!("TLS logins/s, IMAPS through mmp ({clients} clients)"),
        format!("{:.0}/s (plain)", d.rate()),
        format!("{:.0}/s (plain {:.0}/s)", t.rate(), p.rate()),
        format!(
            "{ratio:.2}x of direct, {:.2}x of mmp plain",
            t.rate() / p.rate().max(1e-9)
        ),
        "-",
        Some(t.failures == 0 && t.logins > 0),
    ));
    let (d50, p50, t50) = (
        percentile(&d.latencies, 50),
        percentile(&p.latencies, 50),
        percentile(&t.latencies, 50),
    );
    rows.push(row(
        "  TLS login latency p50 (connect..LOGIN OK)",
        format!("{:.0} us (plain)", us(d50)),
        format!("{:.0} us (plain {:.0} us)", us(t50), us(p50)),
        if t.logins == 0 {
            "-".to_string()
        } else {
            format!("+{:.0} us over mmp plain", us(t50) - us(p50))
        },
        "-",
        None,
    ));
    let log = mmp.log();
    if log.contains("panicked") {
        notes.push("the TLS mmp's log shows a panic".into());
    }
    drop(mmp);
}
