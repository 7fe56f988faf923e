//! Migrating a legacy instance with the mmp binary itself: `mmp -t -v` says what it does
//! with every option line (on the shipped sample and on a legacy directory with one line of
//! each kind), suggests the name a typo meant, never writes to the directory it checks, and
//! `mmp -n` lists every option of the option table with its source. No fixtures needed.

use crate::cases;
use crate::common::mmp::mmp_bin;
use crate::common::*;
use crate::Case;
use ::mmp::config::options::OPTIONS;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub fn cases() -> Vec<Case> {
    cases![
        migration_report_on_sample_says_every_line_is_used,
        migration_report_classifies_each_kind_of_legacy_line,
        migration_check_leaves_directory_byte_identical,
        migration_effective_config_lists_every_option_with_source,
    ]
}

/// The shipped sample instance, `etc/mmp`.
fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/mmp")
}

/// Copies every file of `from` into a fresh temporary directory.
fn copy_dir(from: &Path, tag: &str) -> PathBuf {
    let to = temp_dir(tag);
    for entry in std::fs::read_dir(from).expect("read sample dir") {
        let path = entry.expect("dir entry").path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).expect("copy sample");
        }
    }
    to
}

/// `mmp ARGS`: (exit code, stdout + stderr). Bounded.
#[track_caller]
fn mmp(args: &[&str], dir: &Path) -> (Option<i32>, String) {
    let out = run(
        Command::new(mmp_bin()).args(args).arg("-c").arg(dir),
        Duration::from_secs(20),
    );
    (out.status.code(), format!("{}{}", out.stdout, out.stderr))
}

/// Every file of `dir` (recursively) with its bytes and permission bits.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("dir entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("stat");
            if meta.is_dir() {
                todo.push(path.clone());
            }
            let bytes = if meta.is_file() {
                std::fs::read(&path).expect("read")
            } else {
                Vec::new()
            };
            files.insert(path, (bytes, meta.permissions().mode()));
        }
    }
    files
}

/// `(line, option, verdict)` of every verbose report line about `file`.
fn verdicts(out: &str, file: &str) -> Vec<(u32, String, String)> {
    let prefix = format!("  {file}:");
    out.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (line, rest) = rest.split_once(": ")?;
            let (name, verdict) = rest.split_once(": ")?;
            Some((line.parse().ok()?, name.to_string(), verdict.to_string()))
        })
        .collect()
}

/// `(line, name)` of every `default:Name value` line of a file.
fn option_lines(path: &Path) -> Vec<(u32, String)> {
    let text = std::fs::read_to_string(path).expect("read option file");
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let rest = l.trim_start().strip_prefix("default:")?;
            let name = rest.split_whitespace().next()?;
            Some((i as u32 + 1, name.to_string()))
        })
        .collect()
}

fn migration_report_on_sample_says_every_line_is_used(_env: &Env) {
    let dir = sample();
    let (code, out) = mmp(&["-t", "-v"], &dir);
    assert_eq!(code, Some(0), "mmp -t -v refused the sample:\n{out}");
    for file in [
        "AService.cfg",
        "ImapProxyAService.cfg",
        "PopProxyAService.cfg",
        "SmtpProxyAService.cfg",
    ] {
        let want = option_lines(&dir.join(file));
        let got = verdicts(&out, file);
        let lines: Vec<(u32, String)> = got.iter().map(|(l, n, _)| (*l, n.clone())).collect();
        assert_eq!(
            lines, want,
            "{file}: one report line per option line:\n{out}"
        );
        for (line, name, verdict) in &got {
            assert!(
                verdict == "honoured" || verdict.starts_with("mapped to "),
                "{file}:{line}: {name}: the sample should use every line, got {verdict:?}"
            );
        }
        let summary = format!("  {file}: {} line(s): ", want.len());
        assert!(out.contains(&summary), "no summary {summary:?}:\n{out}");
    }
    assert!(
        !out.contains("warning:"),
        "the sample draws warnings:\n{out}"
    );
}

const LEGACY_AS: &str = "\
# a Sun MMP 6.3 instance
default:ServiceList /opt/SUNWmsgsr/lib/ImapProxyAService@143|993 /opt/SUNWmsgsr/lib/SmtpProxyAService@25
default:LogLevel 5
default:MaxThreads 8
";

const LEGACY_IMAP: &str = "\
default:LdapUrl ldap://ldap.example.com/o=internet
default:Timeout 1700
default:Timeout 1800
default:AuchCacheTTL 600
default:SmtpRelays mta.example.com
default:SSLCacheDir /opt/SUNWmsgsr/config
default:AuthenticationServer 127.0.0.1:56
default:CRAMs yes
default:LdapCacheTTL ten
default:BindPass hunter2
";

const LEGACY_SMTP: &str = "\
default:SmtpRelays mta.example.com
default:SmtpProxyPassword hunter3
";

fn migration_report_classifies_each_kind_of_legacy_line(_env: &Env) {
    let dir = temp_dir("legacy");
    for (name, text) in [
        ("AService-def.cfg", LEGACY_AS),
        ("ImapProxyAService.cfg", LEGACY_IMAP),
        ("SmtpProxyAService.cfg", LEGACY_SMTP),
        ("PopProxyAService.cfg", "default:Timeout 600\n"),
    ] {
        std::fs::write(dir.join(name), text).expect("write legacy file");
    }
    let (code, out) = mmp(&["-t", "-v"], &dir);
    assert_eq!(code, Some(1), "refused and bad lines must fail -t:\n{out}");
    let aservice = verdicts(&out, "AService-def.cfg");
    let aservice: Vec<_> = aservice.iter().map(|(l, n, _)| (*l, n.as_str())).collect();
    assert_eq!(
        aservice,
        [(2, "ServiceList"), (3, "LogLevel"), (4, "MaxThreads")],
        "{out}"
    );
    for want in [
        "AService-def.cfg (read because AService.cfg is missing):",
        "AService-def.cfg:2: ServiceList: mapped to IMAP on 143, 993; SMTP on 25",
        "AService-def.cfg:3: LogLevel: mapped to log level debug",
        "AService-def.cfg:4: MaxThreads: mapped to a pool of 8 worker threads shared by all \
         services (NumThreads)",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
    let imap = verdicts(&out, "ImapProxyAService.cfg");
    let want: &[(u32, &str, &str)] = &[
        (1, "LdapUrl", "honoured"),
        (2, "Timeout", "no effect because line 3 sets it again"),
        (3, "Timeout", "honoured"),
        (4, "AuchCacheTTL", "unknown, ignored"),
        (
            5,
            "SmtpRelays",
            "no effect because it is not read in this file",
        ),
        (
            6,
            "SSLCacheDir",
            "no effect because rustls keeps its session cache in memory",
        ),
        (
            7,
            "AuthenticationServer",
            "refused because the third-party authentication",
        ),
        (8, "CRAMs", "refused because CRAM-MD5 and APOP need"),
        (
            9,
            "LdapCacheTTL",
            "error: LdapCacheTTL: expected seconds, got \"ten\"",
        ),
        (10, "BindPass", "honoured"),
    ];
    assert_eq!(imap.len(), want.len(), "{out}");
    for ((line, name, verdict), (want_line, want_name, want_verdict)) in imap.iter().zip(want) {
        assert_eq!((line, name.as_str()), (want_line, *want_name), "{out}");
        assert!(
            verdict.starts_with(want_verdict),
            "line {line}: {verdict:?} does not start with {want_verdict:?}"
        );
    }
    for want in [
        // The typo gets its suggestion, in the warning and in the verbose line.
        "ImapProxyAService.cfg:4: unknown option \"AuchCacheTTL\" ignored (did you mean AuthCacheTTL?)",
        "ImapProxyAService.cfg:4: AuchCacheTTL: unknown, ignored (did you mean AuthCacheTTL?)",
        "(it belongs in SmtpProxyAService.cfg)",
        // Errors and warnings together, each with file:line.
        "error: ImapProxyAService.cfg:7: AuthenticationServer:",
        "error: ImapProxyAService.cfg:9: LdapCacheTTL:",
        "warning: ImapProxyAService.cfg:6: SSLCacheDir: has no effect",
        "warning: AService.cfg:2: ServiceList: the SMTP proxy listens on port 25",
        "warning: SmtpProxyAService.cfg:2: SmtpProxyPassword: has no effect",
        "warning: PopProxyAService.cfg: not read: ServiceList in AService.cfg does not start this proxy",
        "SmtpProxyAService.cfg:2: SmtpProxyPassword: no effect because",
        "PopProxyAService.cfg:1: Timeout: no effect because ServiceList in AService.cfg does not start this proxy",
        "ImapProxyAService.cfg: 10 line(s): 3 honoured, 3 no effect, 1 unknown, 2 refused, 1 error",
        "mmp: 3 error(s) and ",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
    assert!(!out.contains("hunter"), "a password was printed:\n{out}");
    // Without -v: the same errors and warnings, no per-line verdicts.
    let (code, short) = mmp(&["-t"], &dir);
    assert_eq!(code, Some(1), "{short}");
    assert!(
        short.contains("warning: SmtpProxyAService.cfg:2"),
        "{short}"
    );
    assert!(
        short.contains("error: ImapProxyAService.cfg:8: CRAMs"),
        "{short}"
    );
    assert!(
        verdicts(&short, "ImapProxyAService.cfg").is_empty(),
        "{short}"
    );
}

fn migration_check_leaves_directory_byte_identical(_env: &Env) {
    let dir = copy_dir(&sample(), "untouched");
    // A legacy directory where only the -def templates exist for two files: the Sun MMP
    // copied them into place at start-up; mmp -t must not.
    std::fs::rename(dir.join("AService.cfg"), dir.join("AService-def.cfg")).expect("rename");
    std::fs::rename(
        dir.join("PopProxyAService.cfg"),
        dir.join("PopProxyAService-def.cfg"),
    )
    .expect("rename");
    std::fs::create_dir(dir.join("log")).expect("mkdir");
    let before = snapshot(&dir);
    for args in [&["-t"][..], &["-t", "-v"], &["-n"]] {
        let (code, out) = mmp(args, &dir);
        assert_eq!(code, Some(0), "mmp {args:?}:\n{out}");
        assert_eq!(
            snapshot(&dir),
            before,
            "mmp {args:?} changed {}",
            dir.display()
        );
    }
    assert!(!dir.join("AService.cfg").exists());
}

fn migration_effective_config_lists_every_option_with_source(_env: &Env) {
    let dir = copy_dir(&sample(), "effective");
    let (code, out) = mmp(&["-n"], &dir);
    assert_eq!(code, Some(0), "mmp -n:\n{out}");
    for def in OPTIONS {
        assert!(
            out.contains(&format!("default:{} ", def.name)) || out.contains(def.name),
            "{} missing from mmp -n:\n{out}",
            def.name
        );
    }
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("default:")).collect();
    assert!(lines.len() >= OPTIONS.len() / 2, "{out}");
    for line in &lines {
        let source = line.split("  # ").nth(1).unwrap_or("");
        let known = source.starts_with("built-in default")
            || source.contains(".cfg:")
            || source.contains("(-def template)");
        assert!(known, "no source on {line:?}");
    }
    for want in [
        "\n# AService.cfg\n",
        "\n# ImapProxyAService.cfg\n",
        "\n# SmtpProxyAService.cfg\n",
        "default:BindPass ********  # ImapProxyAService.cfg:",
        "default:Timeout 1800  # ImapProxyAService.cfg:",
        "default:BGMax 10000  # built-in default",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
    let vdmap = std::fs::read_to_string(dir.join("vdmap.cfg")).unwrap_or_default();
    if vdmap.lines().any(|l| l.starts_with("vdmap ")) {
        assert!(out.contains("vdmap.cfg realm "), "no vdmap realm:\n{out}");
    }
    let secret = "change-me";
    let sample_has_it = std::fs::read_to_string(dir.join("ImapProxyAService.cfg"))
        .unwrap_or_default()
        .contains(secret);
    assert!(
        sample_has_it && !out.contains(secret),
        "BindPass not masked:\n{out}"
    );
}
