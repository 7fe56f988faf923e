//! The `mmp` command: parse the command line, load the legacy instance directory, start
//! logging, bind, run. Everything a test needs lives in the library; this file only turns
//! errors into messages and exit codes.
//!
//! Exit codes: 0 success (or `-t` found the configuration valid), 1 configuration error,
//! 2 usage error, 3 start-up failure (a port cannot be bound, …).

use getopts::Options;
use mmp::config;
use mmp::process::signals::{self, Signal};
use mmp::process::{daemon, limits, privileges};
use mmp::server::Control;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const DEFAULT_DIR: &str = "/etc/mmp";

fn main() -> ExitCode {
    let daemon_child = daemon::adopt();
    let args: Vec<String> = std::env::args().collect();
    let mut opts = Options::new();
    opts.optopt(
        "c",
        "config",
        "instance directory (default /etc/mmp)",
        "DIR",
    );
    opts.optflag(
        "f",
        "foreground",
        "stay in the foreground, log to standard error",
    );
    opts.optflag(
        "t",
        "test",
        "check the configuration (a migration report) and exit 0 (valid) or 1",
    );
    opts.optflag(
        "v",
        "verbose",
        "with -t: say what mmp does with every option line",
    );
    opts.optflag(
        "n",
        "effective",
        "print the effective configuration with the source of every value, and exit",
    );
    opts.optopt("p", "pidfile", "write the process id to FILE", "FILE");
    opts.optflag("V", "version", "print the version and exit");
    opts.optflag("h", "help", "print this help and exit");
    let usage = || opts.usage("Usage: mmp [-f] [-t [-v]] [-n] [-c DIR] [-p FILE]");
    let m = match opts.parse(&args[1..]) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("mmp: {e}\n{}", usage());
            return ExitCode::from(2);
        }
    };
    if m.opt_present("h") {
        print!("{}", usage());
        return ExitCode::SUCCESS;
    }
    if m.opt_present("V") {
        println!("mmp {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if !m.free.is_empty() {
        eprintln!("mmp: unexpected argument {:?}\n{}", m.free[0], usage());
        return ExitCode::from(2);
    }
    let dir = PathBuf::from(m.opt_str("c").unwrap_or_else(|| DEFAULT_DIR.to_string()));
    let pidfile = m.opt_str("p").map(PathBuf::from);
    if m.opt_present("t") {
        return check(&dir, m.opt_present("v"));
    }
    let config = match load(&dir) {
        Some(c) => c,
        None => {
            daemon::ready(Err(format!("configuration errors in {}", dir.display())));
            return ExitCode::from(1);
        }
    };
    if m.opt_present("n") {
        print!("{}", config::effective::render(&dir, &config));
        return ExitCode::SUCCESS;
    }
    if !m.opt_present("f") {
        return daemonize(&args, &config);
    }
    run(&config, pidfile.as_deref(), daemon_child)
}

/// `mmp -t [-v]`: the migration report of `dir`, with what start-up would build (TLS
/// configurations, caches) checked too, without binding. Writes nothing anywhere.
fn check(dir: &Path, verbose: bool) -> ExitCode {
    let examined = config::examine(dir);
    let mut report = config::report::Migration::new(dir, &examined);
    if report.is_valid() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        match mmp::server::prepare(&examined.config) {
            Ok((_, warnings)) => warnings.into_iter().for_each(|w| report.add_warning(w)),
            Err(e) => report.add_error(e.to_string()),
        }
    }
    print!("{}", report.render(dir, verbose));
    match report.is_valid() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    }
}

/// Loads the configuration, printing every warning and error; `None` on errors.
fn load(dir: &Path) -> Option<config::Config> {
    match config::load(dir) {
        Ok((config, warnings)) => {
            for w in warnings {
                eprintln!("mmp: warning: {w}");
            }
            Some(config)
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("mmp: {e}");
            }
            eprintln!(
                "mmp: {} error(s) in {}; not started",
                errors.len(),
                dir.display()
            );
            None
        }
    }
}

/// Runs the service in this process: signals blocked before any thread starts, the
/// descriptor limit raised, logs opened, ports bound, pidfile written, privileges dropped,
/// then the signal thread and the server. Every failure is reported to a waiting parent.
fn run(config: &config::Config, pidfile: Option<&Path>, daemon_child: bool) -> ExitCode {
    if let Err(e) = signals::block() {
        return fail(&format!("cannot block signals: {e}"));
    }
    let limit = limits::raise();
    mmp::log::init(mmp::log::Plan::new(config, !daemon_child));
    let _ = rustls::crypto::ring::default_provider().install_default();
    match limit {
        Ok(d) => log::warn!("{d}"),
        Err(e) => log::warn!("cannot raise the descriptor limit: {e}"),
    }
    let global = &config.global;
    let identity = match privileges::resolve(global.user.as_ref(), global.group.as_ref()) {
        Ok(id) => id,
        Err(e) => return fail(&format!("AService.cfg: {e}")),
    };
    let server = match mmp::server::Server::bind(config) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let pidfile = match pidfile.map(daemon::PidFile::write).transpose() {
        Ok(p) => p,
        Err(e) => return fail(&format!("cannot write the pid file: {e}")),
    };
    if let Some(id) = &identity {
        match privileges::drop_to(id) {
            Ok(how) => log::info!(
                "running as {} (uid {}, gid {}): {how:?}",
                id.shown,
                id.uid,
                id.gid
            ),
            Err(e) => {
                if let Some(p) = &pidfile {
                    p.remove();
                }
                return fail(&format!("cannot switch to {}: {e}", id.shown));
            }
        }
    }
    let (control, signalled) = std::sync::mpsc::channel();
    let on_signal = move |s: Signal| {
        let _ = control.send(match s {
            Signal::Stop => Control::Stop,
            Signal::Reload => Control::Reload,
            Signal::ReopenLogs => Control::ReopenLogs,
        });
    };
    if let Err(e) = signals::spawn(on_signal) {
        return fail(&format!("cannot start the signal thread: {e}"));
    }
    daemon::ready(Ok(()));
    log::warn!(
        "mmp {} started from {}",
        env!("CARGO_PKG_VERSION"),
        config.dir.display()
    );
    let result = server.run(&signalled);
    if let Some(p) = &pidfile {
        p.remove();
    }
    match result {
        Ok(()) => {
            log::warn!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("stopped: {e}");
            ExitCode::from(3)
        }
    }
}

/// Start-up failed: say why in the log, on standard error and to a waiting parent.
fn fail(why: &str) -> ExitCode {
    log::error!("not started: {why}");
    eprintln!("mmp: not started: {why}");
    daemon::ready(Err(why.to_string()));
    ExitCode::from(3)
}

/// Starts this program again (`current_exe`) as a daemon in its own session, its standard
/// error appended to `LogDir/mmp.log`, and exits once it has bound its ports: 0, or 3 with
/// the reason on standard error.
fn daemonize(args: &[String], config: &config::Config) -> ExitCode {
    let log_dir = mmp::log::log_dir(config);
    if let Err(e) = std::fs::create_dir_all(&log_dir) {
        eprintln!(
            "mmp: cannot create log directory {}: {e}",
            log_dir.display()
        );
        return ExitCode::from(3);
    }
    let log_path = log_dir.join("mmp.log");
    let log = match mmp::log::open_append(&log_path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mmp: cannot open {}: {e}", log_path.display());
            return ExitCode::from(3);
        }
    };
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mmp: cannot find its own executable: {e}");
            return ExitCode::from(3);
        }
    };
    match daemon::start(&exe, &args[1..], log) {
        Ok(pid) => {
            println!(
                "mmp: started as process {pid}, logging to {}",
                log_path.display()
            );
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("mmp: not started: {why}");
            ExitCode::from(3)
        }
    }
}
