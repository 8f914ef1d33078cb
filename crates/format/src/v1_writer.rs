//! The format v1 writer: one object per fixed-size chunk. btar writes format v2 ([`crate::BackupWriter`]);
//! this stays so that tests (and tools that must produce v1 locations, such as migration checks) can
//! build the v1 locations v2 must go on reading, restoring, verifying and copying.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::io::AsyncRead;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::chunk::ChunkId;
use crate::error::FormatError;
use crate::location::Location;
use crate::manifest::{FileEntry, FileKind, Manifest};
use crate::writer::{WriteStats, join_err, read_full};

#[derive(Debug, Clone, Copy)]
pub struct V1WriterOptions {
    pub chunk_size: usize,
    pub max_in_flight: usize,
}

impl V1WriterOptions {
    /// 256 KiB, a multiple of PostgreSQL's 8 KiB page so in-place page writes dirty whole chunks
    /// only. Measured by `bench/chunk-size` (README "Chunk size"): against 64 KiB, an incremental
    /// backup after pgbench stores ~30% more bytes but needs half the objects, and a full backup a
    /// third of them; per-object cost dominates on object stores (requests are billed and each has a
    /// round trip), so the larger chunk is cheaper and faster overall.
    pub const DEFAULT_CHUNK_SIZE: usize = 256 * 1024;
}

impl Default for V1WriterOptions {
    fn default() -> Self {
        Self {
            chunk_size: Self::DEFAULT_CHUNK_SIZE,
            max_in_flight: 32,
        }
    }
}

/// Chunks known present in the location during this backup; capped so memory stays bounded.
#[derive(Debug, Default)]
struct SeenChunks(Mutex<HashSet<ChunkId>>);

const SEEN_CAP: usize = 1 << 20;

impl SeenChunks {
    /// Claims `id` for storing: `true` for the first claimer only. Claiming before the PUT (not
    /// after) keeps two chunks in flight with equal content from both uploading it; the manifest is
    /// committed only after every chunk task of the backup has finished, so a claimer's failure
    /// fails the backup rather than leaving a reference dangling.
    fn claim(&self, id: ChunkId) -> bool {
        match self.0.lock() {
            Ok(mut s) => {
                if s.len() >= SEEN_CAP {
                    s.clear();
                }
                s.insert(id)
            }
            Err(_) => true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct V1Writer {
    loc: Location,
    opts: V1WriterOptions,
    permits: Arc<Semaphore>,
    stats: Arc<WriteStats>,
    seen: Arc<SeenChunks>,
}

impl V1Writer {
    pub fn new(loc: Location, opts: V1WriterOptions) -> Self {
        let opts = V1WriterOptions {
            chunk_size: opts.chunk_size.clamp(4096, crate::location::MAX_CHUNK),
            max_in_flight: opts.max_in_flight.max(1),
        };
        Self {
            loc,
            permits: Arc::new(Semaphore::new(opts.max_in_flight)),
            opts,
            stats: Arc::default(),
            seen: Arc::default(),
        }
    }

    pub fn location(&self) -> &Location {
        &self.loc
    }

    pub fn stats(&self) -> Arc<WriteStats> {
        self.stats.clone()
    }

    pub fn chunk_size(&self) -> usize {
        self.opts.chunk_size
    }

    /// Stores one chunk unless the location already has it; returns its id.
    async fn store_chunk(self, data: Vec<u8>) -> Result<ChunkId, FormatError> {
        let loc = self.loc.clone();
        let (id, data) =
            tokio::task::spawn_blocking(move || (loc.chunk_id_key().id_of(&data), data))
                .await
                .map_err(join_err)?;
        self.stats.chunk_refs.fetch_add(1, Ordering::Relaxed);
        if !self.seen.claim(id) || self.loc.has_chunk(&id).await? {
            return Ok(id);
        }
        let loc = self.loc.clone();
        let sealed = tokio::task::spawn_blocking(move || loc.seal_chunk(&id, &data))
            .await
            .map_err(join_err)?;
        let len = sealed.len() as u64;
        self.loc.put_sealed_chunk(&id, Bytes::from(sealed)).await?;
        self.stats.new_chunks.fetch_add(1, Ordering::Relaxed);
        self.stats.new_objects.fetch_add(1, Ordering::Relaxed);
        self.stats
            .new_stored_bytes
            .fetch_add(len, Ordering::Relaxed);
        Ok(id)
    }

    /// Streams `reader` into the location and returns the file's entry. Returns once every chunk of
    /// the file is durable.
    pub async fn write_file<R: AsyncRead + Unpin>(
        &self,
        path: &str,
        mode: u32,
        mut reader: R,
    ) -> Result<FileEntry, FormatError> {
        let mut pending: VecDeque<JoinHandle<Result<ChunkId, FormatError>>> = VecDeque::new();
        let result = self.write_chunks(path, &mut reader, &mut pending).await;
        if result.is_err() {
            for h in &pending {
                h.abort();
            }
        }
        let (size, mut ids) = result?;
        for h in pending {
            ids.push(h.await.map_err(join_err)??);
        }
        Ok(FileEntry {
            path: path.to_string(),
            kind: FileKind::File,
            size,
            mode,
            target: None,
            chunks: ids,
            extents: Vec::new(),
        })
    }

    async fn write_chunks<R: AsyncRead + Unpin>(
        &self,
        path: &str,
        reader: &mut R,
        pending: &mut VecDeque<JoinHandle<Result<ChunkId, FormatError>>>,
    ) -> Result<(u64, Vec<ChunkId>), FormatError> {
        let mut ids = Vec::new();
        let mut size = 0u64;
        loop {
            let permit = self
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| FormatError::Task(e.to_string()))?;
            let mut buf = vec![0u8; self.opts.chunk_size];
            let n = read_full(reader, &mut buf)
                .await
                .map_err(|e| FormatError::io(path, e))?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            size += n as u64;
            self.stats
                .logical_bytes
                .fetch_add(n as u64, Ordering::Relaxed);
            let me = self.clone();
            pending.push_back(tokio::spawn(async move {
                let _permit = permit;
                me.store_chunk(buf).await
            }));
            while pending.front().is_some_and(|h| h.is_finished()) {
                if let Some(h) = pending.pop_front() {
                    ids.push(h.await.map_err(join_err)??);
                }
            }
            if n < self.opts.chunk_size {
                break;
            }
        }
        Ok((size, ids))
    }

    /// Builds the manifest of a backup from its file entries and this writer's counters.
    pub fn manifest(
        &self,
        backup_name: &str,
        started_at: DateTime<Utc>,
        files: Vec<FileEntry>,
        engine_meta: serde_json::Value,
    ) -> Manifest {
        Manifest {
            format_version: 1,
            service: self.loc.service().to_string(),
            backup_name: backup_name.to_string(),
            engine: self.loc.descriptor().engine.clone(),
            started_at,
            completed_at: Utc::now(),
            chunk_size: self.opts.chunk_size as u32,
            files,
            packs: Vec::new(),
            engine_meta,
            stats: self.stats.snapshot(),
            origin_region: self.loc.region().name().to_string(),
            copied_from: None,
        }
    }
}
