//! One module per command group.

pub mod backup;
pub mod catalog;
pub mod copy_jobs;
pub mod fork;
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

/// What every command gets: the loaded config, the output mode and the cancellation token of the run.
#[derive(Debug)]
pub struct Ctx {
    pub cfg: Config,
    pub engines: Engines,
    pub out: Out,
    pub cancel: CancellationToken,
}

impl Ctx {
    /// Opens an existing location of `service` in `region`.
    pub async fn location(&self, service: &str, region: &str) -> anyhow::Result<Location> {
        Ok(self.cfg.location(service, region, &self.cancel).await?)
    }

    /// The control plane: the catalog the config names, opened on demand (wal-push never needs it).
    pub async fn control(&self) -> anyhow::Result<ControlPlane> {
        Ok(ControlPlane::open(self.cfg.clone(), self.engines.clone(), self.cancel.clone()).await?)
    }

    /// The engine of the service a location holds.
    pub fn engine_of(&self, loc: &Location) -> anyhow::Result<&dyn Engine> {
        Ok(self.engines.of(loc)?)
    }
}
