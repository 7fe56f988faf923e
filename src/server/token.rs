//! The one place that maps mio tokens to what they stand for: the `Waker`, a listener, or
//! one socket of a session. Session ids are never reused, so a token of a session that has
//! gone is recognised and ignored (mio: "sporadic events happen"). No I/O.

use crate::relay::Side;
use mio::Token;

/// The workers' doorbell.
pub const WAKER: Token = Token(0);

/// What a token stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The `Waker`: finished logins are waiting.
    Waker,
    /// Listener number n.
    Listener(usize),
    /// One side of a session.
    Session(u64, Side),
}

/// The token of listener `n` (counted down from the top of the token space).
pub fn listener(n: usize) -> Token {
    Token(usize::MAX - n)
}

/// The token of one side of session `sid` (sids start at 1).
pub fn session(sid: u64, side: Side) -> Token {
    let bit = match side {
        Side::Client => 0,
        Side::Store => 1,
    };
    Token(((sid as usize) << 1) | bit)
}

/// What `token` stands for, given how many listeners there are.
pub fn decode(token: Token, listeners: usize) -> Option<Target> {
    let Token(t) = token;
    if token == WAKER {
        return Some(Target::Waker);
    }
    let from_top = usize::MAX - t;
    if from_top < listeners {
        return Some(Target::Listener(from_top));
    }
    let sid = (t >> 1) as u64;
    if sid == 0 {
        return None;
    }
    let side = if t & 1 == 0 {
        Side::Client
    } else {
        Side::Store
    };
    Some(Target::Session(sid, side))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        assert_eq!(decode(WAKER, 3), Some(Target::Waker));
        for n in 0..3 {
            assert_eq!(decode(listener(n), 3), Some(Target::Listener(n)));
        }
        for sid in [1u64, 2, 77, 1 << 40] {
            for side in [Side::Client, Side::Store] {
                assert_eq!(
                    decode(session(sid, side), 3),
                    Some(Target::Session(sid, side))
                );
            }
        }
        assert_eq!(decode(Token(1), 3), None);
    }
}
