//! The scale-out: HAProxy (`send-proxy-v2`, round robin, health checks) in front of two mmp
//! instances sharing the directory and the stores; 200 logins from several addresses, then
//! one instance drained by SIGTERM while logins go on.

use super::*;

// ---------------------------------------------------------------------------------------------
// 3. HAProxy in front of two mmp instances

/// HAProxy's frontend address.
const HAPROXY_IP: &str = "127.0.0.140";
/// Client source addresses of the scale-out.
const CLIENTS: [&str; 5] = [
    "127.0.0.141",
    "127.0.0.142",
    "127.0.0.143",
    "127.0.0.144",
    "127.0.0.145",
];
/// Refused by both instances' TCPAccess.
const DENIED: &str = "127.0.0.149";

/// `haproxy -db -f CONF` in front of `servers` (mmp PROXY ports on 127.0.0.1), `send-proxy-v2`,
/// round robin, health checks every 200 ms. Returns the process and the frontend address.
#[track_caller]
fn start_haproxy(servers: &[u16]) -> (Proc, SocketAddr) {
    assert!(
        have_program("haproxy"),
        "haproxy not found: install it (see .ci/run)"
    );
    let dir = temp_dir("haproxy");
    let fe = addr(HAPROXY_IP, free_port(HAPROXY_IP));
    let mut conf = format!(
        "global\n  maxconn 2000\n\
         defaults\n  mode tcp\n  timeout connect 3s\n  timeout client 60s\n  timeout server 60s\n  \
         retries 3\n  option redispatch\n\
         frontend fe\n  bind {fe}\n  default_backend mmps\n\
         backend mmps\n  balance roundrobin\n"
    );
    for (i, p) in servers.iter().enumerate() {
        conf += &format!(
            "  server mmp{i} {BALANCER}:{p} send-proxy-v2 check inter 200ms fall 2 rise 2\n"
        );
    }
    let path = dir.join("haproxy.cfg");
    write_file(&path, &conf);
    let check = run(
        Command::new("haproxy").arg("-c").arg("-f").arg(&path),
        Duration::from_secs(20),
    );
    assert!(
        check.status.success(),
        "haproxy -c rejects {conf}:\n{}{}",
        check.stdout,
        check.stderr
    );
    let mut p = Proc::spawn(
        Command::new("haproxy").arg("-db").arg("-f").arg(&path),
        dir.join("haproxy.log"),
    );
    p.wait_ready(&[fe], "haproxy");
    (p, fe)
}

/// One login through the balancer from `src`: greeting, LOGIN, SELECT INBOX, FETCH subject,
/// LOGOUT; `Err` says what differed.
fn login_through(fe: SocketAddr, src: &str, u: &User) -> Result<(), String> {
    let mut c = ImapClient::connect_from(src, fe).map_err(|e| format!("connect: {e}"))?;
    let g = c
        .read_line()
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    if !g.starts_with("* OK") {
        return Err(format!("greeting {g:?}"));
    }
    let tagged = |c: &mut ImapClient, tag: &str, cmd: &str| -> Result<Vec<String>, String> {
        c.send_raw(format!("{tag} {cmd}\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let lines = c.read_until_tagged(tag).map_err(|e| e.to_string())?;
        match lines.last() {
            Some(l) if l.starts_with(&format!("{tag} OK")) => Ok(lines),
            other => Err(format!("{cmd:.20}: {other:?}")),
        }
    };
    let login = format!(
        "LOGIN {} {}",
        imap_client::quote(&u.uid),
        imap_client::quote(&u.password)
    );
    tagged(&mut c, "a1", &login)?;
    let sel = tagged(&mut c, "a2", "SELECT INBOX")?;
    let n = imap_client::exists_count(&sel).unwrap_or(usize::MAX);
    let f = tagged(&mut c, "a3", "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")?;
    let want = format!("Subject: {}", u.expected_subject());
    let subject_ok = f.iter().any(|l| l.contains(&want));
    let _ = tagged(&mut c, "a4", "LOGOUT");
    if n != u.expected_count() || !subject_ok {
        return Err(format!(
            "{}: wrong mailbox (EXISTS {n}, want {}; subject {want:?} {})",
            u.uid,
            u.expected_count(),
            if subject_ok { "found" } else { "missing" }
        ));
    }
    Ok(())
}

/// `count` logins through `fe` on `threads` threads, users and sources rotating; the
/// failures (at most 10 shown).
fn logins_through(fe: SocketAddr, count: usize, threads: usize) -> Vec<String> {
    let load: Vec<User> = users()
        .into_iter()
        .filter(|u| u.uid.starts_with("load"))
        .collect();
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..threads {
            let (load, failures) = (&load, &failures);
            s.spawn(move || {
                for i in (t..count).step_by(threads) {
                    let (u, src) = (&load[i % load.len()], CLIENTS[i % CLIENTS.len()]);
                    if let Err(e) = login_through(fe, src, u) {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("#{i} {} from {src}: {e}", u.uid));
                    }
                }
            });
        }
    });
    let mut f = failures.into_inner().unwrap();
    f.truncate(10);
    f
}

pub(super) fn lb_haproxy_scale_out_two_instances_and_sigterm_drain(env: &Env) {
    let cfg = env
        .config()
        .set("TCPAccess", &format!("\"+imap:ALL EXCEPT {DENIED}\""))
        .set_aservice("DrainTimeout", "30");
    let mut a = LbMmp::start(cfg.clone(), false);
    let mut b = LbMmp::start(cfg, false);
    let (mut hap, fe) = start_haproxy(&[a.proxied, b.proxied]);
    let t = Instant::now();
    let failures = logins_through(fe, 200, 8);
    assert!(
        failures.is_empty(),
        "logins through HAProxy failed (first 10): {failures:#?}\nmmp A:\n{}\nmmp B:\n{}",
        a.proc.tail(),
        b.proc.tail()
    );
    let (na, nb) = (a.logins(), b.logins());
    println!(
        "haproxy scale-out: 200 logins in {:.1}s, A {na}, B {nb}",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(na + nb, 200, "store logins in the two mmp logs");
    assert!(
        na >= 50 && nb >= 50,
        "round robin did not spread the logins: A {na}, B {nb}"
    );
    // The real client addresses in mmp's logs and in the stores' (lip = HAProxy's frontend).
    let logs = a.log() + &b.log();
    for src in CLIENTS {
        assert!(
            has_line(&logs, &[&format!("client {src}:"), "logged in to store"]),
            "no login from {src} in mmp's logs"
        );
        let rip = format!("rip={src}, lip={HAPROXY_IP},");
        let in_store = [&env.store2, &env.store3].iter().any(|s| {
            has_line(
                &std::fs::read_to_string(s.log_path()).unwrap_or_default(),
                &["Login:", &rip],
            )
        });
        assert!(in_store, "no store login with {rip}");
    }
    assert!(
        !has_line(
            &logs,
            &[&format!("client {BALANCER}:"), "logged in to store"]
        ),
        "a login was logged with the balancer's address"
    );
    // TCPAccess acts on the real address behind HAProxy, on both instances.
    for _ in 0..4 {
        let mut c = ImapClient::connect_from(DENIED, fe).unwrap();
        let l = c.read_line().ok().flatten().unwrap_or_default();
        assert!(
            l.starts_with("* BYE"),
            "{DENIED} through HAProxy was let in: {l:?}"
        );
    }
    assert!(
        a.log().contains(&format!("connection from {DENIED}:"))
            && b.log().contains(&format!("connection from {DENIED}:")),
        "TCPAccess refusals of {DENIED} not on both instances"
    );

    // A: a session relays, then SIGTERM. New logins keep succeeding through B while A drains.
    let alice = user("alice@a.test");
    let mut held = imap_via(
        BALANCER,
        a.proxy_addr(),
        &v2("127.0.0.146:45000", "127.0.0.140:143", &[]),
    );
    let g = held.expect_line();
    assert!(g.starts_with("* OK"), "{g:?}");
    assert!(held
        .login("h1", &alice.uid, &alice.password)
        .starts_with("h1 OK"));
    let a_pid = a.proc.pid();
    signal(a_pid, SIGTERM);
    must_wait_until(Duration::from_secs(5), "A to close its listeners", || {
        !port_accepts(a.proxy_addr())
    });
    let b_before = b.logins();
    let failures = logins_through(fe, 30, 3);
    assert!(
        failures.is_empty(),
        "logins while A drains: {failures:#?}\nB:\n{}",
        b.proc.tail()
    );
    assert_eq!(
        b.logins() - b_before,
        30,
        "B did not take every login while A drains"
    );
    assert!(a.proc.running(), "A did not wait for its relayed session");
    let r = held.command_tagged("h2", "NOOP");
    assert!(
        r.starts_with("h2 OK"),
        "the draining session was cut: {r:?}"
    );
    held.command("h3", "LOGOUT");
    assert!(
        a.proc.terminate(Duration::from_secs(15)),
        "A did not exit once its last session ended:\n{}",
        a.proc.tail()
    );
    // A is gone: HAProxy notices (health checks) and every login still succeeds.
    let failures = logins_through(fe, 30, 3);
    assert!(failures.is_empty(), "logins after A stopped: {failures:#?}");
    assert_eq!(b.logins() - b_before, 60);
    b.assert_still_serving();
    assert!(hap.running(), "haproxy died:\n{}", hap.tail());
    assert!(
        hap.terminate(Duration::from_secs(10)),
        "haproxy ignored SIGTERM"
    );
}
