//! Unit tests of the counters and of the exposition text, read back by a small checker
//! of the 0.0.4 text format.

use super::*;
use std::collections::{HashMap, HashSet};

/// Parses exposition text strictly enough to catch format mistakes: every family has
/// exactly one HELP and one TYPE before its samples, every sample line is
/// `name{k="v",...} value` with a known family, values are numbers. Returns
/// `"name{labels}" -> value`.
#[track_caller]
fn check(text: &str) -> HashMap<String, f64> {
    let mut help = HashSet::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    assert!(text.ends_with('\n'), "no final newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').expect("HELP has text");
            assert!(!text.is_empty(), "{line}");
            assert!(help.insert(name.to_string()), "HELP twice for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
            assert!(help.contains(name), "TYPE before HELP for {name}");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice for {name}"
            );
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name = series.split('{').next().unwrap_or(series);
        assert!(name.starts_with("mmp_"), "{line}");
        assert!(
            name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "{line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "sample before TYPE: {line}");
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                let inner = labels
                    .strip_prefix('{')
                    .and_then(|l| l.strip_suffix('}'))
                    .expect("braces");
                for pair in inner.split("\",") {
                    let (k, v) = pair
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("label in {line:?}"));
                    assert!(
                        k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                        "{line}"
                    );
                    assert!(!v.trim_end_matches('"').contains('\n'));
                }
                assert!(inner.ends_with('"'), "{line}");
            }
        }
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "series twice: {series}"
        );
    }
    assert_eq!(help.len(), types.len(), "a family without TYPE");
    samples
}

#[test]
fn render_is_valid_exposition_text_with_every_family() {
    let m = Metrics::new();
    let s = check(&m.render());
    let families = [
        "mmp_connections_accepted_total{service=\"imap\"}",
        "mmp_connections_refused_total{service=\"smtp\",reason=\"proxy_header\"}",
        "mmp_sessions{service=\"pop\",phase=\"closing\"}",
        "mmp_logins_total{service=\"imap\",outcome=\"directory_unavailable\"}",
        "mmp_login_duration_seconds_bucket{le=\"+Inf\"}",
        "mmp_login_duration_seconds_count",
        "mmp_worker_queue_depth",
        "mmp_workers_busy",
        "mmp_cache_hits_total{cache=\"route\"}",
        "mmp_cache_misses_total{cache=\"auth\"}",
        "mmp_cache_entries{cache=\"auth\"}",
        "mmp_relayed_bytes_total{direction=\"down\"}",
        "mmp_bad_guys",
        "mmp_reloads_total",
        "mmp_reload_failures_total",
        "mmp_tls_handshakes_total{service=\"pop\"}",
        "mmp_tls_handshake_failures_total{service=\"pop\"}",
    ];
    for f in families {
        assert_eq!(s.get(f), Some(&0.0), "{f}");
    }
    let version = format!(
        "mmp_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(s.get(&version), Some(&1.0));
    assert!(s["mmp_start_time_seconds"] > 1.6e9);
    let text = m.render();
    for f in [
        "mmp_directory_searches_total",
        "mmp_store_connect_failures_total",
    ] {
        assert!(text.contains(&format!("# TYPE {f} counter\n")), "{f}");
    }
}

#[test]
fn counters_and_gauges_move() {
    let m = Metrics::new();
    m.accepted(Protocol::Imap);
    m.accepted(Protocol::Imap);
    m.refused(Protocol::Pop, Refusal::ConnLimits);
    m.session_enter(Protocol::Imap, Phase::PreLogin);
    m.session_enter(Protocol::Imap, Phase::PreLogin);
    m.session_move(Protocol::Imap, Phase::PreLogin, Phase::Worker);
    m.session_move(Protocol::Imap, Phase::Worker, Phase::Relay);
    m.login(Protocol::Imap, LoginOutcome::Ok, Duration::from_millis(3));
    m.login(
        Protocol::Smtp,
        LoginOutcome::BadCredentials,
        Duration::from_secs(30),
    );
    m.job_queued();
    m.job_queued();
    m.job_started();
    m.directory_search("ldap://127.0.0.1:389", Outcome::Ok);
    m.directory_search("ldap://127.0.0.1:389", Outcome::Failed);
    m.store_connect("store\"1", Outcome::Failed);
    m.cache_lookup(Cache::Route, CacheResult::Hit);
    m.cache_lookup(Cache::Auth, CacheResult::Miss);
    m.set_cache_entries(Cache::Route, 7);
    m.relayed(Direction::Up, 100);
    m.relayed(Direction::Down, 5000);
    m.set_bad_guys(3);
    m.reload(Outcome::Ok);
    m.reload(Outcome::Failed);
    m.tls_handshake(Protocol::Pop, Outcome::Ok);
    m.tls_handshake(Protocol::Pop, Outcome::Failed);
    let s = check(&m.render());
    let want: &[(&str, f64)] = &[
        ("mmp_connections_accepted_total{service=\"imap\"}", 2.0),
        (
            "mmp_connections_refused_total{service=\"pop\",reason=\"conn_limits\"}",
            1.0,
        ),
        ("mmp_sessions{service=\"imap\",phase=\"prelogin\"}", 1.0),
        ("mmp_sessions{service=\"imap\",phase=\"worker\"}", 0.0),
        ("mmp_sessions{service=\"imap\",phase=\"relay\"}", 1.0),
        ("mmp_logins_total{service=\"imap\",outcome=\"ok\"}", 1.0),
        (
            "mmp_logins_total{service=\"smtp\",outcome=\"bad_credentials\"}",
            1.0,
        ),
        ("mmp_login_duration_seconds_bucket{le=\"0.001\"}", 0.0),
        ("mmp_login_duration_seconds_bucket{le=\"0.005\"}", 1.0),
        ("mmp_login_duration_seconds_bucket{le=\"10\"}", 1.0),
        ("mmp_login_duration_seconds_bucket{le=\"+Inf\"}", 2.0),
        ("mmp_login_duration_seconds_count", 2.0),
        ("mmp_login_duration_seconds_sum", 30.003),
        ("mmp_worker_queue_depth", 1.0),
        ("mmp_workers_busy", 1.0),
        (
            "mmp_directory_searches_total{url=\"ldap://127.0.0.1:389\"}",
            2.0,
        ),
        (
            "mmp_directory_errors_total{url=\"ldap://127.0.0.1:389\"}",
            1.0,
        ),
        ("mmp_store_connects_total{host=\"store\\\"1\"}", 1.0),
        ("mmp_store_connect_failures_total{host=\"store\\\"1\"}", 1.0),
        ("mmp_cache_hits_total{cache=\"route\"}", 1.0),
        ("mmp_cache_misses_total{cache=\"auth\"}", 1.0),
        ("mmp_cache_entries{cache=\"route\"}", 7.0),
        ("mmp_relayed_bytes_total{direction=\"up\"}", 100.0),
        ("mmp_relayed_bytes_total{direction=\"down\"}", 5000.0),
        ("mmp_bad_guys", 3.0),
        ("mmp_reloads_total", 2.0),
        ("mmp_reload_failures_total", 1.0),
        ("mmp_tls_handshakes_total{service=\"pop\"}", 2.0),
        ("mmp_tls_handshake_failures_total{service=\"pop\"}", 1.0),
    ];
    for (series, value) in want {
        assert_eq!(s.get(*series), Some(value), "{series}");
    }
}

#[test]
fn open_ended_labels_are_capped() {
    let m = Metrics::new();
    for i in 0..MAX_DYNAMIC_LABELS + 10 {
        m.store_connect(&format!("store{i}"), Outcome::Ok);
    }
    let s = check(&m.render());
    let hosts = s
        .keys()
        .filter(|k| k.starts_with("mmp_store_connects_total{"))
        .count();
    assert_eq!(hosts, MAX_DYNAMIC_LABELS + 1);
    assert_eq!(s["mmp_store_connects_total{host=\"other\"}"], 10.0);
}

#[test]
fn the_process_instance_is_one() {
    assert!(std::ptr::eq(get(), get()));
}

/// The reference parser (tests/common/metrics_check.py, prometheus_client) reads the
/// output too, when python3 has the package; skipped otherwise (the lead's CI installs it).
#[test]
fn render_parses_with_prometheus_client_when_installed() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/metrics_check.py");
    let m = Metrics::new();
    m.login(Protocol::Imap, LoginOutcome::Ok, Duration::from_millis(20));
    m.store_connect("store \\ \"x\"", Outcome::Failed);
    m.relayed(Direction::Up, 42);
    let Ok(mut child) = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        return;
    };
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(m.render().as_bytes())
        .expect("write to checker");
    drop(stdin);
    let out = child.wait_with_output().expect("checker output");
    if out.status.code() == Some(2) {
        eprintln!("prometheus_client not installed; skipped");
        return;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "mmp_logins mmp_logins_total{outcome=\"ok\",service=\"imap\"} 1",
        "mmp_login_duration_seconds mmp_login_duration_seconds_bucket{le=\"0.025\"} 1",
        "mmp_login_duration_seconds mmp_login_duration_seconds_bucket{le=\"0.01\"} 0",
        "mmp_store_connect_failures mmp_store_connect_failures_total{host=\"store \\\\ \\\"x\\\"\"} 1",
        "mmp_relayed_bytes mmp_relayed_bytes_total{direction=\"up\"} 42",
        "mmp_sessions mmp_sessions{phase=\"relay\",service=\"smtp\"} 0",
    ] {
        assert!(stdout.lines().any(|l| l == line), "missing {line:?} in\n{stdout}");
    }
}
