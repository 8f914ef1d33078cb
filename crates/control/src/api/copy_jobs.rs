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
    completed_after: Option<String>,
    completed_before: Option<String>,
    destination_region: Option<String>,
    service: Option<String>,
    limit: Option<u32>,
    /// The `next_token` of the previous page (AWS's NextToken).
    next_token: Option<String>,
}

/// A page token: where the previous page ended, as `<creation ms>.<job id>`, hex-encoded so
/// clients treat it as opaque.
fn token_of(job: &btar_catalog::CopyJob) -> String {
    hex::encode(format!(
        "{}.{}",
        job.creation_date.timestamp_millis(),
        job.copy_job_id
    ))
}

fn parse_token(t: &str) -> ApiResult<(DateTime<Utc>, String)> {
    let bad = || ApiError::bad_request(format!("next_token `{t}` is not one this API returned"));
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
    let limit = p.limit.unwrap_or(MAX_LIMIT).clamp(1, MAX_LIMIT);
    let filter = CopyJobFilter {
        state,
        created_after: time("created_after", p.created_after)?,
        created_before: time("created_before", p.created_before)?,
        completed_after: time("completed_after", p.completed_after)?,
        completed_before: time("completed_before", p.completed_before)?,
        after_job: given(p.next_token).map(|t| parse_token(&t)).transpose()?,
        destination_region,
        service,
        // One more than the page: whether there is a next page, without a count query.
        limit: Some(limit + 1),
    };
    let mut jobs = cp.catalog().list_copy_jobs(&filter).await?;
    let next_token = (jobs.len() > limit as usize).then(|| {
        jobs.truncate(limit as usize);
        jobs.last().map(token_of)
    });
    let mut body = json!({ "copy_jobs": jobs });
    if let Some(Some(t)) = next_token {
        body["next_token"] = json!(t);
    }
    Ok(Json(body))
}

pub async fn describe(
    State(cp): State<ControlPlane>,
    PathArgs(id): PathArgs<String>,
) -> ApiResult<Json<Value>> {
    let job = cp.catalog().describe_copy_job(&id).await?;
    Ok(Json(json!({ "copy_job": job })))
}
