use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::Catalog;
use crate::db::{Backend, delta, get, get_opt_time, get_time, ms, new_id, text_enum};
use crate::error::{CatalogError, DbContext, Result};

text_enum! {
    /// What a copy job copies. Only backups: log files are shipped continuously as they are
    /// archived (and by each reconciling pass), never queued as jobs.
    JobKind { Backup => "backup" }
}

text_enum! {
    /// AWS Backup's copy job states.
    JobState {
        Created => "CREATED",
        Running => "RUNNING",
        Completed => "COMPLETED",
        Failed => "FAILED",
        Partial => "PARTIAL",
    }
}

text_enum! {
    CreatedBy { Plan => "plan", OnDemand => "on-demand", Event => "event" }
}

/// A copy job, shaped after AWS `DescribeCopyJob`. FAILED and PARTIAL are final: a retry is a new
/// job naming this one in `retry_of`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"copy_job_id": "01jdxq3m6f2k9v7c4r8t5y1w0a", "service": "orders", "kind": "backup",
    "source_region": "aws-eu-west-1", "destination_region": "aws-eu-central-1",
    "backup_name": "20261130T030000123Z", "destination_backup_name": "20261130T030000123Z",
    "state": "COMPLETED", "status_message": null, "creation_date": "2026-11-30T03:00:41Z",
    "start_date": "2026-11-30T03:00:42Z", "completion_date": "2026-11-30T03:01:20Z",
    "backup_size_in_bytes": 1591738368, "bytes_transferred": 72138752, "chunks_total": 86,
    "chunks_copied": 86, "attempts": 1, "next_attempt_at": null, "created_by": "plan",
    "created_by_backup_job_id": null, "lease_owner": null, "lease_expires_at": null, "retry_of": null})))]
pub struct CopyJob {
    pub copy_job_id: String,
    pub service: String,
    /// Always `backup`: log files are shipped continuously, not by jobs.
    pub kind: JobKind,
    pub source_region: String,
    pub destination_region: String,
    /// The source recovery point (for `logs`, the log range).
    pub backup_name: String,
    pub destination_backup_name: String,
    pub state: JobState,
    /// Why the job failed, or what it is waiting for.
    pub status_message: Option<String>,
    pub creation_date: DateTime<Utc>,
    pub start_date: Option<DateTime<Utc>>,
    pub completion_date: Option<DateTime<Utc>>,
    pub backup_size_in_bytes: Option<i64>,
    pub bytes_transferred: i64,
    pub chunks_total: Option<i64>,
    pub chunks_copied: i64,
    /// Attempts within this job (a retryable failure is attempted again before the job fails).
    pub attempts: i64,
    /// When a retryable failure is attempted again within this job.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_by: CreatedBy,
    pub created_by_backup_job_id: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The FAILED job this one retries (AWS: a failed job is final; a retry is a new job).
    pub retry_of: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewCopyJob {
    pub service: String,
    pub kind: JobKind,
    pub source_region: String,
    pub destination_region: String,
    pub backup_name: String,
    /// Defaults to `backup_name`: a copy keeps the name of its source.
    pub destination_backup_name: Option<String>,
    pub created_by: CreatedBy,
    pub created_by_backup_job_id: Option<String>,
    pub backup_size_in_bytes: Option<i64>,
}

/// Proof of a claim. Heartbeats and the final outcome are accepted only while the job is still
/// held by this owner on this attempt, so a worker that lost its lease cannot overwrite the work
/// of the one that took the job over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLease {
    pub copy_job_id: String,
    pub owner: String,
    pub attempt: i64,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    pub job: CopyJob,
    pub lease: JobLease,
}

/// Progress counters; `None` leaves the stored value as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobProgress {
    pub backup_size_in_bytes: Option<i64>,
    pub bytes_transferred: Option<i64>,
    pub chunks_total: Option<i64>,
    pub chunks_copied: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    Completed(JobProgress),
    /// A retryable failure is claimed again after an exponential backoff, until the attempts run
    /// out; a non-retryable one (e.g. the destination has no key) is final at once.
    Failed {
        message: String,
        retryable: bool,
    },
    /// Some of a composite job's parts failed; final.
    Partial {
        message: String,
    },
}

/// Listing filters (AWS `ListCopyJobs`); `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CopyJobFilter {
    pub state: Option<JobState>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
    pub completed_after: Option<DateTime<Utc>>,
    pub completed_before: Option<DateTime<Utc>>,
    /// Paging: only jobs after this one in the listing's order (newest first), i.e. created before
    /// it, or at the same time with a smaller id.
    pub after_job: Option<(DateTime<Utc>, String)>,
    pub destination_region: Option<String>,
    pub service: Option<String>,
    pub limit: Option<u32>,
}

macro_rules! job_columns {
    () => {
        "copy_job_id, service, kind, source_region, destination_region, backup_name, \
         destination_backup_name, state, status_message, creation_date, start_date, \
         completion_date, backup_size_in_bytes, bytes_transferred, chunks_total, chunks_copied, \
         attempts, next_attempt_at, created_by, created_by_backup_job_id, lease_owner, \
         lease_expires_at, retry_of"
    };
}

// The candidates: new jobs, jobs whose worker stopped heartbeating, and failed jobs due for a
// retry. One statement, so SQLite's write lock makes it atomic; PostgreSQL additionally skips rows
// another claimer has locked, so concurrent claimers never wait on or pick the same job.
macro_rules! claim_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE copy_jobs SET state = 'RUNNING', lease_owner = $1, lease_expires_at = $2, \
             attempts = attempts + 1, start_date = COALESCE(start_date, $3), \
             completion_date = NULL, next_attempt_at = NULL \
             WHERE copy_job_id = (SELECT copy_job_id FROM copy_jobs \
                 WHERE state = 'CREATED' \
                    OR (state = 'RUNNING' AND lease_expires_at <= $3) \
                    OR (state = 'FAILED' AND next_attempt_at <= $3 AND attempts < $4) \
                 ORDER BY creation_date, copy_job_id LIMIT 1 ",
            $lock,
            ") RETURNING ",
            job_columns!()
        )
    };
}

const CLAIM_SQLITE: &str = claim_sql!("");
const CLAIM_POSTGRES: &str = claim_sql!("FOR UPDATE SKIP LOCKED");

fn job_from_row(row: &AnyRow) -> Result<CopyJob> {
    let kind: String = get(row, "kind")?;
    let state: String = get(row, "state")?;
    let created_by: String = get(row, "created_by")?;
    Ok(CopyJob {
        copy_job_id: get(row, "copy_job_id")?,
        service: get(row, "service")?,
        kind: JobKind::from_column("copy_jobs.kind", &kind)?,
        source_region: get(row, "source_region")?,
        destination_region: get(row, "destination_region")?,
        backup_name: get(row, "backup_name")?,
        destination_backup_name: get(row, "destination_backup_name")?,
        state: JobState::from_column("copy_jobs.state", &state)?,
        status_message: get(row, "status_message")?,
        creation_date: get_time(row, "creation_date")?,
        start_date: get_opt_time(row, "start_date")?,
        completion_date: get_opt_time(row, "completion_date")?,
        backup_size_in_bytes: get(row, "backup_size_in_bytes")?,
        bytes_transferred: get(row, "bytes_transferred")?,
        chunks_total: get(row, "chunks_total")?,
        chunks_copied: get(row, "chunks_copied")?,
        attempts: get(row, "attempts")?,
        next_attempt_at: get_opt_time(row, "next_attempt_at")?,
        created_by: CreatedBy::from_column("copy_jobs.created_by", &created_by)?,
        created_by_backup_job_id: get(row, "created_by_backup_job_id")?,
        lease_owner: get(row, "lease_owner")?,
        lease_expires_at: get_opt_time(row, "lease_expires_at")?,
        retry_of: get(row, "retry_of")?,
    })
}

/// Delay before the retry that follows failed attempt number `attempt` (1-based).
pub(crate) fn backoff(base: Duration, max: Duration, attempt: i64) -> TimeDelta {
    let doublings = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(30);
    delta(base.saturating_mul(1 << doublings).min(max))
}

/// Jobs and bytes per (state, destination): what metrics need, without reading every job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyJobTotals {
    pub state: JobState,
    pub destination_region: String,
    pub jobs: i64,
    pub bytes_transferred: i64,
}

impl Catalog {
    pub async fn copy_job_totals(&self) -> Result<Vec<CopyJobTotals>> {
        let rows = sqlx::query(
            "SELECT state, destination_region, COUNT(*) AS jobs,
                 CAST(COALESCE(SUM(bytes_transferred), 0) AS BIGINT) AS bytes
             FROM copy_jobs GROUP BY state, destination_region
             ORDER BY state, destination_region",
        )
        .fetch_all(&self.pool)
        .await
        .db("copy job totals")?;
        rows.iter()
            .map(|row| {
                let state: String = get(row, "state")?;
                Ok(CopyJobTotals {
                    state: JobState::from_column("copy_jobs.state", &state)?,
                    destination_region: get(row, "destination_region")?,
                    jobs: get(row, "jobs")?,
                    bytes_transferred: get(row, "bytes")?,
                })
            })
            .collect()
    }

    /// Creates a job in state CREATED. For `backup` jobs this is idempotent on (service, source,
    /// destination, backup): delivering the same event twice returns the existing job. The flag
    /// says whether a new job was created.
    pub async fn create_copy_job(&self, new: &NewCopyJob) -> Result<(CopyJob, bool)> {
        if new.source_region == new.destination_region {
            return Err(CatalogError::invalid(
                "destination_region",
                format!("`{}` is also the source region", new.destination_region),
            ));
        }
        let now = self.now();
        let id = new_id(now);
        let done = sqlx::query(
            "INSERT INTO copy_jobs (copy_job_id, service, kind, source_region, destination_region,
                 backup_name, destination_backup_name, state, creation_date, backup_size_in_bytes,
                 created_by, created_by_backup_job_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'CREATED', $8, $9, $10, $11)
             ON CONFLICT (service, source_region, destination_region, backup_name)
                 WHERE kind = 'backup' AND retry_of IS NULL DO NOTHING",
        )
        .bind(&id)
        .bind(&new.service)
        .bind(new.kind.as_str())
        .bind(&new.source_region)
        .bind(&new.destination_region)
        .bind(&new.backup_name)
        .bind(
            new.destination_backup_name
                .as_ref()
                .unwrap_or(&new.backup_name),
        )
        .bind(ms(now))
        .bind(new.backup_size_in_bytes)
        .bind(new.created_by.as_str())
        .bind(&new.created_by_backup_job_id)
        .execute(&self.pool)
        .await
        .db("create copy job")?;
        if done.rows_affected() == 1 {
            tracing::debug!(copy_job_id = %id, service = %new.service, "copy job created");
            return Ok((self.describe_copy_job(&id).await?, true));
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM copy_jobs WHERE service = $1 AND source_region = $2
                 AND destination_region = $3 AND backup_name = $4 AND kind = 'backup'
                 AND retry_of IS NULL"
        ))
        .bind(&new.service)
        .bind(&new.source_region)
        .bind(&new.destination_region)
        .bind(&new.backup_name)
        .fetch_one(&self.pool)
        .await
        .db("find existing copy job")?;
        Ok((job_from_row(&row)?, false))
    }

    /// Creates the job that retries `failed`, a job in its final FAILED (or PARTIAL) state: same
    /// service, regions, backup and origin, state CREATED, `retry_of` naming it. Idempotent: a job
    /// is retried at most once, so two schedulers reconciling at once create one retry. The flag
    /// says whether a new job was created.
    pub async fn create_retry_job(&self, failed: &CopyJob) -> Result<(CopyJob, bool)> {
        let retryable_state = matches!(failed.state, JobState::Failed | JobState::Partial);
        if !retryable_state || failed.next_attempt_at.is_some() {
            return Err(CatalogError::invalid(
                "retry_of",
                format!(
                    "copy job {} is {} and not final; only a final FAILED or PARTIAL job is retried by a new job",
                    failed.copy_job_id, failed.state
                ),
            ));
        }
        let now = self.now();
        let id = new_id(now);
        let done = sqlx::query(
            "INSERT INTO copy_jobs (copy_job_id, service, kind, source_region, destination_region,
                 backup_name, destination_backup_name, state, creation_date, backup_size_in_bytes,
                 created_by, created_by_backup_job_id, retry_of)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'CREATED', $8, $9, $10, $11, $12)
             ON CONFLICT (retry_of) WHERE retry_of IS NOT NULL DO NOTHING",
        )
        .bind(&id)
        .bind(&failed.service)
        .bind(failed.kind.as_str())
        .bind(&failed.source_region)
        .bind(&failed.destination_region)
        .bind(&failed.backup_name)
        .bind(&failed.destination_backup_name)
        .bind(ms(now))
        .bind(failed.backup_size_in_bytes)
        .bind(failed.created_by.as_str())
        .bind(&failed.created_by_backup_job_id)
        .bind(&failed.copy_job_id)
        .execute(&self.pool)
        .await
        .db("create retry job")?;
        if done.rows_affected() == 1 {
            tracing::debug!(copy_job_id = %id, retry_of = %failed.copy_job_id, "copy job retry created");
            return Ok((self.describe_copy_job(&id).await?, true));
        }
        let row = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM copy_jobs WHERE retry_of = $1"
        ))
        .bind(&failed.copy_job_id)
        .fetch_one(&self.pool)
        .await
        .db("find existing retry job")?;
        Ok((job_from_row(&row)?, false))
    }

    /// When the retry of final job `failed`, the `retries`-th of its backup and destination, is due:
    /// the same exponential backoff as attempts within a job, so a backup whose copy fails for good
    /// (damage, a missing key) is retried ever more rarely instead of once per scheduler pass.
    pub fn retry_due_at(&self, failed: &CopyJob, retries: i64) -> DateTime<Utc> {
        failed.completion_date.unwrap_or(failed.creation_date)
            + backoff(
                self.options.retry_base,
                self.options.retry_max,
                retries.saturating_add(1),
            )
    }

    pub async fn describe_copy_job(&self, copy_job_id: &str) -> Result<CopyJob> {
        let row = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM copy_jobs WHERE copy_job_id = $1"
        ))
        .bind(copy_job_id)
        .fetch_optional(&self.pool)
        .await
        .db("describe copy job")?;
        match row {
            Some(row) => job_from_row(&row),
            None => Err(CatalogError::NotFound {
                what: "copy job",
                id: copy_job_id.to_owned(),
            }),
        }
    }

    /// Newest first.
    pub async fn list_copy_jobs(&self, filter: &CopyJobFilter) -> Result<Vec<CopyJob>> {
        enum Arg {
            Text(String),
            Int(i64),
        }
        let mut sql = String::from(concat!(
            "SELECT ",
            job_columns!(),
            " FROM copy_jobs WHERE TRUE"
        ));
        let mut args = Vec::new();
        let mut clause = |sql: &mut String, condition: &str, arg: Arg| {
            args.push(arg);
            sql.push_str(&format!(" AND {condition} ${}", args.len()));
        };
        if let Some(state) = filter.state {
            clause(&mut sql, "state =", Arg::Text(state.as_str().to_owned()));
        }
        if let Some(after) = filter.created_after {
            clause(&mut sql, "creation_date >", Arg::Int(ms(after)));
        }
        if let Some(before) = filter.created_before {
            clause(&mut sql, "creation_date <", Arg::Int(ms(before)));
        }
        if let Some(after) = filter.completed_after {
            clause(&mut sql, "completion_date >", Arg::Int(ms(after)));
        }
        if let Some(before) = filter.completed_before {
            clause(&mut sql, "completion_date <", Arg::Int(ms(before)));
        }
        if let Some(destination) = &filter.destination_region {
            clause(
                &mut sql,
                "destination_region =",
                Arg::Text(destination.clone()),
            );
        }
        if let Some(service) = &filter.service {
            clause(&mut sql, "service =", Arg::Text(service.clone()));
        }
        if let Some((created, id)) = &filter.after_job {
            args.push(Arg::Int(ms(*created)));
            args.push(Arg::Text(id.clone()));
            let (t, i) = (args.len() - 1, args.len());
            sql.push_str(&format!(
                " AND (creation_date < ${t} OR (creation_date = ${t} AND copy_job_id < ${i}))"
            ));
        }
        sql.push_str(" ORDER BY creation_date DESC, copy_job_id DESC");
        if let Some(limit) = filter.limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        // Only fixed fragments and numbered placeholders were written into `sql`.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for arg in args {
            query = match arg {
                Arg::Text(v) => query.bind(v),
                Arg::Int(v) => query.bind(v),
            };
        }
        let rows = query.fetch_all(&self.pool).await.db("list copy jobs")?;
        rows.iter().map(job_from_row).collect()
    }

    /// Atomically takes the oldest claimable job for `owner`: sets it RUNNING with a lease of
    /// `lease` and counts the attempt. `None` when there is nothing to do.
    pub async fn claim_copy_job(&self, owner: &str, lease: Duration) -> Result<Option<ClaimedJob>> {
        let now = self.now();
        let max_attempts = self.options.max_attempts;
        // A job whose worker keeps dying must not be retried forever: once its last attempt's
        // lease has expired it fails for good.
        sqlx::query(
            "UPDATE copy_jobs SET state = 'FAILED', completion_date = $1,
                 status_message = 'lease expired on the last allowed attempt',
                 lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = NULL
             WHERE state = 'RUNNING' AND lease_expires_at <= $1 AND attempts >= $2",
        )
        .bind(ms(now))
        .bind(max_attempts)
        .execute(&self.pool)
        .await
        .db("expire exhausted copy jobs")?;

        let expires_at = now + delta(lease);
        let sql = match self.backend {
            Backend::Sqlite => CLAIM_SQLITE,
            Backend::Postgres => CLAIM_POSTGRES,
        };
        let row = sqlx::query(sql)
            .bind(owner)
            .bind(ms(expires_at))
            .bind(ms(now))
            .bind(max_attempts)
            .fetch_optional(&self.pool)
            .await
            .db("claim copy job")?;
        let Some(row) = row else { return Ok(None) };
        let job = job_from_row(&row)?;
        let lease = JobLease {
            copy_job_id: job.copy_job_id.clone(),
            owner: owner.to_owned(),
            attempt: job.attempts,
            expires_at: job.lease_expires_at.unwrap_or(expires_at),
        };
        tracing::debug!(copy_job_id = %job.copy_job_id, owner, attempt = job.attempts, "copy job claimed");
        Ok(Some(ClaimedJob { job, lease }))
    }

    /// Extends the lease to `lease` from now and records progress. Fails with
    /// [`CatalogError::LeaseLost`] once another worker has taken the job over or it has ended.
    pub async fn heartbeat(
        &self,
        lease: &mut JobLease,
        extend_by: Duration,
        progress: &JobProgress,
    ) -> Result<()> {
        let expires_at = self.now() + delta(extend_by);
        let done = sqlx::query(
            "UPDATE copy_jobs SET lease_expires_at = $1,
                 backup_size_in_bytes = COALESCE($2, backup_size_in_bytes),
                 bytes_transferred = COALESCE($3, bytes_transferred),
                 chunks_total = COALESCE($4, chunks_total),
                 chunks_copied = COALESCE($5, chunks_copied)
             WHERE copy_job_id = $6 AND lease_owner = $7 AND attempts = $8 AND state = 'RUNNING'",
        )
        .bind(ms(expires_at))
        .bind(progress.backup_size_in_bytes)
        .bind(progress.bytes_transferred)
        .bind(progress.chunks_total)
        .bind(progress.chunks_copied)
        .bind(&lease.copy_job_id)
        .bind(&lease.owner)
        .bind(lease.attempt)
        .execute(&self.pool)
        .await
        .db("heartbeat copy job")?;
        if done.rows_affected() == 0 {
            return Err(self.lease_error(lease).await);
        }
        lease.expires_at = expires_at;
        Ok(())
    }

    /// Ends the attempt held by `lease`: COMPLETED, PARTIAL, or FAILED with the next attempt
    /// scheduled by exponential backoff while attempts remain.
    pub async fn finish_copy_job(&self, lease: &JobLease, outcome: &JobOutcome) -> Result<CopyJob> {
        let now = self.now();
        let none = JobProgress::default();
        let (state, message, next_attempt_at, progress) = match outcome {
            JobOutcome::Completed(progress) => (JobState::Completed, None, None, progress),
            JobOutcome::Partial { message } => (JobState::Partial, Some(message), None, &none),
            JobOutcome::Failed { message, retryable } => {
                let next = (*retryable && lease.attempt < self.options.max_attempts).then(|| {
                    now + backoff(
                        self.options.retry_base,
                        self.options.retry_max,
                        lease.attempt,
                    )
                });
                (JobState::Failed, Some(message), next, &none)
            }
        };
        let row = sqlx::query(concat!(
            "UPDATE copy_jobs SET state = $1, status_message = $2, completion_date = $3,
                 next_attempt_at = $4, lease_owner = NULL, lease_expires_at = NULL,
                 backup_size_in_bytes = COALESCE($5, backup_size_in_bytes),
                 bytes_transferred = COALESCE($6, bytes_transferred),
                 chunks_total = COALESCE($7, chunks_total),
                 chunks_copied = COALESCE($8, chunks_copied)
             WHERE copy_job_id = $9 AND lease_owner = $10 AND attempts = $11
                 AND state = 'RUNNING'
             RETURNING ",
            job_columns!()
        ))
        .bind(state.as_str())
        .bind(message)
        .bind(ms(now))
        .bind(next_attempt_at.map(ms))
        .bind(progress.backup_size_in_bytes)
        .bind(progress.bytes_transferred)
        .bind(progress.chunks_total)
        .bind(progress.chunks_copied)
        .bind(&lease.copy_job_id)
        .bind(&lease.owner)
        .bind(lease.attempt)
        .fetch_optional(&self.pool)
        .await
        .db("finish copy job")?;
        match row {
            Some(row) => job_from_row(&row),
            None => Err(self.lease_error(lease).await),
        }
    }

    async fn lease_error(&self, lease: &JobLease) -> CatalogError {
        match self.describe_copy_job(&lease.copy_job_id).await {
            Ok(_) => CatalogError::LeaseLost {
                job: lease.copy_job_id.clone(),
                owner: lease.owner.clone(),
                attempt: lease.attempt,
            },
            Err(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (base, max) = (Duration::from_secs(30), Duration::from_secs(3600));
        assert_eq!(backoff(base, max, 1), TimeDelta::seconds(30));
        assert_eq!(backoff(base, max, 2), TimeDelta::seconds(60));
        assert_eq!(backoff(base, max, 4), TimeDelta::seconds(240));
        assert_eq!(backoff(base, max, 10), TimeDelta::seconds(3600));
        assert_eq!(backoff(base, max, i64::MAX), TimeDelta::seconds(3600));
    }

    #[test]
    fn claim_locks_only_on_postgres() {
        assert!(!CLAIM_SQLITE.contains("FOR UPDATE"));
        assert!(CLAIM_POSTGRES.contains("LIMIT 1 FOR UPDATE SKIP LOCKED)"));
    }

    #[test]
    fn states_parse_case_insensitively() {
        assert_eq!("running".parse::<JobState>().ok(), Some(JobState::Running));
        assert!("paused".parse::<JobState>().is_err());
    }
}
