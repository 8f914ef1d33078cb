//! `/v1/check`: the compliance check of `btar check` (AWS BKP-004), for one service or every one.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::error::ApiResult;
use super::extract::Params;
use crate::ControlPlane;
use crate::check::CheckReport;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckParams {
    service: Option<String>,
}

pub async fn run(
    State(cp): State<ControlPlane>,
    Params(p): Params<CheckParams>,
) -> ApiResult<Json<CheckReport>> {
    let service = super::extract::service_filter(p.service)?;
    let now = cp.catalog().now();
    Ok(Json(cp.check(service.as_deref(), now).await?))
}
