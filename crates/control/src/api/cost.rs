//! `/v1/cost`: what each location holds and costs over a period (`btar cost`).

use axum::Json;
use axum::extract::State;
use btar_catalog::Period;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::Params;
use crate::ControlPlane;
use crate::cost::CostReport;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CostParams {
    /// Only this service (default: every service).
    service: Option<String>,
    /// hour, day, week, month (30 days, the default) or year.
    #[param(value_type = Option<Period>)]
    period: Option<String>,
}

/// Per service and location: backups, logical and stored bytes, objects, GB-hours over the
/// period, bytes copied in; with `[[price]]` entries, money.
#[utoipa::path(get, path = "/v1/cost", operation_id = "costReport", tag = "cost",
    params(CostParams),
    responses(
        (status = 200, description = "Cost per location", body = CostReport),
        (status = 400, description = "Invalid service name or period", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
    ))]
pub async fn report(
    State(cp): State<ControlPlane>,
    Params(p): Params<CostParams>,
) -> ApiResult<Json<CostReport>> {
    let service = super::extract::service_filter(p.service)?;
    let period: Period = p
        .period
        .as_deref()
        .unwrap_or("month")
        .parse()
        .map_err(|e: btar_catalog::CatalogError| ApiError::bad_request(e.to_string()))?;
    let now = cp.catalog().now();
    Ok(Json(cp.cost(service.as_deref(), period, now).await?))
}
