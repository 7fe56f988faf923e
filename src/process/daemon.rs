//! Daemon start-up and the pidfile. The starting process runs its own executable again with
//! `-f` in a new session, hands it the write end of a pipe (its number in
//! [`READY_FD_ENV`]), and exits only when the child has written `ready` (0) or an error
//! (the reason on standard error, non-zero), or after [`READY_WAIT`]. The pidfile is
//! written atomically and never through a symlink.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The environment variable carrying the ready pipe's descriptor number to the child.
pub const READY_FD_ENV: &str = "MMP_READY_FD";

/// How long the starting process waits for the child to bind.
pub const READY_WAIT: Duration = Duration::from_secs(60);

/// The child's end of the ready pipe, taken by [`adopt`].
static READY: Mutex<Option<File>> = Mutex::new(None);

/// Starts `exe args… -f` detached (new session, standard input and output on /dev/null,
/// standard error on `log`) and waits until it reports. `Ok(pid)` once it is ready.
pub fn start(exe: &Path, args: &[String], log: File) -> Result<u32, String> {
    let (read, write) = pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
    let fd = write.as_raw_fd();
    let mut child = Command::new(exe);
    child
        .args(args)
        .arg("-f")
        .env(READY_FD_ENV, fd.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: fcntl and setsid are async-signal-safe; nothing is allocated.
    unsafe {
        child.pre_exec(move || {
            if libc::fcntl(fd, libc::F_SETFD, 0) != 0 || libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut process = child
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    drop(write);
    match wait_report(read, READY_WAIT) {
        Report::Ready => Ok(process.id()),
        Report::Failed(why) => Err(why),
        Report::Silent => match exited(&mut process, Duration::from_secs(2)) {
            Some(status) => Err(format!(
                "the service exited ({status}) before it was ready; see its log"
            )),
            None => Err(format!(
                "the service (process {}) did not report ready within {} s",
                process.id(),
                READY_WAIT.as_secs()
            )),
        },
    }
}

/// The child's exit status if it ends within `limit`.
fn exited(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

enum Report {
    Ready,
    Failed(String),
    Silent,
}

/// Reads the child's report until end of file or `limit`.
fn wait_report(read: OwnedFd, limit: Duration) -> Report {
    let deadline = Instant::now() + limit;
    let mut file = File::from(read);
    let mut text = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Report::Silent;
        }
        let mut pfd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match file.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
        }
        if text.len() > 65_536 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&text);
    match text.trim_end() {
        "" => Report::Silent,
        "ready" => Report::Ready,
        other => Report::Failed(other.strip_prefix("error ").unwrap_or(other).to_string()),
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// In the child: takes the ready pipe named by [`READY_FD_ENV`], if any (close-on-exec
/// again). Call it first thing in `main`, before other descriptors are opened. True when
/// this process is a daemon started by [`start`].
pub fn adopt() -> bool {
    let Some(fd) = std::env::var(READY_FD_ENV)
        .ok()
        .and_then(|v| v.parse::<libc::c_int>().ok())
    else {
        return false;
    };
    // SAFETY: F_SETFD on an fd number only fails (EBADF) when it is not open.
    if fd <= 2 || unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return false;
    }
    // SAFETY: the descriptor is open and was handed to this process to own.
    let file = unsafe { File::from_raw_fd(fd) };
    *READY.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
    true
}

/// Reports the start-up's outcome: to the starting process (once; the pipe is closed) and,
/// on success, to systemd (`READY=1`). Called by the server once its ports are bound, or
/// by main with the reason it could not start.
pub fn ready(result: Result<(), String>) {
    if result.is_ok() {
        super::notify::ready();
    }
    let taken = READY.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(mut pipe) = taken {
        let text = match &result {
            Ok(()) => "ready\n".to_string(),
            Err(why) => format!("error {}\n", why.replace('\n', " ")),
        };
        let _ = pipe.write_all(text.as_bytes());
    }
}

/// A pidfile written by this process, removed by [`PidFile::remove`].
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes the process id to `path` atomically: a new temporary file in the same
    /// directory (`O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0644), then renamed over `path`. A
    /// symlink planted at `path` is replaced, not followed.
    pub fn write(path: &Path) -> io::Result<PidFile> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{}.tmp", std::process::id()));
        let temp = dir.map_or_else(|| PathBuf::from(&temp_name), |d| d.join(&temp_name));
        let open = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&temp)
        };
        let mut file = match open() {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                std::fs::remove_file(&temp)?; // unlink does not follow a symlink
                open()?
            }
            other => other?,
        };
        let written = file
            .write_all(format!("{}\n", std::process::id()).as_bytes())
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&temp, path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes it if it still holds this process's id.
    pub fn remove(&self) {
        let ours = std::fs::read_to_string(&self.path)
            .is_ok_and(|s| s.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mmp-daemon-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_pidfile_replaces_a_planted_symlink() {
        let dir = temp_dir("pid");
        let target = dir.join("victim");
        std::fs::write(&target, "keep").unwrap();
        let path = dir.join("mmp.pid");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let pid = PidFile::write(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        pid.remove();
        assert!(!path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reports_are_read_from_the_pipe() {
        for (text, ready) in [("ready\n", true), ("error port 143 in use\n", false)] {
            let (r, w) = pipe().unwrap();
            File::from(w).write_all(text.as_bytes()).unwrap();
            match wait_report(r, Duration::from_secs(5)) {
                Report::Ready => assert!(ready),
                Report::Failed(why) => {
                    assert_eq!((ready, why.as_str()), (false, "port 143 in use"))
                }
                Report::Silent => panic!("silent"),
            }
        }
        let (r, w) = pipe().unwrap();
        drop(w);
        assert!(matches!(
            wait_report(r, Duration::from_secs(5)),
            Report::Silent
        ));
    }
}
