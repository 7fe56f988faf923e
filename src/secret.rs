//! `Secret`: a password or other credential that must never reach a log line.
//!
//! Its `Debug` and `Display` print `<redacted>`; the bytes are reachable only through
//! [`Secret::expose`], so every place that really needs them is easy to find. The bytes are
//! wiped with `zeroize` when the value is dropped, and so is every clone. (`Secret` stays
//! `Clone`: the typed configuration, the login credentials and the parsed IMAP arguments that
//! hold one are cloned whole, and each clone is wiped on its own drop.) No I/O.

use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// Bytes that must not be logged (user passwords, BindPass, StoreAdminPass).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps the bytes (a `String` or `Vec<u8>` moves in without a copy).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(Zeroizing::new(bytes.into()))
    }

    /// Wipes the spare capacity of `buf`: the bytes a `drain` from its front left behind
    /// (a login line taken out of an input buffer that lives on).
    pub fn wipe_spare_capacity(buf: &mut Vec<u8>) {
        buf.spare_capacity_mut().zeroize();
    }

    /// The bytes themselves, for the few places that must send them (LDAP bind, store login).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// True when there are no bytes (an empty password).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_bytes() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        assert_eq!(s.expose(), b"hunter2");
    }
}
