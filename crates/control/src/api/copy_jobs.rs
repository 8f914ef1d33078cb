//! `/v1/copy-jobs[/{id}]`: the copy-job log, shaped after AWS Backup's ListCopyJobs and
//! DescribeCopyJob (field names in snake case).

use axum::Json;
use axum::extract::State;
use btar_catalog::{CopyJobFilter, JobState};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use super::extract::{Params, PathArgs};
use crate::ControlPlane;

/// Most jobs one listing returns (AWS's MaxResults bound); newest first.
pub const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    state: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    destination_region: Option<String>,
    service: Option<String>,
    limit: Option<u32>,
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

pub async fn list(
    State(cp): State<ControlPlane>,
    Params(p): Params<ListParams>,
) -> ApiResult<Json<Value>> {
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
        destination_region,
        service,
        limit: Some(p.limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT)),
    };
    let jobs = cp.catalog().list_copy_jobs(&filter).await?;
    Ok(Json(json!({ "copy_jobs": jobs })))
}

pub async fn describe(
    State(cp): State<ControlPlane>,
    PathArgs(id): PathArgs<String>,
) -> ApiResult<Json<Value>> {
    let job = cp.catalog().describe_copy_job(&id).await?;
    Ok(Json(json!({ "copy_job": job })))
}
