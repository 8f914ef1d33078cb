use std::collections::{HashMap, HashSet};
use std::time::Instant;

use btar_format::{ChunkId, Location, layout};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::destination::check_pair;
use crate::error::CopyError;
use crate::progress::{CopyOptions, CopyOutcome, CopyPhase, CopyProgress};

/// Up to this many distinct chunks, the destination is asked one HEAD per chunk; above it, its chunks
/// prefix is listed once. A listing page returns up to 1000 keys per request, so a 100 GiB backup
/// (1.6 M chunks of 64 KiB) costs ~1.6 k list requests — even with a few older backups' chunks in the
/// destination — instead of 1.6 M HEADs. Memory stays bounded by the manifest, not by the destination:
/// the listing is streamed and only the manifest's own ids are kept. For a small backup a listing
/// of a large destination would cost more than the handful of HEADs.
const HEAD_THRESHOLD: usize = 64;

/// The chunks of `needed` that `dst` does not hold, in id order.
async fn missing_in(
    dst: &Location,
    mut needed: HashSet<ChunkId>,
    parallelism: usize,
) -> Result<Vec<ChunkId>, CopyError> {
    let mut missing: Vec<ChunkId> = if needed.len() <= HEAD_THRESHOLD {
        futures::stream::iter(needed)
            .map(|id| async move { Ok::<_, CopyError>((id, dst.has_chunk(&id).await?)) })
            .buffer_unordered(parallelism.max(1))
            .try_filter_map(|(id, present)| async move { Ok((!present).then_some(id)) })
            .try_collect()
            .await?
    } else {
        let mut listing = dst.region().list(&layout::chunks_prefix(dst.service()));
        while let Some(o) = listing.try_next().await? {
            if let Some(id) = layout::parse_chunk_key(&o.key) {
                needed.remove(&id);
            }
        }
        needed.into_iter().collect()
    };
    missing.sort();
    Ok(missing)
}

/// Copies one chunk; returns (sealed bytes read, sealed bytes written).
async fn copy_chunk(src: &Location, dst: &Location, id: ChunkId) -> Result<(u64, u64), CopyError> {
    let sealed = src.get_sealed_chunk(&id).await?;
    let read = sealed.len() as u64;
    let (s, d) = (src.clone(), dst.clone());
    let resealed = tokio::task::spawn_blocking(move || {
        // The source envelope is authenticated with the chunk id as associated data and the
        // plaintext is hash-checked against that id under the chunk-id key, which `check_pair` made
        // sure is the destination's too; the compressed body is re-encrypted as it is. So whatever
        // reaches the destination is exactly the data the id names, at no recompression cost.
        d.reseal_chunk_from(&s, &id, &sealed)
    })
    .await?
    .map_err(CopyError::from_source)?;
    let written = resealed.len() as u64;
    dst.put_sealed_chunk(&id, Bytes::from(resealed)).await?;
    Ok((read, written))
}

fn cancelled(src: &Location, dst: &Location) -> bool {
    src.region().cancel_token().is_cancelled() || dst.region().cancel_token().is_cancelled()
}

/// Copies the committed backup `backup` from `src` to `dst` (see [`crate::open_destination`]).
///
/// Ships only the chunks `dst` lacks, each authenticated and hash-checked against its id before it is
/// re-sealed with the destination key, then verifies that every chunk the manifest names is in `dst`,
/// and only then commits the manifest there. Cancelling (either region's token) or failing at any
/// point leaves no manifest in `dst`; re-running resumes with the chunks already shipped. If `dst`
/// already has the manifest, nothing is done.
pub async fn copy_backup(
    src: &Location,
    dst: &Location,
    backup: &str,
    opts: &CopyOptions,
    progress: &(dyn Fn(&CopyProgress) + Send + Sync),
) -> Result<CopyOutcome, CopyError> {
    let started = Instant::now();
    check_pair(src, dst)?;
    let manifest = src.read_manifest(backup).await?;
    if manifest.is_packed() {
        return crate::packed_copy::copy(src, dst, manifest, opts, progress, started).await;
    }
    let mut plain_len: HashMap<ChunkId, u64> = HashMap::new();
    for f in &manifest.files {
        for (i, id) in f.chunks.iter().enumerate() {
            plain_len
                .entry(*id)
                .or_insert_with(|| manifest.chunk_len(f, i));
        }
    }
    let chunks_total = plain_len.len() as u64;
    let mut p = CopyProgress {
        backup: backup.to_string(),
        phase: CopyPhase::Planning,
        chunks_total,
        chunks_missing: 0,
        chunks_copied: 0,
        bytes_planned: 0,
        bytes_transferred: 0,
    };
    progress(&p);

    let dst_manifest_key = layout::manifest(dst.service(), backup);
    if dst.region().head(&dst_manifest_key).await?.is_some() {
        // Opening it checks the destination's seal: a damaged copy is reported, not taken for done.
        dst.read_manifest(backup).await?;
        p.phase = CopyPhase::Done;
        progress(&p);
        return Ok(CopyOutcome {
            backup: backup.to_string(),
            already_complete: true,
            chunks_total,
            chunks_copied: 0,
            chunks_already_present: chunks_total,
            bytes_planned: 0,
            bytes_read: 0,
            bytes_transferred: 0,
            duration: started.elapsed(),
        });
    }

    let parallelism = opts.parallelism.max(1);
    let missing = missing_in(dst, plain_len.keys().copied().collect(), parallelism).await?;
    p.chunks_missing = missing.len() as u64;
    p.bytes_planned = missing.iter().filter_map(|id| plain_len.get(id)).sum();
    p.phase = CopyPhase::Copying;
    progress(&p);
    tracing::debug!(
        backup,
        src = src.region().name(),
        dst = dst.region().name(),
        total = chunks_total,
        missing = missing.len(),
        "copying backup"
    );

    let mut bytes_read = 0u64;
    {
        // Dropping this stream on the first error cancels the chunks still in flight; those already
        // written stay, harmless (content-addressed) and reused by the next attempt.
        let mut copies = futures::stream::iter(missing)
            .map(|id| copy_chunk(src, dst, id))
            .buffer_unordered(parallelism);
        while let Some((read, written)) = copies.try_next().await? {
            bytes_read += read;
            p.bytes_transferred += written;
            p.chunks_copied += 1;
            progress(&p);
        }
    }
    if cancelled(src, dst) {
        return Err(CopyError::Cancelled);
    }

    p.phase = CopyPhase::Verifying;
    progress(&p);
    // Chunks found present during planning may have been removed since (retention, an operator), so
    // every chunk is checked again, not only the ones this run wrote.
    let still_missing = missing_in(dst, plain_len.keys().copied().collect(), parallelism).await?;
    if let Some(first) = still_missing.first() {
        return Err(CopyError::Incomplete {
            region: dst.region().name().into(),
            backup: backup.into(),
            missing: still_missing.len(),
            first_key: dst.chunk_key(first),
        });
    }
    if cancelled(src, dst) {
        return Err(CopyError::Cancelled);
    }

    p.phase = CopyPhase::Committing;
    progress(&p);
    let mut copy = manifest;
    copy.copied_from = Some(src.region().name().to_string());
    dst.commit_manifest(&copy).await?;
    p.phase = CopyPhase::Done;
    progress(&p);
    Ok(CopyOutcome {
        backup: backup.to_string(),
        already_complete: false,
        chunks_total,
        chunks_copied: p.chunks_copied,
        chunks_already_present: chunks_total - p.chunks_missing,
        bytes_planned: p.bytes_planned,
        bytes_read,
        bytes_transferred: p.bytes_transferred,
        duration: started.elapsed(),
    })
}
