//! Streams of deterministic test data that are never held in memory: a reader producing N bytes
//! (a third patterned, two thirds pseudo-random, like a database with some compressible pages) and a
//! writer that only hashes, so a round trip of any size can be checked in constant memory.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Debug)]
pub struct PatternReader {
    remaining: u64,
    pos: u64,
    state: u64,
    hasher: blake3::Hasher,
}

impl PatternReader {
    pub fn new(len: u64, seed: u64) -> Self {
        Self {
            remaining: len,
            pos: 0,
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            hasher: blake3::Hasher::new(),
        }
    }

    /// Hash of everything produced so far.
    pub fn digest(&self) -> blake3::Hash {
        self.hasher.finalize()
    }

    fn fill(&mut self, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            let p = self.pos + i as u64;
            *b = if (p / 4096).is_multiple_of(3) {
                (p % 251) as u8
            } else {
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
                self.state as u8
            };
        }
        self.pos += out.len() as u64;
    }
}

impl AsyncRead for PatternReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.remaining) as usize;
        let mut tmp = vec![0u8; n];
        self.fill(&mut tmp);
        self.hasher.update(&tmp);
        self.remaining -= n as u64;
        buf.put_slice(&tmp);
        Poll::Ready(Ok(()))
    }
}

/// A sink that hashes what it is given.
#[derive(Debug, Default)]
pub struct HashWriter {
    pub hasher: blake3::Hasher,
    pub len: u64,
}

impl AsyncWrite for HashWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Peak resident set size of this process (VmHWM), in bytes.
pub fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}
