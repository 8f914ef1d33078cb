//! Copying a format v2 backup: the blocks the destination lacks are shipped in new packs sealed
//! with the destination's key ([`btar_format::copy`]); every pack the destination manifest names is
//! then confirmed present, and only then is the manifest committed.

use std::time::Instant;

use btar_format::copy::{CopyTuning, copy_packed};
use btar_format::{FormatError, Location, Manifest, layout};

use crate::error::CopyError;
use crate::progress::{CopyOptions, CopyOutcome, CopyPhase, CopyProgress};

fn cancelled(src: &Location, dst: &Location) -> bool {
    src.region().cancel_token().is_cancelled() || dst.region().cancel_token().is_cancelled()
}

/// Damage found in the source names the source object; anything else keeps its kind.
fn classify(src: &Location, e: FormatError) -> CopyError {
    match &e {
        FormatError::Damaged { region, .. } | FormatError::WrongKeyOrTampered { region, .. }
            if region == src.region().name() =>
        {
            CopyError::from_source(e)
        }
        _ => e.into(),
    }
}

pub(crate) async fn copy(
    src: &Location,
    dst: &Location,
    manifest: Manifest,
    opts: &CopyOptions,
    progress: &(dyn Fn(&CopyProgress) + Send + Sync),
    started: Instant,
) -> Result<CopyOutcome, CopyError> {
    let backup = manifest.backup_name.clone();
    let mut p = CopyProgress {
        backup: backup.clone(),
        phase: CopyPhase::Planning,
        chunks_total: 0,
        chunks_missing: 0,
        chunks_copied: 0,
        bytes_planned: 0,
        bytes_transferred: 0,
    };
    progress(&p);
    if dst
        .region()
        .head(&layout::manifest(dst.service(), &backup))
        .await?
        .is_some()
    {
        // Opening it checks the destination's seal: a damaged copy is reported, not taken for done.
        dst.read_manifest(&backup).await?;
        p.phase = CopyPhase::Done;
        progress(&p);
        return Ok(CopyOutcome {
            backup,
            already_complete: true,
            chunks_total: 0,
            chunks_copied: 0,
            chunks_already_present: 0,
            bytes_planned: 0,
            bytes_read: 0,
            bytes_transferred: 0,
            duration: started.elapsed(),
        });
    }
    p.phase = CopyPhase::Copying;
    progress(&p);
    let tuning = CopyTuning {
        read_ahead: opts.parallelism.clamp(1, 8),
        pack_size: opts.pack_size,
        ..CopyTuning::default()
    };
    let report = |blocks: u64, bytes: u64| {
        let mut q = p.clone();
        q.chunks_copied = blocks;
        q.bytes_transferred = bytes;
        progress(&q);
    };
    let done = copy_packed(src, dst, &manifest, tuning, &report)
        .await
        .map_err(|e| classify(src, e))?;
    if cancelled(src, dst) {
        return Err(CopyError::Cancelled);
    }
    p.chunks_total = done.blocks_total;
    p.chunks_missing = done.blocks_copied;
    p.chunks_copied = done.blocks_copied;
    p.bytes_planned = done.bytes_planned;
    p.bytes_transferred = done.bytes_written;
    p.phase = CopyPhase::Verifying;
    progress(&p);
    // Packs found present during planning may have been removed since (retention, an operator), so
    // every pack the destination manifest names is checked again, not only the ones written now.
    for id in &done.manifest.packs {
        if !dst.has_pack(id).await? {
            return Err(CopyError::Incomplete {
                region: dst.region().name().into(),
                backup,
                missing: 1,
                first_key: dst.pack_key(id),
            });
        }
    }
    if cancelled(src, dst) {
        return Err(CopyError::Cancelled);
    }
    p.phase = CopyPhase::Committing;
    progress(&p);
    let mut copy = done.manifest;
    copy.copied_from = Some(src.region().name().to_string());
    dst.commit_manifest(&copy).await?;
    p.phase = CopyPhase::Done;
    progress(&p);
    tracing::debug!(
        backup,
        src = src.region().name(),
        dst = dst.region().name(),
        blocks = done.blocks_total,
        copied = done.blocks_copied,
        objects = done.objects_written,
        "copied packed backup"
    );
    Ok(CopyOutcome {
        backup,
        already_complete: false,
        chunks_total: done.blocks_total,
        chunks_copied: done.blocks_copied,
        chunks_already_present: done.blocks_total - done.blocks_copied,
        bytes_planned: done.bytes_planned,
        bytes_read: done.bytes_read,
        bytes_transferred: done.bytes_written,
        duration: started.elapsed(),
    })
}
