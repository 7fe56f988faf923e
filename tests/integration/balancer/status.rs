//! The status listener: `/metrics` parsed by `tests/common/metrics_check.py`
//! (prometheus_client's parser) with values that follow what the case did, and `/health`.

use super::*;
use std::collections::BTreeMap;
use std::path::Path;

// ---------------------------------------------------------------------------------------------
// 4. The status listener

/// `GET path` on the status listener: (status code, body).
#[track_caller]
fn http_get(to: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("connect status listener {to}: {e}"));
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let raw = read_all_until_eof(&mut s, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no header end in {text:?}"));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: status line {head:?}"));
    (code, body.to_string())
}

/// `GET /metrics` parsed by `tests/common/metrics_check.py` (prometheus_client's parser):
/// sample (`name{label="v",...}`, labels sorted) → value.
#[track_caller]
fn scrape(to: SocketAddr) -> BTreeMap<String, f64> {
    let (code, body) = http_get(to, "/metrics");
    assert_eq!(code, 200, "GET /metrics: {body}");
    let file = temp_dir("scrape").join("metrics.txt");
    write_file(&file, &body);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/metrics_check.py");
    let out = run(
        Command::new("sh")
            .arg("-c")
            .arg("exec python3 \"$0\" < \"$1\"")
            .arg(&script)
            .arg(&file),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "metrics_check.py rejects /metrics ({}): {}\n{body}",
        out.status,
        out.stderr
    );
    out.stdout
        .lines()
        .filter_map(|l| {
            let (_family, rest) = l.split_once(' ')?;
            let (sample, value) = rest.rsplit_once(' ')?;
            Some((sample.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// A sample's value; panics when the exposition lacks it.
#[track_caller]
pub(super) fn val(m: &BTreeMap<String, f64>, sample: &str) -> f64 {
    *m.get(sample).unwrap_or_else(|| {
        let names: Vec<&String> = m
            .keys()
            .filter(|k| k.starts_with(&sample[..sample.find('{').unwrap_or(sample.len())]))
            .collect();
        panic!("no sample {sample} in /metrics; same family: {names:?}")
    })
}

fn refused(reason: &str) -> String {
    format!("mmp_connections_refused_total{{reason=\"{reason}\",service=\"imap\"}}")
}

fn sessions(phase: &str) -> String {
    format!("mmp_sessions{{phase=\"{phase}\",service=\"imap\"}}")
}

const ACCEPTED: &str = "mmp_connections_accepted_total{service=\"imap\"}";
const BYTES_UP: &str = "mmp_relayed_bytes_total{direction=\"up\"}";
const BYTES_DOWN: &str = "mmp_relayed_bytes_total{direction=\"down\"}";

/// A scrape once nothing moves: no session open and the accepted count the same over 300 ms
/// (connections still in the listen backlog are accepted, and counted, a little later).
#[track_caller]
pub(super) fn quiet(to: SocketAddr) -> BTreeMap<String, f64> {
    let mut last = scrape(to);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(300));
        let now = scrape(to);
        let idle = ["prelogin", "worker", "relay", "closing"]
            .iter()
            .all(|p| now.get(&sessions(p)) == Some(&0.0));
        if idle && now.get(ACCEPTED) == last.get(ACCEPTED) {
            return now;
        }
        last = now;
    }
    panic!("mmp never went quiet: {last:?}");
}

/// Waits (bounded) until `sample` reads `want`; returns the last scrape.
#[track_caller]
fn wait_value(to: SocketAddr, sample: &str, want: f64) -> BTreeMap<String, f64> {
    let mut last = BTreeMap::new();
    let ok = wait_until(Duration::from_secs(5), || {
        last = scrape(to);
        last.get(sample) == Some(&want)
    });
    assert!(ok, "{sample} never read {want}: {:?}", last.get(sample));
    last
}

pub(super) fn lb_status_metrics_count_connections_refusals_sessions_and_bytes(env: &Env) {
    const LIMITED: &str = "127.0.0.130";
    const DENIED_HERE: &str = "127.0.0.131";
    let m = LbMmp::start(
        env.config()
            .set("TCPAccess", &format!("\"+imap:ALL EXCEPT {DENIED_HERE}\""))
            .set(
                "ConnLimits",
                &format!("0.0.0.0|0.0.0.0:50,{LIMITED}|255.255.255.255:1"),
            ),
        true,
    );
    let st = m.status.unwrap();
    assert_eq!(http_get(st, "/health").0, 200, "GET /health");
    for path in [
        "/",
        "/metrics/x",
        "/etc/passwd",
        "/healthz",
        "/../Cargo.toml",
    ] {
        assert_eq!(http_get(st, path).0, 404, "GET {path}");
    }
    // The readiness probes are over (accepted and closed); start from a quiet point.
    let before = quiet(st);
    let log_mark = m.log().len();
    let mut made = 0.0;
    // A session that relays: prelogin, then relay.
    let alice = user("alice@a.test");
    let mut c = ImapClient::connect(m.plain_addr()).unwrap();
    made += 1.0;
    assert!(c.expect_line().starts_with("* OK"));
    wait_value(st, &sessions("prelogin"), 1.0);
    assert!(c
        .login("a1", &alice.uid, &alice.password)
        .starts_with("a1 OK"));
    let relaying = wait_value(st, &sessions("relay"), 1.0);
    assert_eq!(val(&relaying, &sessions("prelogin")), 0.0);
    imap_client::assert_own_mailbox(&mut c, &alice);
    let moved = scrape(st);
    let up = val(&moved, BYTES_UP) - val(&before, BYTES_UP);
    let down = val(&moved, BYTES_DOWN) - val(&before, BYTES_DOWN);
    // SELECT + FETCH went up (at least the two command lines); the mailbox came down.
    assert!(up >= 40.0, "relayed bytes up grew by {up}");
    assert!(
        down >= 200.0 && down > up,
        "relayed bytes down grew by {down} (up {up})"
    );
    c.command("z", "LOGOUT");
    assert!(c.closes_within(Duration::from_secs(5)));
    let ended = wait_value(st, &sessions("relay"), 0.0);
    // The counters agree with the session's own figures in the log.
    let (log_up, log_down) = session_bytes(&m.log());
    assert_eq!(
        (
            val(&ended, BYTES_UP) - val(&before, BYTES_UP),
            val(&ended, BYTES_DOWN) - val(&before, BYTES_DOWN)
        ),
        (log_up, log_down),
        "relayed bytes (up, down) in /metrics vs mmp's `session ended` line"
    );
    // Refusals by reason.
    let mut held = ImapClient::connect_from(LIMITED, m.plain_addr()).unwrap();
    assert!(held.expect_line().starts_with("* OK"));
    let mut over = ImapClient::connect_from(LIMITED, m.plain_addr()).unwrap();
    assert!(over.expect_line().starts_with("* BYE"));
    let mut denied = ImapClient::connect_from(DENIED_HERE, m.plain_addr()).unwrap();
    assert!(denied.expect_line().starts_with("* BYE"));
    let s = send_header(
        "127.0.0.132",
        m.proxy_addr(),
        &v1("10.77.5.1:1", "10.77.5.2:143"),
    );
    assert_closed_silently(s, Duration::from_secs(3), "untrusted");
    let s = send_header(BALANCER, m.proxy_addr(), b"GET /metrics HTTP/1.0\r\n\r\n");
    assert_closed_silently(s, Duration::from_secs(3), "garbage header");
    made += 5.0;
    let after = wait_value(
        st,
        &refused("proxy_header"),
        val(&before, &refused("proxy_header")) + 1.0,
    );
    for (reason, n) in [
        ("conn_limits", 1.0),
        ("tcp_access", 1.0),
        ("proxy_trust", 1.0),
        ("proxy_header", 1.0),
        ("capacity", 0.0),
    ] {
        assert_eq!(
            val(&after, &refused(reason)) - val(&before, &refused(reason)),
            n,
            "refusals counted for {reason}"
        );
    }
    assert_eq!(
        val(&after, ACCEPTED) - val(&before, ACCEPTED),
        made,
        "accepted connections (the test made {made}); mmp's log since the baseline:\n{}",
        m.log().get(log_mark..).unwrap_or("")
    );
    drop(held);
    wait_value(st, &sessions("prelogin"), 0.0);
    // Nothing counted for the other services.
    assert_eq!(
        val(&after, "mmp_connections_accepted_total{service=\"pop\"}"),
        0.0
    );
    assert_eq!(http_get(st, "/health").0, 200, "GET /health at the end");
}

/// `(N bytes up, M down)` of the only `session ended` line of `log`.
#[track_caller]
fn session_bytes(log: &str) -> (f64, f64) {
    let ended: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("session ended"))
        .collect();
    assert_eq!(ended.len(), 1, "session ended lines: {ended:?}");
    let figures = ended[0].rsplit_once('(').map(|(_, f)| f).unwrap_or("");
    let nums: Vec<f64> = figures
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(nums.len(), 2, "figures of {:?}", ended[0]);
    (nums[0], nums[1])
}

fn logins(outcome: &str) -> String {
    format!("mmp_logins_total{{outcome=\"{outcome}\",service=\"imap\"}}")
}

pub(super) fn lb_status_logins_by_outcome(env: &Env) {
    let m = LbMmp::start(env.config(), true);
    let st = m.status.unwrap();
    let before = scrape(st);
    let (mut ok, mut bad) = (0.0, 0.0);
    for (i, u) in ["alice@a.test", "bob@a.test", "carol@b.test", "dave@b.test"]
        .iter()
        .enumerate()
    {
        let u = user(u);
        // Half through the PROXY port: a login counts the same way.
        let mut c = if i % 2 == 0 {
            ImapClient::connect(m.plain_addr()).unwrap()
        } else {
            imap_via(
                BALANCER,
                m.proxy_addr(),
                &v1(&format!("10.77.6.{i}:46000"), "10.77.6.99:143"),
            )
        };
        login_own_mailbox(&mut c, &u, &u.uid);
        ok += 1.0;
        if i < 3 {
            let mut c = ImapClient::connect(m.plain_addr()).unwrap();
            assert!(c.expect_line().starts_with("* OK"));
            let r = c.login("b1", &u.uid, "wrong-Pw-00");
            assert!(r.starts_with("b1 NO"), "{r}");
            bad += 1.0;
        }
    }
    let after = wait_value(st, &logins("ok"), val(&before, &logins("ok")) + ok);
    assert_eq!(
        val(&after, &logins("bad_credentials")) - val(&before, &logins("bad_credentials")),
        bad,
        "failed logins counted"
    );
    for other in [
        "inactive",
        "directory_unavailable",
        "store_unavailable",
        "policy",
    ] {
        assert_eq!(
            val(&after, &logins(other)),
            val(&before, &logins(other)),
            "{other}"
        );
    }
    let count = "mmp_login_duration_seconds_count";
    assert_eq!(
        val(&after, count) - val(&before, count),
        ok + bad,
        "login histogram count"
    );
    assert_eq!(
        val(&after, "mmp_login_duration_seconds_bucket{le=\"+Inf\"}"),
        val(&after, count)
    );
}

pub(super) fn lb_status_health_503_while_slapd_down(env: &Env) {
    // A private directory: stopping the shared one would fail the other cases.
    let mut slapd = Slapd::start_new();
    let m = LbMmp::start(
        MmpConfig::new(&slapd.url(), env.store_port()).set("LdapUrl", &slapd.url()),
        true,
    );
    let st = m.status.unwrap();
    assert_eq!(http_get(st, "/health").0, 200, "healthy at start");
    // No login succeeds before the stop: the rule is "the last attempt failed and the last
    // success is older than 60 s (or there never was one)".
    slapd.stop();
    let alice = user("alice@a.test");
    let mut c = ImapClient::connect(m.plain_addr()).unwrap();
    assert!(c.expect_line().starts_with("* OK"));
    let r = c.login("a1", &alice.uid, &alice.password);
    assert!(
        !r.starts_with("a1 OK"),
        "logged in with the directory down: {r}"
    );
    let mut last = (0, String::new());
    let down = wait_until(Duration::from_secs(10), || {
        last = http_get(st, "/health");
        last.0 == 503
    });
    assert!(down, "/health while slapd is down: {last:?}");
    assert!(!last.1.trim().is_empty(), "503 without a reason");
    slapd.start();
    let back = wait_until(Duration::from_secs(20), || {
        let mut c = ImapClient::connect(m.plain_addr()).unwrap();
        c.read_line().ok().flatten().is_some()
            && c.login("a1", &alice.uid, &alice.password)
                .starts_with("a1 OK")
    });
    assert!(back, "no login after slapd came back:\n{}", m.proc.tail());
    let mut last = (0, String::new());
    let healthy = wait_until(Duration::from_secs(10), || {
        last = http_get(st, "/health");
        last.0 == 200
    });
    assert!(healthy, "/health after slapd came back: {last:?}");
}
