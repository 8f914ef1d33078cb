//! `wal-push` and `wal-fetch`, the database's archive and restore commands; `wal-fetch` delivers
//! from a local spool that a background `wal-prefetch` fills ahead of it (see `spooled`).

mod spooled;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

use super::Ctx;

pub use spooled::PrefetchArgs;

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Service whose archive receives the file (default: the only configured service).
    #[arg(long, env = "BTAR_SERVICE")]
    service: Option<String>,
    /// Home region, for a service registered outside the config (a fork); default: the config's.
    #[arg(long)]
    region: Option<String>,
    /// Path of the WAL file (%p).
    path: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    #[arg(long, env = "BTAR_SERVICE")]
    service: Option<String>,
    /// Region to fetch from (default: the service's home region).
    #[arg(long)]
    region: Option<String>,
    /// WAL file name (%f).
    name: String,
    /// Destination path (%p).
    path: PathBuf,
}

/// restore_command exit code for "the archive could not be read": above 125, so PostgreSQL aborts
/// recovery instead of taking the error for the end of WAL and promoting too early.
pub const FETCH_FAILED: u8 = 127;

impl PushArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let t = Instant::now();
        let service = match (&self.service, &self.region) {
            (Some(s), Some(_)) => s.clone(),
            _ => ctx.cfg.service(self.service.as_deref())?.name.clone(),
        };
        let region = match &self.region {
            Some(r) => r.clone(),
            None => ctx.cfg.service(Some(&service))?.cloud.clone(),
        };
        // Never creates the location: where it is missing, a mount point or bucket is gone, and
        // acknowledging the segment would let PostgreSQL recycle WAL the real archive never got.
        let loc = ctx.location(&service, &region).await?;
        let pushed = ctx
            .engine_of(&loc)?
            .push_log(&loc, &self.path)
            .await
            .with_context(|| {
                format!(
                    "wal-push {} to region `{}`",
                    self.path.display(),
                    loc.region().name()
                )
            })?;
        // Durable in the primary: now tell a running replicator, without waiting for it.
        btar_control::notify_archived(&ctx.cfg, &service, &pushed.timeline, &pushed.name);
        tracing::info!(file = %self.path.display(), ms = t.elapsed().as_millis() as u64, "archived");
        Ok(ExitCode::SUCCESS)
    }
}

impl FetchArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        // With both --service and --region the service need not be in the config (a fork's source).
        let (service, region) = match (&self.service, &self.region) {
            (Some(s), Some(r)) => (s.clone(), r.clone()),
            _ => {
                let svc = ctx.cfg.service(self.service.as_deref())?;
                let r = self.region.clone().unwrap_or_else(|| svc.cloud.clone());
                (svc.name.clone(), r)
            }
        };
        let result = spooled::fetch(ctx, &service, &region, &self.name, &self.path).await;
        match result {
            Ok(true) => Ok(ExitCode::SUCCESS),
            Ok(false) => Ok(ExitCode::from(1)),
            Err(e) => {
                eprintln!(
                    "error: wal-fetch {} from region `{region}`: {e:#}",
                    self.name
                );
                Ok(ExitCode::from(FETCH_FAILED))
            }
        }
    }
}
