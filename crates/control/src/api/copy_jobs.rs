//! `/v1/copy-jobs[/{id}]`: the copy-job log, shaped after AWS Backup's ListCopyJobs and
//! DescribeCopyJob (field names in snake case).

use axum::Json;
use axum::extract::State;
use btar_catalog::{CopyJobFilter, JobState};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Params, PathArgs};
use crate::ControlPlane;
use crate::copy_jobs::{CopyJobView, CopyJobsPage, MAX_PAGE};

/// ListCopyJobs' filters. AWS's `ByCreatedAfter`… names are accepted as `by_created_after`…
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// CREATED, RUNNING, COMPLETED, FAILED or PARTIAL (AWS ByState).
    #[param(value_type = Option<JobState>)]
    state: Option<String>,
    /// Created at or after this RFC 3339 time (AWS ByCreatedAfter; also `by_created_after`).
    #[serde(alias = "by_created_after")]
    #[param(value_type = Option<DateTime<Utc>>)]
    created_after: Option<String>,
    /// Created before this time (AWS ByCreatedBefore; also `by_created_before`).
    #[serde(alias = "by_created_before")]
    #[param(value_type = Option<DateTime<Utc>>)]
    created_before: Option<String>,
    /// Completed at or after this time (AWS ByCompleteAfter; also `by_completed_after`).
    #[serde(alias = "by_completed_after")]
    #[param(value_type = Option<DateTime<Utc>>)]
    completed_after: Option<String>,
    /// Completed before this time (AWS ByCompleteBefore; also `by_completed_before`).
    #[serde(alias = "by_completed_before")]
    #[param(value_type = Option<DateTime<Utc>>)]
    completed_before: Option<String>,
    /// Destination region name (AWS ByDestinationVaultArn).
    #[serde(alias = "by_destination_region")]
    destination_region: Option<String>,
    /// Service name (AWS ByResourceArn).
    service: Option<String>,
    /// At most this many per page (default and maximum 1000; AWS MaxResults).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_token` of the previous page (AWS NextToken).
    next_token: Option<String>,
}

/// An empty parameter (`?state=`) filters nothing, as if it were absent.
fn given(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

fn time(name: &str, v: Option<String>) -> ApiResult<Option<DateTime<Utc>>> {
    given(v)
        .map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    ApiError::bad_request(format!(
                        "{name} `{t}` is not an RFC 3339 time (e.g. 2025-06-01T12:00:00Z): {e}"
                    ))
                })
        })
        .transpose()
}

/// List copy jobs, newest first (AWS ListCopyJobs).
///
/// A FAILED job is final: a retry is a new job whose `retry_of` names it. Pages hold `limit` jobs;
/// `next_token` is present while more follow.
#[utoipa::path(get, path = "/v1/copy-jobs", operation_id = "listCopyJobs", tag = "copy-jobs",
    params(ListParams),
    responses(
        (status = 200, description = "Copy jobs, newest first; `next_token` when more follow", body = CopyJobsPage),
        (status = 400, description = "Invalid filter or next_token", body = ErrorBody),
    ))]
pub async fn list(
    State(cp): State<ControlPlane>,
    Params(p): Params<ListParams>,
) -> ApiResult<Json<CopyJobsPage>> {
    let state = given(p.state).map(|s| s.parse::<JobState>()).transpose()?;
    let destination_region = given(p.destination_region);
    if let Some(r) = &destination_region {
        btar_region::validate_region_name(r).map_err(ApiError::bad_request)?;
    }
    let service = given(p.service);
    if let Some(s) = &service {
        btar_format::layout::validate_name(s).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let filter = CopyJobFilter {
        state,
        created_after: time("created_after", p.created_after)?,
        created_before: time("created_before", p.created_before)?,
        completed_after: time("completed_after", p.completed_after)?,
        completed_before: time("completed_before", p.completed_before)?,
        destination_region,
        service,
        ..Default::default()
    };
    let limit = p.limit.unwrap_or(MAX_PAGE);
    let next_token = given(p.next_token);
    Ok(Json(
        cp.copy_jobs_page(filter, limit, next_token.as_deref())
            .await?,
    ))
}

/// `{"copy_job": …}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CopyJobBody {
    pub copy_job: CopyJobView,
}

/// Describe a copy job (AWS DescribeCopyJob).
#[utoipa::path(get, path = "/v1/copy-jobs/{id}", operation_id = "describeCopyJob", tag = "copy-jobs",
    params(("id" = String, Path, description = "A copy_job_id")),
    responses(
        (status = 200, description = "The job", body = CopyJobBody),
        (status = 400, description = "Invalid id", body = ErrorBody),
        (status = 404, description = "No such copy job", body = ErrorBody),
    ))]
pub async fn describe(
    State(cp): State<ControlPlane>,
    PathArgs(id): PathArgs<String>,
) -> ApiResult<Json<CopyJobBody>> {
    Ok(Json(CopyJobBody {
        copy_job: cp.copy_job(&id).await?,
    }))
}
