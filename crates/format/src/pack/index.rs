//! The pack index: which frames a pack holds, where, and the blocks in each. Binary, then sealed
//! (kind `PackIndex`, bound to the pack id); the pack id is a keyed hash of this plaintext, so an
//! index that opens and hashes to its id describes exactly the pack a manifest named.
//!
//! ```text
//! "BTPX" | version u8 = 1 | frames u32 | per frame: offset u64, sealed_len u32, blocks u16,
//!                                        per block: id [32], len u32
//! ```
//! All integers little-endian. Blocks are numbered across the pack in frame order; manifests address
//! them by that number.

use crate::chunk::{ChunkId, ChunkIdKey};

const MAGIC: &[u8; 4] = b"BTPX";
const VERSION: u8 = 1;
/// Most blocks a frame may hold; keeps a hostile index from describing absurd frames.
pub const MAX_FRAME_BLOCKS: usize = 1024;

/// A pack's id: the keyed hash of its index plaintext.
pub type PackId = ChunkId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameEntry {
    pub offset: u64,
    pub sealed_len: u32,
    /// `(block id, plaintext length)` in frame order.
    pub blocks: Vec<(ChunkId, u32)>,
}

impl FrameEntry {
    pub fn plain_len(&self) -> usize {
        self.blocks.iter().map(|(_, l)| *l as usize).sum()
    }

    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.sealed_len)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackIndex {
    pub frames: Vec<FrameEntry>,
    /// First block number of each frame (prefix sums), for [`PackIndex::locate`].
    first: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("pack index truncated")]
    Truncated,
    #[error("not a pack index (bad magic)")]
    BadMagic,
    #[error("pack index version {0} is newer than this btar understands")]
    Version(u8),
    #[error("pack index is malformed: {0}")]
    Malformed(&'static str),
}

impl PackIndex {
    pub fn new(frames: Vec<FrameEntry>) -> Self {
        let mut first = Vec::with_capacity(frames.len());
        let mut n = 0u32;
        for f in &frames {
            first.push(n);
            n = n.saturating_add(f.blocks.len() as u32);
        }
        Self { frames, first }
    }

    pub fn block_count(&self) -> u32 {
        self.first.last().copied().unwrap_or(0)
            + self.frames.last().map_or(0, |f| f.blocks.len() as u32)
    }

    /// `(frame, slot)` of block number `n`.
    pub fn locate(&self, n: u32) -> Option<(usize, usize)> {
        let frame = self.first.partition_point(|&f| f <= n).checked_sub(1)?;
        let slot = (n - self.first[frame]) as usize;
        (slot < self.frames[frame].blocks.len()).then_some((frame, slot))
    }

    /// Id and length of block number `n`.
    pub fn block(&self, n: u32) -> Option<(ChunkId, u32)> {
        let (f, s) = self.locate(n)?;
        Some(self.frames[f].blocks[s])
    }

    /// Every block with its number.
    pub fn blocks(&self) -> impl Iterator<Item = (u32, ChunkId)> + '_ {
        self.frames
            .iter()
            .flat_map(|f| f.blocks.iter().map(|(id, _)| *id))
            .enumerate()
            .map(|(n, id)| (n as u32, id))
    }

    /// Size of the pack object this index describes.
    pub fn pack_len(&self) -> u64 {
        self.frames.last().map_or(0, FrameEntry::end)
    }

    pub fn encode(&self) -> Vec<u8> {
        let blocks: usize = self.frames.iter().map(|f| f.blocks.len()).sum();
        let mut out = Vec::with_capacity(9 + self.frames.len() * 14 + blocks * 36);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&(self.frames.len() as u32).to_le_bytes());
        for f in &self.frames {
            out.extend_from_slice(&f.offset.to_le_bytes());
            out.extend_from_slice(&f.sealed_len.to_le_bytes());
            out.extend_from_slice(&(f.blocks.len() as u16).to_le_bytes());
            for (id, len) in &f.blocks {
                out.extend_from_slice(id.as_bytes());
                out.extend_from_slice(&len.to_le_bytes());
            }
        }
        out
    }

    /// Parses an index, checking that frames are laid end to end from offset 0.
    pub fn decode(b: &[u8]) -> Result<Self, IndexError> {
        let mut r = Cursor(b);
        if r.take(4)? != MAGIC {
            return Err(IndexError::BadMagic);
        }
        let v = r.take(1)?[0];
        if v != VERSION {
            return Err(IndexError::Version(v));
        }
        let n = r.u32()? as usize;
        // Each frame takes at least 14 bytes: refuse counts the input cannot hold before allocating.
        if n > b.len() / 14 {
            return Err(IndexError::Truncated);
        }
        let mut frames = Vec::with_capacity(n);
        let mut expect = 0u64;
        for _ in 0..n {
            let offset = r.u64()?;
            let sealed_len = r.u32()?;
            let count = r.u16()? as usize;
            if offset != expect {
                return Err(IndexError::Malformed("frames are not contiguous"));
            }
            if count == 0 || count > MAX_FRAME_BLOCKS {
                return Err(IndexError::Malformed("frame block count out of range"));
            }
            let mut blocks = Vec::with_capacity(count);
            for _ in 0..count {
                let id: [u8; 32] = r.take(32)?.try_into().map_err(|_| IndexError::Truncated)?;
                blocks.push((ChunkId::from_bytes(id), r.u32()?));
            }
            expect = offset + u64::from(sealed_len);
            frames.push(FrameEntry {
                offset,
                sealed_len,
                blocks,
            });
        }
        if !r.0.is_empty() {
            return Err(IndexError::Malformed("trailing bytes"));
        }
        Ok(Self::new(frames))
    }

    /// The content-derived id of the pack this index describes.
    pub fn id(&self, key: &ChunkIdKey) -> PackId {
        id_of_encoded(key, &self.encode())
    }
}

pub(crate) fn id_of_encoded(key: &ChunkIdKey, encoded: &[u8]) -> PackId {
    // Domain-separated from block ids, which hash plaintext under the same key.
    key.id_of(&[b"btar pack index\0".as_slice(), encoded].concat())
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], IndexError> {
        if self.0.len() < n {
            return Err(IndexError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u16(&mut self) -> Result<u16, IndexError> {
        Ok(u16::from_le_bytes(
            self.take(2)?
                .try_into()
                .map_err(|_| IndexError::Truncated)?,
        ))
    }
    fn u32(&mut self) -> Result<u32, IndexError> {
        Ok(u32::from_le_bytes(
            self.take(4)?
                .try_into()
                .map_err(|_| IndexError::Truncated)?,
        ))
    }
    fn u64(&mut self) -> Result<u64, IndexError> {
        Ok(u64::from_le_bytes(
            self.take(8)?
                .try_into()
                .map_err(|_| IndexError::Truncated)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn index_of(shape: &[(u32, Vec<u32>)]) -> PackIndex {
        let mut off = 0u64;
        let mut n = 0u8;
        let frames = shape
            .iter()
            .map(|(sealed, lens)| {
                let f = FrameEntry {
                    offset: off,
                    sealed_len: *sealed,
                    blocks: lens
                        .iter()
                        .map(|l| {
                            n = n.wrapping_add(1);
                            (ChunkId::from_bytes([n; 32]), *l)
                        })
                        .collect(),
                };
                off += u64::from(*sealed);
                f
            })
            .collect();
        PackIndex::new(frames)
    }

    fn shape() -> impl Strategy<Value = Vec<(u32, Vec<u32>)>> {
        proptest::collection::vec(
            (1u32..100_000, proptest::collection::vec(1u32..9000, 1..40)),
            0..20,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn round_trips_and_numbers_blocks_in_frame_order(s in shape()) {
            let idx = index_of(&s);
            let back = PackIndex::decode(&idx.encode()).unwrap();
            prop_assert_eq!(&back, &idx);
            let total: usize = s.iter().map(|(_, l)| l.len()).sum();
            prop_assert_eq!(back.block_count() as usize, total);
            let mut n = 0u32;
            for (fi, f) in idx.frames.iter().enumerate() {
                for (si, b) in f.blocks.iter().enumerate() {
                    prop_assert_eq!(back.locate(n), Some((fi, si)));
                    prop_assert_eq!(back.block(n), Some(*b));
                    n += 1;
                }
            }
            prop_assert_eq!(back.locate(n), None);
        }

        #[test]
        fn any_truncation_or_extension_is_refused(s in shape(), cut in any::<proptest::sample::Index>()) {
            let enc = index_of(&s).encode();
            let n = cut.index(enc.len());
            prop_assert!(PackIndex::decode(&enc[..n]).is_err());
            let mut longer = enc.clone();
            longer.push(0);
            prop_assert!(PackIndex::decode(&longer).is_err());
        }

        #[test]
        fn any_byte_change_changes_the_pack_id_or_is_refused(
            s in shape(), pos in any::<proptest::sample::Index>(), delta in 1u8..=255,
        ) {
            let key = ChunkIdKey::from_bytes([3u8; 32]);
            let mut enc = index_of(&s).encode();
            let id = id_of_encoded(&key, &enc);
            let i = pos.index(enc.len());
            enc[i] ^= delta;
            // Either the bytes no longer parse, or they name another pack: a reader that checks
            // the id never takes an altered index for the one its manifest named.
            if PackIndex::decode(&enc).is_ok() {
                prop_assert_ne!(id_of_encoded(&key, &enc), id);
            }
        }
    }

    #[test]
    fn hostile_counts_do_not_allocate() {
        let mut b = MAGIC.to_vec();
        b.push(VERSION);
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(PackIndex::decode(&b), Err(IndexError::Truncated));
    }
}
