//! Retention per location (AWS lifecycle, Alibaba's 7–1825 days): each location expires its own
//! backups by its own period, so a secondary keeps its copies for their full period even after the
//! primary expired them or the service was deleted. The newest backup of a location is never expired.
//! Then the log files older than the oldest kept backup's start, and the chunks no manifest names,
//! are deleted — chunks only after a grace period longer than any backup, so a backup or copy that
//! is writing chunks now (its manifest not yet committed) never loses them.

use std::collections::HashSet;

use btar_engine_pg::backup::PgMeta;
use btar_format::{ChunkId, Location, layout};
use chrono::{DateTime, TimeDelta, Utc};
use futures::TryStreamExt;
use serde::Serialize;

use crate::ControlPlane;
use crate::error::Result;

/// Unreferenced chunks younger than this are kept (an uncommitted backup may be using them).
pub const CHUNK_GRACE: TimeDelta = TimeDelta::hours(48);

#[derive(Debug, Clone, Default, Serialize)]
pub struct Expired {
    pub service: String,
    pub region: String,
    pub backups: Vec<String>,
    pub logs: u64,
    pub chunks: u64,
}

impl ControlPlane {
    /// Applies every plan's retention to every location of every service, deleted ones included.
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
            // A deleted service keeps its regions of record so its copies still expire on time.
            let mut places = vec![(svc.cloud.clone(), plan.retention_days)];
            places.extend(
                svc.additional_backup_regions()
                    .into_iter()
                    .map(|r| (r, plan.secondary_retention_days)),
            );
            for (region, days) in places {
                match self.location(&svc.name, &region).await {
                    Ok(loc) => {
                        let e = expire_location(&loc, TimeDelta::days(days.into()), now).await?;
                        for b in &e.backups {
                            self.catalog().delete_backup(&svc.name, &region, b).await?;
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

/// Expires the backups of `loc` older than `keep` at `now`, then the logs and chunks they alone needed.
pub async fn expire_location(
    loc: &Location,
    keep: TimeDelta,
    now: DateTime<Utc>,
) -> Result<Expired> {
    let mut out = Expired {
        service: loc.service().into(),
        region: loc.region().name().into(),
        ..Default::default()
    };
    let names = loc.list_backups().await?;
    let mut kept = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let m = loc.read_manifest(name).await?;
        let newest = i + 1 == names.len();
        if !newest && m.completed_at < now - keep {
            loc.delete_manifest(name).await?;
            out.backups.push(name.clone());
        } else {
            kept.push(m);
        }
    }
    if out.backups.is_empty() {
        return Ok(out);
    }
    // Logs before the oldest kept backup's start are needed by no restore that remains.
    if let Some(oldest) = kept.first().and_then(PgMeta::of) {
        let cutoff = &oldest.start_wal[8..];
        let logs: Vec<_> = loc.list_logs().try_collect().await?;
        for l in logs {
            let is_segment = l.name.len() == 24;
            if is_segment && l.name[8..] < *cutoff && l.last_modified < oldest.backup_start_time {
                loc.region()
                    .delete(&loc.log_key(&l.timeline, &l.name))
                    .await?;
                out.logs += 1;
            }
        }
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
