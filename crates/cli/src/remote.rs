//! Remote mode: with `--server URL` (or `BTAR_SERVER`) and a token, the commands that have a REST
//! route (service, backup create|list, copy-jobs, report, fork, check) call a running `btar server`
//! instead of opening the local catalog. [`Api`] answers with the same types either way, so a
//! command prints the same object locally and remotely.

use std::path::Path;

use anyhow::Context;
use btar_catalog::{CopyJobFilter, LagReport, Period};
use btar_control::api::{BackupBody, CopyJobBody, ErrorBody, ServiceBody, ServicesBody};
use btar_control::check::CheckReport;
use btar_control::copy_jobs::{CopyJobView, CopyJobsPage};
use btar_control::{BackupTaken, BackupsView, ControlPlane, ServiceCreate, ServiceView};
use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The project in the routes: btar has one, and checks only the name's shape.
const PROJECT: &str = "btar";

/// A failed API call: the server's message and code (the code the same failure has locally).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    pub code: &'static str,
    pub message: String,
}

/// The codes a server may send, as `'static` strings; a code this btar does not know, or an
/// answer without one (not a btar server), is `failed`.
const CODES: &[&str] = &[
    "invalid",
    "not_found",
    "conflict",
    "no_agent",
    "location_vanished",
    "config",
    "unavailable",
    "damaged",
    "not_built_in",
    "unauthorized",
    "method_not_allowed",
    "failed",
];

/// A `btar server`'s REST API.
#[derive(Debug, Clone)]
pub struct Remote {
    base: url::Url,
    token: String,
    http: reqwest::Client,
}

impl Remote {
    /// `server` is the API's base URL (`http://host:7480`); the token comes from `token_file`, or
    /// else from `BTAR_TOKEN`.
    pub fn new(server: &str, token_file: Option<&Path>) -> anyhow::Result<Self> {
        let base = url::Url::parse(server)
            .with_context(|| format!("--server `{server}` is not a URL (e.g. http://host:7480)"))?;
        if !matches!(base.scheme(), "http" | "https") {
            anyhow::bail!("--server `{server}`: only http:// and https:// are served");
        }
        let token = match token_file {
            Some(f) => std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the token file {}", f.display()))?,
            None => std::env::var("BTAR_TOKEN").map_err(|_| {
                anyhow::anyhow!(
                    "--server needs the API token: --token-file FILE, BTAR_TOKEN_FILE or BTAR_TOKEN"
                )
            })?,
        };
        let token = token.trim().to_string();
        if token.is_empty() {
            anyhow::bail!("the API token is empty");
        }
        Ok(Remote {
            base,
            token,
            http: reqwest::Client::new(),
        })
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<url::Url> {
        let mut url = self.base.join(path)?;
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        Ok(url)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> anyhow::Result<T> {
        self.call_url(method, self.url(path, query)?, body).await
    }

    async fn call_url<T: DeserializeOwned>(
        &self,
        method: Method,
        url: url::Url,
        body: Option<Value>,
    ) -> anyhow::Result<T> {
        let mut req = self
            .http
            .request(method, url.clone())
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(&b)?);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach btar server at {}", self.base))?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if !status.is_success() {
            let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(e) => (e.code, e.message),
                Err(_) => (
                    String::new(),
                    format!(
                        "{status} from {url}: {}",
                        String::from_utf8_lossy(&bytes).trim()
                    ),
                ),
            };
            let code = CODES
                .iter()
                .find(|c| **c == code)
                .copied()
                .unwrap_or("failed");
            return Err(RemoteError { code, message }.into());
        }
        serde_json::from_slice(&bytes)
            .with_context(|| format!("unexpected answer from {} {url}", status.as_u16()))
    }

    fn service_path(name: &str) -> String {
        format!("/v1/project/{PROJECT}/service/{name}")
    }

    /// A primary backup taken by the server (which copies it with its own workers).
    pub async fn take_backup(&self, service: &str) -> anyhow::Result<BackupTaken> {
        let path = format!("{}/backups", Remote::service_path(service));
        let body: BackupBody = self
            .call(Method::POST, &path, &[("wait", "true".into())], None)
            .await?;
        Ok(body.backup)
    }
}

fn local_only(what: &str) -> anyhow::Error {
    btar_control::ControlError::invalid(format!(
        "{what} works on the local catalog; run it without --server / BTAR_SERVER"
    ))
    .into()
}

/// Where a command's data comes from: the local catalog, or a server's API.
#[derive(Debug)]
pub enum Api {
    Local(ControlPlane),
    Remote(Remote),
}

impl Api {
    /// The local control plane, for what only it can do (with the reason to give otherwise).
    pub fn local(&self, what: &str) -> anyhow::Result<&ControlPlane> {
        match self {
            Api::Local(cp) => Ok(cp),
            Api::Remote(_) => Err(local_only(what)),
        }
    }

    pub async fn create_service(&self, req: ServiceCreate) -> anyhow::Result<ServiceView> {
        match self {
            Api::Local(cp) => Ok(cp.create_service(req).await?),
            Api::Remote(r) => {
                let path = format!("/v1/project/{PROJECT}/service");
                let body: ServiceBody = r
                    .call(Method::POST, &path, &[], Some(serde_json::to_value(&req)?))
                    .await?;
                Ok(body.service)
            }
        }
    }

    pub async fn update_service(
        &self,
        name: &str,
        plan: Option<String>,
        user_config: Option<Value>,
    ) -> anyhow::Result<ServiceView> {
        match self {
            Api::Local(cp) => Ok(cp.update_service(name, plan, user_config).await?),
            Api::Remote(r) => {
                let mut body = json!({});
                if let Some(p) = plan {
                    body["plan"] = json!(p);
                }
                if let Some(u) = user_config {
                    body["user_config"] = u;
                }
                let path = Remote::service_path(name);
                let body: ServiceBody = r.call(Method::PUT, &path, &[], Some(body)).await?;
                Ok(body.service)
            }
        }
    }

    pub async fn service(&self, name: &str) -> anyhow::Result<ServiceView> {
        match self {
            Api::Local(cp) => Ok(cp.get_service_view(name).await?),
            Api::Remote(r) => {
                let path = Remote::service_path(name);
                let body: ServiceBody = r.call(Method::GET, &path, &[], None).await?;
                Ok(body.service)
            }
        }
    }

    pub async fn list_services(&self) -> anyhow::Result<Vec<ServiceView>> {
        match self {
            Api::Local(cp) => Ok(cp.list_services().await?),
            Api::Remote(r) => {
                let path = format!("/v1/project/{PROJECT}/service");
                let body: ServicesBody = r.call(Method::GET, &path, &[], None).await?;
                Ok(body.services)
            }
        }
    }

    pub async fn delete_service(&self, name: &str) -> anyhow::Result<()> {
        match self {
            Api::Local(cp) => Ok(cp.delete_service(name).await?),
            Api::Remote(r) => {
                let path = Remote::service_path(name);
                let _: Value = r.call(Method::DELETE, &path, &[], None).await?;
                Ok(())
            }
        }
    }

    pub async fn backups(&self, service: &str) -> anyhow::Result<BackupsView> {
        match self {
            Api::Local(cp) => Ok(cp.backups_view(service).await?),
            Api::Remote(r) => {
                let path = format!("{}/backups", Remote::service_path(service));
                r.call(Method::GET, &path, &[], None).await
            }
        }
    }

    pub async fn lag_report(&self, service: &str, period: Period) -> anyhow::Result<LagReport> {
        match self {
            Api::Local(cp) => Ok(cp.lag_report(service, period).await?),
            Api::Remote(r) => {
                let path = format!(
                    "{}/backup_to_another_region/report",
                    Remote::service_path(service)
                );
                r.call(Method::POST, &path, &[], Some(json!({"period": period})))
                    .await
            }
        }
    }

    pub async fn copy_jobs_page(
        &self,
        filter: CopyJobFilter,
        limit: u32,
        next_token: Option<&str>,
    ) -> anyhow::Result<CopyJobsPage> {
        match self {
            Api::Local(cp) => Ok(cp.copy_jobs_page(filter, limit, next_token).await?),
            Api::Remote(r) => {
                let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339());
                let query: Vec<(&str, String)> = [
                    ("state", filter.state.map(|s| s.as_str().to_string())),
                    ("created_after", time(filter.created_after)),
                    ("created_before", time(filter.created_before)),
                    ("completed_after", time(filter.completed_after)),
                    ("completed_before", time(filter.completed_before)),
                    ("destination_region", filter.destination_region),
                    ("service", filter.service),
                    ("limit", Some(limit.to_string())),
                    ("next_token", next_token.map(str::to_string)),
                ]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
                r.call(Method::GET, "/v1/copy-jobs", &query, None).await
            }
        }
    }

    pub async fn copy_job(&self, id: &str) -> anyhow::Result<CopyJobView> {
        match self {
            Api::Local(cp) => Ok(cp.copy_job(id).await?),
            Api::Remote(r) => {
                let mut url = r.url("/v1/copy-jobs", &[])?;
                url.path_segments_mut()
                    .map_err(|_| anyhow::anyhow!("--server cannot be a base URL"))?
                    .push(id);
                let body: CopyJobBody = r.call_url(Method::GET, url, None).await?;
                Ok(body.copy_job)
            }
        }
    }

    pub async fn check(
        &self,
        service: Option<&str>,
        now: Option<DateTime<Utc>>,
    ) -> anyhow::Result<CheckReport> {
        match self {
            Api::Local(cp) => Ok(cp.check(service, now.unwrap_or_else(Utc::now)).await?),
            Api::Remote(_) if now.is_some() => Err(local_only("check --now")),
            Api::Remote(r) => {
                let query: Vec<(&str, String)> = service
                    .map(|s| ("service", s.to_string()))
                    .into_iter()
                    .collect();
                r.call(Method::GET, "/v1/check", &query, None).await
            }
        }
    }
}
