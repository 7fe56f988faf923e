//! Cutting client input into lines, shared by the IMAP, POP3 and SMTP front ends: a line
//! ends at LF (a CR before it is dropped; a bare LF is accepted, as the servers mmp fronts
//! accept it), and a line that has no LF within its cap ends the session. No I/O.

/// No LF within `max_line_bytes`: the session must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong;

/// Finds lines at the front of a buffer that only grows at its end between calls, and
/// remembers how far it looked, so that a line arriving a byte at a time is scanned once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineScanner {
    max_line_bytes: usize,
    scanned: usize,
}

impl LineScanner {
    /// A reader of lines up to `max_line_bytes`, CRLF included.
    pub fn new(max_line_bytes: usize) -> LineScanner {
        LineScanner {
            max_line_bytes,
            scanned: 0,
        }
    }

    /// Takes one line (without its CRLF or bare LF) from the front of `input`. `None`:
    /// no LF yet and still room; `Err`: no LF within `max_line_bytes`.
    pub fn take(&mut self, input: &mut Vec<u8>) -> Option<Result<Vec<u8>, LineTooLong>> {
        let window = input.len().min(self.max_line_bytes);
        let from = self.scanned.min(window);
        match input[from..window].iter().position(|&b| b == b'\n') {
            Some(at) => {
                self.scanned = 0;
                let mut line: Vec<u8> = input.drain(..=from + at).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Some(Ok(line))
            }
            None if !input.is_empty() && input.len() >= self.max_line_bytes => {
                self.scanned = 0;
                Some(Err(LineTooLong))
            }
            None => {
                self.scanned = window;
                None
            }
        }
    }
}
