//! `/v1/check`: the compliance check of `btar check` (AWS BKP-004), for one service or every one.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{ApiResult, ErrorBody};
use super::extract::Params;
use crate::ControlPlane;
use crate::check::CheckReport;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CheckParams {
    /// Only this service (default: every service).
    service: Option<String>,
}

/// Compliance check: a recent copy in each additional region, a primary backup within its plan's
/// interval, no hole in any location's log archive (AWS BKP-004).
#[utoipa::path(get, path = "/v1/check", operation_id = "runCheck", tag = "check",
    params(CheckParams),
    responses(
        (status = 200, description = "One result per service, rule and location", body = CheckReport),
        (status = 400, description = "Invalid service name", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
    ))]
pub async fn run(
    State(cp): State<ControlPlane>,
    Params(p): Params<CheckParams>,
) -> ApiResult<Json<CheckReport>> {
    let service = super::extract::service_filter(p.service)?;
    let now = cp.catalog().now();
    Ok(Json(cp.check(service.as_deref(), now).await?))
}
