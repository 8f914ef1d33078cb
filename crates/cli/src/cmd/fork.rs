use std::path::PathBuf;
use std::process::ExitCode;

use btar_control::{ForkRequest, ServiceCreate};
use serde_json::{Value, json};

use super::Ctx;
use super::restore::parse_time;
use crate::remote::Api;

/// Create a new service from SERVICE's backups in the primary or a secondary location, to the latest
/// point or a target time; it runs in that location's region with SERVICE's plan.
#[derive(Debug, clap::Args)]
pub struct ForkArgs {
    service: String,
    /// Name of the new service.
    #[arg(long)]
    name: String,
    /// `primary`, `secondary` (the first additional backup region) or a region name.
    #[arg(long, default_value = "primary")]
    source: String,
    /// Recover to this time (RFC 3339 or `YYYY-MM-DD HH:MM:SS` UTC); default: latest.
    #[arg(long)]
    target_time: Option<String>,
    /// Data directory of the fork (default: forks/NAME beside the config).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long)]
    port: Option<u16>,
    #[arg(long)]
    plan: Option<String>,
}

impl ForkArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let api = ctx.api().await?;
        let src = api.service(&self.service).await?;
        let regions = src
            .user_config
            .additional_backup_regions
            .clone()
            .unwrap_or_default();
        let cloud = match self.source.as_str() {
            "primary" => src.cloud_name.clone(),
            "secondary" => regions.first().cloned().ok_or_else(|| {
                anyhow::anyhow!(
                    "service `{}` has no additional backup region; name a region with --source",
                    src.service_name
                )
            })?,
            region => region.to_string(),
        };
        let target = self.target_time.as_deref().map(parse_time).transpose()?;
        // One object either way: what the fork restored, as the API's `service.fork` carries it.
        let forked: Value = match &api {
            Api::Local(cp) => serde_json::to_value(
                cp.fork(ForkRequest {
                    source_service: src.service_name.clone(),
                    cloud,
                    name: self.name,
                    recovery_target_time: target,
                    plan: self.plan,
                    data_dir: self.data_dir,
                    port: self.port,
                })
                .await?,
            )?,
            Api::Remote(_) => {
                let mut user_config = json!({"service_to_fork_from": src.service_name});
                if let Some(t) = target {
                    user_config["recovery_target_time"] = json!(t);
                }
                if let Some(d) = &self.data_dir {
                    user_config["fork_data_dir"] = json!(d);
                }
                if let Some(p) = self.port {
                    user_config["fork_port"] = json!(p);
                }
                let created = api
                    .create_service(ServiceCreate {
                        name: self.name,
                        service_type: String::new(),
                        cloud,
                        plan: self.plan.unwrap_or_default(),
                        user_config,
                    })
                    .await?;
                created.fork.unwrap_or(Value::Null)
            }
        };
        ctx.out.emit(&forked, || {
            let text = |k: &str| forked[k].as_str().unwrap_or_default().to_string();
            format!(
                "service {} forked from {} ({} location {}, backup {}) in {:.1}s; server at {}{}",
                text("service_name"),
                text("source_service"),
                text("source_location"),
                text("cloud"),
                text("backup_name"),
                forked["seconds"].as_f64().unwrap_or_default(),
                text("conninfo"),
                forked["reached"]["last_commit_time"]
                    .as_str()
                    .map(|t| format!("; last replayed commit {t}"))
                    .unwrap_or_default()
            )
        })?;
        Ok(ExitCode::SUCCESS)
    }
}
