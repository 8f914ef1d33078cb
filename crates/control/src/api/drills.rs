//! `/v1/drills`: recorded restore drills, newest first (`btar drill list`).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiResult, ErrorBody};
use super::extract::Params;
use crate::ControlPlane;
use crate::drill::DrillResult;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DrillParams {
    /// Only this service's drills.
    service: Option<String>,
}

/// `{"drills": […]}`, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DrillsBody {
    pub drills: Vec<DrillResult>,
}

/// Recorded restore drills, newest first (AWS restore testing jobs).
#[utoipa::path(get, path = "/v1/drills", operation_id = "listDrills", tag = "drills",
    params(DrillParams),
    responses(
        (status = 200, description = "Drills", body = DrillsBody),
        (status = 400, description = "Invalid service name", body = ErrorBody),
    ))]
pub async fn list(
    State(cp): State<ControlPlane>,
    Params(p): Params<DrillParams>,
) -> ApiResult<Json<DrillsBody>> {
    let service = super::extract::service_filter(p.service)?;
    let drills = cp.drills(service.as_deref()).await?;
    Ok(Json(DrillsBody { drills }))
}
