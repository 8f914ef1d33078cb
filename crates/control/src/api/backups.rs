//! `…/service/{service}/backups` (Aiven's backup list, plus on-demand backups) and
//! `…/service/{service}/backup_to_another_region/report` (Aiven's lag report).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use btar_catalog::{CreatedBy, LagReport, Period};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ServicePath;
use super::error::ApiResult;
use super::extract::{Body, Params, PathArgs};
use crate::{BackupsView, ControlError, ControlPlane};

/// Every backup with its state in each location, and each location's recoverable window.
pub async fn list(
    State(cp): State<ControlPlane>,
    PathArgs(path): PathArgs<ServicePath>,
) -> ApiResult<Json<BackupsView>> {
    path.check()?;
    Ok(Json(cp.backups_view(&path.service).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateParams {
    /// Answer once the backup has committed (200, with the backup) instead of at once (202).
    #[serde(default)]
    wait: bool,
}

/// An on-demand primary backup. By default it starts in the background and the answer is 202: a
/// backup can outlast any HTTP timeout, and it shows up in the backup list once committed. With
/// `?wait=true` the answer is 200 with the committed backup and the copy jobs it queued.
pub async fn create(
    State(cp): State<ControlPlane>,
    PathArgs(path): PathArgs<ServicePath>,
    Params(params): Params<CreateParams>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    path.check()?;
    let svc = cp.service(&path.service).await?;
    if params.wait {
        let taken = cp.take_backup(&svc.name, CreatedBy::OnDemand).await?;
        return Ok((StatusCode::OK, Json(json!({ "backup": taken }))));
    }
    // Said now rather than only logged by the background task, so the 202 is not a false promise.
    if cp.agent_settings(&svc).is_none() {
        return Err(ControlError::NoAgent(svc.name).into());
    }
    cp.spawn_backup(&svc.name);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "message": format!(
                "backup of `{}` started; it is listed under …/backups once committed",
                svc.name
            )
        })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    /// hour, day, week, month or year.
    period: String,
}

/// Lag of each destination region over the period: `metrics.<region>.<series>` lists of
/// `[unix_seconds, value]` (see the OpenAPI document for the series).
pub async fn report(
    State(cp): State<ControlPlane>,
    PathArgs(path): PathArgs<ServicePath>,
    Body(body): Body<ReportBody>,
) -> ApiResult<Json<LagReport>> {
    path.check()?;
    let period: Period = body.period.parse()?;
    let svc = cp.service(&path.service).await?;
    let mut report = cp.catalog().lag_report(&svc.name, period).await?;
    // A region enabled but not yet sampled still gets its (empty) series, so a chart shows it.
    for region in svc.additional_backup_regions() {
        report.metrics.entry(region).or_default();
    }
    Ok(Json(report))
}
