//! `/v1/events`: what happened, newest first (backups committed or failed, forks, deletions…).

use axum::Json;
use axum::extract::State;
use btar_catalog::EventFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiResult;
use super::extract::Params;
use crate::ControlPlane;

const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    service: Option<String>,
    /// Only events with a larger id: poll with the largest id seen so far.
    after_id: Option<i64>,
    limit: Option<u32>,
}

pub async fn list(
    State(cp): State<ControlPlane>,
    Params(p): Params<ListParams>,
) -> ApiResult<Json<Value>> {
    let service = super::extract::service_filter(p.service)?;
    let events = cp
        .catalog()
        .list_events(&EventFilter {
            service,
            after_id: p.after_id,
            limit: Some(p.limit.unwrap_or(100).min(MAX_LIMIT)),
        })
        .await?;
    Ok(Json(json!({ "events": events })))
}
