//! The REST API (DESIGN.md, "User-facing contract"): JSON under `/v1` behind a bearer token, routes
//! shaped after Aiven's service API and AWS Backup's copy jobs, described by `/v1/openapi.json`.
//! Beside it, without the token: the OpenAPI document, Prometheus `/metrics` and the console at `/`
//! (a static page; it asks for the token and calls the API itself).

mod auth;
mod backups;
mod console;
mod copy_jobs;
mod error;
mod events;
mod extract;
mod openapi;
mod services;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::ControlPlane;
pub use error::{ApiError, ApiResult};
pub use openapi::document as openapi_document;

/// Every route served, as written in the OpenAPI document (tests check that the two agree).
pub const ROUTES: &[&str] = &[
    "/v1/project/{project}/service",
    "/v1/project/{project}/service/{service}",
    "/v1/project/{project}/service/{service}/backups",
    "/v1/project/{project}/service/{service}/backup_to_another_region/report",
    "/v1/copy-jobs",
    "/v1/copy-jobs/{id}",
    "/v1/events",
    "/v1/openapi.json",
    "/metrics",
    "/",
];

/// The API, console and metrics. `token` is the bearer token every `/v1` route but the OpenAPI
/// document requires.
pub fn router(cp: ControlPlane, token: String) -> Router {
    let token = auth::Token(Arc::from(token));
    let service = "/v1/project/{project}/service/{service}";
    let protected = Router::new()
        .route(
            "/v1/project/{project}/service",
            post(services::create).get(services::list),
        )
        .route(
            service,
            get(services::get)
                .put(services::update)
                .delete(services::delete),
        )
        .route(
            &format!("{service}/backups"),
            get(backups::list).post(backups::create),
        )
        .route(
            &format!("{service}/backup_to_another_region/report"),
            post(backups::report),
        )
        .route("/v1/copy-jobs", get(copy_jobs::list))
        .route("/v1/copy-jobs/{id}", get(copy_jobs::describe))
        .route("/v1/events", get(events::list))
        .route_layer(axum::middleware::from_fn_with_state(
            token,
            auth::require_token,
        ));
    Router::new()
        .route("/", get(console::page))
        .route("/v1/openapi.json", get(openapi::serve))
        .route("/metrics", get(metrics))
        .merge(protected)
        .fallback(not_found)
        .with_state(cp)
}

/// Serves [`router`] on `listener` until the control plane's cancel token fires; requests in flight
/// then finish before this returns.
pub async fn serve(
    cp: ControlPlane,
    listener: tokio::net::TcpListener,
    token: String,
) -> std::io::Result<()> {
    let cancel = cp.cancel_token().clone();
    axum::serve(listener, router(cp, token))
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}

/// `{project}`: accepted for Aiven compatibility and checked for shape, but not stored: btar has a
/// single project.
#[derive(Debug, Deserialize)]
pub struct ProjectPath {
    project: String,
}

impl ProjectPath {
    fn check(&self) -> ApiResult<()> {
        check_name("project", &self.project)
    }
}

#[derive(Debug, Deserialize)]
pub struct ServicePath {
    project: String,
    service: String,
}

impl ServicePath {
    fn check(&self) -> ApiResult<()> {
        check_name("project", &self.project)?;
        check_name("service", &self.service)
    }
}

fn check_name(what: &str, name: &str) -> ApiResult<()> {
    btar_format::layout::validate_name(name)
        .map_err(|e| ApiError::bad_request(format!("invalid {what} name: {e}")))
}

/// Prometheus text exposition, computed from the catalog at scrape time.
async fn metrics(State(cp): State<ControlPlane>) -> Response {
    match crate::metrics::render(&cp).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for `{}`; see /v1/openapi.json", uri.path()),
    )
}
