//! Tests of the pre-login dialogue and the closing session over loopback sockets.

use super::*;
use crate::protocol::imap;
use crate::pump::testing::pair;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn imap_front() -> Front {
    Front::Imap(imap::Front::new(imap::FrontConfig {
        banner: None,
        capability: None,
        max_line_bytes: 8192,
        max_literal_bytes: 8192,
        max_bad_commands: 3,
        tls: TlsState::Unavailable,
        restrict_plain_passwords: false,
        external: false,
    }))
}

/// `count` pipelined commands, CAPABILITY and NOOP in turn, tagged `a0`, `a1`, ….
fn pipelined(count: usize) -> Vec<u8> {
    let mut input = Vec::new();
    for i in 0..count {
        let verb = if i % 2 == 0 { "CAPABILITY" } else { "NOOP" };
        input.extend_from_slice(format!("a{i} {verb}\r\n").as_bytes());
    }
    input
}

/// The longest single reply of the dialogue above, with room to spare.
const MAX_REPLY: usize = 1024;

#[test]
fn pipelined_commands_after_a_handshake_are_answered_in_bounded_turns_and_in_order() {
    const COUNT: usize = 6000;
    let (client, mut peer) = pair();
    // What a TLS handshake can hand over: up to ~68 KB of commands, all at once.
    let input = pipelined(COUNT);
    assert!(input.len() > 64 * 1024);
    let mut p = PreLogin::new(client, imap_front(), input.clone(), Vec::new(), true);
    // The client takes nothing yet: mmp must stop at its output cap, in bounded turns.
    p.ready.writable = false;
    let mut turns = 0;
    loop {
        let next = p.turn(1 << 20);
        assert!(
            p.output.len() < MAX_PENDING_OUTPUT + MAX_REPLY,
            "{} bytes of replies queued for a client that reads nothing",
            p.output.len()
        );
        turns += 1;
        assert!(turns < 1000, "no end to the turns");
        match next {
            Next::MoreWork => {}
            Next::Wait => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(turns > 1, "one turn answered every command");
    assert!(p.output.len() >= MAX_PENDING_OUTPUT);
    // The client reads now: every answer arrives, in order.
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        while got
            .split(|&b| b == b'\n')
            .filter(|l| l.starts_with(b"a"))
            .count()
            < COUNT
        {
            let n = peer.read(&mut buf).unwrap();
            assert!(n > 0, "closed early");
            got.extend_from_slice(&buf[..n]);
        }
        got
    });
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        p.ready.writable = true;
        let next = p.turn(1 << 20);
        assert!(p.output.len() < MAX_PENDING_OUTPUT + MAX_REPLY);
        match next {
            Next::MoreWork => continue,
            Next::Wait if p.output.is_empty() && !p.ready.readable => break,
            Next::Wait => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(Instant::now() < until, "the replies did not go out in time");
        std::thread::sleep(Duration::from_millis(1));
    }
    let got = reader.join().unwrap();
    let tags: Vec<&[u8]> = got
        .split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"a"))
        .map(|l| l.split(|&b| b == b' ').next().unwrap())
        .collect();
    let want: Vec<Vec<u8>> = (0..COUNT).map(|i| format!("a{i}").into_bytes()).collect();
    assert_eq!(tags.len(), COUNT, "every command answered");
    assert!(
        tags.iter().zip(&want).all(|(t, w)| t == w),
        "answers in order"
    );
    // Consuming the input moved each byte a bounded number of times, not once per line.
    assert!(
        p.shifted() <= input.len(),
        "{} bytes shifted for {} bytes of input",
        p.shifted(),
        input.len()
    );
}

#[test]
fn login_takes_every_byte_pipelined_after_it() {
    let (client, _peer) = pair();
    let mut input = b"a1 NOOP\r\na2 LOGIN alice secret\r\n".to_vec();
    input.extend_from_slice(b"a3 SELECT INBOX\r\na4 NOOP\r\n");
    let mut p = PreLogin::new(client, imap_front(), input, Vec::new(), false);
    p.ready.writable = false;
    match p.turn(1 << 20) {
        Next::Login(_) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(p.input, b"a3 SELECT INBOX\r\na4 NOOP\r\n");
    assert!(p.output.starts_with(b"a1 OK"));
}

#[test]
fn closing_writes_its_last_reply_then_shuts_down() {
    let (client, mut peer) = pair();
    let mut c = Closing {
        client,
        output: b"* BYE bye\r\n".to_vec(),
    };
    assert!(c.flush());
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"* BYE bye\r\n");
    let _ = peer.write(b"x");
}
