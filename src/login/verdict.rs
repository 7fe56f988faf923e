//! Why a login ended, for `mmp_logins_total{outcome}`. What the client hears
//! ([`Failure`](crate::protocol::Failure)) deliberately does not tell a wrong password
//! from an inactive account, nor the directory from the store; the metrics must. The
//! function that classifies a failure (the one that logs why) notes it here, and
//! [`take`] reads it once when the login returns. A thread-local: a login runs on one
//! worker thread from start to end, and [`clear`] starts each one afresh. No I/O.

use crate::metrics::LoginOutcome;
use crate::pool::LoginResult;
use crate::protocol::Failure;
use std::cell::Cell;

thread_local! {
    static WHY: Cell<Option<LoginOutcome>> = const { Cell::new(None) };
}

/// Starts a login with nothing noted.
pub fn clear() {
    WHY.with(|w| w.set(None));
}

/// Notes why the login is failing (the first note wins: later steps only follow it).
pub fn note(why: LoginOutcome) {
    WHY.with(|w| {
        if w.get().is_none() {
            w.set(Some(why));
        }
    });
}

/// The outcome of the login that returned `result`: what was noted, else what the
/// answer itself says.
pub fn take(result: &LoginResult) -> LoginOutcome {
    let noted = WHY.with(Cell::take);
    match result {
        LoginResult::LoggedIn { .. } => LoginOutcome::Ok,
        LoginResult::Failed(Failure::AuthFailed) => noted.unwrap_or(LoginOutcome::BadCredentials),
        LoginResult::Failed(Failure::Unavailable { .. }) => {
            noted.unwrap_or(LoginOutcome::DirectoryUnavailable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_note_wins_and_each_login_starts_afresh() {
        let failed = LoginResult::Failed(Failure::AuthFailed);
        clear();
        note(LoginOutcome::Policy);
        note(LoginOutcome::BadCredentials);
        assert_eq!(take(&failed), LoginOutcome::Policy);
        clear();
        assert_eq!(take(&failed), LoginOutcome::BadCredentials);
        let down = LoginResult::Failed(Failure::Unavailable { alert: "x".into() });
        note(LoginOutcome::StoreUnavailable);
        assert_eq!(take(&down), LoginOutcome::StoreUnavailable);
        assert_eq!(take(&down), LoginOutcome::DirectoryUnavailable);
    }
}
