//! `/v1/project/{project}/service[/{service}]` (Aiven's service API): create or fork, list, get,
//! update, delete.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{ApiResult, ErrorBody};
use super::extract::{Body, PathArgs};
use super::{Message, ProjectPath, ServicePath};
use crate::{ControlPlane, ServiceCreate, ServiceView, UserConfig};

/// Aiven's ServiceUpdate, reduced to what btar has. `user_config` is merged into the stored one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"user_config": {"additional_backup_regions": ["aws-eu-central-1"]}})))]
pub struct ServiceUpdateBody {
    /// A plan of the config, or empty for none.
    #[serde(default)]
    plan: Option<String>,
    /// Merged into the stored `user_config` key by key; `null` removes a key.
    #[serde(default)]
    #[schema(value_type = Option<UserConfig>)]
    user_config: Option<Value>,
}

/// `{"service": …}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServiceBody {
    pub service: ServiceView,
}

/// `{"services": […]}`: live services.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ServicesBody {
    pub services: Vec<ServiceView>,
}

/// Create a service, or fork one (`user_config.service_to_fork_from`).
///
/// Regions: `cloud` and every `additional_backup_regions` entry must be configured; a destination
/// differs from `cloud` and is on its provider unless `allow_cross_provider` is true. Enabling
/// regions starts a first backup. A fork restores from the location in `cloud` (the source's home
/// region = primary, one of its additional regions = secondary; a region without a copy is a 400)
/// and answers when the fork runs.
#[utoipa::path(post, path = "/v1/project/{project}/service", operation_id = "createService",
    tag = "services", params(ProjectPath), request_body = ServiceCreate,
    responses(
        (status = 201, description = "Created (or forked)", body = ServiceBody),
        (status = 400, description = "Bad input: malformed JSON, unknown field or region, a region rule", body = ErrorBody),
        (status = 409, description = "The name is taken, or no agent can run the fork here", body = ErrorBody),
    ))]
pub async fn create(
    State(cp): State<ControlPlane>,
    PathArgs(path): PathArgs<ProjectPath>,
    Body(req): Body<ServiceCreate>,
) -> ApiResult<(StatusCode, Json<ServiceBody>)> {
    path.check()?;
    let service = cp.create_service(req).await?;
    Ok((StatusCode::CREATED, Json(ServiceBody { service })))
}

/// List services.
#[utoipa::path(get, path = "/v1/project/{project}/service", operation_id = "listServices",
    tag = "services", params(ProjectPath),
    responses(
        (status = 200, description = "Live services", body = ServicesBody),
        (status = 400, description = "Invalid project name", body = ErrorBody),
    ))]
pub async fn list(
    State(cp): State<ControlPlane>,
    PathArgs(path): PathArgs<ProjectPath>,
) -> ApiResult<Json<ServicesBody>> {
    path.check()?;
    Ok(Json(ServicesBody {
        services: cp.list_services().await?,
    }))
}

/// Get a service.
#[utoipa::path(get, path = "/v1/project/{project}/service/{service}", operation_id = "getService",
    tag = "services", params(ServicePath),
    responses(
        (status = 200, description = "The service", body = ServiceBody),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
    ))]
pub async fn get(
    State(cp): State<ControlPlane>,
    PathArgs(path): PathArgs<ServicePath>,
) -> ApiResult<Json<ServiceBody>> {
    path.check()?;
    Ok(Json(ServiceBody {
        service: cp.get_service_view(&path.service).await?,
    }))
}

/// Update plan and/or user_config.
///
/// `user_config` is merged into the stored one key by key (`null` removes a key).
/// `additional_backup_regions` may change once per 24 h (409 with `next_allowed_at`); `[]`
/// disables copies and keeps existing secondary backups until their retention ends.
#[utoipa::path(put, path = "/v1/project/{project}/service/{service}", operation_id = "updateService",
    tag = "services", params(ServicePath), request_body = ServiceUpdateBody,
    responses(
        (status = 200, description = "Updated", body = ServiceBody),
        (status = 400, description = "Bad input: malformed JSON, unknown field or region, a region rule", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
        (status = 409, description = "The regions changed less than 24 h ago (`next_allowed_at` says when they may)", body = ErrorBody),
    ))]
pub async fn update(
    State(cp): State<ControlPlane>,
    PathArgs(path): PathArgs<ServicePath>,
    Body(body): Body<ServiceUpdateBody>,
) -> ApiResult<Json<ServiceBody>> {
    path.check()?;
    let service = cp
        .update_service(&path.service, body.plan, body.user_config)
        .await?;
    Ok(Json(ServiceBody { service }))
}

/// Delete a service; its backups stay in every location until their retention ends.
#[utoipa::path(delete, path = "/v1/project/{project}/service/{service}", operation_id = "deleteService",
    tag = "services", params(ServicePath),
    responses(
        (status = 200, description = "Deleted", body = Message),
        (status = 400, description = "Invalid name", body = ErrorBody),
        (status = 404, description = "No such service", body = ErrorBody),
    ))]
pub async fn delete(
    State(cp): State<ControlPlane>,
    PathArgs(path): PathArgs<ServicePath>,
) -> ApiResult<Json<Message>> {
    path.check()?;
    cp.delete_service(&path.service).await?;
    Ok(Json(Message {
        message: format!(
            "service `{}` deleted; its backups stay in every location until their retention ends",
            path.service
        ),
    }))
}
