//! Relay buffers: fixed-size blocks that a relayed session takes from a pool when bytes
//! arrive and gives back as soon as they are written out, so that an idle session holds
//! none (the reason mmp's idle session costs less than nginx's, which keeps two pages).
//! The pool belongs to the event loop's thread, so it needs no lock. No I/O.

/// Size of one relay buffer.
pub const BUFFER_BYTES: usize = 64 * 1024;

/// A block of bytes with a read position (`start`) and a write position (`end`).
#[derive(Debug)]
pub struct Buffer {
    data: Box<[u8]>,
    start: usize,
    end: usize,
}

impl Buffer {
    /// A buffer holding exactly `bytes`, however many (for the bytes owed when a relay
    /// starts, which may exceed one block); the pool keeps it only if it has the usual size.
    pub fn from_vec(bytes: Vec<u8>) -> Buffer {
        let end = bytes.len();
        Buffer {
            data: bytes.into_boxed_slice(),
            start: 0,
            end,
        }
    }

    /// The bytes waiting to be written.
    pub fn pending(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    /// True when nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Free space at the end, to read into.
    pub fn space(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        &mut self.data[self.end..]
    }

    /// True when there is no room left to read into.
    pub fn is_full(&self) -> bool {
        self.end == self.data.len() && self.start != self.end
    }

    /// Marks `n` bytes of [`Buffer::space`] as filled.
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.data.len());
    }

    /// Marks `n` pending bytes as written.
    pub fn consumed(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// Appends as much of `bytes` as fits, moving pending bytes to the front first;
    /// returns how many were taken.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        if self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = bytes.len().min(self.data.len() - self.end);
        self.data[self.end..self.end + n].copy_from_slice(&bytes[..n]);
        self.end += n;
        n
    }
}

/// Free buffers, kept for reuse up to `max_free`; beyond that they go back to the
/// allocator, so a burst does not pin memory for ever.
#[derive(Debug)]
pub struct BufferPool {
    free: Vec<Box<[u8]>>,
    max_free: usize,
}

impl BufferPool {
    /// A pool that keeps at most `max_free` idle buffers.
    pub fn new(max_free: usize) -> BufferPool {
        BufferPool {
            free: Vec::new(),
            max_free,
        }
    }

    /// An empty buffer.
    pub fn take(&mut self) -> Buffer {
        let data = self
            .free
            .pop()
            .unwrap_or_else(|| vec![0u8; BUFFER_BYTES].into_boxed_slice());
        Buffer {
            data,
            start: 0,
            end: 0,
        }
    }

    /// Gives a buffer back.
    pub fn give(&mut self, buffer: Buffer) {
        if self.free.len() < self.max_free && buffer.data.len() == BUFFER_BYTES {
            self.free.push(buffer.data);
        }
    }

    /// Idle buffers held now.
    pub fn idle(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_drain_and_reuse() {
        let mut pool = BufferPool::new(1);
        let mut b = pool.take();
        assert!(b.is_empty());
        b.space()[..3].copy_from_slice(b"abc");
        b.filled(3);
        assert_eq!(b.pending(), b"abc");
        b.consumed(2);
        assert_eq!(b.pending(), b"c");
        assert_eq!(b.push(b"de"), 2);
        assert_eq!(b.pending(), b"cde");
        b.consumed(3);
        assert!(b.is_empty());
        assert_eq!(b.space().len(), BUFFER_BYTES);
        pool.give(b);
        assert_eq!(pool.idle(), 1);
        let other = pool.take();
        pool.give(other);
        pool.give(pool_sized());
        assert_eq!(pool.idle(), 1, "pool keeps at most max_free");
        let mut empty = BufferPool::new(4);
        empty.give(Buffer::from_vec(vec![1, 2, 3]));
        assert_eq!(
            empty.idle(),
            0,
            "odd-sized buffers go back to the allocator"
        );
    }

    fn pool_sized() -> Buffer {
        Buffer::from_vec(vec![0; BUFFER_BYTES])
    }

    #[test]
    fn from_vec_holds_more_than_a_block() {
        let big = vec![9u8; BUFFER_BYTES * 2 + 1];
        let mut b = Buffer::from_vec(big.clone());
        assert_eq!(b.pending(), &big[..]);
        assert!(b.is_full());
        b.consumed(big.len());
        assert!(b.is_empty());
    }

    #[test]
    fn push_stops_when_full() {
        let mut pool = BufferPool::new(0);
        let mut b = pool.take();
        let big = vec![7u8; BUFFER_BYTES + 10];
        assert_eq!(b.push(&big), BUFFER_BYTES);
        assert!(b.is_full());
        assert_eq!(b.push(b"x"), 0);
    }
}
