//! Runs one location's retention pass: sweeps staging files, lists what the location holds, asks
//! [`plan`] what goes and applies it — manifests first, then logs oldest first, then chunks — so a
//! pass killed anywhere leaves every remaining backup whole and the archive without holes. What it
//! did not get to waits for the next pass that expires a backup (the plan collects only then).
//! Such a pass then repacks the packs the kept backups barely use ([`btar_format::repack`]); the
//! packs it supersedes go in a later pass, a grace period after.

use btar_engine::{Engine, LogSequence};
use std::collections::{HashMap, HashSet};

use btar_format::repack::{self, RepackOptions};
use btar_format::{FormatError, Location, Manifest, PackId, layout};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;

use super::plan::{
    self, BackupFacts, ChunkFact, FirstLog, ListedBackup, LogFact, Policy, RetentionPlan,
};
use super::{Expired, STAGING_GRACE};
use crate::error::Result;

/// How a pass runs: its time, whether it only plans, and how it repacks.
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    pub now: DateTime<Utc>,
    pub dry_run: bool,
    pub repack: RepackOptions,
}

/// Expires what `policy` lets go in `loc` at `how.now` (see [`plan::plan`]). The engine places logs
/// and backups in its log sequence; the plan itself knows no engine.
pub async fn expire_location(
    loc: &Location,
    engine: &dyn Engine,
    policy: Policy,
    how: Pass,
) -> Result<Expired> {
    let Pass {
        now,
        dry_run,
        repack,
    } = how;
    let mut out = Expired {
        service: loc.service().into(),
        region: loc.region().name().into(),
        dry_run,
        ..Default::default()
    };
    // Best effort: a staging file that cannot be removed (another user's) must not stop retention.
    if !dry_run {
        out.staging = loc
            .region()
            .sweep_staging(&layout::service_prefix(loc.service()), STAGING_GRACE)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(region = loc.region().name(), error = %e, "staging files not swept");
                0
            });
    }
    let manifests = read_manifests(loc).await?;
    let newest = manifests.iter().rev().find_map(|m| m.as_ref().ok());
    let seq = engine.log_sequence(newest);
    let sound: Vec<Manifest> = manifests.iter().filter_map(|m| m.clone().ok()).collect();
    let backups = listed(manifests, engine, seq.as_ref());
    let needs = plan::needs(&backups, policy, now);
    let logs = if needs.logs {
        list_logs(loc, seq.as_ref()).await?
    } else {
        Vec::new()
    };
    let chunks = if needs.chunks {
        list_chunks(loc).await?
    } else {
        Vec::new()
    };
    let plan = plan::plan(&backups, &logs, &chunks, policy, now);
    if dry_run {
        out.backups = plan.backups.iter().map(|b| b.name.clone()).collect();
        out.logs = plan.logs.len() as u64;
        out.chunks = plan.chunks.len() as u64;
        record(&plan, loc, &mut out);
        return Ok(out);
    }
    record(&plan, loc, &mut out);
    apply(loc, &plan, &mut out).await?;
    if needs.chunks && plan.chunks_held_by.is_empty() {
        let expired: HashSet<String> = plan.backups.iter().map(|b| b.name.clone()).collect();
        let mut kept = sound;
        kept.retain(|m| !expired.contains(&m.backup_name));
        // When each pack was last written (its index comes after it), from the listing above.
        let mut written: HashMap<PackId, DateTime<Utc>> = HashMap::new();
        for c in chunks.iter().filter(|c| c.superseded.is_none()) {
            let t = written.entry(c.id).or_insert(c.last_modified);
            *t = (*t).max(c.last_modified);
        }
        out.repacked =
            repack::repack(loc, &kept, &written, RepackOptions { now, ..repack }).await?;
    }
    Ok(out)
}

/// What the plan deletes and why, for the report (printed before anything is deleted).
fn record(plan: &RetentionPlan, loc: &Location, out: &mut Expired) {
    out.reasons = plan
        .backups
        .iter()
        .map(|b| format!("{}: {}", b.name, b.reason))
        .collect();
    out.log_keys = plan
        .logs
        .iter()
        .map(|l| loc.log_key(&l.timeline, &l.name))
        .collect();
    out.chunk_keys = plan.chunks.iter().map(|c| c.key.clone()).collect();
}

async fn apply(loc: &Location, plan: &RetentionPlan, out: &mut Expired) -> Result<()> {
    let (service, region) = (loc.service(), loc.region().name());
    for k in &plan.kept {
        tracing::debug!(service, region, backup = %k.name, why = ?k.reason, "retention keeps");
    }
    for b in &plan.backups {
        loc.delete_manifest(&b.name).await?;
        tracing::info!(service, region, backup = %b.name, reason = %b.reason, "retention expired");
        out.backups.push(b.name.clone());
    }
    for l in &plan.logs {
        loc.region()
            .delete(&loc.log_key(&l.timeline, &l.name))
            .await?;
        let (timeline, log, reason) = (&l.timeline, &l.name, &l.reason);
        tracing::debug!(service, region, timeline, log, %reason, "retention deleted log");
        out.logs += 1;
    }
    // Streamed tails of files now archived, left by a streamer that stopped before its sweep.
    let tails = loc.sweep_superseded_tails().await?;
    if tails > 0 {
        tracing::debug!(
            service,
            region,
            pieces = tails,
            "retention deleted superseded log tails"
        );
    }
    if !plan.chunks_held_by.is_empty() {
        let damaged = &plan.chunks_held_by;
        tracing::info!(
            service,
            region,
            ?damaged,
            "retention collects no chunk: damaged manifests"
        );
    }
    for c in &plan.chunks {
        loc.region().delete(&c.key).await?;
        let (chunk, reason) = (&c.key, &c.reason);
        tracing::debug!(service, region, chunk, %reason, "retention deleted chunk");
        out.chunks += 1;
    }
    Ok(())
}

/// The location's manifests, oldest first; a damaged one by its name. A manifest gone since the
/// listing (another pass, a deletion by hand) is left out, so it protects no older backup as the
/// newest.
async fn read_manifests(loc: &Location) -> Result<Vec<Result<Manifest, String>>> {
    let mut out = Vec::new();
    for name in loc.list_backups().await? {
        let m = match loc.read_manifest(&name).await {
            Ok(m) => m,
            Err(FormatError::BackupNotFound { .. }) => continue,
            Err(
                e @ (FormatError::Damaged { .. }
                | FormatError::WrongKeyOrTampered { .. }
                | FormatError::UnsupportedVersion { .. }),
            ) => {
                tracing::warn!(backup = %name, error = %e, "retention keeps a damaged backup");
                out.push(Err(name));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        out.push(Ok(m));
    }
    Ok(out)
}

/// The plan's facts of each backup: where its restore starts in the log sequence.
fn listed(
    manifests: Vec<Result<Manifest, String>>,
    engine: &dyn Engine,
    seq: &dyn LogSequence,
) -> Vec<ListedBackup> {
    manifests
        .into_iter()
        .map(|m| match m {
            Err(name) => ListedBackup::Damaged { name },
            Ok(m) => ListedBackup::Sound(BackupFacts {
                first_log: engine.backup_point(&m).and_then(|p| {
                    Some(FirstLog {
                        position: seq.position(p.logs.first()?)?.number,
                        started_at: p.started_at,
                    })
                }),
                // Format v1 chunks and v2 packs: both content objects, collected by the same rule.
                chunks: m.chunk_ids().chain(m.packs.iter()).copied().collect(),
                completed_at: m.completed_at,
                name: m.backup_name,
            }),
        })
        .collect()
}

async fn list_logs(loc: &Location, seq: &dyn LogSequence) -> Result<Vec<LogFact>> {
    Ok(loc
        .list_logs()
        .map_ok(|l| LogFact {
            position: seq.position(&l.name).map(|p| p.number),
            timeline: l.timeline,
            name: l.name,
            last_modified: l.last_modified,
        })
        .try_collect()
        .await?)
}

/// Content objects: v1 chunks, and v2 packs with their indexes and superseded markers (all three
/// share the pack's id, so they go together). Objects under those prefixes that are none of these
/// are never deleted.
async fn list_chunks(loc: &Location) -> Result<Vec<ChunkFact>> {
    let mut out = Vec::new();
    type ParseKey = fn(&str) -> Option<btar_format::ChunkId>;
    let prefixes: [(String, ParseKey); 2] = [
        (
            layout::chunks_prefix(loc.service()),
            layout::parse_chunk_key,
        ),
        (layout::packs_prefix(loc.service()), layout::parse_pack_key),
    ];
    for (prefix, parse) in prefixes {
        let mut listing = loc.region().list(&prefix);
        while let Some(o) = listing.try_next().await? {
            if let Some(id) = parse(&o.key) {
                out.push(ChunkFact {
                    key: o.key,
                    id,
                    last_modified: o.last_modified,
                    superseded: None,
                });
            } else if let Some((id, at)) = layout::parse_superseded_key(&o.key) {
                out.push(ChunkFact {
                    superseded: Some(repack::superseded_since(at).unwrap_or(o.last_modified)),
                    key: o.key,
                    id,
                    last_modified: o.last_modified,
                });
            }
        }
    }
    Ok(out)
}
