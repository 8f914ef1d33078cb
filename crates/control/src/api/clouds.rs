//! `/v1/clouds` (Aiven's "list cloud platforms"): the regions configured here, with their provider,
//! so that a client can offer the destinations a service may use and explain the same-provider rule
//! before it asks. Neither URLs nor keys are shown.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ControlPlane;

/// A region configured here.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({"cloud_name": "aws-eu-west-1", "provider": "aws"})))]
pub struct Cloud {
    /// Region name, as `cloud` and `additional_backup_regions` take it.
    pub cloud_name: String,
    /// aws, google, azure, local or an S3-compatible vendor; copies stay on the home region's
    /// provider unless `allow_cross_provider`.
    pub provider: String,
}

/// `{"clouds": […]}`, in the config's order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CloudsBody {
    pub clouds: Vec<Cloud>,
}

/// The regions configured here, with their provider (Aiven's cloud list): where a service may live
/// and copy to.
#[utoipa::path(get, path = "/v1/clouds", operation_id = "listClouds", tag = "services",
    responses((status = 200, description = "Regions", body = CloudsBody)))]
pub async fn list(State(cp): State<ControlPlane>) -> Json<CloudsBody> {
    let clouds = cp
        .config()
        .regions
        .iter()
        .map(|r| Cloud {
            cloud_name: r.name.clone(),
            provider: r.provider().as_str().to_string(),
        })
        .collect();
    Json(CloudsBody { clouds })
}
