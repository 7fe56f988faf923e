//! mmp, the Messaging Multiplexor: one IMAP, POP3 and SMTP front door for a farm of mail
//! stores, configured by legacy Sun MMP instance files. The binary (`src/main.rs`) is a
//! thin shell over this library; the integration tests use it too.
#![deny(missing_docs)]

pub mod config;
pub mod protocol;
pub mod secret;
