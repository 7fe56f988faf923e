//! Tests of the relay guard: transcripts of client and MTA bytes, each event fed whole,
//! cut at every byte, and byte by byte, with the exact bytes passed each way.

use super::guard::{MAX_COMMAND_LINE, MAX_HELD_BYTES, MAX_PENDING, MAX_REPLY_LINE};
use super::{Guard, GuardError};

/// One event of a transcript and what must come out of it.
#[derive(Debug, Clone)]
struct Step<'a> {
    /// True: bytes from the client; false: bytes from the MTA.
    client: bool,
    input: &'a [u8],
    /// Client event: bytes to the MTA. MTA event: bytes to the client.
    out: &'a [u8],
    /// MTA event: client bytes released to the MTA.
    released: &'a [u8],
    err: Option<GuardError>,
}

fn c<'a>(input: &'a [u8], out: &'a [u8]) -> Step<'a> {
    Step {
        client: true,
        input,
        out,
        released: b"",
        err: None,
    }
}

fn s<'a>(input: &'a [u8], out: &'a [u8], released: &'a [u8]) -> Step<'a> {
    Step {
        client: false,
        input,
        out,
        released,
        err: None,
    }
}

fn c_err(input: &[u8], err: GuardError) -> Step<'_> {
    Step {
        err: Some(err),
        ..c(input, b"")
    }
}

fn s_err(input: &[u8], err: GuardError) -> Step<'_> {
    Step {
        err: Some(err),
        ..s(input, b"", b"")
    }
}

/// How a step's input is cut into the pieces fed one by one.
type Pieces<'a> = &'a dyn Fn(usize, &[u8]) -> Vec<Vec<u8>>;

/// Runs the transcript with each step's input given in `pieces(step index, input)`.
fn run_with(steps: &[Step], pieces: Pieces) -> Result<(), String> {
    let mut guard = Guard::new();
    for (i, step) in steps.iter().enumerate() {
        let (mut out, mut released) = (Vec::new(), Vec::new());
        let mut result = Ok(());
        for piece in pieces(i, step.input) {
            result = if step.client {
                guard.from_client(&piece, &mut out)
            } else {
                let r = guard.from_store(&piece, &mut out);
                guard.released(&mut released);
                r
            };
            if result.is_err() {
                break;
            }
        }
        match (result, step.err) {
            (Err(got), Some(want)) if got == want => return Ok(()),
            (Err(got), want) => return Err(format!("step {i}: error {got:?}, want {want:?}")),
            (Ok(()), Some(want)) => return Err(format!("step {i}: no error, want {want:?}")),
            (Ok(()), None) => {}
        }
        if (out.as_slice(), released.as_slice()) != (step.out, step.released) {
            return Err(format!(
                "step {i}: out {:?} released {:?}, want {:?} {:?}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&released),
                String::from_utf8_lossy(step.out),
                String::from_utf8_lossy(step.released),
            ));
        }
    }
    Ok(())
}

/// The transcript holds whole, with any one step cut at any byte, and byte by byte.
#[track_caller]
fn check(steps: &[Step]) {
    let whole = |_: usize, input: &[u8]| vec![input.to_vec()];
    if let Err(e) = run_with(steps, &whole) {
        panic!("whole: {e}");
    }
    for (k, step) in steps.iter().enumerate() {
        for cut in 0..=step.input.len() {
            let split = |i: usize, input: &[u8]| {
                if i == k {
                    vec![input[..cut].to_vec(), input[cut..].to_vec()]
                } else {
                    vec![input.to_vec()]
                }
            };
            if let Err(e) = run_with(steps, &split) {
                panic!("step {k} cut at {cut}: {e}");
            }
        }
    }
    let bytes = |_: usize, input: &[u8]| input.chunks(1).map(<[u8]>::to_vec).collect();
    if let Err(e) = run_with(steps, &bytes) {
        panic!("byte by byte: {e}");
    }
}

const REFUSED: &[u8] = b"XMMP-REFUSED\r\n";

#[test]
fn commands_pass_and_dangerous_verbs_are_refused() {
    let cases: &[(&[u8], &[u8])] = &[
        (
            b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n",
            b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n",
        ),
        (b"noop\n", b"noop\n"),
        (b"XCLIENT ADDR=192.0.2.99 LOGIN=admin\r\n", REFUSED),
        (b"xclient addr=192.0.2.99\r\n", REFUSED),
        (b" \tXCLIENT ADDR=192.0.2.99\r\n", REFUSED),
        (b"XCLIENT\r\n", REFUSED),
        (b"XCLIENT=x\r\n", REFUSED),
        (b"XFORWARD NAME=spoof\r\n", REFUSED),
        (b"STARTTLS\r\n", REFUSED),
        (b"starttls\n", REFUSED),
        (b"BDAT 5 LAST\r\n", REFUSED),
        (b"NO\0OP\r\n", REFUSED),
        (b"\0XCLIENT ADDR=1.2.3.4\r\n", REFUSED),
        // A bare LF ends a line for Postfix, so it does here.
        (
            b"NOOP\nXCLIENT ADDR=192.0.2.99\n",
            b"NOOP\nXMMP-REFUSED\r\n",
        ),
        // A bare CR does not.
        (
            b"NOOP\rXCLIENT ADDR=192.0.2.99\r\n",
            b"NOOP\rXCLIENT ADDR=192.0.2.99\r\n",
        ),
        (b"XCLIENTS\r\n", b"XCLIENTS\r\n"),
        (
            b"RCPT TO:<xclient@example.com>\r\n",
            b"RCPT TO:<xclient@example.com>\r\n",
        ),
    ];
    for &(input, want) in cases {
        check(&[c(input, want)]);
    }
}

#[test]
fn pipelined_message_with_354() {
    check(&[
        c(
            b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: x\r\n\r\nXCLIENT ADDR=1.2.3.4\r\n..\r\n.",
            b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n",
        ),
        s(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n", b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n", b""),
        s(
            b"354 End data with <CR><LF>.<CR><LF>\r\n",
            b"354 End data with <CR><LF>.<CR><LF>\r\n",
            b"Subject: x\r\n\r\nXCLIENT ADDR=1.2.3.4\r\n..\r\n.",
        ),
        c(b"\r\nXCLIENT LOGIN=admin\r\nQUIT\r\n", b"\r\nXMMP-REFUSED\r\nQUIT\r\n"),
        s(
            b"250 2.0.0 Ok: queued\r\n502 5.5.2 Error: command not recognized\r\n221 2.0.0 Bye\r\n",
            b"250 2.0.0 Ok: queued\r\n502 5.5.2 Error: command not recognized\r\n221 2.0.0 Bye\r\n",
            b"",
        ),
    ]);
}

#[test]
fn data_refused_with_554_makes_held_bytes_commands() {
    check(&[
        c(
            b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nXCLIENT ADDR=1.2.3.4\r\nhello\r\n.\r\n",
            b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n",
        ),
        s(
            b"250 2.1.0 Ok\r\n550 5.1.1 unknown\r\n",
            b"250 2.1.0 Ok\r\n550 5.1.1 unknown\r\n",
            b"",
        ),
        s(
            b"554 5.5.1 Error: no valid recipients\r\n",
            b"554 5.5.1 Error: no valid recipients\r\n",
            b"XMMP-REFUSED\r\nhello\r\n.\r\n",
        ),
        // And the next DATA is recognised: its reply is the fourth from here.
        c(b"DATA\r\n.\r\n", b"DATA\r\n"),
        s(
            b"502 a\r\n500 b\r\n500 c\r\n",
            b"502 a\r\n500 b\r\n500 c\r\n",
            b"",
        ),
        s(b"354 go\r\n", b"354 go\r\n", b".\r\n"),
        s(
            b"250 2.0.0 Ok: queued\r\n",
            b"250 2.0.0 Ok: queued\r\n",
            b"",
        ),
    ]);
}

#[test]
fn body_lines_and_the_end_of_data() {
    let start = |rest: &'static [u8]| {
        vec![
            c(b"DATA\r\n", b"DATA\r\n"),
            s(b"354 go\r\n", b"354 go\r\n", b""),
            c(rest, rest),
        ]
    };
    let cases: Vec<(Vec<Step>, Step)> = vec![
        // A lone dot at the very start of the body ends it.
        (start(b".\r\n"), c(b"XCLIENT ADDR=1.2.3.4\r\n", REFUSED)),
        // Dot-stuffed lines, a dot inside a line, a long line: all body.
        (
            start(b"..\r\n..XCLIENT\r\n. \r\na.\r\n.\rx\r\n\r.\r\n"),
            c(b"XCLIENT ADDR=1.2.3.4\r\n", b"XCLIENT ADDR=1.2.3.4\r\n"),
        ),
        (start(b"x\r\n.\r\n"), c(b"STARTTLS\r\n", REFUSED)),
    ];
    for (mut steps, after) in cases {
        steps.push(after);
        check(&steps);
    }
    // The end of data split over three reads, then commands.
    check(&[
        c(b"DATA\r\n", b"DATA\r\n"),
        s(b"354 go\r\n", b"354 go\r\n", b""),
        c(b"line 1\r\n.", b"line 1\r\n."),
        c(b"\r", b"\r"),
        c(b"\nXCLIENT ADDR=1.2.3.4\r\n", b"\nXMMP-REFUSED\r\n"),
        s(
            b"250 queued\r\n502 no\r\n",
            b"250 queued\r\n502 no\r\n",
            b"",
        ),
    ]);
}

#[test]
fn an_end_of_data_with_bare_lf_closes() {
    for body in [&b"hi\n.\r\n"[..], b"hi\r\n.\n", b".\n", b"hi\n.\n"] {
        check(&[
            c(b"DATA\r\n", b"DATA\r\n"),
            s(b"354 go\r\n", b"354 go\r\n", b""),
            c_err(body, GuardError::AmbiguousEndOfData),
        ]);
    }
}

#[test]
fn ehlo_replies_lose_keywords() {
    check(&[
        c(b"EHLO c.example\r\n", b"EHLO c.example\r\n"),
        s(
            b"250-mta.example\r\n250-PIPELINING\r\n250-XCLIENT NAME ADDR\r\n250-STARTTLS\r\n250-SIZE 10240000\r\n250-chunking\r\n250-BINARYMIME\r\n250 XFORWARD NAME ADDR\r\n",
            b"250-mta.example\r\n250-PIPELINING\r\n250 SIZE 10240000\r\n",
            b"",
        ),
    ]);
    check(&[
        c(
            b"EHLO a\r\nEHLO b\r\nHELO c\r\nEHLO d\r\n",
            b"EHLO a\r\nEHLO b\r\nHELO c\r\nEHLO d\r\n",
        ),
        s(b"250-XCLIENT\r\n250 XCLIENT\r\n", b"250 XCLIENT\r\n", b""),
        s(b"250 mta.example\n", b"250 mta.example\r\n", b""),
        s(b"250 STARTTLS\r\n", b"250 STARTTLS\r\n", b""),
        s(b"501 5.5.4 Syntax\r\n", b"501 5.5.4 Syntax\r\n", b""),
    ]);
    // A reply to anything but EHLO passes untouched.
    check(&[
        c(b"HELP\r\n", b"HELP\r\n"),
        s(
            b"214-STARTTLS\r\n214 XCLIENT\r\n",
            b"214-STARTTLS\r\n214 XCLIENT\r\n",
            b"",
        ),
    ]);
}

#[test]
fn caps_and_desync() {
    let long_ok = [vec![b'N'; MAX_COMMAND_LINE - 1], b"\n".to_vec()].concat();
    check(&[c(&long_ok, &long_ok)]);
    let long = vec![b'N'; MAX_COMMAND_LINE];
    check(&[c_err(&long, GuardError::LineTooLong)]);
    let long_line = [long.clone(), b"\n".to_vec()].concat();
    check(&[c_err(&long_line, GuardError::LineTooLong)]);

    let held = vec![b'x'; MAX_HELD_BYTES];
    let mut guard = Guard::new();
    let mut out = Vec::new();
    assert_eq!(guard.from_client(b"DATA\r\nab", &mut out), Ok(()));
    assert_eq!(guard.held_bytes(), 2);
    assert_eq!(
        guard.from_client(&held, &mut out),
        Err(GuardError::HeldTooLong)
    );

    check(&[s_err(b"354 go ahead\r\n", GuardError::Desync)]);
    check(&[
        c(b"MAIL FROM:<a@b>\r\n", b"MAIL FROM:<a@b>\r\n"),
        s_err(b"354 go ahead\r\n", GuardError::Desync),
    ]);
    check(&[s_err(b"hello\r\n", GuardError::BadReply)]);
    let long_reply = [b"250 ".to_vec(), vec![b'x'; 5000]].concat();
    check(&[s_err(&long_reply, GuardError::ReplyTooLong)]);
    // A reply nobody asked for (an idle timeout) passes.
    check(&[s(b"421 4.4.2 timeout\r\n", b"421 4.4.2 timeout\r\n", b"")]);

    let mut guard = Guard::new();
    let mut out = Vec::new();
    for _ in 0..MAX_PENDING {
        assert_eq!(guard.from_client(b"EHLO x\r\n", &mut out), Ok(()));
    }
    assert_eq!(
        guard.from_client(b"EHLO x\r\n", &mut out),
        Err(GuardError::TooManyPending)
    );
    // Ordinary commands are counted in runs, so many of them cost nothing.
    let mut guard = Guard::new();
    let noops = b"NOOP\r\n".repeat(3 * MAX_PENDING);
    assert_eq!(guard.from_client(&noops, &mut out), Ok(()));
}

#[test]
fn owes_store_while_bytes_after_data_wait_for_its_reply() {
    let mut g = Guard::new();
    let mut up = Vec::new();
    g.from_client(
        b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
        &mut up,
    )
    .unwrap();
    assert_eq!(up, b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
    assert!(g.owes_store(), "the body waits for the reply to DATA");
    let mut down = Vec::new();
    g.from_store(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n", &mut down)
        .unwrap();
    assert!(g.owes_store(), "released bytes not yet taken");
    let mut released = Vec::new();
    g.released(&mut released);
    assert_eq!(released, b"Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n");
    assert!(!g.owes_store());
    g.from_client(b"NOOP", &mut up).unwrap();
    assert!(!g.owes_store(), "a partial command line is not owed");
}

#[test]
fn held_cap_is_the_documented_64_kib() {
    // Written out rather than taken from the constant: 64 KiB sent after DATA, before
    // its reply, are held and then passed on; one byte more closes the session.
    let cap = 64 * 1024;
    let body = vec![b'x'; cap];
    let mut guard = Guard::new();
    let mut out = Vec::new();
    guard.from_client(b"DATA\r\n", &mut out).unwrap();
    assert_eq!(guard.from_client(&body, &mut out), Ok(()));
    assert_eq!(guard.held_bytes(), cap);
    let mut down = Vec::new();
    guard.from_store(b"354 go ahead\r\n", &mut down).unwrap();
    let mut released = Vec::new();
    guard.released(&mut released);
    assert_eq!(released, body);
    let mut guard = Guard::new();
    guard.from_client(b"DATA\r\n", &mut out).unwrap();
    assert_eq!(
        guard.from_client(&[body.as_slice(), b"x"].concat(), &mut out),
        Err(GuardError::HeldTooLong)
    );
}

#[test]
fn errors_say_why_the_session_closed() {
    // These texts end up in the log line of the closed session.
    let cases = [
        (GuardError::LineTooLong, "client command line too long"),
        (
            GuardError::HeldTooLong,
            "too many bytes sent before the reply to DATA",
        ),
        (GuardError::AmbiguousEndOfData, "end of data with a bare LF"),
        (
            GuardError::TooManyPending,
            "too many commands without a reply",
        ),
        (GuardError::ReplyTooLong, "MTA reply too long"),
        (
            GuardError::BadReply,
            "MTA sent something other than a reply",
        ),
        (GuardError::Desync, "MTA entered DATA mode unexpectedly"),
    ];
    for (e, want) in cases {
        assert_eq!(e.to_string(), want);
    }
}

#[test]
fn reply_line_cap_is_4096_bytes_with_its_lf() {
    let line = |n: usize| [b"250 ".to_vec(), vec![b'x'; n - 6], b"\r\n".to_vec()].concat();
    assert_eq!(MAX_REPLY_LINE, 4096);
    let longest = line(4096);
    check(&[s(&longest, &longest, b"")]);
    check(&[s_err(&line(4097), GuardError::ReplyTooLong)]);
}

#[test]
fn held_bytes_counts_the_partial_line_the_held_and_the_released() {
    // What the pump's backpressure reads: every client byte not yet passed on.
    let mut g = Guard::new();
    let mut up = Vec::new();
    g.from_client(b"DATA\r\nNOOP\r\nNO", &mut up).unwrap();
    assert_eq!(g.held_bytes(), 8, "held after DATA");
    let mut down = Vec::new();
    g.from_store(b"554 5.5.1 no valid recipients\r\n", &mut down)
        .unwrap();
    // DATA refused: the held bytes are commands; the whole one is released, "NO" waits.
    assert_eq!(g.held_bytes(), 8, "a released line and a partial one");
    let mut released = Vec::new();
    g.released(&mut released);
    assert_eq!(released, b"NOOP\r\n");
    assert_eq!(g.held_bytes(), 2, "the partial line");
}

#[test]
fn a_354_to_a_command_pipelined_before_data_is_a_desync() {
    // The guard already holds what follows DATA; a 354 that answers MAIL is not the
    // answer to that DATA, and taking it for one would put the two sides in different
    // modes.
    check(&[
        c(
            b"MAIL FROM:<a@b>\r\nDATA\r\n",
            b"MAIL FROM:<a@b>\r\nDATA\r\n",
        ),
        s_err(b"354 go ahead\r\n", GuardError::Desync),
    ]);
}

#[test]
fn ehlo_reply_cap_is_16_kib_of_kept_lines() {
    // An EHLO reply of `total` bytes (CRLFs not counted) in lines of at most 4000.
    let reply = |total: usize| {
        let (mut r, mut left) = (Vec::new(), total);
        while left > 0 {
            let n = left.min(4000);
            left -= n;
            r.extend_from_slice(if left == 0 { b"250 " } else { b"250-" });
            r.extend_from_slice(&vec![b'K'; n - 4]);
            r.extend_from_slice(b"\r\n");
        }
        r
    };
    for (total, ok) in [(16 * 1024, true), (16 * 1024 + 1, false)] {
        let mut g = Guard::new();
        let mut up = Vec::new();
        g.from_client(b"EHLO x\r\n", &mut up).unwrap();
        let r = reply(total);
        let mut down = Vec::new();
        let got = g.from_store(&r, &mut down);
        if ok {
            assert_eq!(got, Ok(()), "{total} bytes");
            assert!(down == r, "the reply passes unchanged");
        } else {
            assert_eq!(got, Err(GuardError::ReplyTooLong), "{total} bytes");
        }
    }
}
