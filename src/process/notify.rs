//! The systemd notify protocol: when `NOTIFY_SOCKET` names a Unix datagram socket (a path,
//! or `@name` for the abstract namespace), each state change is one datagram of
//! `KEY=VALUE` lines. Without the variable every call does nothing.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;

/// A connection to the service manager's notify socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// The notifier for a `NOTIFY_SOCKET` value.
    pub fn new(value: &str) -> io::Result<Notifier> {
        let addr = if let Some(name) = value.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes())?
        } else {
            SocketAddr::from_pathname(value)?
        };
        Ok(Notifier {
            socket: UnixDatagram::unbound()?,
            addr,
        })
    }

    /// Sends one datagram of `KEY=VALUE` lines.
    pub fn send(&self, state: &str) -> io::Result<()> {
        self.socket.send_to_addr(state.as_bytes(), &self.addr)?;
        Ok(())
    }
}

/// The process's notifier, from `NOTIFY_SOCKET` at first use.
fn global() -> Option<&'static Notifier> {
    static NOTIFIER: OnceLock<Option<Notifier>> = OnceLock::new();
    NOTIFIER
        .get_or_init(|| {
            let value = std::env::var("NOTIFY_SOCKET").ok()?;
            Notifier::new(&value)
                .map_err(|e| log::warn!("NOTIFY_SOCKET {value:?} unusable: {e}"))
                .ok()
        })
        .as_ref()
}

fn notify(state: &str) {
    if let Some(n) = global() {
        if let Err(e) = n.send(state) {
            log::warn!("cannot notify the service manager ({state:?}): {e}");
        }
    }
}

/// The monotonic clock in microseconds, as `RELOADING=1` carries it.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// The service is up (ports bound), or back up after a reload.
pub fn ready() {
    notify("READY=1\nSTATUS=serving");
}

/// A reload starts; follow with [`ready`] once it is done (applied or refused).
pub fn reloading() {
    notify(&reloading_message(monotonic_usec()));
}

fn reloading_message(usec: u64) -> String {
    format!("RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading")
}

/// The service is stopping (draining).
pub fn stopping() {
    notify("STOPPING=1\nSTATUS=draining");
}

/// A free-form status line (`systemctl status` shows it). Newlines are replaced.
pub fn status(text: &str) {
    notify(&format!("STATUS={}", text.replace('\n', " ")));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn datagrams_reach_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("mmp-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = Notifier::new(path.to_str().unwrap()).unwrap();
        n.send("READY=1").unwrap();
        assert_eq!(recv(&sock), "READY=1");
        n.send(&reloading_message(42)).unwrap();
        assert_eq!(
            recv(&sock),
            "RELOADING=1\nMONOTONIC_USEC=42\nSTATUS=reloading"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn datagrams_reach_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("mmp-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Notifier::new(&format!("@{name}"))
            .unwrap()
            .send("STOPPING=1")
            .unwrap();
        assert_eq!(recv(&sock), "STOPPING=1");
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_usec();
        std::thread::sleep(Duration::from_millis(2));
        assert!(monotonic_usec() > a);
    }
}
