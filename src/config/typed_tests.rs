//! Options typed completely at load (issue 9 item 16): `TCPAccess` into its filter,
//! `BGExcluded` (and the file it names) into address ranges, with file:line on every
//! error and warning, so that nothing after loading reads an option's text.

use super::tests::{errors, ok, Dir, AS_IMAP, IMAP_MIN};
use super::*;
use crate::protocol::Protocol;
use std::net::IpAddr;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn imap(extra: &str) -> String {
    format!("{IMAP_MIN}{extra}")
}

/// The one error of an instance whose IMAP file is `IMAP_MIN` and `extra` (line 2 on).
#[track_caller]
fn one_error(extra: &str) -> String {
    let file = imap(extra);
    let errors = errors(&[("AService.cfg", AS_IMAP), ("ImapProxyAService.cfg", &file)]);
    assert_eq!(errors.len(), 1, "{extra:?}: {errors:?}");
    errors[0].clone()
}

#[test]
fn tcp_access_is_a_filter_after_load() {
    let file = imap("default:TCPAccess \"+imap:10.0.0.0/8 EXCEPT 10.9.0.0/16\"\n");
    let (config, warnings) = ok(&[("AService.cfg", AS_IMAP), ("ImapProxyAService.cfg", &file)]);
    assert!(warnings.is_empty(), "{warnings:?}");
    let filter = config.imap.unwrap().tcp_access.expect("TCPAccess parsed");
    assert!(filter.allows(Protocol::Imap, ip("10.1.2.3")));
    assert!(!filter.allows(Protocol::Imap, ip("10.9.2.3")));
    assert!(!filter.allows(Protocol::Imap, ip("192.0.2.1")));
    assert_eq!(filter.to_string(), "+imap:10.0.0.0/8 EXCEPT 10.9.0.0/16");
    let (config, _) = ok(&[
        ("AService.cfg", AS_IMAP),
        ("ImapProxyAService.cfg", IMAP_MIN),
    ]);
    assert_eq!(config.imap.unwrap().tcp_access, None);
}

#[test]
fn bad_tcp_access_is_an_error_at_its_line() {
    let error = one_error("default:TCPAccess +imap:10.0.0.300\n");
    assert!(
        error.starts_with("ImapProxyAService.cfg:2: TCPAccess: rule 1 `+imap:10.0.0.300`"),
        "{error}"
    );
}

#[test]
fn host_name_patterns_warn_at_their_line() {
    let file = imap("default:TCPAccess +imap:LOCAL,.example.com,10.\n");
    let (config, warnings) = ok(&[("AService.cfg", AS_IMAP), ("ImapProxyAService.cfg", &file)]);
    assert_eq!(
        warnings,
        [
            "ImapProxyAService.cfg:2: TCPAccess: host-name pattern \"LOCAL\" never matches: \
             mmp does no reverse DNS look-ups",
            "ImapProxyAService.cfg:2: TCPAccess: host-name pattern \".example.com\" never \
             matches: mmp does no reverse DNS look-ups",
        ]
    );
    let filter = config.imap.unwrap().tcp_access.unwrap();
    assert!(filter.allows(Protocol::Imap, ip("10.1.1.1")));
}

#[test]
fn bg_excluded_is_a_list_of_ranges_after_load() {
    let file = imap("default:BGExcluded \"192.0.2.0|255.255.255.0, 198.51.100.7\"\n");
    let (config, _) = ok(&[("AService.cfg", AS_IMAP), ("ImapProxyAService.cfg", &file)]);
    let excluded = config.imap.unwrap().bad_guy.excluded;
    let shown: Vec<String> = excluded.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        ["192.0.2.0|255.255.255.0", "198.51.100.7|255.255.255.255"]
    );
    assert!(excluded[0].contains(ip("::ffff:192.0.2.77")));
}

#[test]
fn bg_excluded_file_is_read_at_load() {
    let pairs =
        "# never delay the monitors\n10.0.0.0|255.0.0.0, 192.0.2.7\n\n2001:db8::|ffff:ffff::\n";
    let file = imap("default:BGExcluded conf/bgexcl.txt\n");
    let dir = Dir::new(&[("AService.cfg", AS_IMAP), ("ImapProxyAService.cfg", &file)]);
    std::fs::create_dir_all(dir.0.join("conf")).unwrap();
    std::fs::write(dir.0.join("conf/bgexcl.txt"), pairs).unwrap();
    let (config, _) = load(&dir.0).unwrap_or_else(|e| panic!("{e:?}"));
    let shown: Vec<String> = config
        .imap
        .unwrap()
        .bad_guy
        .excluded
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        shown,
        [
            "10.0.0.0|255.0.0.0",
            "192.0.2.7|255.255.255.255",
            "2001:db8::|ffff:ffff::"
        ]
    );

    // The file's contents are checked too, and the error names the option's line and the file.
    std::fs::write(dir.0.join("conf/bgexcl.txt"), "10.0.0.0|255.0.0.0 bogus\n").unwrap();
    let errors = load(&dir.0).expect_err("bad pair in the file");
    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("ImapProxyAService.cfg:2: BGExcluded: ")
            && errors[0].contains("conf/bgexcl.txt")
            && errors[0].contains("\"bogus\""),
        "{errors:?}"
    );
}

#[test]
fn unreadable_bg_excluded_file_is_an_error_at_its_line() {
    let error = one_error("default:BGExcluded /nonexistent/mmp-bgexcl.txt\n");
    assert!(
        error.starts_with(
            "ImapProxyAService.cfg:2: BGExcluded: cannot read /nonexistent/mmp-bgexcl.txt"
        ),
        "{error}"
    );
}

#[test]
fn bad_bg_excluded_syntax_is_refused_naming_the_item() {
    #[rustfmt::skip]
    let cases: &[(&str, &[&str])] = &[
        // (BGExcluded, texts the error must contain)
        ("10.0.0.0|255.0.0.0,bogus", &["\"bogus\"", "IP|MASK"]),
        ("bgexcl", &["\"bgexcl\"", "IP|MASK"]),
        ("10.0.0.0|", &["\"10.0.0.0|\""]),
        ("10.0.0.0|255.0.0.0|1", &["\"10.0.0.0|255.0.0.0|1\""]),
        ("10.0.0.0/8,192.0.2.1", &["\"10.0.0.0/8\""]),
        ("10.0.0.0|ffff::", &["different families", "\"10.0.0.0|ffff::\""]),
        ("192.0.2.1, 10.0.0.300|255.0.0.0", &["\"10.0.0.300|255.0.0.0\""]),
    ];
    for (value, needles) in cases {
        let err = one_error(&format!("default:BGExcluded \"{value}\"\n"));
        assert!(
            err.starts_with("ImapProxyAService.cfg:2: BGExcluded: "),
            "{value:?}: {err}"
        );
        for n in *needles {
            assert!(err.contains(n), "{value:?}: {err:?} lacks {n:?}");
        }
    }
}
