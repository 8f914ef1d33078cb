//! Fills packs with sealed frames and uploads each when it reaches its target size, one upload in
//! flight while the next pack fills, so memory stays about two packs whatever the backup's size.
//! Block positions are known as soon as a frame is appended; the pack's id only once it is sealed,
//! so callers name new packs by their sequence number until [`Packer::finish`].

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::chunk::ChunkId;
use crate::error::FormatError;
use crate::location::Location;
use crate::writer::WriteStats;

use super::index::{FrameEntry, PackId, PackIndex};

/// Where an appended frame's blocks landed: pack sequence number and first block number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePos {
    pub pack: u32,
    pub first: u32,
}

#[derive(Debug, Default)]
struct OpenPack {
    seq: u32,
    buf: Vec<u8>,
    frames: Vec<FrameEntry>,
    blocks: u32,
}

#[derive(Debug)]
pub struct Packer {
    loc: Location,
    target: usize,
    open: Mutex<OpenPack>,
    uploads: Mutex<Vec<JoinHandle<Result<(), FormatError>>>>,
    sealed: Arc<Mutex<HashMap<u32, PackId>>>,
    slots: Arc<Semaphore>,
    stats: Arc<WriteStats>,
}

fn poisoned<T>(_: T) -> FormatError {
    FormatError::Task("pack state lock poisoned".into())
}

impl Packer {
    pub fn new(loc: Location, target: usize, stats: Arc<WriteStats>) -> Self {
        Self {
            loc,
            target: target.max(64 * 1024),
            open: Mutex::default(),
            uploads: Mutex::default(),
            sealed: Arc::default(),
            slots: Arc::new(Semaphore::new(1)),
            stats,
        }
    }

    /// Appends a sealed frame holding `blocks`; returns where they are.
    pub async fn append(
        &self,
        blocks: Vec<(ChunkId, u32)>,
        sealed: Vec<u8>,
    ) -> Result<FramePos, FormatError> {
        let (pos, full) = {
            let mut o = self.open.lock().map_err(poisoned)?;
            let pos = FramePos {
                pack: o.seq,
                first: o.blocks,
            };
            let n = blocks.len() as u32;
            if o.buf.capacity() == 0 {
                // Once, to the target and a frame beyond: growing by doubling would hold twice
                // the pack in memory.
                o.buf.reserve_exact(self.target + sealed.len().max(1 << 20));
            }
            let entry = FrameEntry {
                offset: o.buf.len() as u64,
                sealed_len: sealed.len() as u32,
                blocks,
            };
            o.frames.push(entry);
            o.buf.extend_from_slice(&sealed);
            o.blocks += n;
            let full = (o.buf.len() >= self.target).then(|| {
                let next = OpenPack {
                    seq: o.seq + 1,
                    ..Default::default()
                };
                std::mem::replace(&mut *o, next)
            });
            (pos, full)
        };
        if let Some(p) = full {
            self.upload(p).await?;
        }
        Ok(pos)
    }

    async fn upload(&self, p: OpenPack) -> Result<(), FormatError> {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| FormatError::Task(e.to_string()))?;
        let loc = self.loc.clone();
        let sealed_ids = self.sealed.clone();
        let stats = self.stats.clone();
        let handle = tokio::spawn(async move {
            let _permit = permit;
            let idx = PackIndex::new(p.frames);
            let l = loc.clone();
            let (id, sealed_index) = tokio::task::spawn_blocking(move || l.seal_pack_index(&idx))
                .await
                .map_err(|e| FormatError::Task(e.to_string()))?;
            let bytes = (p.buf.len() + sealed_index.len()) as u64;
            loc.put_pack(&id, Bytes::from(p.buf), Bytes::from(sealed_index))
                .await?;
            stats.new_stored_bytes.fetch_add(bytes, Ordering::Relaxed);
            stats.new_objects.fetch_add(2, Ordering::Relaxed);
            sealed_ids.lock().map_err(poisoned)?.insert(p.seq, id);
            Ok(())
        });
        // Surface a failed upload early rather than filling more packs for a doomed backup.
        let done = {
            let mut uploads = self.uploads.lock().map_err(poisoned)?;
            uploads.push(handle);
            uploads
                .iter()
                .position(|h| h.is_finished())
                .map(|i| uploads.swap_remove(i))
        };
        if let Some(done) = done {
            done.await.map_err(|e| FormatError::Task(e.to_string()))??;
        }
        Ok(())
    }

    /// Seals and uploads the last pack, waits for every upload, and returns the id of each pack by
    /// sequence number. Every pack is durable when this returns.
    pub async fn finish(&self) -> Result<HashMap<u32, PackId>, FormatError> {
        let last = {
            let mut o = self.open.lock().map_err(poisoned)?;
            let next = OpenPack {
                seq: o.seq + 1,
                ..Default::default()
            };
            let p = std::mem::replace(&mut *o, next);
            (!p.frames.is_empty()).then_some(p)
        };
        if let Some(p) = last {
            self.upload(p).await?;
        }
        let handles = std::mem::take(&mut *self.uploads.lock().map_err(poisoned)?);
        for h in handles {
            h.await.map_err(|e| FormatError::Task(e.to_string()))??;
        }
        Ok(self.sealed.lock().map_err(poisoned)?.clone())
    }

    /// Stops uploads in flight (a failed backup or copy).
    pub fn abort(&self) {
        if let Ok(u) = self.uploads.lock() {
            for h in u.iter() {
                h.abort();
            }
        }
    }
}

/// The pack table of a manifest being built: parent packs by id, new packs by sequence number,
/// each given its position in the table when first referenced.
#[derive(Debug, Default)]
pub struct PackTable {
    slots: Vec<Slot>,
    existing: HashMap<PackId, u32>,
    new: HashMap<u32, u32>,
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Existing(PackId),
    New(u32),
}

impl PackTable {
    pub fn existing(&mut self, id: PackId) -> u32 {
        let n = self.slots.len() as u32;
        *self.existing.entry(id).or_insert_with(|| {
            self.slots.push(Slot::Existing(id));
            n
        })
    }

    pub fn new_pack(&mut self, seq: u32) -> u32 {
        let n = self.slots.len() as u32;
        *self.new.entry(seq).or_insert_with(|| {
            self.slots.push(Slot::New(seq));
            n
        })
    }

    /// The table as pack ids, once every new pack is sealed.
    pub fn resolve(&self, sealed: &HashMap<u32, PackId>) -> Result<Vec<PackId>, FormatError> {
        self.slots
            .iter()
            .map(|s| match s {
                Slot::Existing(id) => Ok(*id),
                Slot::New(seq) => sealed
                    .get(seq)
                    .copied()
                    .ok_or_else(|| FormatError::Task(format!("pack {seq} was never sealed"))),
            })
            .collect()
    }
}
