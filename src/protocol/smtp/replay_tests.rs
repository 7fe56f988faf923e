//! Tests of the SMTP handshake replay: MTA transcripts line by line, with the exact bytes
//! mmp sends.

use super::{RelayRequest, Replay, SmtpClientInfo};
use crate::protocol::{ClientInfo, Helo, Refusal, ReplayStep, StoreAnswer};

fn info(client: &str, server: &str) -> ClientInfo {
    ClientInfo {
        client: client.parse().expect("test address"),
        server: server.parse().expect("test address"),
        session: 7,
    }
}

fn req(mode: SmtpClientInfo) -> RelayRequest {
    RelayRequest {
        helo: Helo {
            name: "c.example".into(),
            extended: true,
        },
        login: Some("alice@example.com".into()),
        info: info("192.0.2.10:50123", "198.51.100.1:587"),
        mode,
        my_name: "mmp.example".into(),
        command: None,
    }
}

fn send(s: &str) -> ReplayStep {
    ReplayStep::Send(s.as_bytes().to_vec())
}

fn done(s: &str) -> ReplayStep {
    ReplayStep::Done(StoreAnswer {
        line: s.as_bytes().to_vec(),
    })
}

fn unavailable(s: &str) -> ReplayStep {
    ReplayStep::Refused(Refusal::Unavailable(s.into()))
}

fn protocol(s: &str) -> ReplayStep {
    ReplayStep::Refused(Refusal::Protocol(s.into()))
}

/// Feeds the MTA's lines and compares each step.
#[track_caller]
fn run(req: RelayRequest, start: Option<&str>, script: &[(&str, ReplayStep)]) {
    let mut replay = Replay::new(req);
    assert_eq!(replay.start(), start.map(|s| s.as_bytes().to_vec()));
    assert_eq!(replay.start(), None, "the header is sent once");
    for (i, (line, want)) in script.iter().enumerate() {
        assert_eq!(&replay.on_line(line.as_bytes()), want, "step {i}: {line:?}");
    }
}

const XCLIENT_LINE: &str = "XCLIENT HELO=c.example PROTO=ESMTP LOGIN=alice@example.com NAME=[UNAVAILABLE] PORT=50123 ADDR=192.0.2.10\r\n";
const CLIENT_EHLO_REPLY: &str = "250-mta.example\r\n250-PIPELINING\r\n250 8BITMIME";

#[test]
fn xclient_handshake() {
    run(
        req(SmtpClientInfo::Xclient),
        None,
        &[
            ("220-mta.example ESMTP", ReplayStep::Wait),
            ("220 welcome", send("EHLO mmp.example\r\n")),
            ("250-mta.example", ReplayStep::Wait),
            ("250-PIPELINING", ReplayStep::Wait),
            ("250 XCLIENT", send(XCLIENT_LINE)),
            ("220 mta.example ESMTP", send("EHLO c.example\r\n")),
            ("250-mta.example", ReplayStep::Wait),
            ("250-PIPELINING", ReplayStep::Wait),
            ("250 8BITMIME", done(CLIENT_EHLO_REPLY)),
            ("250 late", protocol("the replay has already ended")),
        ],
    );
}

#[test]
fn xclient_attributes_the_mta_lists() {
    // Postfix 3.8 lists DESTADDR/DESTPORT; a reduced list drops what it lacks.
    run(
        req(SmtpClientInfo::Xclient),
        None,
        &[
            ("220 mta.example", send("EHLO mmp.example\r\n")),
            ("250-mta.example", ReplayStep::Wait),
            (
                "250 xclient NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT",
                send("XCLIENT HELO=c.example PROTO=ESMTP LOGIN=alice@example.com DESTADDR=198.51.100.1 DESTPORT=587 NAME=[UNAVAILABLE] PORT=50123 ADDR=192.0.2.10\r\n"),
            ),
        ],
    );
    let pop = RelayRequest {
        login: None,
        helo: Helo {
            name: "odd+name=x".into(),
            extended: false,
        },
        command: Some(b"MAIL FROM:<a@b.example>\r\n".to_vec()),
        ..req(SmtpClientInfo::Xclient)
    };
    run(
        pop,
        None,
        &[
            ("220 mta.example", send("EHLO mmp.example\r\n")),
            ("250-mta.example", ReplayStep::Wait),
            ("250-XCLIENT ADDR HELO", ReplayStep::Wait),
            (
                "250 SIZE",
                send("XCLIENT HELO=odd+2Bname+3Dx ADDR=192.0.2.10\r\n"),
            ),
            ("220 again", send("HELO odd+name=x\r\n")),
            ("250 mta.example", send("MAIL FROM:<a@b.example>\r\n")),
            ("250 2.1.0 Ok", done("250 2.1.0 Ok")),
        ],
    );
}

#[test]
fn xclient_refusals() {
    let no_xclient = "MTA does not offer XCLIENT; refusing to relay as mmp's own address";
    let cases: Vec<(RelayRequest, Vec<(&str, ReplayStep)>)> = vec![
        (
            req(SmtpClientInfo::Xclient),
            vec![
                ("220 mta.example", send("EHLO mmp.example\r\n")),
                ("250-mta.example", ReplayStep::Wait),
                ("250-XFORWARD NAME ADDR", ReplayStep::Wait),
                ("250 STARTTLS", unavailable(no_xclient)),
            ],
        ),
        (
            req(SmtpClientInfo::Xclient),
            vec![
                ("220 mta.example", send("EHLO mmp.example\r\n")),
                ("250 mta.example", unavailable(no_xclient)),
            ],
        ),
        (
            req(SmtpClientInfo::Xclient),
            vec![
                ("220 mta.example", send("EHLO mmp.example\r\n")),
                ("250-mta.example", ReplayStep::Wait),
                (
                    "250 XCLIENT NAME HELO",
                    unavailable(
                        "MTA's XCLIENT does not take ADDR; refusing to relay as mmp's own address",
                    ),
                ),
            ],
        ),
        (
            req(SmtpClientInfo::Xclient),
            vec![
                ("220 mta.example", send("EHLO mmp.example\r\n")),
                ("250-mta.example", ReplayStep::Wait),
                (
                    "250 XCLIENT NAME ADDR HELO",
                    unavailable(
                        "MTA's XCLIENT does not take LOGIN; cannot assert the authenticated user",
                    ),
                ),
            ],
        ),
        (
            req(SmtpClientInfo::Xclient),
            vec![
                ("220 mta.example", send("EHLO mmp.example\r\n")),
                ("250-mta.example", ReplayStep::Wait),
                ("250 XCLIENT", send(XCLIENT_LINE)),
                (
                    "550 5.7.0 Error: insufficient authorization",
                    unavailable("MTA refused XCLIENT: 5.7.0 Error: insufficient authorization"),
                ),
            ],
        ),
        (
            req(SmtpClientInfo::Xclient),
            vec![
                ("220 mta.example", send("EHLO mmp.example\r\n")),
                ("250-mta.example", ReplayStep::Wait),
                ("250 XCLIENT", send(XCLIENT_LINE)),
                (
                    "250 OK",
                    protocol("unexpected MTA reply 250 in Xclient: OK"),
                ),
            ],
        ),
        (
            req(SmtpClientInfo::Xclient),
            vec![(
                "421 4.3.2 Service shutting down",
                unavailable("MTA closing: 4.3.2 Service shutting down"),
            )],
        ),
        (
            req(SmtpClientInfo::Xclient),
            vec![(
                "554 5.3.2 No service",
                unavailable("MTA greeting: 5.3.2 No service"),
            )],
        ),
        (
            req(SmtpClientInfo::Xclient),
            vec![(
                "250 hello?",
                protocol("unexpected MTA reply 250 in Greeting: hello?"),
            )],
        ),
        (
            req(SmtpClientInfo::Xclient),
            vec![(
                "* OK IMAP4rev1",
                protocol("MTA: not an SMTP reply line: * OK IMAP4rev1"),
            )],
        ),
        (
            req(SmtpClientInfo::Xclient),
            vec![
                ("220-mta.example", ReplayStep::Wait),
                ("221 bye", protocol("MTA: reply lines with different codes")),
            ],
        ),
        (
            req(SmtpClientInfo::Xclient),
            vec![
                ("220 mta.example", send("EHLO mmp.example\r\n")),
                (
                    "502 5.5.2 Error: command not recognized",
                    protocol("MTA refused EHLO: 5.5.2 Error: command not recognized"),
                ),
            ],
        ),
        (
            req(SmtpClientInfo::Xclient),
            vec![
                ("220 mta.example", send("EHLO mmp.example\r\n")),
                ("250-mta.example", ReplayStep::Wait),
                ("250 XCLIENT", send(XCLIENT_LINE)),
                ("220 mta.example", send("EHLO c.example\r\n")),
                (
                    "421 4.7.0 go away",
                    unavailable("MTA closing: 4.7.0 go away"),
                ),
            ],
        ),
        (
            req(SmtpClientInfo::Xclient),
            vec![
                ("220 mta.example", send("EHLO mmp.example\r\n")),
                ("250-mta.example", ReplayStep::Wait),
                ("250 XCLIENT", send(XCLIENT_LINE)),
                ("220 mta.example", send("EHLO c.example\r\n")),
                (
                    "550 5.7.1 bad helo",
                    protocol("MTA refused EHLO: 5.7.1 bad helo"),
                ),
            ],
        ),
    ];
    for (request, script) in cases {
        run(request, None, &script);
    }
}

#[test]
fn long_xclient_attributes_are_split() {
    let login = "u".repeat(300);
    let helo = "h".repeat(255);
    let request = RelayRequest {
        login: Some(login.clone()),
        helo: Helo {
            name: helo.clone(),
            extended: true,
        },
        info: info("[2001:db8::7]:4000", "[2001:db8::1]:25"),
        ..req(SmtpClientInfo::Xclient)
    };
    let first = format!("XCLIENT HELO={helo} PROTO=ESMTP\r\n");
    let second =
        format!("XCLIENT LOGIN={login} NAME=[UNAVAILABLE] PORT=4000 ADDR=IPV6:2001:db8::7\r\n");
    assert!(first.len() <= 512 && second.len() <= 512);
    run(
        request,
        None,
        &[
            ("220 mta.example", send("EHLO mmp.example\r\n")),
            ("250-mta.example", ReplayStep::Wait),
            ("250 XCLIENT", send(&first)),
            ("220 mta.example", send(&second)),
            ("220 mta.example", send(&format!("EHLO {helo}\r\n"))),
            ("250 mta.example", done("250 mta.example")),
        ],
    );
    // A HELO that cannot fit even alone (every byte escaped) becomes [UNAVAILABLE]; a
    // login that cannot fit is refused.
    let plus = "+".repeat(255);
    let request = RelayRequest {
        login: None,
        helo: Helo {
            name: plus.clone(),
            extended: false,
        },
        ..req(SmtpClientInfo::Xclient)
    };
    run(
        request,
        None,
        &[
            ("220 mta.example", send("EHLO mmp.example\r\n")),
            ("250-mta.example", ReplayStep::Wait),
            (
                "250 XCLIENT",
                send("XCLIENT HELO=[UNAVAILABLE] PROTO=SMTP NAME=[UNAVAILABLE] PORT=50123 ADDR=192.0.2.10\r\n"),
            ),
            ("220 mta.example", send(&format!("HELO {plus}\r\n"))),
        ],
    );
    let request = RelayRequest {
        login: Some("+".repeat(200)),
        ..req(SmtpClientInfo::Xclient)
    };
    run(
        request,
        None,
        &[
            ("220 mta.example", send("EHLO mmp.example\r\n")),
            ("250-mta.example", ReplayStep::Wait),
            (
                "250 XCLIENT",
                protocol("XCLIENT LOGIN too long for one command"),
            ),
        ],
    );
}

#[test]
fn ipv4_mapped_clients_are_ipv4() {
    let request = RelayRequest {
        login: None,
        info: info("[::ffff:192.0.2.10]:50123", "[::ffff:198.51.100.1]:587"),
        ..req(SmtpClientInfo::Xclient)
    };
    run(
        request.clone(),
        None,
        &[
            ("220 mta.example", send("EHLO mmp.example\r\n")),
            ("250-mta.example", ReplayStep::Wait),
            (
                "250 XCLIENT",
                send("XCLIENT HELO=c.example PROTO=ESMTP NAME=[UNAVAILABLE] PORT=50123 ADDR=192.0.2.10\r\n"),
            ),
        ],
    );
    run(
        RelayRequest {
            mode: SmtpClientInfo::Proxy,
            ..request
        },
        Some("PROXY TCP4 192.0.2.10 198.51.100.1 50123 587\r\n"),
        &[],
    );
}

#[test]
fn proxy_handshake() {
    run(
        req(SmtpClientInfo::Proxy),
        Some("PROXY TCP4 192.0.2.10 198.51.100.1 50123 587\r\n"),
        &[
            ("220 mta.example", send("EHLO c.example\r\n")),
            ("250-mta.example", ReplayStep::Wait),
            ("250-PIPELINING", ReplayStep::Wait),
            ("250 8BITMIME", done(CLIENT_EHLO_REPLY)),
        ],
    );
    let v6 = RelayRequest {
        info: info("[2001:db8::7]:4000", "[2001:db8::1]:587"),
        command: Some(b"MAIL FROM:<a@b>\r\n".to_vec()),
        ..req(SmtpClientInfo::Proxy)
    };
    run(
        v6,
        Some("PROXY TCP6 2001:db8::7 2001:db8::1 4000 587\r\n"),
        &[
            ("220 mta.example", send("EHLO c.example\r\n")),
            ("250 mta.example", send("MAIL FROM:<a@b>\r\n")),
            ("553-5.7.1 <a@b>: Sender address rejected", ReplayStep::Wait),
            (
                "553 5.7.1 not owned by user",
                done("553-5.7.1 <a@b>: Sender address rejected\r\n553 5.7.1 not owned by user"),
            ),
        ],
    );
    let mixed = RelayRequest {
        info: info("192.0.2.10:4000", "[2001:db8::1]:587"),
        ..req(SmtpClientInfo::Proxy)
    };
    run(
        mixed,
        Some("PROXY TCP6 ::ffff:192.0.2.10 2001:db8::1 4000 587\r\n"),
        &[("421 busy", unavailable("MTA closing: busy"))],
    );
}

#[test]
fn none_mode_handshake() {
    let request = RelayRequest {
        command: Some(b"MAIL FROM:<>\r\n".to_vec()),
        ..req(SmtpClientInfo::None)
    };
    run(
        request,
        None,
        &[
            ("220 mta.example", send("EHLO c.example\r\n")),
            ("250 mta.example", send("MAIL FROM:<>\r\n")),
            (
                "421 4.4.2 timeout",
                unavailable("MTA closing: 4.4.2 timeout"),
            ),
        ],
    );
}

#[test]
fn never_sends_a_password_or_more_than_a_line() {
    let mut replay = Replay::new(req(SmtpClientInfo::Xclient));
    let mut sent = Vec::new();
    for line in ["220 x", "250-x", "250 XCLIENT", "220 x", "250 x"] {
        if let ReplayStep::Send(bytes) = replay.on_line(line.as_bytes()) {
            sent.push(bytes);
        }
    }
    for bytes in &sent {
        assert!(bytes.ends_with(b"\r\n"));
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(bytes.len() <= 512);
    }
    assert_eq!(sent.len(), 3);
}
