//! Migrating a legacy instance with the mmp binary itself: `mmp -t -v` says what it does
//! with every line it reads, option files, vdmap and certmap.conf alike (on the shipped
//! sample and on `tests/fixtures/legacy-instance`, a legacy directory with one line of each
//! kind), suggests the name a typo meant, never writes to the directory it checks, and
//! `mmp -n` lists every option of the option table with its source.

use crate::cases;
use crate::common::mmp::mmp_bin;
use crate::common::*;
use crate::Case;
use ::mmp::config::options::{name_of, Decision, OPTIONS};
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
        migration_readme_lists_every_option_without_effect_or_refused,
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

/// `(line, first word)` of every line of a file that is not blank or a comment and starts
/// with `prefix` (`default:` gives the option name).
fn option_lines(path: &Path, prefix: &str) -> Vec<(u32, String)> {
    let text = std::fs::read_to_string(path).expect("read option file");
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter_map(|(i, l)| {
            let rest = l.trim_start().strip_prefix(prefix)?;
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
        let want = option_lines(&dir.join(file), "default:");
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
    // The vdmap the IMAP proxy names: every realm and override line is used.
    let vdmap = dir.join("vdmap.cfg").display().to_string();
    let want = option_lines(&dir.join("vdmap.cfg"), "");
    let got = verdicts(&out, &vdmap);
    assert_eq!(
        got.len(),
        want.len(),
        "one report line per vdmap line:\n{out}"
    );
    assert!(want.len() >= 4, "the sample vdmap has realms: {want:?}");
    for ((line, name, verdict), (want_line, first_word)) in got.iter().zip(&want) {
        assert_eq!(line, want_line, "{out}");
        assert!(
            name.starts_with(first_word.as_str()),
            "{name} / {first_word}"
        );
        assert_eq!(verdict, "honoured", "{vdmap}:{line}: {name}");
    }
    assert!(
        out.contains(&format!(
            "\n{vdmap} (VirtualDomainFile of ImapProxyAService.cfg):\n"
        )),
        "{out}"
    );
    let summary = format!("  {vdmap}: {n} line(s): {n} honoured\n", n = want.len());
    assert!(out.contains(&summary), "no summary {summary:?}:\n{out}");
    // certmap.conf ships as an example that no service names: each line says so.
    let certmap = dir.join("certmap.conf").display().to_string();
    let want = option_lines(&dir.join("certmap.conf"), "");
    let got = verdicts(&out, &certmap);
    assert_eq!(
        got.len(),
        want.len(),
        "one report line per certmap line:\n{out}"
    );
    for (line, name, verdict) in &got {
        assert_eq!(
            verdict, "no effect because no started service names it in CertMapFile",
            "{certmap}:{line}: {name}"
        );
    }
    let summary = format!("  {certmap}: {n} line(s): {n} no effect\n", n = want.len());
    assert!(out.contains(&summary), "no summary {summary:?}:\n{out}");
    assert!(
        !out.contains("warning:"),
        "the sample draws warnings:\n{out}"
    );
    assert!(!out.contains("change-me"), "a password was printed:\n{out}");
}

/// The legacy instance directory with one line of each kind (its README says how).
fn legacy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-instance")
}

/// Checks the verdicts of `file` in `out` against `want`: (line, name, verdict prefix).
#[track_caller]
fn check_verdicts(out: &str, file: &str, want: &[(u32, &str, &str)]) {
    let got = verdicts(out, file);
    assert_eq!(got.len(), want.len(), "{file}: {got:#?}\n{out}");
    for ((line, name, verdict), (want_line, want_name, want_verdict)) in got.iter().zip(want) {
        assert_eq!(
            (line, name.as_str()),
            (want_line, *want_name),
            "{file}\n{out}"
        );
        assert!(
            verdict.starts_with(want_verdict),
            "{file}:{line}: {verdict:?} does not start with {want_verdict:?}"
        );
    }
}

fn migration_report_classifies_each_kind_of_legacy_line(_env: &Env) {
    let dir = legacy();
    let (code, out) = mmp(&["-t", "-v"], &dir);
    assert_eq!(code, Some(1), "refused and bad lines must fail -t:\n{out}");
    check_verdicts(
        &out,
        "AService-def.cfg",
        &[
            (
                2,
                "ServiceList",
                "mapped to IMAP on 143, 993; SMTP on 25, 465",
            ),
            (3, "LogLevel", "mapped to log level debug"),
            (
                4,
                "MaxThreads",
                "mapped to a pool of 8 worker threads shared by all services (NumThreads)",
            ),
            (
                5,
                "LogDir",
                "mapped to the directory of mmp.log when mmp runs in the background",
            ),
        ],
    );
    check_verdicts(
        &out,
        "ImapProxyAService.cfg",
        &[
            (2, "LdapUrl", "honoured"),
            (3, "Timeout", "no effect because line 4 sets it again"),
            (4, "Timeout", "honoured"),
            (5, "AuchCacheTTL", "unknown, ignored (did you mean AuthCacheTTL?)"),
            (
                6,
                "SmtpRelays",
                "no effect because it is not read in this file (it belongs in SmtpProxyAService.cfg)",
            ),
            (7, "SSLCacheDir", "no effect because rustls keeps its session cache in memory"),
            (8, "AuthenticationServer", "refused because the third-party authentication"),
            (9, "CRAMs", "refused because CRAM-MD5 and APOP need"),
            (10, "LdapCacheTTL", "error: LdapCacheTTL: expected seconds, got \"ten\""),
            (11, "BindPass", "honoured"),
            (12, "LogDir", "mapped to the directory of imap.log"),
            (13, "SSLEnable", "honoured"),
            (14, "SSLCertFile", "honoured"),
            (15, "SSLKeyFile", "honoured"),
            (16, "SSLCertNicknames", "no effect because it selects inside an NSS database"),
            (17, "SSLCACertFile", "honoured"),
            (18, "CertMapFile", "honoured"),
            (19, "StoreAdmin", "honoured"),
            (20, "StoreAdminPass", "honoured"),
            (21, "VirtualDomainFile", "honoured"),
            (22, "imapproxy:Timeout", "error: scope \"imapproxy\" is not allowed here"),
        ],
    );
    check_verdicts(
        &out,
        "SmtpProxyAService.cfg",
        &[
            (2, "SmtpRelays", "honoured"),
            (
                3,
                "SmtpProxyPassword",
                "no effect because only the Sun client-information command",
            ),
            (
                4,
                "PopBeforeSmtpKludgeChannel",
                "no effect because switching the MTA channel",
            ),
            (5, "VirtualDomainFile", "honoured"),
        ],
    );
    check_verdicts(
        &out,
        "PopProxyAService.cfg",
        &[(
            2,
            "Timeout",
            "no effect because ServiceList in AService.cfg does not start this proxy",
        )],
    );
    let vdmap = dir.join("vdmap.cfg").display().to_string();
    check_verdicts(
        &out,
        &vdmap,
        &[
            (2, "vdmap siroe 192.0.2.10", "honoured"),
            (
                3,
                "vdmap siroe 192.0.2.10",
                "no effect because line 2 already gives this address",
            ),
            (4, "siroe:DefaultDomain", "honoured"),
            (
                5,
                "siroe:LdapCacheTTL",
                "no effect because line 6 sets it again",
            ),
            (6, "siroe:LdapCacheTTL", "honoured"),
            (7, "siroe:BindPass", "honoured"),
            (
                8,
                "siroe:AuthenticationLdapAttributes",
                "refused because the third-party",
            ),
            (
                9,
                "siroe:Timeout",
                "error: Timeout: cannot be set in a vdmap entry",
            ),
        ],
    );
    let relay = dir.join("smtp-vdmap.cfg").display().to_string();
    check_verdicts(
        &out,
        &relay,
        &[
            (2, "vdmap relay 192.0.2.20", "honoured"),
            (3, "relay:DefaultDomain", "honoured"),
            (
                4,
                "relay:PreAuth",
                "no effect because the SMTP proxy does not read PreAuth",
            ),
        ],
    );
    let certmap = dir.join("certmap.conf").display().to_string();
    check_verdicts(
        &out,
        &certmap,
        &[
            (2, "certmap default default", "honoured"),
            (3, "default:FilterComps", "honoured"),
            (
                4,
                "certmap corp CN=Corp Issuing CA,O=Siroe,C=US",
                "honoured",
            ),
            (
                5,
                "corp:verifycert",
                "no effect because line 6 sets it again",
            ),
            (6, "corp:verifycert", "honoured"),
            (7, "corp:FilterComps", "honoured"),
            (
                8,
                "corp:library",
                "refused because certmap plug-ins are not supported",
            ),
            (9, "corp:DNComps", "error: DNComps: bad component"),
        ],
    );
    for want in [
        "AService-def.cfg (read because AService.cfg is missing):",
        // The typo gets its suggestion, in the warning and in the verbose line.
        "warning: ImapProxyAService.cfg:5: unknown option \"AuchCacheTTL\" ignored (did you mean AuthCacheTTL?)",
        // Errors and warnings together, each with file:line.
        "error: ImapProxyAService.cfg:8: AuthenticationServer:",
        "error: ImapProxyAService.cfg:10: LdapCacheTTL:",
        "warning: ImapProxyAService.cfg:6: SmtpRelays: has no effect in this file (it belongs in SmtpProxyAService.cfg)",
        "warning: ImapProxyAService.cfg:7: SSLCacheDir: has no effect",
        "warning: AService.cfg:2: ServiceList: port 993 is the well-known IMAP port over TLS but is not in SSLPorts",
        "warning: AService.cfg:2: ServiceList: port 465 is the well-known SMTP port over TLS but is not in SSLPorts",
        "warning: AService.cfg:2: ServiceList: the SMTP proxy listens on port 25",
        "warning: SmtpProxyAService.cfg:3: SmtpProxyPassword: has no effect",
        "warning: PopProxyAService.cfg: not read: ServiceList in AService.cfg does not start this proxy",
        &format!("error: {vdmap}:9: Timeout:"),
        &format!("error: {certmap}:8: library:"),
        "  ImapProxyAService.cfg: 21 line(s): 11 honoured, 1 mapped, 4 no effect, 1 unknown, 2 refused, 2 error\n",
        "  SmtpProxyAService.cfg: 4 line(s): 2 honoured, 2 no effect\n",
        &format!("  {vdmap}: 8 line(s): 4 honoured, 2 no effect, 1 refused, 1 error\n"),
        &format!("  {relay}: 3 line(s): 2 honoured, 1 no effect\n"),
        &format!("  {certmap}: 8 line(s): 5 honoured, 1 no effect, 1 refused, 1 error\n"),
        "mmp: 8 error(s) and ",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
    assert!(!out.contains("hunter"), "a password was printed:\n{out}");
    // Without -v: the same errors and warnings, no per-line verdicts.
    let (code, short) = mmp(&["-t"], &dir);
    assert_eq!(code, Some(1), "{short}");
    let messages = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("error: ") || l.starts_with("warning: "))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(messages(&short), messages(&out));
    assert!(
        verdicts(&short, "ImapProxyAService.cfg").is_empty() && verdicts(&short, &vdmap).is_empty(),
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
    // The legacy fixture in place: only AService-def.cfg exists, and the report fails.
    let legacy = legacy();
    let before = snapshot(&legacy);
    for args in [&["-t"][..], &["-t", "-v"], &["-n"]] {
        let (code, out) = mmp(args, &legacy);
        assert_eq!(code, Some(1), "mmp {args:?}:\n{out}");
        assert_eq!(
            snapshot(&legacy),
            before,
            "mmp {args:?} changed {}",
            legacy.display()
        );
    }
    assert!(!legacy.join("AService.cfg").exists());
}

fn migration_effective_config_lists_every_option_with_source(_env: &Env) {
    let dir = copy_dir(&sample(), "effective");
    let (code, out) = mmp(&["-n"], &dir);
    assert_eq!(code, Some(0), "mmp -n:\n{out}");
    for def in OPTIONS {
        let canonical = name_of(def.opt);
        let listed = if canonical == def.name {
            out.contains(&format!("\ndefault:{} ", def.name))
        } else {
            out.lines().any(|l| {
                l.starts_with(&format!("default:{canonical} "))
                    && l.contains("also spelt ")
                    && l.contains(def.name)
            })
        };
        assert!(listed, "{} missing from mmp -n:\n{out}", def.name);
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
        "default:DrainTimeout 30  # built-in default",
        "default:LogDir /var/log/mmp  # AService.cfg:",
    ] {
        assert!(out.contains(want), "{want:?} not in:\n{out}");
    }
    let vdmap = std::fs::read_to_string(dir.join("vdmap.cfg")).unwrap_or_default();
    let realms: Vec<&str> = vdmap
        .lines()
        .filter_map(|l| l.strip_prefix("vdmap "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(!realms.is_empty(), "the sample vdmap has no realm");
    for realm in realms {
        assert!(
            out.contains(&format!("# vdmap.cfg realm {realm} (")),
            "no section for realm {realm}:\n{out}"
        );
        let lines: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with(&format!("{realm}:")))
            .collect();
        assert!(lines.len() >= 10, "realm {realm}: {lines:?}");
        for line in lines {
            let source = line.split("  # ").nth(1).unwrap_or("");
            assert!(
                source == "as the service" || source.starts_with("vdmap.cfg:"),
                "no source on {line:?}"
            );
        }
    }
    assert!(
        out.contains("varrius:BindPass ********  # vdmap.cfg:"),
        "realm password not masked or not sourced:\n{out}"
    );
    let secret = "change-me";
    let sample_has_it = std::fs::read_to_string(dir.join("ImapProxyAService.cfg"))
        .unwrap_or_default()
        .contains(secret);
    assert!(
        sample_has_it && !out.contains(secret),
        "BindPass not masked:\n{out}"
    );
}

/// README's "What differs" section must name every option mmp refuses or accepts without
/// effect, as `mmp -t -v` classifies them, and must not claim that every option is honoured.
fn migration_readme_lists_every_option_without_effect_or_refused(_env: &Env) {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("read README.md");
    let section = readme
        .split("\n## What differs from Sun's MMP, and why\n")
        .nth(1)
        .expect("README has its What differs section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let by_table = OPTIONS
        .iter()
        .filter(|d| !matches!(d.decision, Decision::Honour))
        .map(|d| d.name);
    // Refused or without effect for some values only (checked at load).
    let by_value = [
        "SSLKeyPasswdFile",
        "SmtpProxyPassword",
        "PopBeforeSmtpKludgeChannel",
        "CRAMs",
        "AdminPolicy",
        "ClientLookup",
        "MmpSmtpClientInfo",
    ];
    for name in by_table.chain(by_value) {
        assert!(
            section.contains(&format!("`{name}")),
            "README's What differs section does not name {name}"
        );
    }
    let flat = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        !flat.contains("Every legacy option is honoured"),
        "README claims every option is honoured"
    );
}
