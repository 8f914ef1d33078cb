//! Primary backups as the control plane sees them: taken by the engine, indexed in the catalog the
//! moment they commit, and followed at once by one copy job per additional backup region.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use btar_catalog::{BackupRecord, CreatedBy, JobKind, NewCopyJob, Role};
use btar_engine_pg::backup::BackupOptions;
use btar_format::{BackupWriter, Manifest};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ControlPlane;
use crate::error::{ControlError, Result};

/// A committed primary backup and the copy jobs it started.
#[derive(Debug, Clone, Serialize)]
pub struct BackupTaken {
    pub service: String,
    pub region: String,
    pub backup_name: String,
    pub logical_bytes: u64,
    pub new_chunks: u64,
    pub new_stored_bytes: u64,
    pub seconds: f64,
    pub mb_per_s: f64,
    pub copy_job_ids: Vec<String>,
}

/// One backup's state in one additional backup region (Aiven's `additional_regions` entry).
#[derive(Debug, Clone, Serialize)]
pub struct LocationStatus {
    pub cloud: String,
    pub region: String,
    pub paused: bool,
    pub pause_reason: Option<String>,
    /// COMPLETED (copy committed), PENDING (job queued or running), FAILED, NOT_COPIED (taken before
    /// the region was added, or expired there) or UNREACHABLE.
    pub status: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupEntry {
    pub backup_name: String,
    pub backup_time: DateTime<Utc>,
    pub data_size: u64,
    pub storage_location: String,
    pub incremental: bool,
    pub start_lsn: Option<String>,
    pub stop_lsn: Option<String>,
    pub additional_regions: Vec<LocationStatus>,
}

/// The recoverable window of one location.
#[derive(Debug, Clone, Serialize)]
pub struct PitrRange {
    pub cloud: String,
    pub region: String,
    pub pitr_range_start: Option<DateTime<Utc>>,
    pub pitr_range_end: Option<DateTime<Utc>>,
    /// Set when the location could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pitr {
    pub primary_region: PitrRange,
    pub additional_regions: Vec<PitrRange>,
}

/// Aiven's `GET …/service/{service}/backups` shape.
#[derive(Debug, Clone, Serialize)]
pub struct BackupsView {
    pub backups: Vec<BackupEntry>,
    pub pitr: Pitr,
}

/// Callbacks for a progress bar: total bytes once known, then bytes read so far.
pub type ProgressHook<'a> = &'a (dyn Fn(u64) + Send + Sync);

/// A `'static` hook for callers without a bar: a temporary closure's borrow would make the futures
/// that hold it fail axum's higher-ranked `Send` check.
pub(crate) const NO_PROGRESS: ProgressHook<'static> = &|_| {};

impl ControlPlane {
    /// Takes a primary backup of `service` now, indexes it and queues its copies.
    pub async fn take_backup(&self, service: &str, created_by: CreatedBy) -> Result<BackupTaken> {
        self.take_backup_with(service, created_by, NO_PROGRESS, NO_PROGRESS)
            .await
    }

    /// [`Self::take_backup`] reporting progress (for the CLI's bar).
    pub async fn take_backup_with(
        &self,
        service: &str,
        created_by: CreatedBy,
        on_total: ProgressHook<'_>,
        on_read: ProgressHook<'_>,
    ) -> Result<BackupTaken> {
        let svc = self.service(service).await?;
        let pg = self
            .pg_settings(&svc)
            .ok_or_else(|| ControlError::NoAgent(service.into()))?;
        let loc = self.home_location_for_backup(&svc).await?;
        let writer = BackupWriter::new(loc, self.config().writer_options());
        let stats = writer.stats();
        let started = Instant::now();
        let opts = BackupOptions {
            parallel_files: self.config().storage.parallel_files,
            ..Default::default()
        };
        let manifest = {
            let run = btar_engine_pg::backup::run(&writer, &pg, opts, on_total);
            tokio::pin!(run);
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tokio::select! {
                    r = &mut run => break r,
                    _ = tick.tick() => on_read(stats.logical_bytes.load(Ordering::Relaxed)),
                }
            }
        };
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

    /// Every backup of the service with its state in each location, and each location's PITR window.
    pub async fn backups_view(&self, service: &str) -> Result<BackupsView> {
        let svc = self.service(service).await?;
        // A service never backed up has no location yet: no backups, empty windows.
        let (home_window, manifests) = match self.location(service, &svc.cloud).await {
            Ok(home) => {
                let (w, m, _) = btar_engine_pg::restore::window(&home).await?;
                (Some(w), m)
            }
            Err(ControlError::Format(btar_format::FormatError::NoLocation { .. })) => {
                (None, vec![])
            }
            Err(e) => return Err(e),
        };
        let provider = |r: &str| {
            self.config()
                .region(r)
                .map(|c| c.provider.clone())
                .unwrap_or_default()
        };
        let mut secondaries = Vec::new();
        let mut ranges = Vec::new();
        for r in svc.additional_backup_regions() {
            let found = async {
                let loc = self.location(service, &r).await?;
                let (w, _, _) = btar_engine_pg::restore::window(&loc).await?;
                Ok::<_, ControlError>(w)
            }
            .await;
            let jobs = self
                .catalog()
                .list_copy_jobs(&btar_catalog::CopyJobFilter {
                    service: Some(service.into()),
                    destination_region: Some(r.clone()),
                    ..Default::default()
                })
                .await?;
            ranges.push(PitrRange {
                cloud: provider(&r),
                region: r.clone(),
                pitr_range_start: found.as_ref().ok().and_then(|w| w.earliest),
                pitr_range_end: found.as_ref().ok().and_then(|w| w.latest),
                error: found.as_ref().err().map(|e| e.to_string()),
            });
            secondaries.push((r, found.ok(), jobs));
        }
        let backups = manifests
            .iter()
            .enumerate()
            .map(|(i, (m, meta))| BackupEntry {
                backup_name: m.backup_name.clone(),
                backup_time: m.completed_at,
                data_size: m.stats.logical_bytes,
                storage_location: svc.cloud.clone(),
                // Every backup is complete on its own; it is incremental in what it stored when
                // it reused chunks of an earlier one.
                incremental: i > 0 && m.stats.new_chunks < m.stats.chunk_refs,
                start_lsn: Some(meta.start_lsn.clone()),
                stop_lsn: Some(meta.stop_lsn.clone()),
                additional_regions: secondaries
                    .iter()
                    .map(|(r, window, jobs)| {
                        let job = jobs.iter().find(|j| j.backup_name == m.backup_name);
                        let status = match (window, job) {
                            (Some(w), _) if w.backups.contains(&m.backup_name) => "COMPLETED",
                            (None, _) => "UNREACHABLE",
                            (_, Some(j)) if j.state == btar_catalog::JobState::Failed => "FAILED",
                            (_, Some(_)) => "PENDING",
                            (_, None) => "NOT_COPIED",
                        };
                        LocationStatus {
                            cloud: provider(r),
                            region: r.clone(),
                            paused: false,
                            pause_reason: None,
                            status: status.into(),
                        }
                    })
                    .collect(),
            })
            .collect();
        Ok(BackupsView {
            backups,
            pitr: Pitr {
                primary_region: PitrRange {
                    cloud: provider(&svc.cloud),
                    region: svc.cloud.clone(),
                    pitr_range_start: home_window.as_ref().and_then(|w| w.earliest),
                    pitr_range_end: home_window.as_ref().and_then(|w| w.latest),
                    error: None,
                },
                additional_regions: ranges,
            },
        })
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
