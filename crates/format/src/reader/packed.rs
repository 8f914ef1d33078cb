//! Reading a format v2 file: its extents are resolved through the pack indexes into the frames that
//! hold its blocks; frames are fetched with ranged GETs (adjacent frames of a pack in one request),
//! several requests in flight, and kept sealed — compressed — until just before their blocks are
//! written: a few frames ahead are opened and checked off the async threads, so memory is bound by
//! stored bytes in flight plus a few opened frames, however well the pages compress. A frame needed
//! again later in the file (an incremental's scattered pages) stays open until its last use, so
//! nothing is fetched twice.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::error::FormatError;
use crate::location::Location;
use crate::manifest::{FileEntry, Manifest};
use crate::pack::known::IndexCache;
use crate::pack::{OpenFrame, PackId, PackIndex};

/// Largest ranged GET, in stored bytes: adjacent frames are fetched together up to this. Pages
/// often compress 20:1, so this is tens of MiB of a file per request, kept compressed.
pub(crate) const MAX_RANGE: u64 = 2 << 20;

/// Frames opened ahead of the one being written (decrypting and decompressing overlaps writing).
const OPEN_AHEAD: usize = 4;

/// A frame by pack-table slot and frame number.
type FrameKey = (u32, usize);

/// One ranged GET: consecutive frames of one pack.
pub(crate) struct RangeRead {
    pub slot: u32,
    pub pack: PackId,
    pub index: Arc<PackIndex>,
    pub frames: std::ops::Range<usize>,
}

/// A frame as fetched, still sealed.
pub(crate) struct SealedFrame {
    key: FrameKey,
    pack: PackId,
    index: Arc<PackIndex>,
    sealed: Bytes,
}

impl SealedFrame {
    /// Opens and checks the frame off the async threads.
    async fn open(self, loc: Location) -> Result<(FrameKey, Arc<OpenFrame>), FormatError> {
        tokio::task::spawn_blocking(move || {
            let e = &self.index.frames[self.key.1];
            let open = loc.open_frame(&loc.pack_key(&self.pack), e, &self.sealed)?;
            Ok((self.key, Arc::new(open)))
        })
        .await
        .map_err(|e| FormatError::Task(e.to_string()))?
    }
}

impl RangeRead {
    /// Fetches the range; its frames stay sealed.
    pub(crate) async fn fetch(self, loc: &Location) -> Result<Vec<SealedFrame>, FormatError> {
        let start = self.index.frames[self.frames.start].offset;
        let end = self.index.frames[self.frames.end - 1].end();
        let bytes = loc.get_pack_range(&self.pack, start..end).await?;
        Ok(self
            .frames
            .clone()
            .map(|f| {
                let e = &self.index.frames[f];
                let at = (e.offset - start) as usize;
                SealedFrame {
                    key: (self.slot, f),
                    pack: self.pack,
                    index: self.index.clone(),
                    sealed: bytes.slice(at..at + e.sealed_len as usize),
                }
            })
            .collect())
    }
}

/// Groups frames (in the order given, each once) into ranged reads of adjacent frames.
pub(crate) fn plan_reads(
    frames: &[FrameKey],
    packs: &[(PackId, Arc<PackIndex>)],
) -> Vec<RangeRead> {
    let mut reads: Vec<RangeRead> = Vec::new();
    for &(slot, f) in frames {
        let (pack, index) = &packs[slot as usize];
        if let Some(r) = reads.last_mut()
            && r.slot == slot
            && r.frames.end == f
            && index.frames[f].end() - index.frames[r.frames.start].offset <= MAX_RANGE
        {
            r.frames.end += 1;
            continue;
        }
        reads.push(RangeRead {
            slot,
            pack: *pack,
            index: index.clone(),
            frames: f..f + 1,
        });
    }
    reads
}

fn damaged(loc: &Location, m: &Manifest, reason: String) -> FormatError {
    FormatError::Damaged {
        region: loc.region().name().into(),
        key: crate::layout::manifest(loc.service(), &m.backup_name),
        reason,
    }
}

/// The pack table of `m` with each pack's index.
pub(crate) async fn pack_table(
    loc: &Location,
    cache: &IndexCache,
    m: &Manifest,
) -> Result<Vec<(PackId, Arc<PackIndex>)>, FormatError> {
    let indexes = cache.all_of(m, 8).await.map_err(|e| match e {
        FormatError::Region(r) if r.is_not_found() => {
            damaged(loc, m, format!("a pack index it names is missing: {r}"))
        }
        other => other,
    })?;
    Ok(m.packs.iter().copied().zip(indexes).collect())
}

/// Every block of `entry` as (frame, slot), in file order.
pub(crate) fn resolve(
    loc: &Location,
    m: &Manifest,
    entry: &FileEntry,
    packs: &[(PackId, Arc<PackIndex>)],
) -> Result<Vec<(FrameKey, usize)>, FormatError> {
    let mut out = Vec::new();
    let mut bytes = 0u64;
    for ext in &entry.extents {
        let (_, index) = packs.get(ext.pack() as usize).ok_or_else(|| {
            damaged(
                loc,
                m,
                format!(
                    "{}: extent names pack {} of {}",
                    entry.path,
                    ext.pack(),
                    packs.len()
                ),
            )
        })?;
        for (slot, n) in ext.blocks() {
            let (f, s) = index.locate(n).ok_or_else(|| {
                damaged(
                    loc,
                    m,
                    format!("{}: block {n} is not in pack {slot}", entry.path),
                )
            })?;
            bytes += u64::from(index.frames[f].blocks[s].1);
            out.push(((slot, f), s));
        }
    }
    if bytes != entry.size {
        return Err(damaged(
            loc,
            m,
            format!(
                "{}: blocks hold {bytes} bytes, the file {}",
                entry.path, entry.size
            ),
        ));
    }
    Ok(out)
}

/// Writes the content of a v2 `entry` to `out`.
pub(crate) async fn write_to<W: AsyncWrite + Unpin>(
    loc: &Location,
    cache: &IndexCache,
    read_ahead: usize,
    m: &Manifest,
    entry: &FileEntry,
    out: &mut W,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<u64, FormatError> {
    let packs = pack_table(loc, cache, m).await?;
    let needs = resolve(loc, m, entry, &packs)?;
    let mut uses: HashMap<FrameKey, usize> = HashMap::new();
    let mut order: Vec<FrameKey> = Vec::new();
    for (k, _) in &needs {
        let n = uses.entry(*k).or_insert(0);
        if *n == 0 {
            order.push(*k);
        }
        *n += 1;
    }
    // Boxed futures built up front (they start only when polled): a stream of borrowing closures is
    // not provably `Send` for every lifetime, which callers spawning a restore need.
    type Fetch<'a> = futures::future::BoxFuture<'a, Result<Vec<SealedFrame>, FormatError>>;
    let reads: Vec<Fetch<'_>> = plan_reads(&order, &packs)
        .into_iter()
        .map(|r| Box::pin(r.fetch(loc)) as Fetch<'_>)
        .collect();
    let opener = loc.clone();
    let mut opened = futures::stream::iter(reads)
        .buffered(read_ahead.max(1))
        .map_ok(|frames| futures::stream::iter(frames.into_iter().map(Ok::<_, FormatError>)))
        .try_flatten()
        .map_ok(move |f| f.open(opener.clone()))
        .try_buffered(OPEN_AHEAD);
    let mut live: HashMap<FrameKey, Arc<OpenFrame>> = HashMap::new();
    let mut written = 0u64;
    for (k, slot) in needs {
        while !live.contains_key(&k) {
            let Some((key, frame)) = opened.try_next().await? else {
                return Err(FormatError::Task("frame plan ended early".into()));
            };
            live.insert(key, frame);
        }
        let block_len = {
            let frame = &live[&k];
            let block = frame.block(slot);
            out.write_all(block)
                .await
                .map_err(|e| FormatError::io(&entry.path, e))?;
            block.len() as u64
        };
        written += block_len;
        progress(block_len);
        if let Some(n) = uses.get_mut(&k) {
            *n -= 1;
            if *n == 0 {
                live.remove(&k);
            }
        }
    }
    out.flush()
        .await
        .map_err(|e| FormatError::io(&entry.path, e))?;
    Ok(written)
}
