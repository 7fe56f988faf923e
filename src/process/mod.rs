//! The process around the server: signals turned into values ([`signals`]), the switch to
//! an unprivileged user ([`privileges`]), the descriptor limit ([`limits`]), the systemd
//! notify protocol ([`notify`]), and daemon start-up with its pidfile ([`daemon`]).
//!
//! Order at start (main.rs): block signals (before any thread) → raise the descriptor
//! limit → open logs → bind listeners → drop privileges → start threads → report ready.

pub mod daemon;
pub mod limits;
pub mod notify;
pub mod privileges;
pub mod signals;
