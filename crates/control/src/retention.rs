//! Retention per location (AWS lifecycle, Alibaba's 7–1825 days): each location expires its own
//! backups by its own period, so a secondary keeps its copies for their full period even after the
//! primary expired them or the service was deleted. The newest backup of a location is never expired.
//! Then the log files older than the oldest kept backup's start, and the chunks no manifest names,
//! are deleted — chunks only after a grace period longer than any backup, so a backup or copy that
//! is writing chunks now (its manifest not yet committed) never loses them.

use std::collections::HashSet;

use btar_catalog::Role;
use btar_engine::Engine;
use btar_format::{ChunkId, FormatError, Location, layout};
use chrono::{DateTime, TimeDelta, Utc};
use futures::TryStreamExt;
use serde::Serialize;

use crate::ControlPlane;
use crate::error::Result;

/// Unreferenced chunks younger than this are kept (an uncommitted backup may be using them).
pub const CHUNK_GRACE: TimeDelta = TimeDelta::hours(48);

/// Staging files older than this were left by killed writers (a live one renames its file within
/// seconds of its last write).
pub const STAGING_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Debug, Clone, Default, Serialize)]
pub struct Expired {
    pub service: String,
    pub region: String,
    pub backups: Vec<String>,
    pub logs: u64,
    pub chunks: u64,
    /// Staging files of killed writers removed (filesystem regions).
    pub staging: u64,
}

impl ControlPlane {
    /// Applies every plan's retention to every location of every service (see
    /// [`Self::locations_of`]): deleted services, and regions no longer configured, included.
    pub async fn apply_retention(&self) -> Result<Vec<Expired>> {
        self.apply_retention_at(Utc::now()).await
    }

    /// [`Self::apply_retention`] as if it were `now` (tests and `btar retention run --now` move time).
    pub async fn apply_retention_at(&self, now: DateTime<Utc>) -> Result<Vec<Expired>> {
        let mut out = Vec::new();
        for svc in self.catalog().list_all_services().await? {
            let Ok(plan) = self.config().plan(&svc.plan) else {
                continue; // no plan: kept until deleted by hand
            };
            for place in self.locations_of(&svc).await? {
                let days = match place.role {
                    Role::Primary => plan.retention_days,
                    Role::Secondary => plan.secondary_retention_days,
                };
                let region = place.region.as_str();
                match self.location(&svc.name, region).await {
                    Ok(loc) => {
                        let keep = TimeDelta::days(days.into());
                        let engine = self.engine_of(&loc)?;
                        let e = expire_location(&loc, engine, keep, place.receiving, now).await?;
                        for b in &e.backups {
                            self.catalog().delete_backup(&svc.name, region, b).await?;
                        }
                        if !e.backups.is_empty() {
                            tracing::info!(service = %svc.name, region, expired = ?e.backups, "retention");
                        }
                        out.push(e);
                    }
                    Err(e) => {
                        tracing::debug!(service = %svc.name, region, error = %e, "retention skipped")
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Expires the backups of `loc` older than `keep` at `now`, then the logs and chunks they alone
/// needed. The newest backup is kept whatever its age while the location still `receiving`s
/// backups; one that no longer does (a removed region, a deleted service) expires entirely. A
/// damaged manifest is kept and stops chunk collection here (the chunks it names are unknown), not
/// the rest.
pub async fn expire_location(
    loc: &Location,
    engine: &dyn Engine,
    keep: TimeDelta,
    receiving: bool,
    now: DateTime<Utc>,
) -> Result<Expired> {
    let mut out = Expired {
        service: loc.service().into(),
        region: loc.region().name().into(),
        ..Default::default()
    };
    // Best effort: a staging file that cannot be removed (another user's) must not stop retention.
    out.staging = loc
        .region()
        .sweep_staging(&layout::service_prefix(loc.service()), STAGING_GRACE)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(region = loc.region().name(), error = %e, "staging files not swept");
            0
        });
    let names = loc.list_backups().await?;
    let mut kept = Vec::new();
    let mut damaged = 0;
    for (i, name) in names.iter().enumerate() {
        let m = match loc.read_manifest(name).await {
            Ok(m) => m,
            Err(FormatError::BackupNotFound { .. }) => continue,
            Err(
                e @ (FormatError::Damaged { .. }
                | FormatError::WrongKeyOrTampered { .. }
                | FormatError::UnsupportedVersion { .. }),
            ) => {
                tracing::warn!(backup = %name, error = %e, "retention keeps a damaged backup");
                damaged += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let newest = i + 1 == names.len();
        if !(newest && receiving) && m.completed_at < now - keep {
            loc.delete_manifest(name).await?;
            out.backups.push(name.clone());
        } else {
            kept.push(m);
        }
    }
    if out.backups.is_empty() {
        return Ok(out);
    }
    // Logs before the oldest kept backup's start are needed by no restore that remains; with no
    // backup left at all (a location that no longer receives any), no log is needed.
    let seq = engine.log_sequence(kept.last());
    let number = |name: &str| seq.position(name).map(|p| p.number);
    let oldest = kept.first().and_then(|m| {
        let point = engine.backup_point(m)?;
        Some((number(point.logs.first()?)?, point.started_at))
    });
    let all_gone = kept.is_empty() && damaged == 0;
    if oldest.is_some() || all_gone {
        let mut logs: Vec<_> = loc.list_logs().try_collect().await?;
        // Oldest first (filesystem listings are unordered): a pass killed midway then leaves the
        // archive without holes, only a shorter head.
        logs.sort_by_key(|l| (number(&l.name), l.timeline.clone()));
        for l in logs {
            let before = |&(cutoff, started_at): &(u64, DateTime<Utc>)| {
                number(&l.name).is_some_and(|n| n < cutoff) && l.last_modified < started_at
            };
            if oldest.as_ref().map_or(all_gone, before) {
                loc.region()
                    .delete(&loc.log_key(&l.timeline, &l.name))
                    .await?;
                out.logs += 1;
            }
        }
    }
    if damaged > 0 {
        return Ok(out);
    }
    let referenced: HashSet<ChunkId> = kept.iter().flat_map(|m| m.chunk_ids().copied()).collect();
    let mut listing = loc.region().list(&layout::chunks_prefix(loc.service()));
    let mut doomed = Vec::new();
    while let Some(o) = listing.try_next().await? {
        if let Some(id) = layout::parse_chunk_key(&o.key)
            && !referenced.contains(&id)
            && o.last_modified < now - CHUNK_GRACE
        {
            doomed.push(o.key);
        }
    }
    drop(listing);
    for key in doomed {
        loc.region().delete(&key).await?;
        out.chunks += 1;
    }
    Ok(out)
}
