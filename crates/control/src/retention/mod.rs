//! Retention per location (AWS lifecycle, Alibaba's 7–1825 days): each location expires its own
//! backups by its own period, so a secondary keeps its copies for their full period even after the
//! primary expired them or the service was deleted. The newest backup of a location still receiving
//! backups is never expired. Then the log files older than the oldest kept backup's start, and the
//! chunks no manifest names, are deleted — chunks only after a grace period longer than any backup,
//! so a backup or copy that is writing chunks now (its manifest not yet committed) never loses them.
//!
//! Planned, then executed: [`plan`] decides from listed facts alone (and says why), [`execute`]
//! lists and applies; the engine places logs and backups in its log sequence.

mod execute;
mod plan;

use btar_catalog::Role;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ControlPlane;
use crate::error::Result;

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
    /// A plan only: nothing was deleted (`btar expire --dry-run`).
    pub dry_run: bool,
    /// Why each backup goes, as planned.
    pub reasons: Vec<String>,
    /// The log files and content objects (chunks, packs, indexes, markers) deleted, or planned.
    pub log_keys: Vec<String>,
    pub chunk_keys: Vec<String>,
    /// What the pass repacked (packs mostly unused by the backups kept).
    pub repacked: btar_format::repack::RepackReport,
}

impl ControlPlane {
    /// Applies every plan's retention to every location of every service (see
    /// [`Self::locations_of`]): deleted services, and regions no longer configured, included.
    pub async fn apply_retention(&self) -> Result<Vec<Expired>> {
        self.apply_retention_at(self.catalog().now()).await
    }

    /// [`Self::apply_retention`] as if it were `now` (tests and `btar retention run --now` move time).
    pub async fn apply_retention_at(&self, now: DateTime<Utc>) -> Result<Vec<Expired>> {
        self.retention_pass(now, None, None, false).await
    }

    /// One pass over `only_service`'s (or every service's) locations, `only_region`'s (or all);
    /// `dry_run` plans without deleting or repacking.
    pub(crate) async fn retention_pass(
        &self,
        now: DateTime<Utc>,
        only_service: Option<&str>,
        only_region: Option<&str>,
        dry_run: bool,
    ) -> Result<Vec<Expired>> {
        let mut out = Vec::new();
        for svc in self.catalog().list_all_services().await? {
            if only_service.is_some_and(|s| s != svc.name) {
                continue;
            }
            let Ok(plan) = self.config().plan(&svc.plan) else {
                continue; // no plan: kept until deleted by hand
            };
            for place in self.locations_of(&svc).await? {
                if only_region.is_some_and(|r| r != place.region) {
                    continue;
                }
                let keep_days = match place.role {
                    Role::Primary => plan.retention_days,
                    Role::Secondary => plan.secondary_retention_days,
                };
                let policy = plan::Policy {
                    keep_days,
                    receiving: place.receiving,
                };
                let region = place.region.as_str();
                match self.location(&svc.name, region).await {
                    Ok(loc) => {
                        let engine = self.engine_of(&loc)?;
                        let how = execute::Pass {
                            now,
                            dry_run,
                            repack: self.repack_options(now),
                        };
                        let e = execute::expire_location(&loc, engine, policy, how).await?;
                        if !dry_run {
                            for b in &e.backups {
                                self.catalog().delete_backup(&svc.name, region, b).await?;
                            }
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

    fn repack_options(&self, now: DateTime<Utc>) -> btar_format::repack::RepackOptions {
        let cfg = self.config();
        btar_format::repack::RepackOptions {
            live_below: cfg.storage.repack_live_percent as f64 / 100.0,
            tuning: btar_format::copy::CopyTuning {
                pack_size: cfg.writer_options().pack_size,
                frame_size: cfg.writer_options().frame_size,
                ..Default::default()
            },
            now,
        }
    }
}
