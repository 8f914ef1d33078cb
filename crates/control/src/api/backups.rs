//! `…/service/{service}/backups` (Aiven's backup list, plus on-demand backups) and
//! `…/service/{service}/backup_to_another_region/report` (Aiven's lag report).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use btar_catalog::{CreatedBy, LagReport, Period};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiResult, ErrorBody};
use super::extract::{Body, Params, PathArgs};
use super::{Message, ServicePath};
use crate::{BackupTaken, BackupsView, ControlError, ControlPlane};

/// Every backup with its state in each location, and each location's recoverable window.
///
/// Every backup kept in any location of the service (also after a region is removed or the
/// service deleted) is listed until retention removes it, with its expiry per location.
#[utoipa::path(get, path = "/v1/project/{project}/service/{service}/backups", operation_id = "listBackups",
    tag = "backups", params(ServicePath),
    responses(
        (status = 200, description = "Backups and recoverable windows", body = BackupsView),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
    ))]
pub async fn list(
    State(cp): State<ControlPlane>,
    PathArgs(path): PathArgs<ServicePath>,
) -> ApiResult<Json<BackupsView>> {
    path.check()?;
    Ok(Json(cp.backups_view(&path.service).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CreateParams {
    /// `true`: answer 200 once the backup has committed, with the backup; default: start it in
    /// the background and answer 202.
    #[serde(default)]
    wait: bool,
}

/// `{"backup": …}`: a committed backup and the copy jobs it queued.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BackupBody {
    pub backup: BackupTaken,
}

/// Take an on-demand primary backup.
///
/// By default it starts in the background and the answer is 202: a backup can outlast any HTTP
/// timeout, and it shows up in the backup list once committed. With `?wait=true` the answer is 200
/// with the committed backup and the copy jobs it queued.
#[utoipa::path(post, path = "/v1/project/{project}/service/{service}/backups", operation_id = "createBackup",
    tag = "backups", params(ServicePath, CreateParams),
    responses(
        (status = 200, description = "Committed (wait=true)", body = BackupBody),
        (status = 202, description = "Started in the background", body = Message),
        (status = 400, description = "Invalid name or parameter", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
        (status = 409, description = "No agent for the service on this server", body = ErrorBody),
        (status = 503, description = "The database or a store does not answer (wait=true)", body = ErrorBody),
    ))]
pub async fn create(
    State(cp): State<ControlPlane>,
    PathArgs(path): PathArgs<ServicePath>,
    Params(params): Params<CreateParams>,
) -> ApiResult<Response> {
    path.check()?;
    let svc = cp.service(&path.service).await?;
    if params.wait {
        let backup = cp.take_backup(&svc.name, CreatedBy::OnDemand).await?;
        return Ok((StatusCode::OK, Json(BackupBody { backup })).into_response());
    }
    // Said now rather than only logged by the background task, so the 202 is not a false promise.
    if cp.agent_settings(&svc).is_none() {
        return Err(ControlError::NoAgent(svc.name).into());
    }
    cp.spawn_backup(&svc.name);
    let message = format!(
        "backup of `{}` started; it is listed under …/backups once committed",
        svc.name
    );
    Ok((StatusCode::ACCEPTED, Json(Message { message })).into_response())
}

/// Aiven's report request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"period": "day"})))]
pub struct ReportBody {
    /// Read by `Period`'s parser (any case), so the error names the periods.
    #[schema(value_type = Period)]
    period: String,
}

/// Replication lag per destination region over a period.
///
/// `metrics.<region>` holds four series of `[unix_seconds, value]` points, 60 buckets per
/// period: `backup_lag_seconds`, `wal_lag_seconds`, `bytes_pending`, `latest_recoverable_time`.
#[utoipa::path(post, path = "/v1/project/{project}/service/{service}/backup_to_another_region/report",
    operation_id = "replicationReport", tag = "backups", params(ServicePath), request_body = ReportBody,
    responses(
        (status = 200, description = "Lag report", body = LagReport),
        (status = 400, description = "Invalid name or period", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
    ))]
pub async fn report(
    State(cp): State<ControlPlane>,
    PathArgs(path): PathArgs<ServicePath>,
    Body(body): Body<ReportBody>,
) -> ApiResult<Json<LagReport>> {
    path.check()?;
    let period: Period = body.period.parse()?;
    Ok(Json(cp.lag_report(&path.service, period).await?))
}
