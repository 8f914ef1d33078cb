//! `/v1/cost`: what each location holds and costs over a period (`btar cost`).

use axum::Json;
use axum::extract::State;
use btar_catalog::Period;
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
use super::extract::Params;
use crate::ControlPlane;
use crate::cost::CostReport;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostParams {
    service: Option<String>,
    period: Option<String>,
}

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
