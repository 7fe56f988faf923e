//! Test support shared by the three front ends' tests (style §9, "feed every split"): a
//! transcript must give the same actions and leave the same bytes however the loop's reads
//! cut it — at every byte position, and one byte at a time. Test-only; no I/O.

use super::Action;

/// Feeds the chunks in order as the loop would: after each one, `feed` until `None`, and
/// stop feeding after an action that ends the dialogue (the buffer keeps growing).
pub fn drive(
    mut feed: impl FnMut(&mut Vec<u8>) -> Option<Action>,
    chunks: &[&[u8]],
) -> (Vec<Action>, Vec<u8>) {
    let mut buf = Vec::new();
    let mut actions = Vec::new();
    let mut ended = false;
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while !ended {
            match feed(&mut buf) {
                None => break,
                Some(action) => {
                    ended = !matches!(action, Action::Send(_));
                    actions.push(action);
                }
            }
        }
    }
    (actions, buf)
}

/// The transcript `input` gives `want` and leaves `rest`, cut anywhere and byte by byte;
/// `fresh` makes a new front end's `feed` for each try.
#[track_caller]
pub fn check<F>(fresh: impl Fn() -> F, input: &[u8], want: &[Action], rest: &[u8])
where
    F: FnMut(&mut Vec<u8>) -> Option<Action>,
{
    let name = String::from_utf8_lossy(input);
    for cut in 0..=input.len() {
        let got = drive(fresh(), &[&input[..cut], &input[cut..]]);
        assert_eq!(
            (got.0.as_slice(), got.1.as_slice()),
            (want, rest),
            "{name:?} cut at {cut}"
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    let got = drive(fresh(), &bytes);
    assert_eq!(
        (got.0.as_slice(), got.1.as_slice()),
        (want, rest),
        "{name:?} byte by byte"
    );
}

/// The client of the replay tests: 192.0.2.7:50123 connected to 198.51.100.1:`port`,
/// session 42.
pub fn replay_info(port: u16) -> super::ClientInfo {
    super::ClientInfo {
        client: "192.0.2.7:50123".parse().unwrap(),
        server: std::net::SocketAddr::from(([198, 51, 100, 1], port)),
        session: 42,
    }
}

/// Alice's credentials, optionally on behalf of `authzid`.
pub fn alice(password: &[u8], authzid: Option<&str>) -> super::Credentials {
    super::Credentials {
        user: "Alice@Example.org".into(),
        password: crate::secret::Secret::new(password),
        authzid: authzid.map(String::from),
    }
}

/// The replay sends `s`.
pub fn send(s: &str) -> super::ReplayStep {
    super::ReplayStep::Send(s.as_bytes().to_vec())
}

/// The replay ends logged in with the store's answer `s`.
pub fn done(s: &str) -> super::ReplayStep {
    super::ReplayStep::Done(super::StoreAnswer {
        line: s.as_bytes().to_vec(),
    })
}

/// The store broke the protocol (`s` says how).
pub fn protocol(s: &str) -> super::ReplayStep {
    super::ReplayStep::Refused(super::Refusal::Protocol(s.into()))
}

/// Issue 9 item 14: feeding `input` hands out a login whose `Debug` hides `password`,
/// leaves `rest` (the pipelined bytes) in the buffer, and the buffer's spare capacity (the
/// drained bytes, which live on with it) holds no copy of the password: it was wiped.
#[track_caller]
pub fn check_login_wipes_input(
    mut feed: impl FnMut(&mut Vec<u8>) -> Option<Action>,
    input: &[u8],
    rest: &[u8],
    password: &str,
) {
    // `to_vec` makes capacity == length, so every spare byte below was written once.
    let mut buf = input.to_vec();
    let login = (0..4)
        .map_while(|_| feed(&mut buf))
        .find_map(|action| match action {
            Action::Login(login) => Some(login),
            _ => None,
        })
        .expect("a login");
    let shown = format!("{login:?}");
    assert!(
        shown.contains("<redacted>") && !shown.contains(password),
        "{shown}"
    );
    assert_eq!(buf, rest);
    let spare: Vec<u8> = buf
        .spare_capacity_mut()
        .iter()
        // SAFETY: `buf` was filled whole by `to_vec` (capacity == length), so every spare
        // byte was written once before being drained.
        .map(|b| unsafe { b.assume_init() })
        .collect();
    assert!(
        !spare.is_empty(),
        "the drained bytes should be spare capacity"
    );
    assert!(
        spare.iter().all(|&b| b == 0),
        "spare capacity not wiped: {:?}",
        String::from_utf8_lossy(&spare)
    );
}
