//! `Secret`: a password or other credential that must never reach a log line.
//!
//! Its `Debug` and `Display` print `<redacted>`; the bytes are reachable only through
//! [`Secret::expose`], so every place that really needs them is easy to find. No I/O.

use std::fmt;

/// Bytes that must not be logged (user passwords, BindPass, StoreAdminPass).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps the bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Secret {
        Secret(bytes.into())
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

impl Drop for Secret {
    fn drop(&mut self) {
        // Best effort: do not leave the password in freed heap memory.
        for b in self.0.iter_mut() {
            // SAFETY-free: a volatile write keeps the compiler from eliding the wipe.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
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
