//! TEMPORARY stub until the IMAP module lands.
#![allow(missing_docs, dead_code, unused_variables)]
use crate::protocol::*;
#[derive(Debug)]
pub enum TlsState {
    Unavailable,
    Available,
    Active,
}
#[derive(Debug)]
pub struct FrontConfig {
    pub banner: Option<String>,
    pub capability: Option<Vec<String>>,
    pub max_line_bytes: usize,
    pub max_literal_bytes: usize,
    pub max_bad_commands: u32,
    pub tls: TlsState,
    pub restrict_plain_passwords: bool,
}
#[derive(Debug)]
pub struct Front {
    cfg: FrontConfig,
}
impl Front {
    pub fn new(cfg: FrontConfig) -> Front {
        Front { cfg }
    }
    pub fn greeting(&self) -> Vec<u8> {
        b"* OK stub\r\n".to_vec()
    }
    pub fn feed(&mut self, input: &mut Vec<u8>) -> Option<Action> {
        None
    }
    pub fn login_succeeded(&mut self, a: &StoreAnswer) -> Vec<u8> {
        a.line.clone()
    }
    pub fn login_failed(&mut self, f: &Failure) -> Action {
        Action::Close(vec![])
    }
    pub fn refuse(&self, f: &Failure) -> Vec<u8> {
        vec![]
    }
}
#[derive(Debug)]
pub struct Replay;
impl Replay {
    pub fn new(c: &Credentials, u: &str, i: &ClientInfo) -> Replay {
        Replay
    }
    pub fn on_line(&mut self, line: &[u8]) -> ReplayStep {
        ReplayStep::Wait
    }
}
