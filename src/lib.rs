//! mmp, the Messaging Multiplexor: one IMAP, POP3 and SMTP front door for a farm of mail
//! stores, configured by legacy Sun MMP instance files. The binary (`src/main.rs`) is a
//! thin shell over this library; the integration tests drive the binary.
//!
//! A connection's way through: [`server`] accepts it and runs the pre-login dialogue of
//! its [`protocol`] in the event loop; a complete login goes to the [`pool`], whose workers
//! ask the [`directory`] for the user's store and log in there ([`store`]); the loop then
//! relays bytes ([`relay`]) with buffers from [`buffer`] over a [`transport`].
#![deny(missing_docs)]

pub mod bad_guys;
pub mod buffer;
pub mod client_info;
pub mod config;
pub mod directory;
pub mod log;
pub mod login;
pub mod metrics;
pub mod mta;
pub mod pool;
pub mod process;
pub mod protocol;
pub mod proxy_protocol;
pub mod pump;
pub mod relay;
pub mod resolve;
pub mod runtime;
pub mod sanitize;
pub mod secret;
pub mod server;
pub mod socket;
pub mod status;
pub mod store;
pub mod store_gate;
pub mod tls;
pub mod transport;
