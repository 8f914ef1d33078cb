//! `/v1/check`: the compliance check of `btar check` (AWS BKP-004), for one service or every one.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::error::{ApiError, ApiResult};
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
    let service = p.service.filter(|s| !s.is_empty());
    if let Some(s) = &service {
        btar_format::layout::validate_name(s).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let now = cp.catalog().now();
    Ok(Json(cp.check(service.as_deref(), now).await?))
}
