use std::path::PathBuf;
use std::process::ExitCode;

use btar_control::ForkRequest;

use super::Ctx;
use super::restore::parse_time;

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
        let cp = ctx.control().await?;
        let src = cp.service(&self.service).await?;
        let cloud = match self.source.as_str() {
            "primary" => src.cloud.clone(),
            "secondary" => src
                .additional_backup_regions()
                .first()
                .cloned()
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "service `{}` has no additional backup region; name a region with --source",
                        src.name
                    )
                })?,
            region => region.to_string(),
        };
        let forked = cp
            .fork(ForkRequest {
                source_service: src.name.clone(),
                cloud,
                name: self.name,
                recovery_target_time: self.target_time.as_deref().map(parse_time).transpose()?,
                plan: self.plan,
                data_dir: self.data_dir,
                port: self.port,
            })
            .await?;
        ctx.out.emit(&forked, || {
            format!(
                "service {} forked from {} ({} location {}, backup {}) in {:.1}s; server at {}{}",
                forked.service_name,
                forked.source_service,
                forked.source_location,
                forked.cloud,
                forked.backup_name,
                forked.seconds,
                forked.conninfo,
                forked
                    .reached
                    .as_ref()
                    .and_then(|r| r.last_commit_time)
                    .map(|t| format!("; last replayed commit {}", t.to_rfc3339()))
                    .unwrap_or_default()
            )
        })?;
        Ok(ExitCode::SUCCESS)
    }
}
