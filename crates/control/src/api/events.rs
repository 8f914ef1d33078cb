//! `/v1/events`: what happened, newest first (backups committed or failed, forks, deletions…).

use axum::Json;
use axum::extract::State;
use btar_catalog::{Event, EventFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiResult, ErrorBody};
use super::extract::Params;
use crate::ControlPlane;

const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this service's events.
    service: Option<String>,
    /// Only events with a larger id: poll with the largest id seen so far.
    after_id: Option<i64>,
    /// At most this many (default 100, maximum 1000).
    limit: Option<u32>,
}

/// `{"events": […]}`, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventsBody {
    pub events: Vec<Event>,
}

/// Events, newest first.
#[utoipa::path(get, path = "/v1/events", operation_id = "listEvents", tag = "events",
    params(ListParams),
    responses(
        (status = 200, description = "Events", body = EventsBody),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
    ))]
pub async fn list(
    State(cp): State<ControlPlane>,
    Params(p): Params<ListParams>,
) -> ApiResult<Json<EventsBody>> {
    let service = super::extract::service_filter(p.service)?;
    let events = cp
        .catalog()
        .list_events(&EventFilter {
            service,
            after_id: p.after_id,
            limit: Some(p.limit.unwrap_or(100).min(MAX_LIMIT)),
        })
        .await?;
    Ok(Json(EventsBody { events }))
}
