//! A reference relay: the least a user-space TCP proxy can do (per connection, two blocking
//! threads that read up to 32 KiB, mmp's buffer size, and write it to the other side). It
//! runs as a separate process (this benchmark binary re-executed with `MMP_BENCH_FORWARDER`
//! set), so that it pays the same process hops as mmp; what it adds to a direct connection
//! is what one extra hop costs on this machine, whoever makes it.

use crate::common::{stop_child, wait_until};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Environment variable that turns the benchmark binary into the forwarder; its value is
/// the target address.
pub const ENV: &str = "MMP_BENCH_FORWARDER";

/// Most connections a forwarder accepts (the benchmark needs a handful).
const MAX_CONNECTIONS: usize = 1000;

/// The forwarder process, stopped by PID when dropped.
pub struct Forwarder {
    pub addr: SocketAddr,
    child: Option<Child>,
}

impl Forwarder {
    /// Starts a forwarder to `target`; it prints its listening address first.
    pub fn start(target: SocketAddr) -> io::Result<Forwarder> {
        let mut child = Command::new(std::env::current_exe()?)
            .env(ENV, target.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut first = String::new();
        let out = child.stdout.take().expect("piped stdout");
        // The child prints one line at once; a child that dies closes the pipe (EOF).
        let read = BufReader::new(out).read_line(&mut first);
        let mut f = Forwarder {
            addr: "127.0.0.1:1".parse().unwrap(),
            child: Some(child),
        };
        read?;
        f.addr = first
            .trim()
            .parse()
            .map_err(|_| io::Error::other(format!("forwarder said {first:?}")))?;
        Ok(f)
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            drop(c.stdin.take()); // the forwarder exits on EOF of its stdin
            if !wait_until(Duration::from_secs(2), || {
                matches!(c.try_wait(), Ok(Some(_)))
            }) {
                stop_child(&mut c, Duration::from_secs(5));
            }
        }
    }
}

/// The forwarder's `main`: listen on 127.0.0.1, print the address, relay each connection
/// to `target`, exit when stdin reaches EOF (the benchmark closed it or died).
pub fn run(target: &str) {
    let target: SocketAddr = target.parse().expect("forwarder target address");
    let l = TcpListener::bind("127.0.0.1:0").expect("forwarder bind");
    println!("{}", l.local_addr().expect("forwarder address"));
    let _ = io::stdout().flush();
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        while matches!(io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    for client in l.incoming().take(MAX_CONNECTIONS) {
        let Ok(client) = client else { continue };
        let Ok(store) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = store.set_nodelay(true);
        let (Ok(c2), Ok(s2)) = (client.try_clone(), store.try_clone()) else {
            continue;
        };
        std::thread::spawn(move || pipe(client, store));
        std::thread::spawn(move || pipe(s2, c2));
    }
}

/// Copies `from` to `to` until end of stream, then half-closes `to`.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
