//! IMAP (placeholder until the IMAP front end lands).
