//! Repacking (restic's `prune`): a pack whose blocks are mostly named by no kept manifest costs
//! its whole size until every backup naming it expires. Its live blocks are copied into new packs
//! — the backup copied onto its own location, with only the packs that stay known as dedupe base —
//! and each manifest naming it is rewritten to point there. The old pack is then named by no
//! manifest; retention deletes it only a grace period after the repack, which a marker beside it
//! records, so a backup or copy that took it as dedupe base before the rewrite commits first.
//!
//! Crash-safe in any order of interruption: markers first (harmless beside a pack still named),
//! then new packs (unnamed, collected as any leftover), then each manifest replaced whole.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::copy::{CopyTuning, copy_packed_onto};
use crate::error::FormatError;
use crate::layout;
use crate::location::Location;
use crate::manifest::Manifest;
use crate::pack::PackId;
use crate::pack::known::{IndexCache, KnownBlocks, ORPHAN_REUSE};

#[derive(Debug, Clone, Copy)]
pub struct RepackOptions {
    /// A pack is repacked when its live blocks are less than this share of its blocks' bytes
    /// (0.0 never, 1.0 whenever anything in it is dead).
    pub live_below: f64,
    pub tuning: CopyTuning,
    /// The time of the pass: markers carry it, and a pack must be older than [`ORPHAN_REUSE`]
    /// by it (a recent pack may be a dedupe base of a backup being written).
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RepackReport {
    /// Packs whose live blocks moved; retention deletes them after the grace period.
    pub packs_superseded: u64,
    pub manifests_rewritten: u64,
    /// Plaintext bytes of dead blocks in the superseded packs.
    pub dead_bytes: u64,
    /// Sealed bytes of the new packs and indexes.
    pub bytes_written: u64,
}

/// Live plaintext bytes and all plaintext bytes of one pack.
#[derive(Default)]
struct Usage {
    live: u64,
    total: u64,
}

/// Repacks the mostly-dead packs named by `kept` (the manifests retention keeps, the only ones
/// whose blocks are live). `listed` holds when each pack's objects were last written, as listed:
/// a pack not listed is not touched.
pub async fn repack(
    loc: &Location,
    kept: &[Manifest],
    listed: &HashMap<PackId, DateTime<Utc>>,
    opts: RepackOptions,
) -> Result<RepackReport, FormatError> {
    let mut report = RepackReport::default();
    if opts.live_below <= 0.0 {
        return Ok(report);
    }
    let cache = IndexCache::new(loc.clone());
    let usage = usage(&cache, kept).await?;
    let doomed: HashSet<PackId> = usage
        .iter()
        .filter(|(id, u)| {
            let settled = listed
                .get(*id)
                .is_some_and(|t| *t < opts.now - ORPHAN_REUSE);
            settled && u.total > 0 && (u.live as f64) < opts.live_below * u.total as f64
        })
        .map(|(id, _)| *id)
        .collect();
    if doomed.is_empty() {
        return Ok(report);
    }
    for id in &doomed {
        let key = layout::superseded_marker(loc.service(), id, opts.now.timestamp());
        loc.region().put(&key, Bytes::new()).await?;
        report.dead_bytes += usage[id].total - usage[id].live;
    }
    report.packs_superseded = doomed.len() as u64;
    let staying: Vec<PackId> = usage
        .keys()
        .filter(|id| !doomed.contains(*id))
        .copied()
        .collect();
    let mut known = KnownBlocks::of_packs(&cache, staying).await?;
    for m in kept {
        if !m.packs.iter().any(|p| doomed.contains(p)) {
            continue;
        }
        let moved = copy_packed_onto(loc, loc, m, &known, opts.tuning, &|_, _| {}).await?;
        // A manifest retention deleted meanwhile (another pass) is not brought back.
        let key = layout::manifest(loc.service(), &m.backup_name);
        if loc.region().head(&key).await?.is_none() {
            continue;
        }
        loc.commit_manifest(&moved.manifest).await?;
        report.manifests_rewritten += 1;
        report.bytes_written += moved.bytes_written;
        tracing::info!(service = loc.service(), region = loc.region().name(), backup = %m.backup_name,
            bytes = moved.bytes_written, "repacked backup");
        for id in &moved.manifest.packs {
            if !m.packs.contains(id) {
                known.add_pack(*id, &*cache.get(id).await?);
            }
        }
    }
    Ok(report)
}

/// How much of each pack the kept v2 manifests name.
async fn usage(
    cache: &IndexCache,
    kept: &[Manifest],
) -> Result<HashMap<PackId, Usage>, FormatError> {
    let mut live: HashMap<PackId, HashSet<u32>> = HashMap::new();
    for m in kept.iter().filter(|m| m.is_packed()) {
        for f in &m.files {
            for e in &f.extents {
                if let Some(id) = m.packs.get(e.pack() as usize) {
                    live.entry(*id)
                        .or_default()
                        .extend(e.first()..e.first().saturating_add(e.count()));
                }
            }
        }
    }
    let mut out = HashMap::new();
    for (id, blocks) in live {
        let index = cache.get(&id).await?;
        let mut u = Usage::default();
        for n in 0..index.block_count() {
            let len = u64::from(index.block(n).map_or(0, |(_, len)| len));
            u.total += len;
            if blocks.contains(&n) {
                u.live += len;
            }
        }
        out.insert(id, u);
    }
    Ok(out)
}

/// The grace period of a superseded pack runs from its newest marker.
pub fn superseded_since(at: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(at, 0)
}
