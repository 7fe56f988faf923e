//! The log format: `yyyymmdd hhmmss LEVEL message`, the shape of the legacy MMP logs, and
//! the session context that every connection's line carries (`(sid 0x2a) client
//! 127.0.0.9:50123 user alice@a.test`). Callers decide what to log; this module only
//! decides how it looks. Passwords never reach it: they live in [`crate::secret::Secret`].
//!
//! Times are UTC (mmp has no time-zone database); the seed's PreAuth line format is kept.

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// The log target of the PreAuth line, which is written without a level so that it reads
/// exactly as the legacy MMP's (`yyyymmdd hhmmss (sid 0xHEX) user pre-authenticated -
/// client IP, server IP`).
pub const PREAUTH_TARGET: &str = "mmp::preauth";

/// Starts the logger: lines go to standard error (which the daemon points at its log
/// file). `RUST_LOG` overrides `level` for debugging.
pub fn init(level: log::LevelFilter) {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level);
    // Dependencies (ldap3, rustls) only ever speak at warn and above.
    builder.filter_module("ldap3", log::LevelFilter::Warn);
    builder.filter_module("rustls", log::LevelFilter::Warn);
    builder.filter_module("mio", log::LevelFilter::Warn);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    builder.format(|out, record| {
        if record.target() == PREAUTH_TARGET {
            return writeln!(out, "{} {}", Timestamp(SystemTime::now()), record.args());
        }
        writeln!(
            out,
            "{} {:<5} {}",
            Timestamp(SystemTime::now()),
            record.level(),
            record.args()
        )
    });
    builder.target(env_logger::Target::Stderr);
    let _ = builder.try_init();
}

/// A wall-clock time printed as `yyyymmdd hhmmss` (UTC).
pub struct Timestamp(pub SystemTime);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self
            .0
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (y, m, d) = civil_from_days((secs / 86_400) as i64);
        let rem = secs % 86_400;
        write!(
            f,
            "{y:04}{m:02}{d:02} {:02}{:02}{:02}",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The context a connection's log lines start with.
pub struct Ctx<'a> {
    /// Session id.
    pub sid: u64,
    /// The client's address.
    pub client: SocketAddr,
    /// The login name, once known.
    pub user: Option<&'a str>,
}

impl fmt::Display for Ctx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(sid 0x{:x}) client {}", self.sid, self.client)?;
        if let Some(user) = self.user {
            write!(f, " user {}", crate::protocol::sanitize(user.as_bytes()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_in_legacy_format() {
        let t = UNIX_EPOCH + Duration::from_secs(1_173_968_581); // 2007-03-15 14:23:01 UTC
        assert_eq!(Timestamp(t).to_string(), "20070315 142301");
        assert_eq!(Timestamp(UNIX_EPOCH).to_string(), "19700101 000000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(Timestamp(leap).to_string(), "20000229 000000");
    }

    #[test]
    fn context_sanitises_the_user() {
        let c = Ctx {
            sid: 42,
            client: "127.0.0.9:50123".parse().unwrap(),
            user: Some("a\r\nb"),
        };
        assert_eq!(c.to_string(), "(sid 0x2a) client 127.0.0.9:50123 user a??b");
    }
}
