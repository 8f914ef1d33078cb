//! `/v1/project/{project}/service[/{service}]` (Aiven's service API): create or fork, list, get,
//! update, delete.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiResult;
use super::extract::{Body, PathArgs};
use super::{ProjectPath, ServicePath};
use crate::{ControlPlane, ServiceCreate};

/// Aiven's ServiceUpdate, reduced to what btar has. `user_config` is merged into the stored one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceUpdateBody {
    #[serde(default)]
    plan: Option<String>,
    #[serde(default)]
    user_config: Option<Value>,
}

/// 201 `{"service": …}`; a fork (`user_config.service_to_fork_from`) answers once the fork runs.
pub async fn create(
    State(cp): State<ControlPlane>,
    PathArgs(path): PathArgs<ProjectPath>,
    Body(req): Body<ServiceCreate>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    path.check()?;
    let view = cp.create_service(req).await?;
    Ok((StatusCode::CREATED, Json(json!({ "service": view }))))
}

pub async fn list(
    State(cp): State<ControlPlane>,
    PathArgs(path): PathArgs<ProjectPath>,
) -> ApiResult<Json<Value>> {
    path.check()?;
    Ok(Json(json!({ "services": cp.list_services().await? })))
}

pub async fn get(
    State(cp): State<ControlPlane>,
    PathArgs(path): PathArgs<ServicePath>,
) -> ApiResult<Json<Value>> {
    path.check()?;
    Ok(Json(
        json!({ "service": cp.get_service_view(&path.service).await? }),
    ))
}

pub async fn update(
    State(cp): State<ControlPlane>,
    PathArgs(path): PathArgs<ServicePath>,
    Body(body): Body<ServiceUpdateBody>,
) -> ApiResult<Json<Value>> {
    path.check()?;
    let view = cp
        .update_service(&path.service, body.plan, body.user_config)
        .await?;
    Ok(Json(json!({ "service": view })))
}

pub async fn delete(
    State(cp): State<ControlPlane>,
    PathArgs(path): PathArgs<ServicePath>,
) -> ApiResult<Json<Value>> {
    path.check()?;
    cp.delete_service(&path.service).await?;
    Ok(Json(json!({
        "message": format!(
            "service `{}` deleted; its backups stay in every location until their retention ends",
            path.service
        )
    })))
}
