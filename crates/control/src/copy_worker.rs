//! Copy workers: claim a copy job from the catalog, run the replicator on it while heartbeating the
//! lease, and record the outcome and a backup-lag sample. Any number of workers in any number of
//! processes may run: the catalog hands each job to one claimer at a time.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use btar_catalog::{ClaimedJob, CopyJob, JobOutcome, JobProgress, LagSample, Role};
use btar_replicator::{CopyOptions, CopyOutcome, CopyProgress};
use futures::TryStreamExt;
use serde::Serialize;

use crate::ControlPlane;
use crate::error::{ControlError, Result};

/// A finished attempt at one copy job.
#[derive(Debug, Clone, Serialize)]
pub struct CopyRun {
    pub job: CopyJob,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<CopyOutcome>,
}

fn progress_of(p: &CopyProgress) -> JobProgress {
    JobProgress {
        backup_size_in_bytes: None,
        bytes_transferred: i64::try_from(p.bytes_transferred).ok(),
        chunks_total: i64::try_from(p.chunks_total).ok(),
        chunks_copied: i64::try_from(p.chunks_copied).ok(),
    }
}

impl ControlPlane {
    /// Claims and runs one due copy job; `None` when there is none.
    pub async fn run_next_copy_job(&self) -> Result<Option<CopyRun>> {
        let lease = self.lease();
        let Some(claimed) = self.catalog().claim_copy_job(self.owner(), lease).await? else {
            return Ok(None);
        };
        Ok(Some(self.run_claimed(claimed).await?))
    }

    /// Runs due copy jobs until none is left; returns what ran.
    pub async fn drain_copy_jobs(&self) -> Result<Vec<CopyRun>> {
        let mut runs = Vec::new();
        while !self.cancel_token().is_cancelled() {
            match self.run_next_copy_job().await? {
                Some(r) => runs.push(r),
                None => break,
            }
        }
        Ok(runs)
    }

    /// Waits until a job may be due: one was created in this process, or `idle` passed (jobs made
    /// by other processes, retries coming due).
    pub(crate) async fn wait_for_jobs(&self, idle: Duration) {
        tokio::select! {
            _ = self.inner.jobs_created.notified() => {}
            _ = tokio::time::sleep(idle) => {}
            _ = self.cancel_token().cancelled() => {}
        }
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(self.config().server.copy_lease_seconds.max(3))
    }

    async fn run_claimed(&self, claimed: ClaimedJob) -> Result<CopyRun> {
        let ClaimedJob { job, mut lease } = claimed;
        tracing::info!(copy_job_id = %job.copy_job_id, service = %job.service, backup = %job.backup_name,
            from = %job.source_region, to = %job.destination_region, attempt = lease.attempt, "copy job running");
        let latest = Arc::new(Mutex::new(JobProgress::default()));
        let copy = self.copy_for(&job, latest.clone());
        tokio::pin!(copy);
        let mut beat = tokio::time::interval(self.lease() / 3);
        beat.tick().await;
        let result = loop {
            tokio::select! {
                r = &mut copy => break r,
                _ = beat.tick() => {
                    let p = latest.lock().map(|p| p.clone()).unwrap_or_default();
                    if let Err(e) = self.catalog().heartbeat(&mut lease, self.lease(), &p).await {
                        // Another worker owns the job now; stop so we do not race it.
                        tracing::warn!(copy_job_id = %job.copy_job_id, error = %e, "lease lost; abandoning copy");
                        return Err(e.into());
                    }
                }
            }
        };
        let (outcome, copied) = match result {
            Ok(o) => {
                let progress = JobProgress {
                    backup_size_in_bytes: None,
                    bytes_transferred: i64::try_from(o.bytes_transferred).ok(),
                    chunks_total: i64::try_from(o.chunks_total).ok(),
                    chunks_copied: i64::try_from(o.chunks_copied).ok(),
                };
                (JobOutcome::Completed(progress), Some(o))
            }
            Err(e) => {
                let retryable = e.is_retryable();
                tracing::warn!(copy_job_id = %job.copy_job_id, error = %e, retryable, "copy job failed");
                (
                    JobOutcome::Failed {
                        message: e.to_string(),
                        retryable,
                    },
                    None,
                )
            }
        };
        let done = self.catalog().finish_copy_job(&lease, &outcome).await?;
        if let Some(o) = &copied {
            self.after_backup_copy(&done, o).await?;
        } else {
            let _ = self
                .catalog()
                .append_event(
                    Some(&done.service),
                    "copy_failed",
                    &format!(
                        "copy job {} of {} to {} failed: {}",
                        done.copy_job_id,
                        done.backup_name,
                        done.destination_region,
                        done.status_message.as_deref().unwrap_or("")
                    ),
                )
                .await;
        }
        Ok(CopyRun {
            job: done,
            outcome: copied,
        })
    }

    async fn copy_for(
        &self,
        job: &CopyJob,
        latest: Arc<Mutex<JobProgress>>,
    ) -> Result<CopyOutcome> {
        let src = self.location(&job.service, &job.source_region).await?;
        let dst = self
            .secondary_location(&src, &job.destination_region)
            .await?;
        let opts = CopyOptions {
            pack_size: self.config().writer_options().pack_size,
            ..CopyOptions::default()
        };
        let engine = self.engine_of(&src)?;
        let seq = self.log_sequence(&src).await?;
        // A base backup restores only with the WAL from its start to its stop, which the primary
        // archive held before the backup committed: ship the logs first, so the copy's manifest —
        // written last — never names a backup the destination cannot restore. A damaged log this
        // backup does not need is reported on its own and does not hold the copy back.
        let (_, damaged) =
            btar_replicator::copy_logs_skipping_damaged(&src, &dst, &opts, seq.as_ref(), &|_| {})
                .await?;
        let manifest = src.read_manifest(&job.backup_name).await?;
        let needed = engine
            .backup_point(&manifest)
            .map(|p| p.logs)
            .unwrap_or_default();
        for d in damaged {
            if let Some(n) = needed.iter().find(|n| d.key.ends_with(&format!("/{n}"))) {
                return Err(btar_replicator::CopyError::SourceDamaged {
                    region: job.source_region.clone(),
                    key: d.key,
                    reason: format!("log file {n}, which the backup needs: {}", d.reason),
                }
                .into());
            }
            let _ = self
                .catalog()
                .append_event(
                    Some(&job.service),
                    "log_damaged",
                    &format!(
                        "log `{}` in region `{}` is damaged and was not copied to `{}` (backup {} does not need it): {}",
                        d.key, job.source_region, job.destination_region, job.backup_name, d.reason
                    ),
                )
                .await;
        }
        let present: HashSet<String> = dst
            .list_logs()
            .map_ok(|o| o.name)
            .try_collect()
            .await
            .map_err(btar_replicator::CopyError::from)?;
        if let Some(n) = needed.iter().find(|n| !present.contains(*n)) {
            return Err(ControlError::invalid(format!(
                "copy job {}: log file {n}, which backup {} needs, is not in source region `{}`; manifest not copied",
                job.copy_job_id, job.backup_name, job.source_region
            )));
        }
        let record = move |p: &CopyProgress| {
            if let Ok(mut l) = latest.lock() {
                *l = progress_of(p);
            }
        };
        Ok(btar_replicator::copy_backup(&src, &dst, &job.backup_name, &opts, &record).await?)
    }

    /// Indexes the copy and records the backup lag: secondary completion minus primary completion.
    async fn after_backup_copy(&self, job: &CopyJob, o: &CopyOutcome) -> Result<()> {
        let dst = self.location(&job.service, &job.destination_region).await?;
        let m = dst.read_manifest(&job.backup_name).await?;
        self.index_backup(&m, &job.destination_region, Role::Secondary)
            .await?;
        let now = self.catalog().now();
        let lag = (job.completion_date.unwrap_or(now) - m.completed_at)
            .num_milliseconds()
            .max(0) as f64
            / 1000.0;
        self.catalog()
            .record_lag_sample(&LagSample {
                service: job.service.clone(),
                destination_region: job.destination_region.clone(),
                sampled_at: now,
                backup_lag_seconds: Some(lag),
                wal_lag_seconds: None,
                bytes_pending: Some(0),
                latest_recoverable_time: None,
            })
            .await?;
        tracing::info!(copy_job_id = %job.copy_job_id, bytes = o.bytes_transferred,
            chunks = o.chunks_copied, lag_s = lag, "copy job completed");
        Ok(())
    }
}
