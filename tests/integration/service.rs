//! Service cases (issue 11): the process around the server. The unprivileged user on every
//! thread, the daemon's start-up report, the pidfile, the systemd notify protocol, the
//! descriptor limit and the signals. Each case starts its own mmp and stops it by PID.

use crate::cases;
use crate::common::mmp::mmp_bin;
use crate::common::*;
use crate::Case;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

pub fn cases() -> Vec<Case> {
    cases![
        service_user_and_group_hold_on_every_thread,
        service_daemon_bind_failure_exits_non_zero_with_the_reason,
        service_daemon_reports_ready_and_pidfile_replaces_a_planted_symlink,
        service_notify_ready_reloading_ready_stopping,
        service_descriptor_limit_raised_and_logged_and_hup_usr1_keep_serving,
        service_unknown_user_and_bad_drain_timeout_refuse_to_start,
        service_init_script_checks_before_restart_and_reload_and_stops,
        service_journal_stream_lines_carry_the_priority,
    ]
}

/// The numeric id of a user or group name (`getent`).
fn id_of(db: &str, name: &str) -> String {
    let out = run(
        Command::new("getent").arg(db).arg(name),
        Duration::from_secs(5),
    );
    out.stdout
        .split(':')
        .nth(2)
        .unwrap_or("")
        .trim()
        .to_string()
}

fn kill(pid: u32, signal: libc::c_int) {
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(pid as libc::pid_t, signal) };
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// A daemon started by the case, killed by PID when the case ends.
struct Daemon(u32);

impl Drop for Daemon {
    fn drop(&mut self) {
        kill(self.0, libc::SIGKILL);
        wait_until(Duration::from_secs(5), || !alive(self.0));
    }
}

/// `Uid:`/`Gid:` of every thread of `pid`: the four ids of each line.
fn thread_ids(pid: u32) -> Vec<(String, String)> {
    let mut ids = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or("")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        ids.push((field("Uid:"), field("Gid:")));
    }
    ids
}

fn service_user_and_group_hold_on_every_thread(env: &Env) {
    let (uid, gid) = (id_of("passwd", "nobody"), id_of("group", "nogroup"));
    assert!(!uid.is_empty() && !gid.is_empty(), "no nobody/nogroup here");
    let cfg = env
        .config()
        .set_aservice("User", "nobody")
        .set_aservice("Group", "nogroup");
    let mut m = Mmp::start(&cfg);
    m.assert_still_serving();
    let pid = m.pid().unwrap();
    let ids = thread_ids(pid);
    assert!(ids.len() > 2, "expected the server's threads: {ids:?}");
    let want = (
        format!("{uid} {uid} {uid} {uid}"),
        format!("{gid} {gid} {gid} {gid}"),
    );
    for t in &ids {
        assert_eq!(t, &want, "a thread not switched: {ids:?}\n{}", m.log());
    }
    let groups = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let groups = groups.lines().find(|l| l.starts_with("Groups:")).unwrap();
    assert!(!groups.split_whitespace().any(|g| g == "0"), "{groups}");
}

fn service_daemon_bind_failure_exits_non_zero_with_the_reason(env: &Env) {
    let dir = temp_dir("svc-bind");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = env
        .config()
        .set_aservice(
            "ServiceList",
            &format!("ImapProxyAService@127.0.0.1:{port}"),
        )
        .set_aservice("LogDir", dir.join("log").to_str().unwrap());
    let config = cfg.write(&dir.join("config"));
    let out = run(
        Command::new(mmp_bin()).arg("-c").arg(&config.dir),
        Duration::from_secs(70),
    );
    assert_eq!(out.status.code(), Some(3), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("not started") && out.stderr.contains(&port.to_string()),
        "the reason on stderr: {}",
        out.stderr
    );
}

fn service_daemon_reports_ready_and_pidfile_replaces_a_planted_symlink(env: &Env) {
    let dir = temp_dir("svc-pid");
    let victim = dir.join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    let pidfile = dir.join("mmp.pid");
    std::os::unix::fs::symlink(&victim, &pidfile).unwrap();
    let port = free_port("127.0.0.1");
    let cfg = env
        .config()
        .set_aservice(
            "ServiceList",
            &format!("ImapProxyAService@127.0.0.1:{port}"),
        )
        .set_aservice("LogDir", dir.join("log").to_str().unwrap());
    let config = cfg.write(&dir.join("config"));
    let out = run(
        Command::new(mmp_bin())
            .arg("-c")
            .arg(&config.dir)
            .arg("-p")
            .arg(&pidfile),
        Duration::from_secs(70),
    );
    assert_eq!(out.status.code(), Some(0), "{}{}", out.stdout, out.stderr);
    // Ready means bound: the port accepts as soon as the starting process has exited.
    assert!(
        port_accepts(addr("127.0.0.1", port)),
        "not listening after ready"
    );
    let meta = std::fs::symlink_metadata(&pidfile).unwrap();
    assert!(meta.file_type().is_file() && !meta.file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _guard = Daemon(pid);
    // The daemon left the terminal's session: it leads its own.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(fields[3], pid.to_string(), "session id: {stat}");
    let log = dir.join("log").join("mmp.log");
    let mode = std::fs::metadata(&log).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o640);
    kill(pid, libc::SIGTERM);
    assert!(
        wait_until(Duration::from_secs(40), || !alive(pid)),
        "still running"
    );
    assert!(!pidfile.exists() && std::fs::symlink_metadata(&pidfile).is_err());
}

/// READY=1 once bound, RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a SIGHUP,
/// STOPPING=1 on SIGTERM. Today main.rs's signal fallback sends the last three; once the
/// server reloads and drains, it must send them around the reload and when the drain starts.
fn service_notify_ready_reloading_ready_stopping(env: &Env) {
    let dir = temp_dir("svc-notify");
    let socket_path = dir.join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    assert!(std::fs::metadata(&socket_path)
        .unwrap()
        .file_type()
        .is_socket());
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let port = free_port("127.0.0.1");
    let cfg = env.config().set_aservice(
        "ServiceList",
        &format!("ImapProxyAService@127.0.0.1:{port}"),
    );
    let config = cfg.write(&dir.join("config"));
    let log = std::fs::File::create(dir.join("mmp.log")).unwrap();
    let mut child = Command::new(mmp_bin())
        .arg("-f")
        .arg("-c")
        .arg(&config.dir)
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let pid = child.id();
    let _guard = Daemon(pid);
    let mut buf = [0u8; 1024];
    let mut recv = || {
        let n = socket.recv(&mut buf).expect("a notify datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = recv();
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    assert!(
        port_accepts(addr("127.0.0.1", port)),
        "READY=1 before the port was bound"
    );
    kill(pid, libc::SIGHUP);
    let reloading = recv();
    assert!(
        reloading.lines().any(|l| l == "RELOADING=1"),
        "{reloading:?}"
    );
    let usec = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(usec.is_some_and(|u| u > 0), "{reloading:?}");
    let again = recv();
    assert!(again.lines().any(|l| l == "READY=1"), "{again:?}");
    kill(pid, libc::SIGTERM);
    let second = recv();
    assert!(second.lines().any(|l| l == "STOPPING=1"), "{second:?}");
    let status = wait_child(&mut child, Duration::from_secs(40));
    assert_eq!(status, Some(0), "{}", tail(&dir.join("mmp.log"), 20));
}

fn wait_child(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let mut code = None;
    wait_until(limit, || match child.try_wait() {
        Ok(Some(s)) => {
            code = s.code();
            true
        }
        _ => false,
    });
    code
}

fn service_descriptor_limit_raised_and_logged_and_hup_usr1_keep_serving(env: &Env) {
    let mut m = Mmp::start(&env.config());
    let pid = m.pid().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums[0], nums[1], "soft limit not raised: {line}");
    let want = format!("descriptor limit {} (hard", nums[0]);
    assert!(m.wait_for_log(&want, Duration::from_secs(5)), "{}", m.log());
    assert!(m.log().contains(" sessions"));
    for signal in [libc::SIGHUP, libc::SIGUSR1, libc::SIGHUP] {
        kill(pid, signal);
        std::thread::sleep(Duration::from_millis(200));
        m.assert_still_serving();
    }
    assert!(
        m.wait_for_log("SIGHUP", Duration::from_secs(5)),
        "{}",
        m.log()
    );
}

fn service_unknown_user_and_bad_drain_timeout_refuse_to_start(env: &Env) {
    let dir = temp_dir("svc-user");
    let list = format!("ImapProxyAService@127.0.0.1:{}", free_port("127.0.0.1"));
    let base = env.config().set_aservice("ServiceList", &list);
    let cfg = base.clone().set_aservice("User", "no-such-user-mmp");
    let config = cfg.write(&dir.join("config"));
    let out = run(
        Command::new(mmp_bin()).arg("-f").arg("-c").arg(&config.dir),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(3), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("User no-such-user-mmp is not known to the system"),
        "{}",
        out.stderr
    );
    let bad = base.clone().set_aservice("DrainTimeout", "soon");
    let config = bad.write(&dir.join("bad"));
    let line = config.line_of("AService.cfg", "DrainTimeout");
    let (code, text) = config.check();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(&format!("AService.cfg:{line}")), "{text}");
    let good = base.set_aservice("DrainTimeout", "5");
    let (code, text) = good.write(&dir.join("good")).check();
    assert_eq!(code, Some(0), "{text}");
}

fn service_init_script_checks_before_restart_and_reload_and_stops(env: &Env) {
    let dir = temp_dir("svc-init");
    let port = free_port("127.0.0.1");
    let cfg = env
        .config()
        .set_aservice(
            "ServiceList",
            &format!("ImapProxyAService@127.0.0.1:{port}"),
        )
        .set_aservice("LogDir", dir.join("log").to_str().unwrap());
    let config = cfg.write(&dir.join("config"));
    let pidfile = dir.join("run").join("mmp.pid");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/etc/init.d/mmp");
    let init = |action: &str| {
        let out = run(
            Command::new("sh")
                .arg(script)
                .arg(action)
                .env("MMP_BIN", mmp_bin())
                .env("MMP_DIR", &config.dir)
                .env("MMP_PID", &pidfile)
                .env("MMP_DRAIN", "20"),
            Duration::from_secs(90),
        );
        (out.status.code(), format!("{}{}", out.stdout, out.stderr))
    };
    assert_eq!(init("status").0, Some(3));
    let (code, text) = init("start");
    assert_eq!(code, Some(0), "{text}");
    assert!(
        port_accepts(addr("127.0.0.1", port)),
        "not listening after start"
    );
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _guard = Daemon(pid);
    assert_eq!(init("status").0, Some(0));
    let log = dir.join("log").join("mmp.log");
    let (code, text) = init("reload");
    assert_eq!(code, Some(0), "{text}");
    let hup = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("SIGHUP")
    };
    assert!(
        wait_until(Duration::from_secs(5), hup),
        "{}",
        tail(&log, 20)
    );
    // A broken configuration: reload and restart refuse before touching the process.
    let aservice = config.dir.join("AService.cfg");
    let good = std::fs::read_to_string(&aservice).unwrap();
    std::fs::write(&aservice, format!("{good}default:DrainTimeout soon\n")).unwrap();
    for action in ["reload", "restart"] {
        let (code, text) = init(action);
        assert_ne!(
            code,
            Some(0),
            "{action} with a broken configuration: {text}"
        );
        assert!(
            alive(pid) && port_accepts(addr("127.0.0.1", port)),
            "{action}"
        );
    }
    std::fs::write(&aservice, good).unwrap();
    let (code, text) = init("stop");
    assert_eq!(code, Some(0), "{text}");
    assert!(!alive(pid), "still running after stop");
    assert!(!pidfile.exists());
    assert_eq!(init("status").0, Some(3));
}

/// With `JOURNAL_STREAM` naming standard error (device:inode), as systemd sets it, every
/// line starts with its sd-daemon priority; with another stream named, none does.
fn service_journal_stream_lines_carry_the_priority(env: &Env) {
    use std::os::unix::fs::MetadataExt;
    let dir = temp_dir("svc-journal");
    let port = free_port("127.0.0.1");
    let cfg = env.config().set_aservice(
        "ServiceList",
        &format!("ImapProxyAService@127.0.0.1:{port}"),
    );
    let config = cfg.write(&dir.join("config"));
    for (name, matching) in [("journal.log", true), ("plain.log", false)] {
        let path = dir.join(name);
        let log = std::fs::File::create(&path).unwrap();
        let meta = log.metadata().unwrap();
        let stream = if matching {
            format!("{}:{}", meta.dev(), meta.ino())
        } else {
            format!("{}:{}", meta.dev(), meta.ino() + 1)
        };
        let mut child = Command::new(mmp_bin())
            .arg("-f")
            .arg("-c")
            .arg(&config.dir)
            .env("JOURNAL_STREAM", stream)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let _guard = Daemon(child.id());
        let started = || {
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("started from")
        };
        assert!(
            wait_until(Duration::from_secs(10), started),
            "{}",
            tail(&path, 20)
        );
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            let prefixed = ["<3>", "<4>", "<6>", "<7>"]
                .iter()
                .any(|p| line.starts_with(p));
            assert_eq!(prefixed, matching, "{name}: {line}");
        }
        if matching {
            assert!(text
                .lines()
                .any(|l| l.starts_with("<4>") && l.contains(" WARN ")));
            assert!(text
                .lines()
                .any(|l| l.starts_with("<6>") && l.contains(" INFO ")));
        }
        kill(child.id(), libc::SIGTERM);
        assert_eq!(wait_child(&mut child, Duration::from_secs(20)), Some(0));
    }
}
