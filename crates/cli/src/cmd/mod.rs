//! One module per command group.

pub mod alerts;
pub mod backup;
pub mod catalog;
pub mod check;
pub mod copy_jobs;
pub mod cost;
pub mod drill;
pub mod expire;
pub mod fork;
pub mod log_follow;
pub mod log_stream;
pub mod replicate;
pub mod report;
pub mod restore;
pub mod retention;
pub mod server;
pub mod service;
pub mod up;
pub mod verify;
pub mod wal;

use btar_control::{Config, ControlPlane};
use btar_engine::{Engine, Engines};
use btar_format::Location;
use btar_region::CancellationToken;

use crate::output::Out;
use crate::remote::{Api, Remote};

/// A throwaway catalog standing in for one that cannot be opened; removed when dropped.
#[derive(Debug)]
pub struct Scratch {
    dir: std::path::PathBuf,
    pub why: String,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What every command gets: the loaded config, the output mode and the cancellation token of the run.
#[derive(Debug)]
pub struct Ctx {
    pub cfg: Config,
    pub engines: Engines,
    pub out: Out,
    pub cancel: CancellationToken,
    /// `--server`: the commands with a REST route call it instead of the local catalog.
    pub remote: Option<Remote>,
}

impl Ctx {
    /// Opens an existing location of `service` in `region`.
    pub async fn location(&self, service: &str, region: &str) -> anyhow::Result<Location> {
        Ok(self.cfg.location(service, region, &self.cancel).await?)
    }

    /// A configured service, its engine and the checked settings that reach its server (the
    /// agent's side of a long-running role: following or streaming its log).
    pub fn agent_of(
        &self,
        service: Option<&str>,
    ) -> anyhow::Result<(
        btar_control::ServiceConfig,
        &dyn Engine,
        btar_engine::AgentSettings,
    )> {
        use anyhow::Context as _;
        let svc = self.cfg.service(service)?.clone();
        let engine = self.engines.get(svc.engine)?;
        let settings = svc.agent().cloned().with_context(|| {
            format!(
                "service `{}` has no [service.{}] settings: how to reach its server",
                svc.name,
                svc.engine.as_str()
            )
        })?;
        engine.check_settings(&settings)?;
        Ok((svc, engine, settings))
    }

    /// The control plane: the catalog the config names, opened on demand (wal-push never needs it).
    pub async fn control(&self) -> anyhow::Result<ControlPlane> {
        Ok(ControlPlane::open(self.cfg.clone(), self.engines.clone(), self.cancel.clone()).await?)
    }

    /// Where service, backup, copy-job, report, fork and check commands get their answers: the
    /// server given by `--server`, or the local catalog.
    pub async fn api(&self) -> anyhow::Result<Api> {
        Ok(match &self.remote {
            Some(r) => Api::Remote(r.clone()),
            None => Api::Local(self.control().await?),
        })
    }

    /// The control plane for a restore: a restore must work when the catalog does not (a shared
    /// PostgreSQL catalog lost with the primary region), since the stores are the truth. Without
    /// the configured catalog, a scratch one knows the config's services — enough to restore them.
    pub async fn control_for_restore(&self) -> anyhow::Result<(ControlPlane, Option<Scratch>)> {
        let catalog_error = match self.control().await {
            Ok(cp) => return Ok((cp, None)),
            Err(e) => e,
        };
        let scratch = Scratch {
            dir: std::env::temp_dir().join(format!("btar-restore-{}", std::process::id())),
            why: format!(
                "the catalog cannot be opened ({catalog_error:#}); only services declared in the config can be restored"
            ),
        };
        std::fs::create_dir_all(&scratch.dir)?;
        let url = format!("sqlite://{}/catalog.db?mode=rwc", scratch.dir.display());
        let catalog = btar_catalog::Catalog::open(&url).await?;
        let cp = ControlPlane::with_catalog(
            self.cfg.clone(),
            self.engines.clone(),
            catalog,
            self.cancel.clone(),
        )
        .await?;
        Ok((cp, Some(scratch)))
    }

    /// The engine of the service a location holds.
    pub fn engine_of(&self, loc: &Location) -> anyhow::Result<&dyn Engine> {
        Ok(self.engines.of(loc)?)
    }
}
