//! Signals as values: SIGHUP, SIGUSR1, SIGTERM and SIGINT are blocked in every thread and
//! collected by one dedicated thread with `sigwait`, which hands each one as a [`Signal`] to
//! a callback. Nothing runs in signal-handler context. SIGPIPE is ignored (a peer closing
//! is an ordinary write error).

use std::io;
use std::thread::JoinHandle;

/// What a signal asks of mmp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP: reload the configuration and reopen the logs.
    Reload,
    /// SIGUSR1: reopen the logs (after rotation).
    ReopenLogs,
    /// SIGTERM or SIGINT: drain and stop; a second one stops at once.
    Stop,
}

impl Signal {
    /// The signal for a signal number, `None` for one mmp does not handle.
    pub fn from_number(n: libc::c_int) -> Option<Signal> {
        match n {
            libc::SIGHUP => Some(Signal::Reload),
            libc::SIGUSR1 => Some(Signal::ReopenLogs),
            libc::SIGTERM | libc::SIGINT => Some(Signal::Stop),
            _ => None,
        }
    }
}

/// The signals collected by the signal thread.
const HANDLED: [libc::c_int; 4] = [libc::SIGHUP, libc::SIGUSR1, libc::SIGTERM, libc::SIGINT];

fn handled_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset reads it; the numbers are valid.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for n in HANDLED {
            libc::sigaddset(&mut set, n);
        }
        set
    }
}

/// Blocks the handled signals in the calling thread and ignores SIGPIPE. Call it in the
/// main thread before any other thread starts: threads inherit the mask, so the signals
/// then reach only the `sigwait` of [`spawn`]'s thread.
pub fn block() -> io::Result<()> {
    let set = handled_set();
    // SAFETY: setting SIG_IGN installs no handler code; the set is initialised.
    unsafe {
        if libc::signal(libc::SIGPIPE, libc::SIG_IGN) == libc::SIG_ERR {
            return Err(io::Error::last_os_error());
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
    }
    Ok(())
}

/// Blocks the signals in the calling thread (see [`block`]) and starts the thread that
/// waits for them and calls `on_signal` for each, in order, for the life of the process.
/// `on_signal` runs on that thread, not in a handler: it may lock, log and wake loops.
pub fn spawn(mut on_signal: impl FnMut(Signal) + Send + 'static) -> io::Result<JoinHandle<()>> {
    block()?;
    std::thread::Builder::new()
        .name("mmp-signals".to_string())
        .spawn(move || {
            let set = handled_set();
            loop {
                let mut n: libc::c_int = 0;
                // SAFETY: the set is initialised and `n` is a valid out-pointer.
                let rc = unsafe { libc::sigwait(&set, &mut n) };
                if rc != 0 {
                    log::error!("sigwait failed: {}", io::Error::from_raw_os_error(rc));
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                }
                if let Some(signal) = Signal::from_number(n) {
                    on_signal(signal);
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::thread::JoinHandleExt;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn numbers_map_to_signals() {
        assert_eq!(Signal::from_number(libc::SIGHUP), Some(Signal::Reload));
        assert_eq!(Signal::from_number(libc::SIGUSR1), Some(Signal::ReopenLogs));
        assert_eq!(Signal::from_number(libc::SIGTERM), Some(Signal::Stop));
        assert_eq!(Signal::from_number(libc::SIGINT), Some(Signal::Stop));
        assert_eq!(Signal::from_number(libc::SIGUSR2), None);
    }

    /// The signals are sent to the signal thread itself (`pthread_kill`), not to the process:
    /// the test harness's other threads do not block them, and a process-directed SIGUSR1
    /// could reach one of those and kill the test binary. The process-directed path is
    /// covered by the integration tests on the binary.
    #[test]
    fn the_signal_thread_turns_signals_into_values() {
        let (tx, rx) = mpsc::channel();
        // Once the test is over, a SIGINT or SIGTERM to the test binary still ends it.
        let handle = spawn(move |s| {
            if tx.send(s).is_err() && s == Signal::Stop {
                std::process::exit(1);
            }
        })
        .unwrap();
        let thread = handle.as_pthread_t();
        for (n, want) in [
            (libc::SIGUSR1, Signal::ReopenLogs),
            (libc::SIGHUP, Signal::Reload),
            (libc::SIGTERM, Signal::Stop),
        ] {
            // SAFETY: the thread is alive (it never returns) and blocks `n`.
            assert_eq!(unsafe { libc::pthread_kill(thread, n) }, 0);
            assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(want));
        }
    }
}
