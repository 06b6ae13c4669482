//! The byte buffer of one direction of one connection: bytes read but not yet consumed (the
//! rest of a head, body bytes, a pipelined next request), read into in place and compacted
//! only when the free tail runs out.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

#[derive(Debug)]
pub(crate) struct Buffer {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Buffer {
    pub fn new(capacity: usize) -> Self {
        Self { data: vec![0; capacity], start: 0, end: 0 }
    }

    pub fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn is_full(&self) -> bool {
        self.len() == self.data.len()
    }

    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads once from `src` into the free space; `Ok(0)` at EOF. A full buffer is an error
    /// (callers bound what they let accumulate).
    pub async fn read_from<R: AsyncRead + Unpin + ?Sized>(&mut self, src: &mut R) -> io::Result<usize> {
        if self.end == self.data.len() {
            if self.start == 0 {
                return Err(io::Error::other("buffer full"));
            }
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = src.read(&mut self.data[self.end..]).await?;
        self.end += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_consumes_and_compacts() {
        let mut b = Buffer::new(8);
        let mut src: &[u8] = b"abcdefghij";
        assert_eq!(b.read_from(&mut src).await.unwrap(), 8);
        assert!(b.is_full());
        assert!(b.read_from(&mut src).await.is_err());
        b.consume(6);
        assert_eq!(b.filled(), b"gh");
        assert_eq!(b.read_from(&mut src).await.unwrap(), 2);
        assert_eq!(b.filled(), b"ghij");
        b.consume(4);
        assert!(b.is_empty());
        assert_eq!(b.read_from(&mut src).await.unwrap(), 0);
    }
}
