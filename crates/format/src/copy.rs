//! Copying a format v2 backup to another location of the same service: only the blocks the
//! destination lacks are shipped. A frame whose blocks are all missing is re-sealed around its
//! compressed body; from a frame the destination partly holds, only the missing blocks are taken
//! and repacked into new frames. Either way, every block is authenticated and checked against its id
//! in the source before it is sealed with the destination's key. The destination manifest (returned,
//! not committed) points into the destination's own packs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};

use crate::chunk::ChunkId;
use crate::error::FormatError;
use crate::location::Location;
use crate::manifest::{ExtentBuilder, Manifest};
use crate::pack::known::{IndexCache, KnownBlocks};
use crate::pack::{FrameEntry, PackId, PackIndex, PackTable, Packer};
use crate::reader::{pack_table, resolve};
use crate::writer::{WriteStats, WriterOptions};

#[derive(Debug, Clone, Copy)]
pub struct CopyTuning {
    pub pack_size: usize,
    pub frame_size: usize,
    /// Ranged reads of the source in flight.
    pub read_ahead: usize,
}

impl Default for CopyTuning {
    fn default() -> Self {
        Self {
            pack_size: WriterOptions::DEFAULT_PACK_SIZE,
            frame_size: WriterOptions::DEFAULT_FRAME_SIZE,
            read_ahead: 4,
        }
    }
}

/// What a copy did; the destination manifest is for the caller to commit.
#[derive(Debug)]
pub struct PackedCopy {
    pub manifest: Manifest,
    pub blocks_total: u64,
    pub blocks_copied: u64,
    /// Plaintext bytes of the blocks the destination lacked.
    pub bytes_planned: u64,
    /// Sealed bytes read from the source.
    pub bytes_read: u64,
    /// Sealed bytes written to the destination (packs and indexes).
    pub bytes_written: u64,
    pub objects_written: u64,
}

/// Blocks of one source frame the destination lacks.
struct FrameWork {
    pack: PackId,
    index: Arc<PackIndex>,
    frame: usize,
    /// Slots to ship; all of them means the frame is re-sealed whole.
    slots: Vec<usize>,
}

/// Source frames in pack order, each with the blocks of `m` the destination lacks.
fn plan(
    src: &Location,
    m: &Manifest,
    packs: &[(PackId, Arc<PackIndex>)],
    known: &KnownBlocks,
) -> Result<(Vec<FrameWork>, u64, u64), FormatError> {
    let mut wanted: BTreeMap<(u32, usize), Vec<usize>> = BTreeMap::new();
    let mut seen: HashSet<ChunkId> = HashSet::new();
    let (mut total, mut planned) = (0u64, 0u64);
    for f in &m.files {
        for ((slot, frame), s) in resolve(src, m, f, packs)? {
            let (id, len) = packs[slot as usize].1.frames[frame].blocks[s];
            if !seen.insert(id) {
                continue;
            }
            total += 1;
            if known.get(&id).is_none() {
                planned += u64::from(len);
                wanted.entry((slot, frame)).or_default().push(s);
            }
        }
    }
    let work = wanted
        .into_iter()
        .map(|((slot, frame), mut slots)| {
            slots.sort_unstable();
            let (pack, index) = &packs[slot as usize];
            FrameWork {
                pack: *pack,
                index: index.clone(),
                frame,
                slots,
            }
        })
        .collect();
    Ok((work, total, planned))
}

/// Runs of adjacent frames of one pack (at most [`COPY_RANGE`] stored bytes each), so a copy reads
/// a source pack with a few ranged GETs rather than one per frame.
fn coalesce(work: Vec<FrameWork>) -> Vec<Vec<FrameWork>> {
    let mut runs: Vec<Vec<FrameWork>> = Vec::new();
    for w in work {
        if let Some(run) = runs.last_mut()
            && let Some(prev) = run.last()
            && prev.pack == w.pack
            && prev.frame + 1 == w.frame
            && w.index.frames[w.frame].end() - run[0].index.frames[run[0].frame].offset
                <= COPY_RANGE
        {
            run.push(w);
            continue;
        }
        runs.push(vec![w]);
    }
    runs
}

/// Largest ranged GET of a copy, in stored bytes (frames stay sealed until each is handled).
const COPY_RANGE: u64 = 4 << 20;

/// A new frame for the destination being filled from partly needed source frames.
#[derive(Default)]
struct Repack {
    blocks: Vec<(ChunkId, u32)>,
    plain: Vec<u8>,
}

/// Copies the blocks of `m` (a v2 manifest read from `src`) that `dst` lacks and returns the
/// manifest as it must be committed in `dst`.
pub async fn copy_packed(
    src: &Location,
    dst: &Location,
    m: &Manifest,
    tuning: CopyTuning,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<PackedCopy, FormatError> {
    let dst_cache = IndexCache::new(dst.clone());
    let known = KnownBlocks::newest(dst, &dst_cache).await?;
    copy_packed_onto(src, dst, m, &known, tuning, progress).await
}

/// [`copy_packed`] where `known` says which blocks `dst` holds and where: those are referenced
/// in place, every other block of `m` is written anew. A repack copies a backup onto its own
/// location with only the packs that stay known.
pub(crate) async fn copy_packed_onto(
    src: &Location,
    dst: &Location,
    m: &Manifest,
    known: &KnownBlocks,
    tuning: CopyTuning,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<PackedCopy, FormatError> {
    let src_cache = IndexCache::new(src.clone());
    let packs = pack_table(src, &src_cache, m).await?;
    let (work, blocks_total, bytes_planned) = plan(src, m, &packs, known)?;

    let stats = Arc::new(WriteStats::default());
    let packer = Packer::new(dst.clone(), tuning.pack_size, stats.clone());
    let mut placed: HashMap<ChunkId, (u32, u32)> = HashMap::new();
    let mut bytes_read = 0u64;
    let mut blocks_copied = 0u64;
    let mut repack = Repack::default();

    let result: Result<(), FormatError> = async {
        let mut fetched = futures::stream::iter(coalesce(work))
            .map(|run| async move {
                let start = run[0].index.frames[run[0].frame].offset;
                let last = &run[run.len() - 1];
                let end = last.index.frames[last.frame].end();
                let bytes = src.get_pack_range(&run[0].pack, start..end).await?;
                let frames: Vec<(FrameWork, bytes::Bytes)> = run
                    .into_iter()
                    .map(|w| {
                        let e = &w.index.frames[w.frame];
                        let at = (e.offset - start) as usize;
                        let sealed = bytes.slice(at..at + e.sealed_len as usize);
                        (w, sealed)
                    })
                    .collect();
                Ok::<_, FormatError>(futures::stream::iter(
                    frames.into_iter().map(Ok::<_, FormatError>),
                ))
            })
            .buffered(tuning.read_ahead.max(1))
            .try_flatten();
        while let Some((w, sealed)) = fetched.try_next().await? {
            bytes_read += sealed.len() as u64;
            let entry: FrameEntry = w.index.frames[w.frame].clone();
            let key = src.pack_key(&w.pack);
            if w.slots.len() == entry.blocks.len() {
                let (s, d, e) = (src.clone(), dst.clone(), entry.clone());
                let resealed =
                    tokio::task::spawn_blocking(move || d.reseal_frame_from(&s, &key, &e, &sealed))
                        .await
                        .map_err(|e| FormatError::Task(e.to_string()))??;
                blocks_copied += entry.blocks.len() as u64;
                let pos = packer.append(entry.blocks.clone(), resealed).await?;
                place(&mut placed, &entry.blocks, pos.pack, pos.first);
            } else {
                let (s, e) = (src.clone(), entry.clone());
                let open = tokio::task::spawn_blocking(move || s.open_frame(&key, &e, &sealed))
                    .await
                    .map_err(|e| FormatError::Task(e.to_string()))??;
                for &slot in &w.slots {
                    repack.blocks.push(entry.blocks[slot]);
                    repack.plain.extend_from_slice(open.block(slot));
                    blocks_copied += 1;
                }
                if repack.plain.len() >= tuning.frame_size {
                    flush(dst, &packer, &mut placed, std::mem::take(&mut repack)).await?;
                }
            }
            progress(
                blocks_copied,
                stats
                    .new_stored_bytes
                    .load(std::sync::atomic::Ordering::Relaxed),
            );
        }
        if !repack.blocks.is_empty() {
            flush(dst, &packer, &mut placed, std::mem::take(&mut repack)).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        packer.abort();
        return Err(e);
    }
    let sealed = packer.finish().await?;
    let mut table = PackTable::default();
    let mut copy = m.clone();
    for f in copy.files.iter_mut() {
        if f.extents.is_empty() {
            continue;
        }
        let mut ext = ExtentBuilder::default();
        for ((slot, frame), s) in resolve(src, m, f, &packs)? {
            let id = packs[slot as usize].1.frames[frame].blocks[s].0;
            let at = match placed.get(&id) {
                Some(&(seq, n)) => (table.new_pack(seq), n),
                None => match known.get(&id) {
                    Some((pack, n)) => (table.existing(pack), n),
                    None => {
                        return Err(FormatError::Task(format!(
                            "block {id} of {} was neither copied nor present",
                            f.path
                        )));
                    }
                },
            };
            ext.push(at.0, at.1);
        }
        f.extents = ext.finish();
    }
    copy.packs = table.resolve(&sealed)?;
    let s = stats.snapshot();
    Ok(PackedCopy {
        manifest: copy,
        blocks_total,
        blocks_copied,
        bytes_planned,
        bytes_read,
        bytes_written: s.new_stored_bytes,
        objects_written: s.new_objects,
    })
}

fn place(
    placed: &mut HashMap<ChunkId, (u32, u32)>,
    blocks: &[(ChunkId, u32)],
    seq: u32,
    first: u32,
) {
    for (i, (id, _)) in blocks.iter().enumerate() {
        placed.insert(*id, (seq, first + i as u32));
    }
}

async fn flush(
    dst: &Location,
    packer: &Packer,
    placed: &mut HashMap<ChunkId, (u32, u32)>,
    r: Repack,
) -> Result<(), FormatError> {
    let d = dst.clone();
    let Repack { blocks, plain } = r;
    let (blocks, sealed) = tokio::task::spawn_blocking(move || {
        let sealed = d.seal_frame(&blocks, &plain);
        (blocks, sealed)
    })
    .await
    .map_err(|e| FormatError::Task(e.to_string()))?;
    let pos = packer.append(blocks.clone(), sealed).await?;
    place(placed, &blocks, pos.pack, pos.first);
    Ok(())
}
