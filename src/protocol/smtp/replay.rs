//! The SMTP handshake replayed to an MTA, one MTA line at a time. No I/O.
//!
//! | state | MTA reply | next | step |
//! |---|---|---|---|
//! | (before the greeting, proxy mode) | — | Greeting | [`Replay::start`] gives the PROXY v1 header |
//! | any | `ddd-…` (not the last line) | unchanged | `Wait` |
//! | any | `421 …` | Finished | `Refused(Unavailable)` |
//! | Greeting | `220` | OwnEhlo (xclient) / ClientHelo (proxy, none) | `Send(EHLO my_name)` / `Send(EHLO/HELO client's name)` |
//! | Greeting | 4xx, 5xx | Finished | `Refused(Unavailable)` |
//! | OwnEhlo | `250` with `XCLIENT` offering `ADDR` (and `LOGIN` when asserting a user) | Xclient | `Send(XCLIENT …)` |
//! | OwnEhlo | `250` without | Finished | `Refused(Unavailable)`: never relay as mmp's own address |
//! | Xclient | `220` | Xclient (more attributes) / ClientHelo | `Send(XCLIENT …)` / `Send(EHLO/HELO client's name)` |
//! | Xclient | 4xx, 5xx | Finished | `Refused(Unavailable("MTA refused XCLIENT: …"))` |
//! | ClientHelo | `250` | Command / Finished | `Send(command)` / `Done(the EHLO reply)` |
//! | Command | any | Finished | `Done(the reply)` |
//! | any | anything else | Finished | `Refused(Protocol)` |
//!
//! XCLIENT (Postfix XCLIENT_README): attribute values are xtext; only the attributes the
//! MTA lists after the keyword are sent (all of ours when it lists none); each command
//! stays within 512 bytes, and when they do not fit in one, HELO, PROTO and LOGIN go
//! first and NAME, PORT and ADDR last ("once ADDR is sent, the client is usually no
//! longer authorized to send XCLIENT commands"), the order Dovecot's SMTP client uses.
//! IPv4-mapped IPv6 addresses are given as IPv4. No password is ever sent: the MTA
//! trusts mmp's address for XCLIENT, and mmp has checked the login itself (the SMTP AUTH
//! password, the client certificate, or, for POP-before-SMTP, a recent POP login from the
//! same address), and the user's access filter for SMTP, before it asserts `LOGIN=`.

use super::parse::{Reply, ReplyReader};
use super::xtext;
use crate::config::types::SmtpClientInfo;
use crate::protocol::{sanitize, ClientInfo, Helo, Refusal, ReplayStep, StoreAnswer};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

/// The longest XCLIENT command, CRLF included (RFC 5321 §4.5.3.1.4).
const MAX_XCLIENT_LINE: usize = 512;

/// Why mmp will not relay through an MTA that cannot be told who the client is.
const NO_XCLIENT: &str = "MTA does not offer XCLIENT; refusing to relay as mmp's own address";

/// What the worker needs to replay an SMTP handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayRequest {
    /// The client's EHLO/HELO, replayed after the client information.
    pub helo: Helo,
    /// The user name asserted with `XCLIENT LOGIN=`: the SMTP AUTH user, the client
    /// certificate's user, or the POP-before-SMTP user (the POP login mmp saw from this
    /// address, which the legacy MMP vouched for to the MTA the same way). `None` sends no
    /// `LOGIN`.
    pub login: Option<String>,
    /// The client's and the listener's addresses.
    pub info: ClientInfo,
    /// How the MTA is told the client's address (`MmpSmtpClientInfo`).
    pub mode: SmtpClientInfo,
    /// mmp's own EHLO name, sent before XCLIENT.
    pub my_name: String,
    /// A command to send after the client's EHLO; its reply is the answer (the
    /// POP-before-SMTP `MAIL FROM:…`, with its CRLF).
    pub command: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    OwnEhlo,
    Xclient,
    ClientHelo,
    Command,
    Finished,
}

/// A handshake being replayed to an MTA.
#[derive(Debug)]
pub struct Replay {
    req: RelayRequest,
    state: State,
    replies: ReplyReader,
    header: Option<Vec<u8>>,
    xclient: VecDeque<Vec<u8>>,
}

impl Replay {
    /// Starts a replay; nothing is sent until [`Replay::start`] and the greeting.
    pub fn new(req: RelayRequest) -> Replay {
        let header = (req.mode == SmtpClientInfo::Proxy).then(|| proxy_header(&req.info));
        Replay {
            req,
            state: State::Greeting,
            replies: ReplyReader::new(),
            header,
            xclient: VecDeque::new(),
        }
    }

    /// The bytes to send as soon as the connection is up, before reading the greeting:
    /// the PROXY v1 header in proxy mode, `None` otherwise (and on a second call).
    pub fn start(&mut self) -> Option<Vec<u8>> {
        self.header.take()
    }

    /// Feeds one line from the MTA (without its CRLF).
    pub fn on_line(&mut self, line: &[u8]) -> ReplayStep {
        if self.state == State::Finished {
            return self.fail(Refusal::Protocol("the replay has already ended".into()));
        }
        let reply = match self.replies.push(line) {
            Ok(None) => return ReplayStep::Wait,
            Ok(Some(reply)) => reply,
            Err(e) => return self.fail(Refusal::Protocol(format!("MTA: {e}"))),
        };
        let text = || sanitize(reply.last_text());
        if reply.code == 421 {
            return self.fail(Refusal::Unavailable(format!("MTA closing: {}", text())));
        }
        match (self.state, reply.code) {
            (State::Greeting, 220) => match self.req.mode {
                SmtpClientInfo::Xclient => {
                    self.state = State::OwnEhlo;
                    ReplayStep::Send(format!("EHLO {}\r\n", self.req.my_name).into_bytes())
                }
                SmtpClientInfo::Proxy | SmtpClientInfo::None => self.client_helo(),
            },
            (State::Greeting, 400..=599) => {
                self.fail(Refusal::Unavailable(format!("MTA greeting: {}", text())))
            }
            (State::OwnEhlo, 250) => match self.xclient_commands(&reply) {
                Ok(commands) => {
                    self.xclient = commands.into();
                    self.state = State::Xclient;
                    self.next_xclient()
                }
                Err(refusal) => self.fail(refusal),
            },
            (State::Xclient, 220) => self.next_xclient(),
            (State::Xclient, 400..=599) => self.fail(Refusal::Unavailable(format!(
                "MTA refused XCLIENT: {}",
                text()
            ))),
            (State::ClientHelo, 250) => match self.req.command.clone() {
                Some(command) => {
                    self.state = State::Command;
                    ReplayStep::Send(command)
                }
                None => self.done(&reply),
            },
            (State::Command, _) => self.done(&reply),
            (State::OwnEhlo | State::ClientHelo, _) => {
                self.fail(Refusal::Protocol(format!("MTA refused EHLO: {}", text())))
            }
            (state, code) => self.fail(Refusal::Protocol(format!(
                "unexpected MTA reply {code} in {state:?}: {}",
                text()
            ))),
        }
    }

    fn next_xclient(&mut self) -> ReplayStep {
        match self.xclient.pop_front() {
            Some(command) => ReplayStep::Send(command),
            None => self.client_helo(),
        }
    }

    fn client_helo(&mut self) -> ReplayStep {
        self.state = State::ClientHelo;
        let verb = if self.req.helo.extended {
            "EHLO"
        } else {
            "HELO"
        };
        ReplayStep::Send(format!("{verb} {}\r\n", self.req.helo.name).into_bytes())
    }

    fn done(&mut self, reply: &Reply) -> ReplayStep {
        self.state = State::Finished;
        ReplayStep::Done(StoreAnswer {
            line: reply.joined(),
        })
    }

    fn fail(&mut self, refusal: Refusal) -> ReplayStep {
        self.state = State::Finished;
        ReplayStep::Refused(refusal)
    }

    /// The XCLIENT commands for this client, given mmp's EHLO reply.
    fn xclient_commands(&self, ehlo: &Reply) -> Result<Vec<Vec<u8>>, Refusal> {
        let offered = ehlo
            .ehlo_lines()
            .map(super::parse::ehlo_keyword)
            .find(|(keyword, _)| keyword == "XCLIENT")
            .map(|(_, attributes)| attributes)
            .ok_or_else(|| Refusal::Unavailable(NO_XCLIENT.into()))?;
        let takes = |name: &str| offered.is_empty() || offered.iter().any(|a| a == name);
        if !takes("ADDR") {
            return Err(Refusal::Unavailable(
                "MTA's XCLIENT does not take ADDR; refusing to relay as mmp's own address".into(),
            ));
        }
        if self.req.login.is_some() && !takes("LOGIN") {
            return Err(Refusal::Unavailable(
                "MTA's XCLIENT does not take LOGIN; cannot assert the authenticated user".into(),
            ));
        }
        let (client, server) = (&self.req.info.client, &self.req.info.server);
        let helo = xtext::encode(self.req.helo.name.as_bytes());
        let proto = if self.req.helo.extended {
            "ESMTP"
        } else {
            "SMTP"
        };
        let mut attributes: Vec<(&str, String)> = vec![("HELO", helo), ("PROTO", proto.into())];
        if let Some(login) = &self.req.login {
            attributes.push(("LOGIN", xtext::encode(login.as_bytes())));
        }
        // DESTADDR/DESTPORT are newer (Postfix 3.8): sent only when the MTA lists them.
        if !offered.is_empty() {
            attributes.push(("DESTADDR", xclient_addr(server)));
            attributes.push(("DESTPORT", server.port().to_string()));
        }
        attributes.push(("NAME", "[UNAVAILABLE]".into()));
        attributes.push(("PORT", client.port().to_string()));
        attributes.push(("ADDR", xclient_addr(client)));

        let max = MAX_XCLIENT_LINE - 2;
        let mut commands: Vec<Vec<u8>> = Vec::new();
        let mut line = String::from("XCLIENT");
        for (name, value) in attributes.into_iter().filter(|(name, _)| takes(name)) {
            let mut field = format!(" {name}={value}");
            if "XCLIENT".len() + field.len() > max {
                match name {
                    "HELO" => field = " HELO=[UNAVAILABLE]".into(),
                    _ => {
                        return Err(Refusal::Protocol(format!(
                            "XCLIENT {name} too long for one command"
                        )))
                    }
                }
            }
            if line.len() + field.len() > max {
                commands.push(format!("{line}\r\n").into_bytes());
                line = String::from("XCLIENT");
            }
            line.push_str(&field);
        }
        commands.push(format!("{line}\r\n").into_bytes());
        Ok(commands)
    }
}

/// XCLIENT's ADDR/DESTADDR form: dotted quad, or `IPV6:` and the address.
fn xclient_addr(addr: &SocketAddr) -> String {
    match addr.ip().to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("IPV6:{v6}"),
    }
}

/// `PROXY TCP4|TCP6 <client> <server> <client port> <server port>\r\n` (PROXY protocol
/// v1). With one address of each family, the IPv4 one is written IPv4-mapped.
fn proxy_header(info: &ClientInfo) -> Vec<u8> {
    let (client, server) = (
        info.client.ip().to_canonical(),
        info.server.ip().to_canonical(),
    );
    let (family, client, server) = match (client, server) {
        (IpAddr::V4(c), IpAddr::V4(s)) => ("TCP4", c.to_string(), s.to_string()),
        (c, s) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            ("TCP6", v6(c).to_string(), v6(s).to_string())
        }
    };
    format!(
        "PROXY {family} {client} {server} {} {}\r\n",
        info.client.port(),
        info.server.port()
    )
    .into_bytes()
}
