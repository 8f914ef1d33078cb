//! Primary backups as the control plane sees them: taken by the engine, indexed in the catalog the
//! moment they commit, and followed at once by one copy job per additional backup region.

use std::collections::BTreeMap;
use std::time::Instant;

use btar_catalog::{
    BackupRecord, CopyJob, CopyJobFilter, CreatedBy, JobKind, JobState, NewCopyJob, Role,
};
use btar_engine::{BackupOptions, BackupPoint, NoProgress, Progress, Window};
use btar_format::{BackupWriter, Manifest};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::ControlPlane;
use crate::error::{ControlError, Result};
use crate::locations::Place;

/// A committed primary backup and the copy jobs it started.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"service": "orders", "region": "aws-eu-west-1", "backup_name": "20261130T030000123Z",
    "logical_bytes": 1591738368, "new_chunks": 2210, "new_stored_bytes": 9437184, "new_objects": 2,
    "seconds": 9.1, "mb_per_s": 174.9, "copy_job_ids": ["01jdxq3m6f2k9v7c4r8t5y1w0a"]})))]
pub struct BackupTaken {
    pub service: String,
    pub region: String,
    pub backup_name: String,
    pub logical_bytes: u64,
    /// New blocks (format v2) or chunks (v1) this backup stored.
    pub new_chunks: u64,
    pub new_stored_bytes: u64,
    /// Objects it wrote (packs and their indexes, or v1 chunks), its manifest not counted.
    pub new_objects: u64,
    pub seconds: f64,
    pub mb_per_s: f64,
    pub copy_job_ids: Vec<String>,
}

/// A backup's state in one location.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BackupState {
    /// Committed there (the backup, or its copy).
    Completed,
    /// Its copy job is queued or running.
    Pending,
    /// Its newest copy job failed.
    Failed,
    /// Never copied there (taken before the region was added), or expired there.
    NotCopied,
    /// Expired by retention in the primary location; copies remain.
    Expired,
    /// Its manifest cannot be read.
    Damaged,
    /// The location could not be read.
    Unreachable,
}

impl BackupState {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupState::Completed => "COMPLETED",
            BackupState::Pending => "PENDING",
            BackupState::Failed => "FAILED",
            BackupState::NotCopied => "NOT_COPIED",
            BackupState::Expired => "EXPIRED",
            BackupState::Damaged => "DAMAGED",
            BackupState::Unreachable => "UNREACHABLE",
        }
    }
}

impl std::fmt::Display for BackupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One backup's state in one additional backup region (Aiven's `additional_regions` entry).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LocationStatus {
    pub cloud: String,
    pub region: String,
    /// Set when no new copies go to this location (region removed from
    /// `additional_backup_regions`, or the service deleted); what it holds stays until retention.
    pub paused: bool,
    pub pause_reason: Option<String>,
    /// COMPLETED (copy committed), PENDING (job queued or running), FAILED, NOT_COPIED (taken before
    /// the region was added, or expired there), DAMAGED (manifest unreadable) or UNREACHABLE.
    pub status: BackupState,
    /// When retention removes the copy here; `null` without a plan, or for the newest backup of a
    /// location that still receives backups (never expired).
    pub expires_at: Option<DateTime<Utc>>,
    /// Why the backup is DAMAGED or the location UNREACHABLE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BackupEntry {
    pub backup_name: String,
    pub backup_time: DateTime<Utc>,
    pub data_size: u64,
    /// The home region (the primary location).
    pub storage_location: String,
    /// The backup in the primary location: COMPLETED, EXPIRED (retention removed it there; copies
    /// remain), DAMAGED or UNREACHABLE.
    pub status: BackupState,
    /// When retention removes it from the primary location (see `LocationStatus::expires_at`).
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub incremental: bool,
    pub start_lsn: Option<String>,
    pub stop_lsn: Option<String>,
    pub additional_regions: Vec<LocationStatus>,
}

/// The recoverable window of one location.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PitrRange {
    pub cloud: String,
    pub region: String,
    pub pitr_range_start: Option<DateTime<Utc>>,
    pub pitr_range_end: Option<DateTime<Utc>>,
    pub paused: bool,
    pub pause_reason: Option<String>,
    /// Set when the location could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Pitr {
    pub primary_region: PitrRange,
    pub additional_regions: Vec<PitrRange>,
}

/// Aiven's `GET …/service/{service}/backups` shape. A deleted service is listed too (its backups
/// stay until retention), with `deleted_at` set.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"backups": [{"backup_name": "20261130T030000123Z", "backup_time": "2026-11-30T03:00:09Z",
    "data_size": 1591738368, "storage_location": "aws-eu-west-1", "status": "COMPLETED",
    "expires_at": null, "incremental": true, "start_lsn": "0/9000028", "stop_lsn": "0/9000138",
    "additional_regions": [{"cloud": "aws-eu-central-1", "region": "aws-eu-central-1", "paused": false,
    "pause_reason": null, "status": "COMPLETED", "expires_at": null}]}],
    "pitr": {"primary_region": {"cloud": "aws-eu-west-1", "region": "aws-eu-west-1",
    "pitr_range_start": "2026-11-23T03:00:09Z", "pitr_range_end": "2026-11-30T07:04:51Z", "paused": false,
    "pause_reason": null}, "additional_regions": [{"cloud": "aws-eu-central-1", "region": "aws-eu-central-1",
    "pitr_range_start": "2026-11-16T03:01:20Z", "pitr_range_end": "2026-11-30T07:04:50Z", "paused": false,
    "pause_reason": null}]}})))]
pub struct BackupsView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
    pub backups: Vec<BackupEntry>,
    pub pitr: Pitr,
}

impl ControlPlane {
    /// Aiven's lag report of `service` over `period`: per destination region, the series of
    /// `LagSeries`. A region enabled but not yet sampled still gets its (empty) series, so a chart
    /// shows it.
    pub async fn lag_report(
        &self,
        service: &str,
        period: btar_catalog::Period,
    ) -> Result<btar_catalog::LagReport> {
        let svc = self.service(service).await?;
        let mut report = self.catalog().lag_report(&svc.name, period).await?;
        for region in svc.additional_backup_regions() {
            report.metrics.entry(region).or_default();
        }
        Ok(report)
    }

    /// Takes a primary backup of `service` now, indexes it and queues its copies.
    pub async fn take_backup(&self, service: &str, created_by: CreatedBy) -> Result<BackupTaken> {
        // A `'static` reporter: a temporary's borrow would make the futures that hold it fail
        // axum's higher-ranked `Send` check.
        self.take_backup_with(service, created_by, &NoProgress)
            .await
    }

    /// [`Self::take_backup`] reporting progress (for the CLI's bar).
    pub async fn take_backup_with(
        &self,
        service: &str,
        created_by: CreatedBy,
        progress: &dyn Progress,
    ) -> Result<BackupTaken> {
        let svc = self.service(service).await?;
        let engine = self.engine(&svc)?;
        let agent = self
            .agent_settings(&svc)
            .ok_or_else(|| ControlError::NoAgent(service.into()))?;
        let loc = self.home_location_for_backup(&svc).await?;
        let writer = BackupWriter::new(loc, self.config().writer_options());
        let started = Instant::now();
        let opts = BackupOptions {
            parallel_files: self.config().storage.parallel_files,
            ..Default::default()
        };
        let manifest = engine.backup(&writer, &agent, opts, progress).await;
        let manifest = match manifest {
            Ok(m) => m,
            Err(e) => {
                let _ = self
                    .catalog()
                    .append_event(Some(service), "backup_failed", &e.to_string())
                    .await;
                return Err(e.into());
            }
        };
        let secs = started.elapsed().as_secs_f64();
        self.index_backup(&manifest, &svc.cloud, Role::Primary)
            .await?;
        let jobs = self
            .enqueue_copies(&svc, &manifest, created_by, None)
            .await?;
        let _ = self
            .catalog()
            .append_event(
                Some(service),
                "backup_committed",
                &format!("backup {} committed in {}", manifest.backup_name, svc.cloud),
            )
            .await;
        Ok(BackupTaken {
            service: service.into(),
            region: svc.cloud.clone(),
            backup_name: manifest.backup_name.clone(),
            logical_bytes: manifest.stats.logical_bytes,
            new_chunks: manifest.stats.new_chunks,
            new_stored_bytes: manifest.stats.new_stored_bytes,
            new_objects: manifest.stats.new_objects,
            seconds: secs,
            mb_per_s: manifest.stats.logical_bytes as f64 / 1e6 / secs.max(1e-9),
            copy_job_ids: jobs,
        })
    }

    /// Takes a backup in the background (enabling a region with no recent backup, the API's
    /// on-demand backup); a failure is logged and recorded as an event.
    pub fn spawn_backup(&self, service: &str) {
        let (cp, service) = (self.clone(), service.to_string());
        tokio::spawn(async move {
            if let Err(e) = cp.take_backup(&service, CreatedBy::OnDemand).await {
                tracing::warn!(service, error = %e, "background backup failed");
            }
        });
    }

    pub(crate) async fn index_backup(&self, m: &Manifest, region: &str, role: Role) -> Result<()> {
        self.catalog()
            .upsert_backup(&BackupRecord {
                service: m.service.clone(),
                region: region.into(),
                backup_name: m.backup_name.clone(),
                backup_time: m.completed_at,
                data_size: i64::try_from(m.stats.logical_bytes).unwrap_or(i64::MAX),
                stored_size: i64::try_from(m.stats.new_stored_bytes).unwrap_or(i64::MAX),
                role,
                committed_at: self.catalog().now(),
            })
            .await?;
        Ok(())
    }

    /// One copy job per additional backup region of the service (idempotent per backup and region).
    pub(crate) async fn enqueue_copies(
        &self,
        svc: &btar_catalog::Service,
        m: &Manifest,
        created_by: CreatedBy,
        backup_job_id: Option<String>,
    ) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for dst in svc.additional_backup_regions() {
            let (id, _) = self
                .enqueue_copy(svc, &dst, m, created_by, backup_job_id.clone())
                .await?;
            ids.push(id);
        }
        Ok(ids)
    }

    /// The copy job of backup `m` to `dst`, created unless it exists; `true` when created.
    pub(crate) async fn enqueue_copy(
        &self,
        svc: &btar_catalog::Service,
        dst: &str,
        m: &Manifest,
        created_by: CreatedBy,
        backup_job_id: Option<String>,
    ) -> Result<(String, bool)> {
        let (job, created) = self
            .catalog()
            .create_copy_job(&NewCopyJob {
                service: svc.name.clone(),
                kind: JobKind::Backup,
                source_region: svc.cloud.clone(),
                destination_region: dst.into(),
                backup_name: m.backup_name.clone(),
                destination_backup_name: None,
                created_by,
                created_by_backup_job_id: backup_job_id,
                backup_size_in_bytes: i64::try_from(m.stats.logical_bytes).ok(),
            })
            .await?;
        if created {
            self.inner.jobs_created.notify_waiters();
        }
        Ok((job.copy_job_id, created))
    }

    /// Every backup of the service in every location that holds any (see [`Self::locations_of`]),
    /// with its state and expiry in each, and each location's PITR window. A deleted service is
    /// listed as well: its backups are kept until retention.
    pub async fn backups_view(&self, service: &str) -> Result<BackupsView> {
        let svc = self.service_of_record(service).await?;
        let plan = self.config().plan(&svc.plan).ok();
        let provider = |r: &str| {
            self.config()
                .region(r)
                .map(|c| c.provider.clone())
                .unwrap_or_default()
        };
        let mut jobs: BTreeMap<String, Vec<CopyJob>> = BTreeMap::new();
        for j in self
            .catalog()
            .list_copy_jobs(&CopyJobFilter {
                service: Some(service.into()),
                ..Default::default()
            })
            .await?
        {
            jobs.entry(j.destination_region.clone())
                .or_default()
                .push(j);
        }
        let mut read = Vec::new();
        for place in self.locations_of(&svc).await? {
            let days = plan.map(|p| match place.role {
                Role::Primary => p.retention_days,
                Role::Secondary => p.secondary_retention_days,
            });
            let found = match self.location(service, &place.region).await {
                Ok(loc) => match self.engine_of(&loc) {
                    Ok(engine) => engine
                        .window(&loc)
                        .await
                        .map(|(w, ms)| {
                            let ms = ms
                                .into_iter()
                                .map(|m| {
                                    let point = engine.backup_point(&m);
                                    (m, point)
                                })
                                .collect();
                            Some((w, ms))
                        })
                        .map_err(ControlError::from),
                    Err(e) => Err(e),
                },
                // Nothing stored there yet (a service never backed up, a copy not yet made).
                Err(ControlError::Format(btar_format::FormatError::NoLocation { .. })) => Ok(None),
                Err(e) => Err(e),
            };
            // A former location with nothing left in it (retention removed its last backup, or
            // no copy was ever made there) is no longer one of the service's locations.
            let emptied = matches!(&found, Ok(None))
                || matches!(&found, Ok(Some((w, _))) if w.backups.is_empty() && w.damaged.is_empty());
            if !place.receiving && place.role == Role::Secondary && emptied {
                continue;
            }
            read.push(PlaceRead { found, days, place });
        }
        // Every backup any location holds, by name (names sort by time).
        let mut names: BTreeMap<String, Option<(Manifest, Option<BackupPoint>)>> = BTreeMap::new();
        for r in &read {
            if let Ok(Some((w, ms))) = &r.found {
                for (m, meta) in ms {
                    names
                        .entry(m.backup_name.clone())
                        .or_insert_with(|| Some((m.clone(), meta.clone())));
                }
                for d in &w.damaged {
                    names.entry(d.backup_name.clone()).or_insert(None);
                }
            }
        }
        let cell = |r: &PlaceRead, name: &str| -> Cell {
            let (w, ms) = match &r.found {
                Err(e) => return Cell::status(BackupState::Unreachable, None, Some(e.to_string())),
                Ok(None) => return Cell::status(BackupState::NotCopied, None, None),
                Ok(Some(f)) => f,
            };
            if let Some(d) = w.damaged.iter().find(|d| d.backup_name == name) {
                return Cell::status(BackupState::Damaged, None, Some(d.reason.clone()));
            }
            let Some(i) = ms.iter().position(|(m, _)| m.backup_name == name) else {
                return Cell::status(BackupState::NotCopied, None, None);
            };
            let newest = i + 1 == ms.len();
            let expires_at = r.days.and_then(|d| {
                (!newest || !r.place.receiving)
                    .then(|| ms[i].0.completed_at + TimeDelta::days(d.into()))
            });
            Cell::status(BackupState::Completed, expires_at, None)
        };
        let home = &read[0];
        let backups = names
            .iter()
            .map(|(name, found)| {
                let additional_regions = read[1..]
                    .iter()
                    .map(|r| {
                        let mut c = cell(r, name.as_str());
                        if c.status == BackupState::NotCopied {
                            // The newest job tells a queued, running or failed copy.
                            let job = jobs
                                .get(&r.place.region)
                                .and_then(|js| js.iter().find(|j| j.backup_name == *name));
                            c.status = match job.map(|j| j.state) {
                                Some(JobState::Failed | JobState::Partial) => BackupState::Failed,
                                Some(JobState::Created | JobState::Running) => BackupState::Pending,
                                _ => BackupState::NotCopied,
                            };
                        }
                        LocationStatus {
                            cloud: provider(&r.place.region),
                            region: r.place.region.clone(),
                            paused: r.place.pause_reason.is_some(),
                            pause_reason: r.place.pause_reason.clone(),
                            status: c.status,
                            expires_at: c.expires_at,
                            reason: c.reason,
                        }
                    })
                    .collect();
                let mut primary = cell(home, name.as_str());
                if primary.status == BackupState::NotCopied {
                    primary.status = BackupState::Expired;
                }
                let home_index = match &home.found {
                    Ok(Some((_, ms))) => ms.iter().position(|(m, _)| m.backup_name == *name),
                    _ => None,
                };
                BackupEntry {
                    backup_name: name.clone(),
                    backup_time: found
                        .as_ref()
                        .map(|(m, _)| m.completed_at)
                        .or_else(|| btar_format::time_of_backup_name(name))
                        .unwrap_or_default(),
                    data_size: found.as_ref().map_or(0, |(m, _)| m.stats.logical_bytes),
                    storage_location: svc.cloud.clone(),
                    status: primary.status,
                    expires_at: primary.expires_at,
                    reason: primary.reason,
                    // Every backup is complete on its own; it is incremental in what it stored
                    // when it reused chunks of an earlier one.
                    incremental: found.as_ref().is_some_and(|(m, _)| {
                        home_index.is_some_and(|i| i > 0) && m.stats.new_chunks < m.stats.chunk_refs
                    }),
                    start_lsn: found
                        .as_ref()
                        .and_then(|(_, p)| p.as_ref().map(|p| p.start.clone())),
                    stop_lsn: found
                        .as_ref()
                        .and_then(|(_, p)| p.as_ref().map(|p| p.stop.clone())),
                    additional_regions,
                }
            })
            .collect();
        let range = |r: &PlaceRead| {
            let w = r
                .found
                .as_ref()
                .ok()
                .and_then(|f| f.as_ref())
                .map(|(w, _)| w);
            PitrRange {
                cloud: provider(&r.place.region),
                region: r.place.region.clone(),
                pitr_range_start: w.and_then(|w| w.earliest),
                pitr_range_end: w.and_then(|w| w.latest),
                paused: r.place.pause_reason.is_some(),
                pause_reason: r.place.pause_reason.clone(),
                error: r.found.as_ref().err().map(|e| e.to_string()),
            }
        };
        Ok(BackupsView {
            deleted_at: svc.deleted_at,
            backups,
            pitr: Pitr {
                primary_region: range(home),
                additional_regions: read[1..].iter().map(range).collect(),
            },
        })
    }
}

/// A location's window and its sound backups (oldest first).
type Read = (Window, Vec<(Manifest, Option<BackupPoint>)>);

/// One location of a service read for the backups view.
struct PlaceRead {
    place: Place,
    /// Retention days of the location under the service's plan.
    days: Option<u32>,
    /// `None`: nothing stored there yet.
    found: Result<Option<Read>>,
}

/// A backup's state in one location, before it becomes a view entry.
struct Cell {
    status: BackupState,
    expires_at: Option<DateTime<Utc>>,
    reason: Option<String>,
}

impl Cell {
    fn status(
        status: BackupState,
        expires_at: Option<DateTime<Utc>>,
        reason: Option<String>,
    ) -> Self {
        Cell {
            status,
            expires_at,
            reason,
        }
    }
}

impl ControlPlane {
    /// Re-indexes every backup of every known service in each of its locations from the stores;
    /// returns `(service, region, backups)` per location read.
    pub async fn rebuild_backups_index(&self) -> Result<Vec<(String, String, usize)>> {
        let mut out = Vec::new();
        for svc in self.catalog().list_services().await? {
            let mut places = vec![(svc.cloud.clone(), Role::Primary)];
            places.extend(
                svc.additional_backup_regions()
                    .into_iter()
                    .map(|r| (r, Role::Secondary)),
            );
            for (region, role) in places {
                let Ok(loc) = self.location(&svc.name, &region).await else {
                    continue;
                };
                let names = loc.list_backups().await?;
                for name in &names {
                    let m = loc.read_manifest(name).await?;
                    self.index_backup(&m, &region, role).await?;
                }
                out.push((svc.name.clone(), region, names.len()));
            }
        }
        Ok(out)
    }
}
