//! The streaming backup writer (format v2). Each file is read in blocks of `block_size` (8 KiB,
//! PostgreSQL's page) aligned to file offsets, so a page changed in place changes exactly one block.
//! A block the location already holds — in the packs of its newest backup, or earlier in this one —
//! is referenced where it is; new blocks are grouped per file into frames (compressed and sealed
//! together) and frames into packs. Memory is bounded by the files in flight (one batch and one frame
//! each), the pack being filled and the one uploading, whatever the size of the backup.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::OnceCell;

use crate::chunk::ChunkId;
use crate::error::FormatError;
use crate::location::Location;
use crate::manifest::{ExtentBuilder, FileEntry, FileKind, Manifest, ManifestStats};
use crate::pack::known::{IndexCache, KnownBlocks};
use crate::pack::{PackTable, Packer};

#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// The unit of change detection: a database page.
    pub block_size: usize,
    /// Uncompressed bytes of new blocks compressed together as one frame.
    pub frame_size: usize,
    /// A pack is sealed and uploaded once it holds this many (compressed, sealed) bytes.
    pub pack_size: usize,
}

impl WriterOptions {
    /// PostgreSQL's page. InnoDB's 16 KiB pages are two blocks each.
    pub const DEFAULT_BLOCK_SIZE: usize = 8 * 1024;
    /// 256 KiB: compresses like v1's 256 KiB chunks (bench/chunk-size) while a restore that needs one
    /// block of a frame decompresses no more than that.
    pub const DEFAULT_FRAME_SIZE: usize = 256 * 1024;
    /// 16 MiB: a full backup of pgbench scale 30 (23 MB stored) is two packs; memory holds about two.
    pub const DEFAULT_PACK_SIZE: usize = 16 << 20;
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            block_size: Self::DEFAULT_BLOCK_SIZE,
            frame_size: Self::DEFAULT_FRAME_SIZE,
            pack_size: Self::DEFAULT_PACK_SIZE,
        }
    }
}

/// Counters of one backup (or copy), readable while it runs for progress bars.
#[derive(Debug, Default)]
pub struct WriteStats {
    pub logical_bytes: AtomicU64,
    pub chunk_refs: AtomicU64,
    pub new_chunks: AtomicU64,
    pub new_stored_bytes: AtomicU64,
    pub new_objects: AtomicU64,
}

impl WriteStats {
    pub fn snapshot(&self) -> ManifestStats {
        ManifestStats {
            logical_bytes: self.logical_bytes.load(Ordering::Relaxed),
            chunk_refs: self.chunk_refs.load(Ordering::Relaxed),
            new_chunks: self.new_chunks.load(Ordering::Relaxed),
            new_stored_bytes: self.new_stored_bytes.load(Ordering::Relaxed),
            new_objects: self.new_objects.load(Ordering::Relaxed),
        }
    }
}

/// Blocks this backup stored, for dedupe within it; capped so memory stays bounded (past the cap a
/// repeated block is stored again, which costs bytes, never correctness).
const SEEN_CAP: usize = 1 << 20;
/// Bytes read and hashed per step of a file.
const BATCH: usize = 1 << 20;

#[derive(Debug, Clone, Copy)]
enum Ref {
    /// Table slot and block number, known now.
    At(u32, u32),
    /// Slot `slot` of this file's frame number `frame`, placed when that frame is appended.
    Pending { frame: u32, slot: u32 },
}

#[derive(Debug, Clone)]
pub struct BackupWriter {
    loc: Location,
    opts: WriterOptions,
    stats: Arc<WriteStats>,
    packer: Arc<Packer>,
    table: Arc<Mutex<PackTable>>,
    known: Arc<OnceCell<KnownBlocks>>,
    indexes: IndexCache,
    /// New blocks of this backup: id → (pack sequence number, block number).
    seen: Arc<Mutex<HashMap<ChunkId, (u32, u32)>>>,
}

pub(crate) fn join_err(e: tokio::task::JoinError) -> FormatError {
    FormatError::Task(e.to_string())
}

fn poisoned<T>(_: T) -> FormatError {
    FormatError::Task("writer state lock poisoned".into())
}

pub(crate) async fn read_full<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = r.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// One file's frame being filled.
#[derive(Default)]
struct FrameBuf {
    blocks: Vec<(ChunkId, u32)>,
    plain: Vec<u8>,
    /// Ids already in this frame, to reference a repeated block (zero pages) once.
    slots: HashMap<ChunkId, u32>,
}

impl BackupWriter {
    pub fn new(loc: Location, opts: WriterOptions) -> Self {
        let opts = WriterOptions {
            block_size: opts.block_size.clamp(512, 1 << 20),
            frame_size: opts.frame_size.clamp(opts.block_size, 16 << 20),
            pack_size: opts.pack_size.clamp(64 * 1024, 4 << 30),
        };
        let stats = Arc::<WriteStats>::default();
        Self {
            packer: Arc::new(Packer::new(loc.clone(), opts.pack_size, stats.clone())),
            indexes: IndexCache::new(loc.clone()),
            loc,
            opts,
            stats,
            table: Arc::default(),
            known: Arc::default(),
            seen: Arc::default(),
        }
    }

    pub fn location(&self) -> &Location {
        &self.loc
    }

    pub fn stats(&self) -> Arc<WriteStats> {
        self.stats.clone()
    }

    pub fn block_size(&self) -> usize {
        self.opts.block_size
    }

    /// The blocks of the location's newest backup, loaded once per backup.
    async fn known(&self) -> Result<&KnownBlocks, FormatError> {
        self.known
            .get_or_try_init(|| KnownBlocks::newest(&self.loc, &self.indexes))
            .await
    }

    /// Where block `id` already is, as a table slot and block number.
    fn lookup(&self, known: &KnownBlocks, id: &ChunkId) -> Result<Option<(u32, u32)>, FormatError> {
        if let Some((pack, n)) = known.get(id) {
            return Ok(Some((
                self.table.lock().map_err(poisoned)?.existing(pack),
                n,
            )));
        }
        let seen = self.seen.lock().map_err(poisoned)?.get(id).copied();
        match seen {
            Some((seq, n)) => Ok(Some((
                self.table.lock().map_err(poisoned)?.new_pack(seq),
                n,
            ))),
            None => Ok(None),
        }
    }

    /// Streams `reader` into the location and returns the file's entry. Its blocks are durable only
    /// once [`BackupWriter::finish`] returns.
    pub async fn write_file<R: AsyncRead + Unpin>(
        &self,
        path: &str,
        mode: u32,
        mut reader: R,
    ) -> Result<FileEntry, FormatError> {
        let known = self.known().await?;
        let bs = self.opts.block_size;
        let batch_len = BATCH.max(bs) / bs * bs;
        let mut refs: Vec<Ref> = Vec::new();
        let mut placed: Vec<(u32, u32)> = Vec::new();
        let mut frame = FrameBuf::default();
        let mut size = 0u64;
        let mut buf = vec![0u8; batch_len];
        loop {
            let n = read_full(&mut reader, &mut buf)
                .await
                .map_err(|e| FormatError::io(path, e))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            self.stats
                .logical_bytes
                .fetch_add(n as u64, Ordering::Relaxed);
            let key = self.loc.chunk_id_key().clone();
            let (data, ids) = tokio::task::spawn_blocking(move || {
                let ids: Vec<ChunkId> = buf[..n].chunks(bs).map(|b| key.id_of(b)).collect();
                (buf, ids)
            })
            .await
            .map_err(join_err)?;
            buf = data;
            for (i, id) in ids.into_iter().enumerate() {
                self.stats.chunk_refs.fetch_add(1, Ordering::Relaxed);
                let block = &buf[i * bs..((i + 1) * bs).min(n)];
                if let Some(at) = self.lookup(known, &id)? {
                    refs.push(Ref::At(at.0, at.1));
                    continue;
                }
                let frame_no = placed.len() as u32;
                if let Some(&slot) = frame.slots.get(&id) {
                    refs.push(Ref::Pending {
                        frame: frame_no,
                        slot,
                    });
                    continue;
                }
                let slot = frame.blocks.len() as u32;
                frame.slots.insert(id, slot);
                frame.blocks.push((id, block.len() as u32));
                frame.plain.extend_from_slice(block);
                refs.push(Ref::Pending {
                    frame: frame_no,
                    slot,
                });
                if frame.plain.len() >= self.opts.frame_size
                    || frame.blocks.len() >= crate::pack::index::MAX_FRAME_BLOCKS
                {
                    placed.push(self.flush_frame(std::mem::take(&mut frame)).await?);
                }
            }
            if n < batch_len {
                break;
            }
        }
        if !frame.blocks.is_empty() {
            placed.push(self.flush_frame(frame).await?);
        }
        let mut extents = ExtentBuilder::default();
        for r in refs {
            match r {
                Ref::At(slot, n) => extents.push(slot, n),
                Ref::Pending { frame, slot } => {
                    let (table_slot, first) = placed[frame as usize];
                    extents.push(table_slot, first + slot);
                }
            }
        }
        Ok(FileEntry {
            path: path.to_string(),
            kind: FileKind::File,
            size,
            mode,
            target: None,
            chunks: Vec::new(),
            extents: extents.finish(),
        })
    }

    /// Seals a frame and appends it to the open pack; returns its table slot and first block.
    async fn flush_frame(&self, frame: FrameBuf) -> Result<(u32, u32), FormatError> {
        let loc = self.loc.clone();
        let FrameBuf { blocks, plain, .. } = frame;
        let (blocks, sealed) = tokio::task::spawn_blocking(move || {
            let sealed = loc.seal_frame(&blocks, &plain);
            (blocks, sealed)
        })
        .await
        .map_err(join_err)?;
        let ids: Vec<ChunkId> = blocks.iter().map(|(id, _)| *id).collect();
        self.stats
            .new_chunks
            .fetch_add(ids.len() as u64, Ordering::Relaxed);
        let pos = match self.packer.append(blocks, sealed).await {
            Ok(p) => p,
            Err(e) => {
                self.packer.abort();
                return Err(e);
            }
        };
        {
            let mut seen = self.seen.lock().map_err(poisoned)?;
            if seen.len() + ids.len() > SEEN_CAP {
                seen.clear();
            }
            for (i, id) in ids.into_iter().enumerate() {
                seen.insert(id, (pos.pack, pos.first + i as u32));
            }
        }
        let slot = self.table.lock().map_err(poisoned)?.new_pack(pos.pack);
        Ok((slot, pos.first))
    }

    /// Seals and uploads the last pack, waits until every pack is durable, and returns the
    /// manifest of the backup (not yet committed: the caller commits it, last).
    pub async fn finish(
        &self,
        backup_name: &str,
        started_at: DateTime<Utc>,
        files: Vec<FileEntry>,
        engine_meta: serde_json::Value,
    ) -> Result<Manifest, FormatError> {
        let sealed = self.packer.finish().await?;
        let packs = self.table.lock().map_err(poisoned)?.resolve(&sealed)?;
        Ok(Manifest {
            format_version: crate::FORMAT_VERSION,
            service: self.loc.service().to_string(),
            backup_name: backup_name.to_string(),
            engine: self.loc.descriptor().engine.clone(),
            started_at,
            completed_at: Utc::now(),
            chunk_size: self.opts.block_size as u32,
            files,
            packs,
            engine_meta,
            stats: self.stats.snapshot(),
            origin_region: self.loc.region().name().to_string(),
            copied_from: None,
        })
    }
}
