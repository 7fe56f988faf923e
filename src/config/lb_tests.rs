//! Tests of the load-balancer options (mmp extensions, issue 12): `ProxyProtocolPorts`,
//! `ProxyProtocolTrusted` and `StatusListen`, loaded from whole instance directories.

use super::*;
use std::net::SocketAddr;

use super::tests::Dir;

const AS: &str = "default:ServiceList imapproxy@143|1993 popproxy@110\n";
const LDAP: &str = "default:LdapUrl ldap://ldap.example.com/o=internet\n";

fn load_with(aservice: &str, imap: &str) -> Result<(Config, Vec<String>), Vec<String>> {
    let aservice = format!("{AS}{aservice}");
    let imap = format!("{LDAP}{imap}");
    let dir = Dir::new(&[
        ("AService.cfg", &aservice),
        ("ImapProxyAService.cfg", &imap),
        ("PopProxyAService.cfg", LDAP),
    ]);
    match load(&dir.0) {
        Ok((config, warnings)) => Ok((config, warnings.iter().map(ToString::to_string).collect())),
        Err(errors) => Err(errors.iter().map(ToString::to_string).collect()),
    }
}

#[track_caller]
fn ok(aservice: &str, imap: &str) -> (Config, Vec<String>) {
    load_with(aservice, imap).unwrap_or_else(|e| panic!("unexpected errors: {e:#?}"))
}

#[track_caller]
fn errors(aservice: &str, imap: &str) -> Vec<String> {
    match load_with(aservice, imap) {
        Ok((config, _)) => panic!("expected errors, loaded {config:#?}"),
        Err(e) => e,
    }
}

#[test]
fn proxy_protocol_ports_and_trusted_nets() {
    let (config, warnings) = ok(
        "",
        "default:ProxyProtocolPorts 143|1993\n\
         default:ProxyProtocolTrusted 127.0.0.0/8 10.1.2.3 ::1 fd00::/8\n",
    );
    assert_eq!(warnings, Vec::<String>::new());
    let imap = config.imap.as_ref().expect("imap");
    let p = &imap.proxy_protocol;
    assert_eq!(p.ports, [143, 1993]);
    assert!(p.expects_header(1993) && !p.expects_header(110));
    let trusted = p.trusted.as_ref().expect("trusted nets");
    for a in [
        "127.0.0.9",
        "10.1.2.3",
        "::1",
        "fd12::1",
        "::ffff:127.0.0.1",
    ] {
        assert!(trusted.contains(a.parse().unwrap()), "{a}");
    }
    assert!(!trusted.contains("10.1.2.4".parse().unwrap()));
    let pop = config.pop.as_ref().expect("pop");
    assert_eq!(pop.proxy_protocol, ProxyProtocol::default());
    assert_eq!(config.global.status_listen, None);
}

#[test]
fn proxy_protocol_errors_name_file_and_line() {
    let cases: &[(&str, &[&str])] = &[
        (
            "default:ProxyProtocolPorts 143|110\ndefault:ProxyProtocolTrusted 10.0.0.1\n",
            &["ImapProxyAService.cfg:2: ProxyProtocolPorts: port 110 is not among the ports \
               ServiceList gives this service (143, 1993)"],
        ),
        (
            "default:ProxyProtocolPorts 143\n",
            &["ImapProxyAService.cfg:2: ProxyProtocolPorts: needs ProxyProtocolTrusted, the \
               addresses of the load balancers allowed to send the PROXY header (anyone else \
               could claim any client address)"],
        ),
        (
            "default:ProxyProtocolPorts 14x\ndefault:ProxyProtocolTrusted 10.0.0.1\n",
            &["ImapProxyAService.cfg:2: ProxyProtocolPorts: expected a port number (1-65535), got \"14x\""],
        ),
        (
            "default:ProxyProtocolPorts 143\ndefault:ProxyProtocolTrusted 10.0.0.1/8\n",
            &["ImapProxyAService.cfg:3: ProxyProtocolTrusted: \"10.0.0.1/8\" has host bits set after the prefix"],
        ),
        (
            "default:ProxyProtocolTrusted balancer.example\n",
            &["ImapProxyAService.cfg:2: ProxyProtocolTrusted: expected an address or \
               ADDRESS/PREFIX, got \"balancer.example\""],
        ),
    ];
    for (imap, want) in cases {
        assert_eq!(errors("", imap), *want, "{imap:?}");
    }
}

#[test]
fn status_listen_address_and_warnings() {
    let cases: &[(&str, &str, bool)] = &[
        ("127.0.0.1:9143", "127.0.0.1:9143", false),
        ("[::1]:9143", "[::1]:9143", false),
        ("10.0.0.5:9143", "10.0.0.5:9143", false),
        ("192.168.1.1:9143", "192.168.1.1:9143", false),
        ("[fd00::5]:9143", "[fd00::5]:9143", false),
        ("192.0.2.1:9143", "192.0.2.1:9143", true),
        ("0.0.0.0:9143", "0.0.0.0:9143", true),
        ("[2001:db8::1]:9143", "[2001:db8::1]:9143", true),
    ];
    for (value, want, warned) in cases {
        let (config, warnings) = ok(&format!("default:StatusListen {value}\n"), "");
        let want: SocketAddr = want.parse().unwrap();
        assert_eq!(config.global.status_listen, Some(want), "{value}");
        let expected: Vec<String> = if *warned {
            vec![format!(
                "AService.cfg:2: StatusListen: {} is neither a loopback nor a private address; \
                 the status listener has no authentication, so anyone who reaches it can read \
                 the metrics",
                want.ip()
            )]
        } else {
            vec![]
        };
        assert_eq!(warnings, expected, "{value}");
    }
    for bad in [
        "9143",
        "localhost:9143",
        "127.0.0.1",
        "::1:9143",
        "127.0.0.1:0",
    ] {
        let got = errors(&format!("default:StatusListen {bad}\n"), "");
        let want = format!(
            "AService.cfg:2: StatusListen: expected ADDRESS:PORT (e.g. 127.0.0.1:9143 or \
             [::1]:9143), got {bad:?}"
        );
        assert_eq!(got, [want], "{bad}");
    }
}

#[test]
fn options_land_in_their_files_only() {
    let (_, warnings) = ok("", "default:StatusListen 127.0.0.1:9143\n");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("ImapProxyAService.cfg:2: StatusListen"),
        "{warnings:?}"
    );
    let (_, warnings) = ok("default:ProxyProtocolTrusted 10.0.0.1\n", "");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("AService.cfg:2: ProxyProtocolTrusted"),
        "{warnings:?}"
    );
}
