//! A session as the loop holds it: one enum [`Phase`] that is consumed on each transition
//! (pre-login dialogue → in a worker → relay → closing), so nothing of an old phase (a
//! half-parsed line, a credential) outlives it. The pre-login dialogue runs here,
//! non-blocking: bytes from the client are fed to the protocol's [`Front`], its replies are
//! written back, and a complete login leaves as a `Job` with the client's socket.

use crate::protocol::line::InBuf;
use crate::protocol::{self, Action, ClientInfo, Front, TlsState};
use crate::pump::{receive, send, Readiness, SendError};
use crate::relay::Relay;
use crate::runtime::ServiceRuntime;
use crate::tls::ClientCert;
use crate::transport::{Io, Transport};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Most bytes of replies mmp queues for a client that does not read them: past it, no
/// more of that client's commands are answered (or read) until it takes some.
pub const MAX_PENDING_OUTPUT: usize = 64 * 1024;

/// Most replies the pre-login dialogue makes in one loop turn, so that a client
/// pipelining thousands of commands cannot hold the loop (it runs again next turn).
pub const MAX_ACTIONS_PER_TURN: usize = 64;

/// Longest a closing session may take to flush its last reply.
pub const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// One client connection and everything mmp holds for it.
#[derive(Debug)]
pub struct Session {
    /// Never reused.
    pub sid: u64,
    /// The service (listener's protocol and options), as configured when the session was
    /// accepted: a reload does not change it.
    pub rt: Arc<ServiceRuntime>,
    /// The service's realm for this connection (global, or the virtual domain of the
    /// local address).
    pub realm: usize,
    /// The client's address.
    pub client_addr: SocketAddr,
    /// The local address it connected to.
    pub server_addr: SocketAddr,
    /// Where the session is in its life.
    pub phase: Phase,
    /// When the session expires unless something happens.
    pub deadline: Instant,
    /// The deadline the timer heap holds for this session.
    pub scheduled: Instant,
    /// When the login must be done (`LoginTimeout` from accept, or from the PROXY
    /// header); restored when a failed login returns to the dialogue.
    pub login_deadline: Instant,
    /// The qualified user, once logged in (for log lines).
    pub user: Option<String>,
    /// The verified client certificate, when the client presented one over TLS.
    pub client_cert: Option<Box<ClientCert>>,
    /// The phase the session is counted in (`mmp_sessions`); `None` once gone.
    pub counted: Option<crate::metrics::Phase>,
    /// Counted in `ConnLimits` (from the moment its client address is known and passed
    /// the checks: at accept, or after its PROXY header).
    pub admitted: bool,
}

/// Where a session is in its life.
#[derive(Debug)]
pub enum Phase {
    /// On a `ProxyProtocolPorts` port: waiting for the load balancer's PROXY header;
    /// nothing is sent first.
    ProxyHeader(Box<AwaitHeader>),
    /// Talking to the client before login; the loop owns the socket.
    PreLogin(Box<PreLogin>),
    /// A worker has the client's socket and is logging in; the dialogue waits here.
    InWorker(Box<Waiting>),
    /// Logged in: bytes flow both ways.
    Relay(Box<Relay>),
    /// A TLS handshake with the client is under way.
    Handshake(Box<Handshake>),
    /// A complete login held back by the bad-guy delay (`BGPenalty`) until the session's
    /// deadline; then it goes to the pool.
    Held(Box<Held>),
    /// Writing a last reply, then closing.
    Closing(Box<Closing>),
    /// Gone; removed at the end of the loop turn.
    Closed,
}

/// A connection whose PROXY protocol header has not fully arrived.
#[derive(Debug)]
pub struct AwaitHeader {
    /// The connection from the load balancer. The header is peeked at until it is
    /// complete, then exactly its bytes are read: what follows stays in the socket for the
    /// dialogue or the TLS handshake.
    pub stream: mio::net::TcpStream,
    /// The port is one of `SSLPorts`: TLS starts after the header.
    pub implicit_tls: bool,
}

/// The pre-login dialogue.
#[derive(Debug)]
pub struct PreLogin {
    /// The client's connection.
    pub client: Transport,
    /// The protocol's state machine.
    pub front: Front,
    /// Bytes read but not yet consumed by the front (more may wait in `ahead`; all of
    /// them are here when [`PreLogin::turn`] returns [`Next::Login`]).
    pub input: Vec<u8>,
    /// Replies not yet written.
    pub output: Vec<u8>,
    /// What the poll last said about the client's socket.
    pub ready: Readiness,
    /// STARTTLS was accepted: once its reply is out, the connection switches to TLS; no
    /// more plaintext is read.
    pub upgrading: bool,
    /// Bytes read ahead of the front, moved into `input` a line at a time (so the front's
    /// per-line shift never moves everything a client pipelined).
    ahead: InBuf,
    /// Bytes shifted while the input was consumed: bounded by the bytes read.
    shifted: usize,
}

/// A TLS handshake with the client under way (implicit TLS, or after STARTTLS). No front
/// end exists yet: it is made when the handshake ends, knowing the client certificate.
#[derive(Debug)]
pub struct Handshake {
    /// The client's TLS connection.
    pub client: Transport,
    /// Send the protocol's greeting when done (implicit TLS); not after STARTTLS.
    pub greet: bool,
    /// Application bytes that arrived with the end of the handshake.
    pub input: Vec<u8>,
}

/// What a handshake turn ended with.
#[derive(Debug)]
pub enum HandshakeNext {
    /// Still handshaking; wait for the poll.
    Wait,
    /// Done: make the front end.
    Done,
    /// The handshake failed or the client went away.
    Drop(String),
}

impl Handshake {
    /// Moves the handshake on as far as the socket allows.
    pub fn turn(&mut self) -> HandshakeNext {
        let mut chunk = [0u8; 4096];
        for _ in 0..64 {
            // Handshake records only: no application bytes are owed yet.
            match send(&mut self.client, &mut true, &mut Vec::new()) {
                Ok(_) => {}
                Err(SendError::Closed) => {
                    return HandshakeNext::Drop("client closed the connection".into())
                }
                Err(e) => return HandshakeNext::Drop(format!("TLS {e}")),
            }
            match self.client.read(&mut chunk) {
                Io::Moved(n) => self.input.extend_from_slice(&chunk[..n]),
                Io::WouldBlock => break,
                Io::Closed => {
                    return HandshakeNext::Drop("client closed the connection during TLS".into())
                }
                Io::Failed(e) => return HandshakeNext::Drop(format!("TLS handshake: {e}")),
            }
            if self.input.len() > MAX_PENDING_OUTPUT {
                break;
            }
        }
        if self.client.is_handshaking() {
            HandshakeNext::Wait
        } else {
            HandshakeNext::Done
        }
    }
}

/// A login waiting out its address's bad-guy delay.
#[derive(Debug)]
pub struct Held {
    /// The client's connection.
    pub client: Transport,
    /// The login to hand to the pool.
    pub login: protocol::Login,
    /// The dialogue, for the answer.
    pub waiting: Waiting,
}

/// The dialogue while a worker holds the socket.
#[derive(Debug)]
pub struct Waiting {
    /// The protocol's state machine (for the reply to the login).
    pub front: Front,
    /// Bytes the client sent after its login command (for the store, or for the front
    /// again if the login fails).
    pub input: Vec<u8>,
    /// Replies not yet written when the login left.
    pub output: Vec<u8>,
}

/// A last reply on its way out.
#[derive(Debug)]
pub struct Closing {
    /// The client's connection.
    pub client: Transport,
    /// What is still to be written.
    pub output: Vec<u8>,
}

/// The front end for a connection to `rt`. `pop_user` is the POP user whose recent POP3
/// login from the client's address allows an SMTP client to submit without AUTH; `tls`
/// says whether the connection is encrypted or may become so; `external` that it carries a
/// verified client certificate and certificate login is configured (SASL EXTERNAL).
pub fn new_front(
    rt: &ServiceRuntime,
    pop_user: Option<String>,
    tls: TlsState,
    external: bool,
) -> Front {
    rt.front.front(tls, external, pop_user)
}

/// What the dialogue asks of the loop after a turn.
#[derive(Debug)]
pub enum Next {
    /// Keep going; wait for the poll.
    Wait,
    /// The turn's budget ran out with commands still to answer: run again next turn
    /// without waiting for the poll.
    MoreWork,
    /// The credentials are complete: send this login to a worker.
    Login(protocol::Login),
    /// STARTTLS's reply is out: switch the connection to TLS.
    StartTls,
    /// Write what is pending and close.
    Close,
    /// The connection is unusable; drop it now.
    Drop(String),
}

impl PreLogin {
    /// The dialogue over `client`. `readable` says whether to read before the poll
    /// announces bytes: not for a freshly registered plain socket (registration reports
    /// bytes already there), yes after a TLS handshake or a worker's turn (rustls may hold
    /// decrypted bytes; events that came meanwhile were not looked at).
    pub fn new(
        client: Transport,
        front: Front,
        input: Vec<u8>,
        output: Vec<u8>,
        readable: bool,
    ) -> PreLogin {
        PreLogin {
            client,
            front,
            input: Vec::new(),
            output,
            ready: Readiness {
                readable,
                writable: true,
                peer_closed: false,
            },
            upgrading: false,
            ahead: InBuf::from_vec(input),
            shifted: 0,
        }
    }

    /// Writes pending replies, reads what the client sent and feeds it to the front until
    /// it needs more bytes, asks for something the loop must do, has
    /// [`MAX_PENDING_OUTPUT`] bytes of replies the client has not taken, or has made
    /// [`MAX_ACTIONS_PER_TURN`] replies ([`Next::MoreWork`]).
    pub fn turn(&mut self, max_input: usize) -> Next {
        let mut actions = 0;
        loop {
            match send(&mut self.client, &mut self.ready.writable, &mut self.output) {
                Ok(_) => {}
                Err(SendError::Closed) => return Next::Drop("client closed the connection".into()),
                Err(e) => return Next::Drop(e.to_string()),
            }
            if self.upgrading {
                let sent = self.output.is_empty() && !self.client.wants_write();
                return if sent { Next::StartTls } else { Next::Wait };
            }
            // The cap is checked before each command: the replies wait for WRITABLE.
            if self.output.len() >= MAX_PENDING_OUTPUT {
                return Next::Wait;
            }
            if actions == MAX_ACTIONS_PER_TURN {
                return Next::MoreWork;
            }
            // Commands already read come first (pipelining).
            match self.feed() {
                Some(Action::Send(bytes)) => {
                    actions += 1;
                    self.output.extend_from_slice(&bytes);
                    continue;
                }
                Some(Action::Close(bytes)) => {
                    self.output.extend_from_slice(&bytes);
                    return Next::Close;
                }
                Some(Action::StartTls(bytes)) => {
                    // Anything the client sent after STARTTLS was sent in plain text and
                    // must never be read as a command (CVE-2011-0411): drop it.
                    self.output.extend_from_slice(&bytes);
                    self.input.clear();
                    self.ahead.clear();
                    self.upgrading = true;
                    continue;
                }
                Some(Action::Login(login)) => {
                    // What was pipelined after the login goes with it.
                    self.ahead.stage_all(&mut self.input);
                    return Next::Login(login);
                }
                None => {}
            }
            if self.ahead.stage_line(&mut self.input) > 0 {
                continue;
            }
            if !self.ready.readable {
                return Next::Wait;
            }
            if self.input.len() > max_input {
                return Next::Drop(format!(
                    "client sent {} bytes without a command",
                    self.input.len()
                ));
            }
            if let Some(next) = self.read() {
                return next;
            }
        }
    }

    /// The front's next action from `input`; counts what its per-line shift moved.
    fn feed(&mut self) -> Option<Action> {
        let before = self.input.len();
        let action = self.front.feed(&mut self.input);
        if self.input.len() < before {
            self.shifted += self.input.len();
        }
        action
    }

    /// One read from the client into `ahead`; `Some` when the turn ends here.
    fn read(&mut self) -> Option<Next> {
        let mut chunk = [0u8; 4096];
        let (client, readable) = (&mut self.client, &mut self.ready.readable);
        match receive(client, readable, self.ready.peer_closed, &mut chunk) {
            Io::Moved(n) => {
                self.ahead.extend(&chunk[..n]);
                None
            }
            Io::WouldBlock => Some(Next::Wait),
            Io::Closed => Some(Next::Drop("client closed the connection".into())),
            Io::Failed(e) => Some(Next::Drop(format!("read failed: {e}"))),
        }
    }

    /// Bytes shifted so far while consuming input (the front's per-line shifts and the
    /// read-ahead's compactions): linear in the bytes read, never quadratic.
    pub fn shifted(&self) -> usize {
        self.shifted + self.ahead.shifted()
    }
}

impl Closing {
    /// Writes what is left; true when the session can be dropped.
    pub fn flush(&mut self) -> bool {
        match send(&mut self.client, &mut true, &mut self.output) {
            Err(_) => true,
            Ok(_) if !self.output.is_empty() || self.client.wants_write() => false,
            Ok(_) => {
                self.client.shutdown_write();
                true
            }
        }
    }
}

impl Session {
    /// The addresses a replay may pass on.
    pub fn info(&self) -> ClientInfo {
        ClientInfo {
            client: self.client_addr,
            server: self.server_addr,
            session: self.sid,
        }
    }

    /// The log target of this session's lines: its service's log (`LogDir`, `LogLevel`
    /// of its service file).
    pub fn target(&self) -> &'static str {
        crate::log::target_of(self.rt.config.protocol)
    }

    /// The log context of this session.
    pub fn ctx(&self) -> crate::log::Ctx<'_> {
        crate::log::Ctx {
            sid: self.sid,
            client: self.client_addr,
            user: self.user.as_deref(),
        }
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
