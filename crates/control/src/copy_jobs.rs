//! Copy jobs as clients see them (AWS Backup's ListCopyJobs / DescribeCopyJob): the catalog's job
//! with the destination's lifecycle, in pages with an opaque `next_token`. The API and the CLI both
//! answer from here, so they print the same objects.

use std::collections::HashMap;

use btar_catalog::{CopyJob, CopyJobFilter};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{ControlError, ControlPlane, Result};

/// Most jobs one page holds (AWS's MaxResults bound).
pub const MAX_PAGE: u32 = 1000;

/// The destination location's retention (AWS's Lifecycle of a copy action): a copy is deleted
/// there this many days after it was taken, independently of the source's retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Lifecycle {
    pub delete_after_days: u32,
}

/// A copy job with its destination's lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(examples(job_example))]
pub struct CopyJobView {
    #[serde(flatten)]
    pub job: CopyJob,
    /// The destination location's retention under the service's plan (`secondary_retention_days`);
    /// `null` when the service has no plan: the copy is kept until deleted by hand.
    pub destination_retention: Option<Lifecycle>,
}

/// One page of copy jobs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(examples(page_example))]
pub struct CopyJobsPage {
    pub copy_jobs: Vec<CopyJobView>,
    /// Pass as `next_token` for the next page (AWS's NextToken); absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

fn job_example() -> serde_json::Value {
    serde_json::json!({"copy_job_id": "01jdxq3m6f2k9v7c4r8t5y1w0a", "service": "orders", "kind": "backup",
    "source_region": "aws-eu-west-1", "destination_region": "aws-eu-central-1",
    "backup_name": "20261130T030000123Z", "destination_backup_name": "20261130T030000123Z",
    "state": "FAILED", "status_message": "destination unreachable: connection refused",
    "creation_date": "2026-11-30T03:00:41Z", "start_date": "2026-11-30T03:00:42Z",
    "completion_date": "2026-11-30T03:20:02Z", "backup_size_in_bytes": 1591738368,
    "bytes_transferred": 0, "chunks_total": 86, "chunks_copied": 0, "attempts": 5,
    "next_attempt_at": null, "created_by": "plan", "created_by_backup_job_id": null,
    "lease_owner": null, "lease_expires_at": null, "retry_of": null,
    "destination_retention": {"delete_after_days": 30}})
}

fn page_example() -> serde_json::Value {
    serde_json::json!({"copy_jobs": [job_example()],
        "next_token": "313739363031383434313030302e30316a64787133"})
}

/// A page token: where the previous page ended, as `<creation ms>.<job id>`, hex-encoded so
/// clients treat it as opaque.
fn token_of(job: &CopyJob) -> String {
    hex::encode(format!(
        "{}.{}",
        job.creation_date.timestamp_millis(),
        job.copy_job_id
    ))
}

fn parse_token(t: &str) -> Result<(DateTime<Utc>, String)> {
    let bad = || ControlError::Invalid(format!("next_token `{t}` is not one this API returned"));
    let raw = hex::decode(t).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (ms, id) = text.split_once('.').ok_or_else(bad)?;
    let at = ms
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(bad)?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad());
    }
    Ok((at, id.to_string()))
}

impl ControlPlane {
    /// One page of the jobs `filter` selects (its `after_job` and `limit` are set here from
    /// `next_token` and `limit`, which is clamped to 1..=[`MAX_PAGE`]).
    pub async fn copy_jobs_page(
        &self,
        mut filter: CopyJobFilter,
        limit: u32,
        next_token: Option<&str>,
    ) -> Result<CopyJobsPage> {
        let limit = limit.clamp(1, MAX_PAGE);
        filter.after_job = next_token.map(parse_token).transpose()?;
        // One more than the page: whether there is a next page, without a count query.
        filter.limit = Some(limit + 1);
        let mut jobs = self.catalog().list_copy_jobs(&filter).await?;
        let mut next_token = None;
        if jobs.len() > limit as usize {
            jobs.truncate(limit as usize);
            next_token = jobs.last().map(token_of);
        }
        Ok(CopyJobsPage {
            copy_jobs: self.with_lifecycle(jobs).await?,
            next_token,
        })
    }

    /// One job (AWS DescribeCopyJob).
    pub async fn copy_job(&self, id: &str) -> Result<CopyJobView> {
        let job = self.catalog().describe_copy_job(id).await?;
        let mut views = self.with_lifecycle(vec![job]).await?;
        views
            .pop()
            .ok_or_else(|| ControlError::NotFound(format!("copy job `{id}`")))
    }

    async fn with_lifecycle(&self, jobs: Vec<CopyJob>) -> Result<Vec<CopyJobView>> {
        let mut plans: HashMap<String, String> = HashMap::new();
        if !jobs.is_empty() {
            // A live service's plan over that of a deleted one of the same name.
            for svc in self.catalog().list_all_services().await? {
                if svc.deleted_at.is_none() || !plans.contains_key(&svc.name) {
                    plans.insert(svc.name, svc.plan);
                }
            }
        }
        Ok(jobs
            .into_iter()
            .map(|job| {
                let destination_retention = plans
                    .get(&job.service)
                    .and_then(|p| self.config().plan(p).ok())
                    .map(|p| Lifecycle {
                        delete_after_days: p.secondary_retention_days,
                    });
                CopyJobView {
                    job,
                    destination_retention,
                }
            })
            .collect())
    }
}
