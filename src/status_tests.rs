//! Tests of the status listener: the pure `respond`, the health rules with an injected
//! clock, and a real listener on 127.0.0.1 asked by a std client and by curl.

use super::*;
use crate::metrics::LoginOutcome;
use crate::protocol::Protocol;

fn leaked_metrics() -> &'static Metrics {
    Box::leak(Box::new(Metrics::new()))
}

fn status_line(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    text.lines().next().unwrap_or_default().to_string()
}

fn body(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply).to_string();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

#[test]
fn routes_methods_and_bad_requests() {
    let m = leaked_metrics();
    let h = Health::new(1, HealthRules::default());
    h.loop_ticked(0);
    let now = Instant::now();
    let cases: &[(&[u8], &str)] = &[
        (
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 200 OK",
        ),
        (b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK"),
        (b"GET /health HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK"),
        (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
        (
            b"GET /etc/passwd HTTP/1.1\r\n\r\n",
            "HTTP/1.1 404 Not Found",
        ),
        (
            b"GET /../metrics HTTP/1.1\r\n\r\n",
            "HTTP/1.1 404 Not Found",
        ),
        (
            b"HEAD /metrics HTTP/1.1\r\n\r\n",
            "HTTP/1.1 405 Method Not Allowed",
        ),
        (
            b"POST /health HTTP/1.1\r\n\r\n",
            "HTTP/1.1 405 Method Not Allowed",
        ),
        (b"GET /metrics\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"GET /metrics SPDY/3\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"", "HTTP/1.1 400 Bad Request"),
        (b"\x16\x03\x01\x00\xff", "HTTP/1.1 400 Bad Request"),
    ];
    for (request, want) in cases {
        let got = respond(request, m, &h, now);
        assert_eq!(
            status_line(&got),
            *want,
            "{:?}",
            String::from_utf8_lossy(request)
        );
    }
    let big = vec![b'a'; MAX_REQUEST_BYTES + 1];
    assert_eq!(
        status_line(&respond(&big, m, &h, now)),
        "HTTP/1.1 400 Bad Request"
    );
    let metrics = respond(b"GET /metrics HTTP/1.1\r\n\r\n", m, &h, now);
    let text = String::from_utf8_lossy(&metrics);
    assert!(
        text.contains("Content-Type: text/plain; version=0.0.4"),
        "{text}"
    );
    assert!(text.contains(&format!("Content-Length: {}\r\n", body(&metrics).len())));
    assert!(body(&metrics).contains("# TYPE mmp_logins_total counter\n"));
    let head = respond(b"HEAD /health HTTP/1.1\r\n\r\n", m, &h, now);
    assert!(String::from_utf8_lossy(&head).contains("Allow: GET\r\n"));
}

#[test]
fn health_rules() {
    let rules = HealthRules {
        loop_stall: Duration::from_secs(10),
        pool_stall: Duration::from_secs(30),
        directory_stale: Duration::from_secs(60),
    };
    // Ages are whole seconds from millisecond clocks: compare texts up to the figure.
    let said = |problems: Vec<String>| -> Vec<String> {
        let cut = |p: &String| {
            p.rsplit_once(" for ")
                .map_or(p.clone(), |(a, _)| a.to_string())
        };
        problems.iter().map(cut).collect()
    };
    let h = Health::new(2, rules);
    let at = |h: &Health, s: u64| h.start + Duration::from_secs(s);
    h.loop_ticked(0);
    h.loop_ticked(1);
    h.loop_ticked(7); // ignored
    assert_eq!(h.problems(at(&h, 5)), Vec::<String>::new());
    assert_eq!(
        said(h.problems(at(&h, 12))),
        ["loop 0 has not turned", "loop 1 has not turned"]
    );
    // The pool: idle is fine however long; queued jobs with no progress are not.
    let h = Health::new(0, rules);
    assert!(h.problems(at(&h, 100)).is_empty());
    h.set_pool_queued(3);
    assert!(h.problems(at(&h, 29)).is_empty());
    assert_eq!(
        said(h.problems(at(&h, 32))),
        ["worker pool: 3 jobs queued and none finished"]
    );
    h.set_pool_queued(0);
    assert!(h.problems(at(&h, 31)).is_empty());
    // The directory: a failure only counts once the last success is stale.
    let h = Health::new(0, rules);
    h.directory_failed();
    assert_eq!(
        said(h.problems(at(&h, 62))),
        ["directory: last search failed, no success since start"]
    );
    h.directory_succeeded();
    assert!(h.problems(at(&h, 61)).is_empty());
    h.directory_failed();
    assert!(h.problems(at(&h, 59)).is_empty());
    assert_eq!(h.problems(at(&h, 61)).len(), 1);
    h.directory_succeeded();
    assert!(
        h.problems(at(&h, 1000)).is_empty(),
        "an old success with no failure since is fine"
    );
}

/// One request over a real socket; the whole answer.
fn ask(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to status listener");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read answer");
    String::from_utf8_lossy(&out).to_string()
}

#[test]
fn serves_metrics_and_health_over_tcp() {
    let m = leaked_metrics();
    let health = Arc::new(Health::new(1, HealthRules::default()));
    health.loop_ticked(0);
    let status = spawn(
        bind("127.0.0.1:0".parse().unwrap()).unwrap(),
        m,
        health.clone(),
    )
    .unwrap();
    let addr = status.local_addr();
    m.login(Protocol::Pop, LoginOutcome::Ok, Duration::from_millis(2));
    let got = ask(addr, b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    assert!(
        got.contains("mmp_logins_total{service=\"pop\",outcome=\"ok\"} 1\n"),
        "{got}"
    );
    let got = ask(addr, b"GET /health HTTP/1.1\r\n\r\n");
    assert!(
        got.starts_with("HTTP/1.1 200 OK\r\n") && got.ends_with("\r\n\r\nok\n"),
        "{got}"
    );
    let got = ask(addr, b"GET /nothing HTTP/1.1\r\n\r\n");
    assert!(got.starts_with("HTTP/1.1 404 "), "{got}");
    // A request split over two writes still works.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /heal").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    s.write_all(b"th HTTP/1.1\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    // An oversized head is refused, and the listener keeps serving.
    let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    big.resize(MAX_REQUEST_BYTES + 100, b'a');
    let got = ask(addr, &big);
    assert!(got.starts_with("HTTP/1.1 400 "), "{got}");
    if std::path::Path::new("/usr/bin/curl").exists() {
        let out = std::process::Command::new("/usr/bin/curl")
            .args(["-s", "-m", "5", "-o", "-", "-w", "%{http_code}"])
            .arg(format!("http://{addr}/metrics"))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.ends_with("200"), "{text}");
        assert!(text.contains("# TYPE mmp_sessions gauge"), "{text}");
        let out = std::process::Command::new("/usr/bin/curl")
            .args([
                "-s",
                "-m",
                "5",
                "-I",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg(format!("http://{addr}/health"))
            .output()
            .expect("run curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "405");
    }
    status.stop();
    assert!(
        TcpStream::connect(addr).is_err(),
        "listener still open after stop"
    );
}

#[test]
fn health_turns_503_over_tcp() {
    let m = leaked_metrics();
    let rules = HealthRules {
        directory_stale: Duration::ZERO,
        ..HealthRules::default()
    };
    let health = Arc::new(Health::new(0, rules));
    let status = spawn(
        bind("127.0.0.1:0".parse().unwrap()).unwrap(),
        m,
        health.clone(),
    )
    .unwrap();
    health.directory_failed();
    std::thread::sleep(Duration::from_millis(5));
    let got = ask(status.local_addr(), b"GET /health HTTP/1.1\r\n\r\n");
    assert!(
        got.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{got}"
    );
    assert!(got.contains("directory: last search failed"), "{got}");
    health.directory_succeeded();
    let got = ask(status.local_addr(), b"GET /health HTTP/1.1\r\n\r\n");
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
}
