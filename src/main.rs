//! The `mmp` command: parse the command line, load the legacy instance directory, start
//! logging, bind, run. Everything a test needs lives in the library; this file only turns
//! errors into messages and exit codes.
//!
//! Exit codes: 0 success (or `-t` found the configuration valid), 1 configuration error,
//! 2 usage error, 3 start-up failure (a port cannot be bound, …).

use getopts::Options;
use mmp::config;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const DEFAULT_DIR: &str = "/etc/mmp";

fn main() -> ExitCode {
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
        None => return ExitCode::from(1),
    };
    if m.opt_present("n") {
        print!("{}", config::effective::render(&dir, &config));
        return ExitCode::SUCCESS;
    }
    if !m.opt_present("f") {
        return daemonize(&args, &config);
    }
    run(&config, pidfile.as_deref())
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

fn run(config: &config::Config, pidfile: Option<&Path>) -> ExitCode {
    // One log for the whole process: the most verbose of AService.cfg and the services.
    let level = config
        .services()
        .map(|s| s.log_level.filter())
        .chain([config.global.log_level.filter()])
        .max()
        .unwrap_or(log::LevelFilter::Warn);
    mmp::log::init(level);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut server = match mmp::server::Server::bind(config) {
        Ok(s) => s,
        Err(e) => {
            log::error!("not started: {e}");
            eprintln!("mmp: not started: {e}");
            return ExitCode::from(3);
        }
    };
    if let Some(path) = pidfile {
        if let Err(e) = std::fs::write(path, format!("{}\n", std::process::id())) {
            log::error!("cannot write pid file {}: {e}", path.display());
            return ExitCode::from(3);
        }
    }
    log::warn!(
        "mmp {} started from {}",
        env!("CARGO_PKG_VERSION"),
        config.dir.display()
    );
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("stopped: {e}");
            ExitCode::from(3)
        }
    }
}

/// Starts a copy of this program with `-f` in its own process group, its standard error
/// appended to `LogDir/mmp.log` (or `DIR/log/mmp.log`), and returns. mmp links no C
/// library bindings, so it does not `fork` itself; the copy is detached from the
/// terminal's job control by its own process group and from its input by /dev/null.
fn daemonize(args: &[String], config: &config::Config) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let log_dir = config
        .global
        .log_dir
        .clone()
        .unwrap_or_else(|| config.dir.join("log"));
    if let Err(e) = std::fs::create_dir_all(&log_dir) {
        eprintln!(
            "mmp: cannot create log directory {}: {e}",
            log_dir.display()
        );
        return ExitCode::from(3);
    }
    let log_path = log_dir.join("mmp.log");
    let log = match std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mmp: cannot open {}: {e}", log_path.display());
            return ExitCode::from(3);
        }
    };
    let mut child = std::process::Command::new(&args[0]);
    child
        .args(&args[1..])
        .arg("-f")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .process_group(0);
    match child.spawn() {
        Ok(c) => {
            // With -p the child writes the pid file itself once it listens.
            println!(
                "mmp: started as process {}, logging to {}",
                c.id(),
                log_path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mmp: cannot start: {e}");
            ExitCode::from(3)
        }
    }
}
