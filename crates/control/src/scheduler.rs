//! The long-running roles of `btar server`: copy workers, the log shipper, and the scheduler leader
//! that queues missed copies, starts planned backups and applies retention. Every pass is idempotent,
//! so a crash at any point is repaired by the next pass of whichever process leads.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use btar_catalog::{CopyJob, CopyJobFilter, CreatedBy, JobState, Role};
use serde::Serialize;

use crate::ControlPlane;
use crate::error::Result;
use crate::log_shipper::reconcile_interval;
use crate::schedule::Schedule;

/// Which roles this process runs (DESIGN.md, "Roles").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Roles {
    /// Copy workers and log shipping.
    pub replicator: bool,
    /// Queues missed copies, runs plan schedules and retention (one leader at a time).
    pub scheduler: bool,
    /// Copy workers in this process.
    pub workers: usize,
}

impl Default for Roles {
    fn default() -> Self {
        Roles {
            replicator: true,
            scheduler: true,
            workers: 2,
        }
    }
}

const LEADER_LEASE: &str = "scheduler";

impl ControlPlane {
    /// Runs the roles until the cancellation token fires.
    pub async fn run(&self, roles: Roles) -> Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        if roles.replicator {
            for _ in 0..roles.workers.max(1) {
                let cp = self.clone();
                tasks.spawn(async move { cp.copy_worker_loop().await });
            }
            let cp = self.clone();
            tasks.spawn(async move { cp.listen_for_logs().await });
            let cp = self.clone();
            tasks.spawn(async move { cp.log_shipper_loop().await });
        }
        if roles.scheduler {
            let cp = self.clone();
            tasks.spawn(async move { cp.scheduler_loop().await });
        }
        let mut first_error = None;
        while let Some(done) = tasks.join_next().await {
            let r = done.map_err(|e| crate::ControlError::Task(e.to_string()));
            if let Err(e) = r.and_then(|r| r) {
                tracing::error!(error = %e, "a server role stopped");
                first_error.get_or_insert(e);
                self.cancel_token().cancel();
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn copy_worker_loop(&self) -> Result<()> {
        while !self.cancel_token().is_cancelled() {
            match self.run_next_copy_job().await {
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "copy worker"),
            }
            self.wait_for_jobs(Duration::from_secs(2)).await;
        }
        Ok(())
    }

    async fn log_shipper_loop(&self) -> Result<()> {
        let every = reconcile_interval(self.config());
        while !self.cancel_token().is_cancelled() {
            match self.catalog().list_services().await {
                Ok(services) => {
                    for s in services.iter().filter(|s| s.deleted_at.is_none()) {
                        if let Err(e) = self.ship_logs(&s.name).await {
                            tracing::warn!(service = %s.name, error = %e, "log shipping pass");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "log shipping pass"),
            }
            self.sleep(every).await;
        }
        Ok(())
    }

    async fn scheduler_loop(&self) -> Result<()> {
        let every = reconcile_interval(self.config());
        let ttl = every * 3;
        while !self.cancel_token().is_cancelled() {
            match self
                .catalog()
                .try_lead(LEADER_LEASE, self.owner(), ttl)
                .await
            {
                Ok(true) => {
                    if let Err(e) = self.schedule_pass().await {
                        tracing::warn!(error = %e, "scheduler pass");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "scheduler lease"),
            }
            self.sleep(every).await;
        }
        let _ = self.catalog().resign_lead(LEADER_LEASE, self.owner()).await;
        Ok(())
    }

    async fn sleep(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.cancel_token().cancelled() => {}
        }
    }

    /// One scheduler pass: planned backups, missed copies, retention, due drills, alerts.
    pub async fn schedule_pass(&self) -> Result<()> {
        self.run_plans().await?;
        self.queue_missing_copies().await?;
        self.apply_retention().await?;
        // A notification that cannot go out must not stop backups or retention.
        // Drills run inline: the leader's next pass waits for them (they are rare and bounded by
        // their timeout), and their results are alerted in the same pass.
        if let Err(e) = self.run_due_drills().await {
            tracing::warn!(error = %e, "scheduled drills not run");
        }
        if let Err(e) = self.evaluate_alerts().await {
            tracing::warn!(error = %e, "alerts not evaluated");
        }
        Ok(())
    }

    /// Starts the backups whose plan slot has come and that have no backup since that slot.
    async fn run_plans(&self) -> Result<()> {
        let now = self.catalog().now();
        for svc in self.catalog().list_services().await? {
            if svc.deleted_at.is_some()
                || svc.plan.is_empty()
                || self.agent_settings(&svc).is_none()
            {
                continue;
            }
            let Ok(plan) = self.config().plan(&svc.plan) else {
                continue;
            };
            let Ok(schedule) = Schedule::parse(&plan.schedule) else {
                continue;
            };
            let Some(slot) = schedule.last_slot(now) else {
                continue;
            };
            let window = chrono::TimeDelta::minutes(plan.start_window_minutes as i64);
            let last = self
                .catalog()
                .list_backups(&svc.name, Some(&svc.cloud))
                .await?
                .into_iter()
                .map(|b| b.backup_time)
                .max();
            if last.is_some_and(|t| t >= slot) || now > slot + window {
                continue;
            }
            tracing::info!(service = %svc.name, plan = %svc.plan, %slot, "planned backup starting");
            if let Err(e) = self.take_backup(&svc.name, CreatedBy::Plan).await {
                tracing::warn!(service = %svc.name, error = %e, "planned backup failed");
            }
        }
        Ok(())
    }

    /// Queues a copy job for every primary backup a destination lacks that is newer than the newest
    /// one it has (or, for a destination with none, the newest primary backup): copies of backups
    /// taken before a region was added, or already expired there, are not made. A backup whose last
    /// job for a destination ended FAILED for good (or PARTIAL) and that the destination still lacks
    /// gets a new job naming the failed one (`retry_of`, AWS semantics: FAILED is final), once that
    /// retry's backoff has passed. Also indexes the primary location, so the catalog follows the
    /// store even for backups taken by another process.
    pub async fn queue_missing_copies(&self) -> Result<usize> {
        let mut queued = 0;
        for svc in self.catalog().list_services().await? {
            let dsts = svc.additional_backup_regions();
            if svc.deleted_at.is_some() || dsts.is_empty() {
                continue;
            }
            let Ok(home) = self.location(&svc.name, &svc.cloud).await else {
                continue; // no primary location yet
            };
            let primary = home.list_backups().await?;
            let Some(newest) = primary.last() else {
                continue;
            };
            let now = self.catalog().now();
            for dst in dsts {
                // A destination that cannot be read still gets its job for the newest backup: the
                // job fails, is retried with backoff and shows as FAILED — an outage is visible.
                let have: Vec<String> = match self.location(&svc.name, &dst).await {
                    Ok(l) => l.list_backups().await.unwrap_or_else(|e| {
                        tracing::warn!(service = %svc.name, destination = %dst, error = %e, "cannot list destination");
                        vec![]
                    }),
                    Err(crate::ControlError::Format(btar_format::FormatError::NoLocation {
                        ..
                    })) => vec![],
                    Err(e) => {
                        tracing::warn!(service = %svc.name, destination = %dst, error = %e, "cannot open destination");
                        vec![]
                    }
                };
                let have_set: HashSet<&String> = have.iter().collect();
                let jobs = self
                    .catalog()
                    .list_copy_jobs(&CopyJobFilter {
                        service: Some(svc.name.clone()),
                        destination_region: Some(dst.clone()),
                        ..Default::default()
                    })
                    .await?;
                // Newest first: the first job per backup is its latest.
                let mut latest: HashMap<&str, (&CopyJob, i64)> = HashMap::new();
                for j in &jobs {
                    if j.source_region == svc.cloud {
                        latest.entry(j.backup_name.as_str()).or_insert((j, 0)).1 += 1;
                    }
                }
                // Backup names sort by time (backup_name_at), so "newer" is a string comparison.
                let mut wanted: Vec<&String> = match have.last() {
                    Some(last) => primary.iter().filter(|b| *b > last).collect(),
                    None => vec![newest],
                };
                // Copies that failed for good stay wanted while the primary still holds them.
                for b in &primary {
                    let failed = latest
                        .get(b.as_str())
                        .is_some_and(|(j, _)| final_failure(j));
                    if failed && !wanted.contains(&b) {
                        wanted.push(b);
                    }
                }
                for b in wanted.into_iter().filter(|b| !have_set.contains(b)) {
                    if let Some((job, count)) = latest.get(b.as_str()) {
                        if !final_failure(job) || now < self.catalog().retry_due_at(job, *count) {
                            continue; // queued, running, retrying within its attempts, or done
                        }
                        let (retry, created) = self.catalog().create_retry_job(job).await?;
                        if created {
                            tracing::info!(copy_job_id = %retry.copy_job_id, retry_of = %job.copy_job_id,
                                service = %svc.name, backup = %b, destination = %dst, "copy retried by a new job");
                            self.inner.jobs_created.notify_waiters();
                            queued += 1;
                        }
                        continue;
                    }
                    let m = home.read_manifest(b).await?;
                    self.index_backup(&m, &svc.cloud, Role::Primary).await?;
                    // Idempotent: a job that already exists for this backup is not queued again.
                    let (_, created) = self
                        .enqueue_copy(&svc, &dst, &m, CreatedBy::Event, None)
                        .await?;
                    if created {
                        queued += 1;
                    }
                }
            }
        }
        Ok(queued)
    }
}

/// A job that will not run again by itself: FAILED with no attempt left or not retryable, or PARTIAL.
fn final_failure(j: &CopyJob) -> bool {
    matches!(j.state, JobState::Failed | JobState::Partial) && j.next_attempt_at.is_none()
}
