//! The REST API (DESIGN.md, "User-facing contract"): JSON under `/v1` behind a bearer token, routes
//! shaped after Aiven's service API and AWS Backup's copy jobs, described by `/v1/openapi.json`.
//! Beside it, without the token: the OpenAPI document, Prometheus `/metrics` and the console at `/`
//! (a static page; it asks for the token and calls the API itself), and the probes `/healthz` (the
//! process serves) and `/readyz` (and its catalog answers).

mod auth;
mod backups;
mod check;
mod clouds;
mod console;
mod copy_jobs;
mod cost;
mod drills;
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
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::ControlPlane;
pub use backups::BackupBody;
pub use copy_jobs::CopyJobBody;
pub use error::{ApiError, ApiResult, ErrorBody};
pub use openapi::document as openapi_document;
pub use services::{ServiceBody, ServicesBody};

/// Every route served, as written in the OpenAPI document (tests check that the two agree).
pub const ROUTES: &[&str] = &[
    "/v1/project/{project}/service",
    "/v1/project/{project}/service/{service}",
    "/v1/project/{project}/service/{service}/backups",
    "/v1/project/{project}/service/{service}/backup_to_another_region/report",
    "/v1/copy-jobs",
    "/v1/copy-jobs/{id}",
    "/v1/events",
    "/v1/check",
    "/v1/cost",
    "/v1/drills",
    "/v1/clouds",
    "/v1/openapi.json",
    "/metrics",
    "/healthz",
    "/readyz",
    "/",
    "/console/{version}/{file}",
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
        .route("/v1/check", get(check::run))
        .route("/v1/cost", get(cost::report))
        .route("/v1/drills", get(drills::list))
        .route("/v1/clouds", get(clouds::list))
        .route_layer(axum::middleware::from_fn_with_state(
            token,
            auth::require_token,
        ));
    Router::new()
        .route("/", get(console::page))
        .route("/console/{version}/{file}", get(console::asset))
        .route("/v1/openapi.json", get(openapi::serve))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(log_request))
        .with_state(cp)
}

/// Raises the soft open-file limit to the hard one and returns the limit now in force. Idle API
/// clients, store connections and WAL files all take descriptors; a default soft limit of 1024 ran
/// out under 1,128 idle connections.
pub fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
        rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
    })
}

/// Serves [`router`] on `listener` until the control plane's cancel token fires; requests in flight
/// then finish before this returns. At most `[server] max_connections` connections are served at
/// once (capped at half the open-file limit, so the rest of btar keeps descriptors); one more is
/// answered 503 and closed. A connection that sends no complete request head within
/// `idle_timeout_seconds` — a new one, or one idle between requests — is closed.
pub async fn serve(
    cp: ControlPlane,
    listener: tokio::net::TcpListener,
    token: String,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let cancel = cp.cancel_token().clone();
    let settings = &cp.config().server;
    let fd_share = usize::try_from(raise_fd_limit() / 2).unwrap_or(usize::MAX);
    let max = settings.max_connections.min(fd_share).max(1);
    let idle = std::time::Duration::from_secs(settings.idle_timeout_seconds);
    let app = router(cp.clone(), token);
    let slots = Arc::new(tokio::sync::Semaphore::new(max));
    let refusals = Arc::new(tokio::sync::Semaphore::new(REFUSALS_IN_FLIGHT));
    let mut conns = tokio::task::JoinSet::new();
    let mut full_reported = false;
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; connections ending free fds.
                    tracing::warn!(error = %e, "API cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        while conns.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if !full_reported {
                tracing::warn!(
                    max,
                    "API connection limit reached; refusing new connections"
                );
                full_reported = true;
            }
            // A few refusals linger to close gracefully; beyond that the connection is just dropped.
            match refusals.clone().try_acquire_owned() {
                Ok(permit) => {
                    conns.spawn(async move {
                        let _permit = permit;
                        refuse(stream).await;
                    });
                }
                Err(_) => drop(stream),
            }
            continue;
        };
        full_reported = false;
        let service = TowerToHyperService::new(app.clone());
        let cancel = cancel.clone();
        conns.spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(idle);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = cancel.cancelled() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// Connections over the limit being answered 503 at once (each holds a descriptor for at most
/// [`REFUSAL_LINGER`]).
const REFUSALS_IN_FLIGHT: usize = 32;
const REFUSAL_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Answers 503 and closes gracefully: closing with the client's request still unread would send a
/// reset, and the client would lose the 503 and see only "connection reset".
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        stream.write_all(&busy_response()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// The refusal sent to a connection over the limit, in the API's error shape.
fn busy_response() -> Vec<u8> {
    let message = "too many connections; retry later";
    let body = format!(
        r#"{{"message":"{message}","code":"unavailable","errors":[{{"message":"{message}","status":503}}]}}"#
    );
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `{"message": …}`: what was done.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({"message": "backup of `orders` started; it is listed under …/backups once committed"})))]
pub struct Message {
    pub message: String,
}

/// `{project}`: accepted for Aiven compatibility and checked for shape, but not stored: btar has a
/// single project.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProjectPath {
    /// Accepted for Aiven compatibility, not stored (btar has one project).
    #[param(pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")]
    project: String,
}

impl ProjectPath {
    fn check(&self) -> ApiResult<()> {
        check_name("project", &self.project)
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ServicePath {
    /// Accepted for Aiven compatibility, not stored (btar has one project).
    #[param(pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")]
    project: String,
    /// The service's name.
    #[param(pattern = "^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")]
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

/// Prometheus metrics, computed from the catalog at scrape time.
///
/// `btar_copy_jobs{state}`, `btar_copy_jobs_failed_total`, `btar_copy_bytes_transferred_total{destination_region}`,
/// `btar_backup_lag_seconds` / `btar_wal_lag_seconds` / `btar_bytes_pending` /
/// `btar_latest_recoverable_timestamp_seconds` `{service,destination_region}` (newest sample of the
/// last hour), `btar_backups` / `btar_backup_data_bytes` / `btar_last_backup_timestamp_seconds`
/// `{service,region,role}`, `btar_services`, `btar_check_status{service,rule,region}` (1 pass, 0
/// fail; rerun at most every 5 minutes), `btar_check_timestamp_seconds`,
/// `btar_drill_last_successful` and `btar_drill_last_success_timestamp_seconds`.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations", security(()),
    responses(
        (status = 200, description = "Text exposition format 0.0.4", body = String, content_type = "text/plain"),
        (status = 500, description = "The catalog does not answer", body = ErrorBody),
        (status = 503, description = "The catalog is unavailable", body = ErrorBody),
    ))]
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

/// The request log: one line per request with its outcome and duration. The path only — query
/// strings may carry filters with names, and headers carry the token.
async fn log_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let ms = started.elapsed().as_millis() as u64;
    if status >= 500 {
        tracing::warn!(%method, path, status, ms, "request");
    } else {
        tracing::info!(%method, path, status, ms, "request");
    }
    response
}

/// A probe's answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(examples(json!({"status": "ready"})))]
pub struct Probe {
    pub status: ProbeStatus,
    /// Why the catalog does not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProbeStatus {
    Ok,
    Ready,
    Unavailable,
}

/// Liveness: the process accepts and answers requests.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations", security(()),
    responses((status = 200, description = "Serving", body = Probe)))]
async fn healthz() -> axum::Json<Probe> {
    axum::Json(Probe {
        status: ProbeStatus::Ok,
        message: None,
    })
}

/// Readiness: the catalog answers too (copy jobs, reports and most routes need it).
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations", security(()),
    responses(
        (status = 200, description = "Ready", body = Probe),
        (status = 503, description = "The catalog does not answer", body = Probe),
    ))]
async fn readyz(State(cp): State<ControlPlane>) -> Response {
    match cp.catalog().ping().await {
        Ok(()) => axum::Json(Probe {
            status: ProbeStatus::Ready,
            message: None,
        })
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(Probe {
                status: ProbeStatus::Unavailable,
                message: Some(e.to_string()),
            }),
        )
            .into_response(),
    }
}

/// axum's own 405 has an empty body; ours says which route and where the methods are listed.
async fn method_not_allowed(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "`{method}` is not served on `{}`; see /v1/openapi.json for its methods",
            uri.path()
        ),
    )
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for `{}`; see /v1/openapi.json", uri.path()),
    )
}
