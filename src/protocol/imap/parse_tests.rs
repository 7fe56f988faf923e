//! Tests of the IMAP command parser: commands, caps, skipping, and every split.

use super::parse::*;
use crate::secret::Secret;

const LIMITS: Limits = Limits {
    max_line_bytes: 64,
    max_literal_bytes: 16,
};

fn atom(a: &str) -> Arg {
    Arg::Atom(a.into())
}

fn string(s: &[u8]) -> Arg {
    Arg::String(Secret::new(s))
}

fn cmd(tag: &str, name: &str, args: Vec<Arg>) -> Event {
    Event::Command(Command {
        tag: tag.into(),
        name: name.into(),
        args,
    })
}

fn bad(tag: Option<&str>, text: &'static str) -> Event {
    Event::Bad {
        tag: tag.map(String::from),
        text,
    }
}

/// All events of one input, fed whole; and the bytes left over.
fn events(input: &[u8]) -> (Vec<Event>, Vec<u8>) {
    let mut p = Parser::new(LIMITS);
    let mut buf = input.to_vec();
    let mut out = Vec::new();
    while let Some(ev) = p.next(&mut buf) {
        let fatal = matches!(ev, Event::Fatal(_));
        out.push(ev);
        if fatal {
            break;
        }
    }
    (out, buf)
}

#[test]
fn parses_commands() {
    let cases: Vec<(&[u8], Vec<Event>)> = vec![
        (b"a1 noop\r\n", vec![cmd("a1", "NOOP", vec![])]),
        (b"a1 NOOP\n", vec![cmd("a1", "NOOP", vec![])]),
        (
            b"A LOGIN bob \"p \\\"w\\\\\"\r\n",
            vec![cmd("A", "LOGIN", vec![atom("bob"), string(b"p \"w\\")])],
        ),
        (
            b"A  LOGIN   bob  x \r\n",
            vec![cmd("A", "LOGIN", vec![atom("bob"), atom("x")])],
        ),
        (
            b"A LOGIN {3}\r\nbob {2+}\r\npw\r\n",
            vec![
                Event::Continue,
                cmd("A", "LOGIN", vec![string(b"bob"), string(b"pw")]),
            ],
        ),
        (
            b"A LOGIN {0}\r\n \"\"\r\n",
            vec![
                Event::Continue,
                cmd("A", "LOGIN", vec![string(b""), string(b"")]),
            ],
        ),
        (
            b"i ID (\"a\" NIL \"b\" (\"c\"))\r\n",
            vec![cmd(
                "i",
                "ID",
                vec![Arg::List(vec![
                    string(b"a"),
                    atom("NIL"),
                    string(b"b"),
                    Arg::List(vec![string(b"c")]),
                ])],
            )],
        ),
        (
            b"i ID ()\r\n",
            vec![cmd("i", "ID", vec![Arg::List(vec![])])],
        ),
        (
            b"f FETCH 1 BODY[]\r\n",
            vec![cmd("f", "FETCH", vec![atom("1"), atom("BODY[]")])],
        ),
        (
            b"q LOGIN \"\xc3\xa4\" x\r\n",
            vec![cmd(
                "q",
                "LOGIN",
                vec![string("\u{e4}".as_bytes()), atom("x")],
            )],
        ),
        (b"\r\n", vec![bad(None, "Empty command line")]),
        (b"a1\r\n", vec![bad(Some("a1"), "Missing command")]),
        (
            b"a1 \"x\"\r\n",
            vec![bad(Some("a1"), "Invalid command name")],
        ),
        (b"a+ NOOP\r\n", vec![bad(None, "Invalid tag")]),
        (b"* NOOP\r\n", vec![bad(None, "Invalid tag")]),
        (b" NOOP\r\n", vec![bad(None, "Missing tag")]),
        (b"a NO\0OP\r\n", vec![bad(Some("a"), "NUL in command line")]),
        (
            b"a LOGIN \"x\r\n",
            vec![bad(Some("a"), "Unterminated quoted string")],
        ),
        (
            b"a LOGIN \"\\x\" y\r\n",
            vec![bad(Some("a"), "Invalid escape in quoted string")],
        ),
        (
            b"a LOGIN \"x\"y\r\n",
            vec![bad(Some("a"), "Missing space between arguments")],
        ),
        (
            b"a LOGIN {3} x\r\n",
            vec![bad(Some("a"), "Invalid literal")],
        ),
        (b"a LOGIN {x}\r\n", vec![bad(Some("a"), "Invalid literal")]),
        (
            b"a LOGIN b\xffb\r\n",
            vec![bad(Some("a"), "Invalid character in command")],
        ),
        (
            b"a ID ((x)\r\n",
            vec![bad(Some("a"), "Unbalanced parentheses")],
        ),
        (
            b"a ID x)\r\n",
            vec![bad(Some("a"), "Unbalanced parentheses")],
        ),
        (
            b"a ID (((((((((x)))))))))\r\n",
            vec![bad(Some("a"), "Lists nested too deeply")],
        ),
        (
            b"a ID ((((((((x))))))))\r\n",
            vec![cmd(
                "a",
                "ID",
                vec![(0..8).fold(atom("x"), |a, _| Arg::List(vec![a]))],
            )],
        ),
    ];
    for (input, want) in cases {
        assert_eq!(
            events(input),
            (want, vec![]),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn tags_up_to_32_bytes() {
    let ok = format!("{} NOOP\r\n", "t".repeat(32));
    assert_eq!(
        events(ok.as_bytes()).0,
        vec![cmd(&"t".repeat(32), "NOOP", vec![])]
    );
    let long = format!("{} NOOP\r\n", "t".repeat(33));
    assert_eq!(events(long.as_bytes()).0, vec![bad(None, "Tag too long")]);
}

#[test]
fn caps_and_skipping() {
    let cases: Vec<(&[u8], Vec<Event>, &[u8])> = vec![
        // Synchronizing literal too large: BAD, and the next line is a new command.
        (b"a LOGIN {17}\r\nb NOOP\r\n", vec![bad(Some("a"), "Literal too large"), cmd("b", "NOOP", vec![])], b""),
        (b"a LOGIN {99999999999999999999999}\r\n", vec![bad(Some("a"), "Literal too large")], b""),
        (b"a LOGIN {17+}\r\nxxx", vec![Event::Fatal("Literal too large")], b"xxx"),
        // Four literals of 16 exceed the command cap (64 + 2 * 16).
        (b"a X {16+}\r\n0123456789abcdef {16+}\r\n0123456789abcdef {16+}\r\n0123456789abcdef {16+}\r\n", vec![Event::Fatal("Literal too large")], b""),
        (&[b'x'; 64], vec![Event::Fatal("Line too long")], &[b'x'; 64]),
        // An invalid command's non-synchronizing literal is skipped, in step.
        (b"* X {5+}\r\na\r\nb NOOP\r\nc NOOP\r\n", vec![bad(None, "Invalid tag"), cmd("c", "NOOP", vec![])], b""),
        (b"a X \"\\q\" {3+}\r\nabc {2+}\r\nde\r\nb NOOP\r\n", vec![bad(Some("a"), "Invalid escape in quoted string"), cmd("b", "NOOP", vec![])], b""),
        (b"a X \"\\q\" {3}\r\nb NOOP\r\n", vec![bad(Some("a"), "Invalid escape in quoted string"), cmd("b", "NOOP", vec![])], b""),
        (b"a LOGIN {3+}\r\na\0b x\r\nb NOOP\r\n", vec![bad(Some("a"), "NUL in literal"), cmd("b", "NOOP", vec![])], b""),
        (b"a LOGIN {3+}\r\na\0b {1+}\r\n\0\r\nb NOOP\r\n", vec![bad(Some("a"), "NUL in literal"), cmd("b", "NOOP", vec![])], b""),
        (b"* X {17+}\r\n", vec![Event::Fatal("Literal too large")], b""),
    ];
    for (input, want, rest) in cases {
        assert_eq!(
            events(input),
            (want, rest.to_vec()),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn resumes_after_every_split() {
    let input: &[u8] =
        b"a LOGIN {3}\r\nbob {4+}\r\np\"w)\r\n* X {2+}\r\nxx\r\nb ID (\"k\" {1}\r\nv)\r\n";
    let (want, _) = events(input);
    assert_eq!(want.len(), 5, "{want:?}");
    for cut in 0..=input.len() {
        let mut p = Parser::new(LIMITS);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        for part in [&input[..cut], &input[cut..]] {
            buf.extend_from_slice(part);
            while let Some(ev) = p.next(&mut buf) {
                got.push(ev);
            }
        }
        assert_eq!(got, want, "cut at {cut}");
    }
}

#[test]
fn debug_hides_strings() {
    let (events, _) = events(b"a LOGIN bob \"hunter2\"\r\n");
    assert!(!format!("{events:?}").contains("hunter2"), "{events:?}");
    let mut p = Parser::new(LIMITS);
    let mut buf = b"a LOGIN {7}\r\nhunt".to_vec();
    assert_eq!(p.next(&mut buf), Some(Event::Continue));
    assert_eq!(p.next(&mut buf), None);
    assert!(!format!("{p:?}").contains("hunt"), "{p:?}");
}

#[test]
fn line_reader_caps_and_resumes() {
    let mut lines = LineScanner::new(5);
    let mut buf = Vec::new();
    assert_eq!(lines.take(&mut buf), None);
    buf.extend_from_slice(b"ab");
    assert_eq!(lines.take(&mut buf), None);
    buf.extend_from_slice(b"c");
    assert_eq!(lines.take(&mut buf), None);
    buf.extend_from_slice(b"\r\nx");
    assert_eq!(lines.take(&mut buf), Some(Ok(b"abc".to_vec())));
    assert_eq!(buf, b"x");
    buf.extend_from_slice(b"\n");
    assert_eq!(lines.take(&mut buf), Some(Ok(b"x".to_vec())));
    let mut buf = b"abcd\r\n".to_vec();
    assert_eq!(LineScanner::new(5).take(&mut buf), Some(Err(LineTooLong)));
    let mut buf = b"abc\r\n".to_vec();
    assert_eq!(
        LineScanner::new(5).take(&mut buf),
        Some(Ok(b"abc".to_vec()))
    );
    let mut buf = b"a".to_vec();
    assert_eq!(LineScanner::new(0).take(&mut buf), Some(Err(LineTooLong)));
}

/// Issue 9 item 14: an atom may be a password (`LOGIN alice hunter2`); a command wipes its
/// atoms, nested ones included, when it is dropped.
#[test]
fn atoms_are_wiped() {
    let mut arg = Arg::List(vec![
        Arg::Atom("hunter2".into()),
        Arg::List(vec![Arg::Atom("x".into())]),
    ]);
    arg.wipe_atoms();
    assert_eq!(
        arg,
        Arg::List(vec![
            Arg::Atom(String::new()),
            Arg::List(vec![Arg::Atom(String::new())])
        ])
    );
}
