//! `/v1/drills`: recorded restore drills, newest first (`btar drill list`).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiResult;
use super::extract::Params;
use crate::ControlPlane;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillParams {
    service: Option<String>,
}

pub async fn list(
    State(cp): State<ControlPlane>,
    Params(p): Params<DrillParams>,
) -> ApiResult<Json<Value>> {
    let service = super::extract::service_filter(p.service)?;
    let drills = cp.drills(service.as_deref()).await?;
    Ok(Json(json!({ "drills": drills })))
}
