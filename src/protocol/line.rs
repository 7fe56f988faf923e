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

/// Client bytes read ahead of a front end. They are taken from the front one line at a
/// time ([`InBuf::stage_line`]) into the small buffer the front consumes, so the front's
/// per-line shift moves one line, not everything pipelined behind it; here a read offset
/// marks what is taken, and the taken prefix is dropped only when it is more than half
/// the buffer, so each byte moves at most once on average. The bytes may hold a password:
/// they are wiped when the buffer is cleared or dropped.
#[derive(Debug, Default)]
pub struct InBuf {
    data: Vec<u8>,
    start: usize,
    shifted: usize,
}

impl InBuf {
    /// A buffer holding `bytes`, none taken yet.
    pub fn from_vec(bytes: Vec<u8>) -> InBuf {
        InBuf {
            data: bytes,
            start: 0,
            shifted: 0,
        }
    }

    /// Appends bytes read from the client.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start * 2 > self.data.len() {
            self.shifted += self.data.len() - self.start;
            self.data.drain(..self.start);
            self.start = 0;
        }
        self.data.extend_from_slice(bytes);
    }

    /// Bytes not taken yet.
    pub fn len(&self) -> usize {
        self.data.len() - self.start
    }

    /// True when every byte has been taken.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves the next line, LF included (or all that is left when no LF has come yet), to
    /// the end of `window`; returns how many bytes moved.
    pub fn stage_line(&mut self, window: &mut Vec<u8>) -> usize {
        let rest = &self.data[self.start..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |at| at + 1);
        window.extend_from_slice(&rest[..n]);
        self.start += n;
        if self.start == self.data.len() {
            // Nothing left: start over without moving anything.
            self.data.clear();
            self.start = 0;
        }
        n
    }

    /// Moves everything left to the end of `window`, then wipes the buffer.
    pub fn stage_all(&mut self, window: &mut Vec<u8>) {
        window.extend_from_slice(&self.data[self.start..]);
        self.clear();
    }

    /// Wipes and empties the buffer.
    pub fn clear(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.data);
        self.start = 0;
    }

    /// Bytes moved inside the buffer so far (to show that taking lines is linear).
    pub fn shifted(&self) -> usize {
        self.shifted
    }
}

impl Drop for InBuf {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` as the pre-login loop does (read in chunks, one line staged at a
    /// time, the front's per-line shift of what follows in its window) and returns the
    /// lines and the bytes moved.
    fn run(input: &[u8], chunk: usize) -> (Vec<Vec<u8>>, usize) {
        let mut ahead = InBuf::default();
        let mut window = Vec::new();
        let mut reader = LineScanner::new(8192);
        let mut lines = Vec::new();
        let mut moved = 0;
        let mut chunks = input.chunks(chunk);
        loop {
            match reader.take(&mut window) {
                Some(Ok(line)) => {
                    moved += window.len();
                    lines.push(line);
                    continue;
                }
                Some(Err(LineTooLong)) => panic!("line too long"),
                None => {}
            }
            if ahead.stage_line(&mut window) > 0 {
                continue;
            }
            match chunks.next() {
                Some(c) => ahead.extend(c),
                None => break,
            }
        }
        (lines, moved + ahead.shifted())
    }

    #[test]
    fn taking_pipelined_lines_moves_each_byte_a_bounded_number_of_times() {
        let mut input = Vec::new();
        for i in 0..40_000 {
            input.extend_from_slice(format!("a{i} NOOP\r\n").as_bytes());
        }
        for chunk in [input.len(), 68 * 1024, 4096, 7] {
            let (lines, moved) = run(&input, chunk);
            assert_eq!(lines.len(), 40_000);
            assert_eq!(lines[39_999], b"a39999 NOOP");
            assert!(
                moved <= input.len(),
                "{moved} bytes moved for {} bytes of input (chunk {chunk})",
                input.len()
            );
        }
    }

    #[test]
    fn a_cut_line_waits_and_stage_all_takes_what_is_left() {
        let (lines, _) = run(b"one\r\ntw", 3);
        assert_eq!(lines, vec![b"one".to_vec()]);
        let mut ahead = InBuf::from_vec(b"x\ny".to_vec());
        let mut window = Vec::new();
        assert_eq!(ahead.stage_line(&mut window), 2);
        ahead.extend(b"z\n");
        assert_eq!(ahead.len(), 3);
        ahead.stage_all(&mut window);
        assert_eq!(window, b"x\nyz\n");
        assert!(ahead.is_empty());
    }
}
