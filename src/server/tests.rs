//! The server in-process: real sockets on 127.0.0.1, the real loops and control thread,
//! an IMAP service whose pre-login dialogue needs no directory. Logins, stores and the
//! other protocols are covered by the integration tests against slapd and Dovecot.

use super::{Control, Server};
use crate::config::{self, Config};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// An instance directory, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("mmp-server-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("test dir");
        Dir(path)
    }

    fn write(&self, port: u16, aservice: &str, banner: &str) {
        let a = format!("default:ServiceList imapproxy@127.0.0.1:{port}\n{aservice}");
        let i = format!("default:LdapUrl ldap://127.0.0.1:9/o=test\ndefault:Banner \"{banner}\"\n");
        std::fs::write(self.0.join("AService.cfg"), a).unwrap();
        std::fs::write(self.0.join("ImapProxyAService.cfg"), i).unwrap();
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn load(dir: &Path) -> Config {
    match config::load(dir) {
        Ok((c, _)) => c,
        Err(e) => panic!("config: {e:?}"),
    }
}

/// A server running on its own thread, stopped (twice: drain, then halt) on drop.
struct Running {
    addr: SocketAddr,
    control: Sender<Control>,
    thread: Option<JoinHandle<Result<(), super::Error>>>,
}

impl Running {
    fn start(config: &Config) -> Running {
        let server = Server::bind(config).expect("bind");
        let addr = server.local_addrs()[0];
        let (control, signals) = channel();
        let thread = std::thread::spawn(move || server.run(&signals));
        Running {
            addr,
            control,
            thread: Some(thread),
        }
    }

    /// Waits (bounded) for the server to return after a stop.
    fn join(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                if let Some(t) = self.thread.take() {
                    t.join().expect("server thread").expect("server result");
                }
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.control.send(Control::Stop);
        let _ = self.control.send(Control::Stop);
        self.join(Duration::from_secs(5));
    }
}

/// A connected client with its first line read.
struct Client {
    reader: BufReader<TcpStream>,
    first: String,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut reader = BufReader::new(stream);
        let first = line(&mut reader);
        Client { reader, first }
    }

    fn command(&mut self, text: &str) -> String {
        self.reader
            .get_mut()
            .write_all(format!("{text}\r\n").as_bytes())
            .unwrap();
        let mut out = String::new();
        for _ in 0..20 {
            let l = line(&mut self.reader);
            let done = l.starts_with("a ") || l.is_empty();
            out.push_str(&l);
            if done {
                break;
            }
        }
        out
    }
}

fn line(reader: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    let _ = reader.read_line(&mut l);
    l
}

#[test]
fn two_loops_serve_every_connection() {
    let dir = Dir::new();
    dir.write(free_port(), "default:LoopThreads 2\n", "two loops");
    let config = load(dir.path());
    assert_eq!(super::loop_count(&config), 2);
    let server = Running::start(&config);
    let clients: Vec<Client> = (0..40).map(|_| Client::connect(server.addr)).collect();
    for c in &clients {
        assert!(c.first.starts_with("* OK"), "{}", c.first);
        assert!(c.first.contains("two loops"), "{}", c.first);
    }
}

#[test]
fn max_sessions_answers_bye_and_admits_again_after_a_close() {
    let dir = Dir::new();
    dir.write(free_port(), "default:MaxSessions 2\n", "capped");
    let server = Running::start(&load(dir.path()));
    let a = Client::connect(server.addr);
    let _b = Client::connect(server.addr);
    let c = Client::connect(server.addr);
    assert!(a.first.starts_with("* OK"), "{}", a.first);
    assert!(c.first.starts_with("* BYE"), "{}", c.first);
    assert!(c.first.contains("busy"), "{}", c.first);
    drop(a);
    let start = Instant::now();
    loop {
        let d = Client::connect(server.addr);
        if d.first.starts_with("* OK") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "slot never came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_stop_says_bye_before_login_closes_the_listener_and_returns() {
    let dir = Dir::new();
    dir.write(free_port(), "default:LoopThreads 2\n", "draining");
    let mut server = Running::start(&load(dir.path()));
    let mut clients: Vec<Client> = (0..6).map(|_| Client::connect(server.addr)).collect();
    server.control.send(Control::Stop).unwrap();
    for c in &mut clients {
        let bye = line(&mut c.reader);
        assert!(bye.starts_with("* BYE"), "{bye:?}");
        assert!(bye.contains("shutting down"), "{bye:?}");
    }
    assert!(server.join(Duration::from_secs(5)), "run() did not return");
    assert!(TcpStream::connect(server.addr).is_err(), "still listening");
}

#[test]
fn a_reload_gives_new_connections_the_new_banner_and_keeps_old_sessions() {
    let dir = Dir::new();
    let port = free_port();
    dir.write(port, "", "before");
    let server = Running::start(&load(dir.path()));
    let mut old = Client::connect(server.addr);
    assert!(old.first.contains("before"), "{}", old.first);
    dir.write(port, "", "after");
    server.control.send(Control::Reload).unwrap();
    let start = Instant::now();
    loop {
        let new = Client::connect(server.addr);
        if new.first.contains("after") {
            break;
        }
        assert!(new.first.contains("before"), "{}", new.first);
        assert!(start.elapsed() < Duration::from_secs(5), "reload not seen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let answer = old.command("a CAPABILITY");
    assert!(answer.contains("a OK"), "{answer}");
    // A broken file: nothing changes.
    std::fs::write(
        dir.path().join("ImapProxyAService.cfg"),
        "default:Timeout soon\n",
    )
    .unwrap();
    server.control.send(Control::Reload).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let still = Client::connect(server.addr);
    assert!(still.first.contains("after"), "{}", still.first);
}
