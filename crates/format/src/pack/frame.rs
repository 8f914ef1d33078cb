//! Frames: a run of blocks compressed together (so small pages still compress like large chunks)
//! and sealed as one envelope inside a pack. The envelope is bound to the frame's block ids, so a
//! frame read from the wrong offset, pack or location fails to open; each block is then checked
//! against its id.

use crate::chunk::ChunkId;
use crate::error::FormatError;
use crate::location::Location;
use crate::seal::{self, Body, Kind};

use super::index::FrameEntry;

/// What a frame's envelope is bound to: a hash of its block ids in order.
pub fn binding(blocks: &[(ChunkId, u32)]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"btar frame\0");
    for (id, len) in blocks {
        h.update(id.as_bytes());
        h.update(&len.to_le_bytes());
    }
    *h.finalize().as_bytes()
}

/// An opened, verified frame: its plaintext and where each block starts.
#[derive(Debug)]
pub struct OpenFrame {
    plain: Vec<u8>,
    starts: Vec<usize>,
}

impl OpenFrame {
    pub fn block(&self, slot: usize) -> &[u8] {
        let end = self
            .starts
            .get(slot + 1)
            .copied()
            .unwrap_or(self.plain.len());
        &self.plain[self.starts[slot]..end]
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }
}

impl Location {
    /// Compresses and seals blocks as one frame (CPU work: call from a blocking thread).
    pub fn seal_frame(&self, blocks: &[(ChunkId, u32)], plain: &[u8]) -> Vec<u8> {
        self.sealer().seal(
            Kind::Frame,
            &binding(blocks),
            plain,
            self.compression_level(),
        )
    }

    /// Opens a frame described by `entry` and checks every block against its id.
    pub fn open_frame(
        &self,
        pack_key: &str,
        entry: &FrameEntry,
        sealed: &[u8],
    ) -> Result<OpenFrame, FormatError> {
        let at = || format!("{pack_key}@{}", entry.offset);
        let plain = self
            .sealer()
            .open(
                Kind::Frame,
                &binding(&entry.blocks),
                sealed,
                entry.plain_len(),
            )
            .map_err(|e| self.damaged(at(), e))?;
        if plain.len() != entry.plain_len() {
            return Err(self.damaged_at(at(), "frame length differs from its index"));
        }
        let mut starts = Vec::with_capacity(entry.blocks.len());
        let mut pos = 0usize;
        for (id, len) in &entry.blocks {
            let end = pos + *len as usize;
            if &self.chunk_id_key().id_of(&plain[pos..end]) != id {
                return Err(self.damaged_at(at(), "a block does not match its id"));
            }
            starts.push(pos);
            pos = end;
        }
        Ok(OpenFrame { plain, starts })
    }

    /// Re-seals a frame sealed by `src` for this location around the same compressed body, after
    /// authenticating it and checking its blocks: a copy that needs the whole frame does not
    /// compress again.
    pub fn reseal_frame_from(
        &self,
        src: &Location,
        pack_key: &str,
        entry: &FrameEntry,
        sealed: &[u8],
    ) -> Result<Vec<u8>, FormatError> {
        let at = || format!("{pack_key}@{}", entry.offset);
        let bind = binding(&entry.blocks);
        let (flags, body) = src
            .sealer()
            .open_body(Kind::Frame, &bind, sealed)
            .map_err(|e| src.damaged(at(), e))?;
        let body = Body {
            flags,
            bytes: &body,
        };
        let plain = seal::decode(body, entry.plain_len()).map_err(|e| src.damaged(at(), e))?;
        if plain.len() != entry.plain_len() {
            return Err(src.damaged_at(at(), "frame length differs from its index"));
        }
        let mut pos = 0usize;
        for (id, len) in &entry.blocks {
            let end = pos + *len as usize;
            if &src.chunk_id_key().id_of(&plain[pos..end]) != id {
                return Err(src.damaged_at(at(), "a block does not match its id"));
            }
            pos = end;
        }
        Ok(self.sealer().seal_body(Kind::Frame, &bind, body))
    }

    pub(crate) fn damaged_at(&self, key: String, reason: &str) -> FormatError {
        FormatError::Damaged {
            region: self.region().name().into(),
            key,
            reason: reason.into(),
        }
    }
}
