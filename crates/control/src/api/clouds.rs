//! `/v1/clouds` (Aiven's "list cloud platforms"): the regions configured here, with their provider,
//! so that a client can offer the destinations a service may use and explain the same-provider rule
//! before it asks. Neither URLs nor keys are shown.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::ControlPlane;

pub async fn list(State(cp): State<ControlPlane>) -> Json<Value> {
    let clouds: Vec<Value> = cp
        .config()
        .regions
        .iter()
        .map(|r| json!({"cloud_name": r.name, "provider": r.provider().as_str()}))
        .collect();
    Json(json!({ "clouds": clouds }))
}
