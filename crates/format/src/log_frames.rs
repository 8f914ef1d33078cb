//! Log files larger than one frame (MariaDB binlogs grow to `max_binlog_size`, 1 GiB, and past it
//! for a large transaction), stored as one object sealed frame by frame, so that pushing, fetching
//! and verifying one holds a few frames in memory, not the file.
//!
//! ```text
//! magic "BTAR" | version u8 = 2 | kind u8 = Log | 0 | 0
//! frame*:  len u32 LE (bit 31: last frame) | envelope v1 (kind Log) of up to FRAME plaintext bytes
//! ```
//! Each frame is an ordinary sealed envelope ([`crate::seal`]) whose binding is the object key, the
//! frame's index and whether it is the last: a frame moved, dropped, repeated, taken from another
//! log file, or a file cut after any frame fails to open. A file of at most one frame keeps the
//! single-envelope form (version 1), which is also how every log object written before this was
//! stored; readers take both.

use btar_region::{Region, RegionError};
use bytes::Bytes;

use crate::seal::{self, Body, Kind, MAGIC, OpenError, Sealer};

/// Plaintext bytes per frame the writer uses; files up to this size are sealed whole.
pub const FRAME: usize = 8 << 20;
/// Largest frame plaintext a reader accepts (writers may pick larger frames later).
const MAX_FRAME: usize = 64 << 20;
/// Envelope version marking a framed object.
pub const VERSION: u8 = 2;
const HEADER_LEN: usize = 8;
const LEN_LEN: usize = 4;
const LAST: u32 = 1 << 31;
/// Bytes of an object read first: a whole log file of up to one frame in one request.
pub const FIRST_READ: usize = FRAME + 4096;

/// The object header of a framed log object.
pub fn header() -> [u8; HEADER_LEN] {
    [
        MAGIC[0],
        MAGIC[1],
        MAGIC[2],
        MAGIC[3],
        VERSION,
        Kind::Log as u8,
        0,
        0,
    ]
}

/// Whether `sealed` (or its first bytes) is a framed log object.
pub fn is_framed(sealed: &[u8]) -> bool {
    sealed.len() >= HEADER_LEN && &sealed[..4] == MAGIC && sealed[4] == VERSION
}

fn binding(key: &str, index: u64, last: bool) -> Vec<u8> {
    let mut b = Vec::with_capacity(key.len() + 10);
    b.extend_from_slice(key.as_bytes());
    b.push(0);
    b.extend_from_slice(&index.to_be_bytes());
    b.push(u8::from(last));
    b
}

/// The length prefix of a sealed frame.
fn prefix(sealed: &[u8], last: bool) -> [u8; LEN_LEN] {
    // A frame is at most FRAME plus the envelope's overhead, far below 2^31.
    let len = u32::try_from(sealed.len()).unwrap_or(!LAST) | if last { LAST } else { 0 };
    len.to_le_bytes()
}

/// Compresses and seals frame `index` of the object `key`: its length prefix and the sealed
/// frame, apart so that an upload need not copy the frame to join them.
pub fn seal_frame_parts(
    sealer: &Sealer,
    key: &str,
    index: u64,
    last: bool,
    plain: &[u8],
    level: i32,
) -> ([u8; LEN_LEN], Vec<u8>) {
    let sealed = sealer.seal(Kind::Log, &binding(key, index, last), plain, level);
    (prefix(&sealed, last), sealed)
}

fn joined((prefix, sealed): ([u8; LEN_LEN], Vec<u8>)) -> Vec<u8> {
    [&prefix[..], &sealed].concat()
}

/// Why a framed object does not read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame {index}: {error}")]
    Open { index: u64, error: OpenError },
    #[error("ends after frame {0} without its last frame (truncated)")]
    Truncated(u64),
    #[error("{0} bytes follow the last frame")]
    Trailing(u64),
    #[error("frame {index} claims {len} bytes, more than a frame can hold")]
    Oversized { index: u64, len: usize },
}

/// Takes frames off the front of a framed object's bytes, in order, one at a time.
#[derive(Debug)]
pub struct Unframer {
    key: String,
    next: u64,
    done: bool,
}

/// One frame taken off: how many bytes it used, and its body as stored.
#[derive(Debug)]
pub struct Frame {
    pub consumed: usize,
    pub index: u64,
    pub last: bool,
    pub flags: u8,
    pub body: Vec<u8>,
}

impl Unframer {
    /// For the object `key`; `bytes` given to [`Unframer::take`] start after the object header.
    pub fn new(key: &str) -> Self {
        Self {
            key: key.to_string(),
            next: 0,
            done: false,
        }
    }

    pub fn done(&self) -> bool {
        self.done
    }

    /// How many bytes the next frame takes in all (prefix included), once its prefix is in
    /// `bytes`, and whether it is the last.
    pub fn needs(&self, bytes: &[u8]) -> Result<Option<(usize, bool)>, FrameError> {
        let Some(prefix) = bytes.get(..LEN_LEN) else {
            return Ok(None);
        };
        let raw = u32::from_le_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let len = (raw & !LAST) as usize;
        if len > MAX_FRAME + seal::OVERHEAD {
            return Err(FrameError::Oversized {
                index: self.next,
                len,
            });
        }
        Ok(Some((LEN_LEN + len, raw & LAST != 0)))
    }

    /// The next frame, authenticated, if `bytes` hold all of it; `None` if more bytes are needed.
    pub fn take(&mut self, sealer: &Sealer, bytes: &[u8]) -> Result<Option<Frame>, FrameError> {
        let Some((total, last)) = self.needs(bytes)? else {
            return Ok(None);
        };
        let Some(framed) = bytes.get(LEN_LEN..total) else {
            return Ok(None);
        };
        self.open(sealer, last, framed, total).map(Some)
    }

    /// The next frame, authenticated, from its length prefix and its sealed bytes read apart.
    pub fn take_split(
        &mut self,
        sealer: &Sealer,
        prefix: &[u8],
        framed: &[u8],
    ) -> Result<Frame, FrameError> {
        let Some((total, last)) = self.needs(prefix)? else {
            return Err(FrameError::Truncated(self.next));
        };
        if total != LEN_LEN + framed.len() {
            return Err(FrameError::Truncated(self.next));
        }
        self.open(sealer, last, framed, total)
    }

    /// The index the next frame must have.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    fn open(
        &mut self,
        sealer: &Sealer,
        last: bool,
        framed: &[u8],
        total: usize,
    ) -> Result<Frame, FrameError> {
        let index = self.next;
        let (flags, body) = sealer
            .open_body(Kind::Log, &binding(&self.key, index, last), framed)
            .map_err(|error| FrameError::Open { index, error })?;
        self.next += 1;
        self.done = last;
        Ok(Frame {
            consumed: total,
            index,
            last,
            flags,
            body,
        })
    }

    /// The frame's plaintext.
    pub fn decode(frame: &Frame) -> Result<Vec<u8>, FrameError> {
        seal::decode(
            Body {
                flags: frame.flags,
                bytes: &frame.body,
            },
            MAX_FRAME,
        )
        .map_err(|error| FrameError::Open {
            index: frame.index,
            error,
        })
    }

    /// The error for an object that ended (with `rest` bytes left over) at this point.
    pub fn at_end(&self, rest: u64) -> Result<(), FrameError> {
        match (self.done, rest) {
            (true, 0) => Ok(()),
            (true, n) => Err(FrameError::Trailing(n)),
            (false, _) => Err(FrameError::Truncated(self.next)),
        }
    }
}

/// Every frame of an in-memory framed object, each handed to `f` with its index and `last`.
pub fn for_each_frame(
    sealer: &Sealer,
    key: &str,
    sealed: &[u8],
    mut f: impl FnMut(&Frame) -> Result<(), FrameError>,
) -> Result<(), FrameError> {
    let mut u = Unframer::new(key);
    let mut at = HEADER_LEN.min(sealed.len());
    while !u.done() {
        match u.take(sealer, &sealed[at..])? {
            Some(frame) => {
                at += frame.consumed;
                f(&frame)?;
            }
            None => break,
        }
    }
    u.at_end((sealed.len() - at) as u64)
}

/// The plaintext of an in-memory framed object, refusing more than `limit` bytes (a file larger
/// than memory should hold is read a frame at a time instead).
pub fn open_all(
    sealer: &Sealer,
    key: &str,
    sealed: &[u8],
    limit: usize,
) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    for_each_frame(sealer, key, sealed, |frame| {
        let plain = Unframer::decode(frame)?;
        if out.len() + plain.len() > limit {
            return Err(FrameError::Open {
                index: frame.index,
                error: OpenError::TooLarge(limit),
            });
        }
        out.extend_from_slice(&plain);
        Ok(())
    })?;
    Ok(out)
}

/// Re-seals a frame opened from another location for `dst` under `dst_key`, around the same
/// compressed body: its length prefix and the sealed frame.
pub fn reseal_frame_parts(dst: &Sealer, dst_key: &str, frame: &Frame) -> ([u8; LEN_LEN], Vec<u8>) {
    let resealed = dst.seal_body(
        Kind::Log,
        &binding(dst_key, frame.index, frame.last),
        Body {
            flags: frame.flags,
            bytes: &frame.body,
        },
    );
    (prefix(&resealed, frame.last), resealed)
}

/// [`reseal_frame_parts`], joined.
pub fn reseal_frame(dst: &Sealer, dst_key: &str, frame: &Frame) -> Vec<u8> {
    joined(reseal_frame_parts(dst, dst_key, frame))
}

/// Re-seals every frame of `sealed` (object `src_key`) for `dst` under `dst_key`, around the same
/// compressed bodies.
pub fn reseal_all(
    src: &Sealer,
    src_key: &str,
    dst: &Sealer,
    dst_key: &str,
    sealed: &[u8],
) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(sealed.len());
    out.extend_from_slice(&header());
    for_each_frame(src, src_key, sealed, |frame| {
        out.extend_from_slice(&reseal_frame(dst, dst_key, frame));
        Ok(())
    })?;
    Ok(out)
}

/// Reads a stored object front to back with ranged reads (each retried by the region), a frame
/// per request once aligned: the caller takes a frame together with the next frame's length, so
/// no window is buffered and no frame copied.
pub struct ObjectReader {
    region: Region,
    key: String,
    size: u64,
    fetched: u64,
    /// Read and not yet taken.
    rest: Bytes,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ObjectReader({}, {}/{} bytes)",
            self.key, self.fetched, self.size
        )
    }
}

impl ObjectReader {
    /// `None` when the object does not exist.
    pub async fn open(region: &Region, key: &str) -> Result<Option<Self>, RegionError> {
        let Some(info) = region.head(key).await? else {
            return Ok(None);
        };
        Ok(Some(Self {
            region: region.clone(),
            key: key.to_string(),
            size: info.size,
            fetched: 0,
            rest: Bytes::new(),
        }))
    }

    /// Bytes of the object not taken yet.
    pub fn remaining(&self) -> u64 {
        self.size - self.fetched + self.rest.len() as u64
    }

    /// The next `n` bytes (fewer only where the object ends), reading `ahead` more bytes with them
    /// when a read is needed anyway.
    pub async fn take(&mut self, n: usize, ahead: usize) -> Result<Bytes, RegionError> {
        if self.rest.len() < n && self.fetched < self.size {
            let want = (n - self.rest.len() + ahead) as u64;
            let end = self.size.min(self.fetched + want);
            let got = self.region.get_range(&self.key, self.fetched..end).await?;
            if got.is_empty() {
                // The object shrank under us: its end is here; the caller reports a cut.
                self.size = self.fetched;
            }
            self.fetched += got.len() as u64;
            self.rest = if self.rest.is_empty() {
                got
            } else {
                // Only where a first read ended inside a frame.
                Bytes::from([&self.rest[..], &got[..]].concat())
            };
        }
        let k = n.min(self.rest.len());
        Ok(self.rest.split_to(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use btar_region::RegionKey;

    fn sealer(n: u8) -> Sealer {
        Sealer::new(&RegionKey::from_bytes([n; 32]))
    }

    fn seal_frame(
        s: &Sealer,
        key: &str,
        index: u64,
        last: bool,
        plain: &[u8],
        level: i32,
    ) -> Vec<u8> {
        joined(seal_frame_parts(s, key, index, last, plain, level))
    }

    fn framed(s: &Sealer, key: &str, parts: &[&[u8]]) -> Vec<u8> {
        let mut out = header().to_vec();
        for (i, p) in parts.iter().enumerate() {
            out.extend(seal_frame(s, key, i as u64, i + 1 == parts.len(), p, 3));
        }
        out
    }

    #[test]
    fn frames_read_back_in_order_and_any_cut_reorder_or_move_is_refused() {
        let s = sealer(1);
        let parts: [&[u8]; 3] = [b"first frame ", b"second frame ", b"third"];
        let obj = framed(&s, "k", &parts);
        assert!(is_framed(&obj));
        assert_eq!(
            open_all(&s, "k", &obj, 1 << 30).unwrap(),
            b"first frame second frame third"
        );
        // Another key (a renamed object) or another region's key.
        assert!(open_all(&s, "k2", &obj, 1 << 30).is_err());
        assert!(open_all(&sealer(2), "k", &obj, 1 << 30).is_err());
        // Cut after any frame: no last frame.
        let one = framed(&s, "k", &parts[..1]);
        let mut cut = header().to_vec();
        cut.extend(seal_frame(&s, "k", 0, false, parts[0], 3));
        assert_eq!(
            open_all(&s, "k", &cut, 1 << 30),
            Err(FrameError::Truncated(1))
        );
        assert!(open_all(&s, "k", &one, 1 << 30).is_ok());
        // Cut inside a frame.
        assert!(open_all(&s, "k", &obj[..obj.len() - 3], 1 << 30).is_err());
        // The last-frame bit flipped on a middle frame.
        let mut flipped = obj.clone();
        flipped[HEADER_LEN + 3] ^= 0x80;
        assert!(open_all(&s, "k", &flipped, 1 << 30).is_err());
        // Frames swapped.
        let f0 = seal_frame(&s, "k", 0, false, parts[0], 3);
        let f1 = seal_frame(&s, "k", 1, true, parts[1], 3);
        let mut swapped = header().to_vec();
        swapped.extend(&f1);
        swapped.extend(&f0);
        assert!(open_all(&s, "k", &swapped, 1 << 30).is_err());
        // More than the caller will hold.
        assert!(matches!(
            open_all(&s, "k", &obj, 20),
            Err(FrameError::Open {
                error: OpenError::TooLarge(20),
                ..
            })
        ));
        // Bytes after the last frame.
        let mut extra = obj.clone();
        extra.extend_from_slice(b"xx");
        assert_eq!(
            open_all(&s, "k", &extra, 1 << 30),
            Err(FrameError::Trailing(2))
        );
    }

    #[test]
    fn resealed_frames_open_with_the_destination_key_only() {
        let (a, b) = (sealer(1), sealer(2));
        let data = vec![7u8; 100_000];
        let obj = framed(&a, "k", &[&data, b"tail"]);
        let moved = reseal_all(&a, "k", &b, "k", &obj).unwrap();
        let mut want = data.clone();
        want.extend_from_slice(b"tail");
        assert_eq!(open_all(&b, "k", &moved, 1 << 30).unwrap(), want);
        assert!(open_all(&a, "k", &moved, 1 << 30).is_err());
    }
}
