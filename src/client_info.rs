//! The facts about a client connection that the directory (`%C`, `%S` in search filters),
//! the store replays (IMAP `ID`, XCLIENT, PROXY) and the log need. Kept out of `protocol`
//! so that `directory` does not depend on the protocol front ends. No I/O.

use std::net::SocketAddr;

/// Facts about the client connection that a lookup or a replay may pass on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's address.
    pub client: SocketAddr,
    /// The local address the client connected to.
    pub server: SocketAddr,
    /// mmp's session id.
    pub session: u64,
}
