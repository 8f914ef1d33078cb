//! The control plane (DESIGN.md, "Roles"): the config, the catalog, and the work that ties the engine
//! to the replicator — primary backups indexed as they commit, one copy job per additional backup
//! region, workers that claim and run those jobs, continuous WAL shipping with its lag, plan
//! schedules and retention, and the REST API over all of it.
//!
//! The stores are the truth; the catalog is an index and a job log. Every pass here is idempotent, so
//! any number of `btar server` processes can share one PostgreSQL catalog.

pub mod alerts;
pub mod api;
mod backups;
pub mod check;
pub mod config;
pub mod copy_jobs;
mod copy_worker;
pub mod cost;
pub mod drill;
mod error;
mod fork;
pub mod lifecycle;
mod locations;
mod log_sequence;
mod log_shipper;
mod metrics;
mod owned_dirs;
mod restore;
mod retention;
pub mod schedule;
mod scheduler;
mod services;

use std::sync::Arc;

use btar_catalog::{Catalog, NewService};
use btar_engine::{AgentSettings, Engine, Engines};
use btar_format::Location;
use btar_region::CancellationToken;

pub use backups::{BackupEntry, BackupState, BackupTaken, BackupsView, LocationStatus, PitrRange};
pub use config::{Config, ConfigError, PlanConfig, ServiceConfig, WalFetchSettings};
pub use copy_worker::CopyRun;
pub use error::{ControlError, Result, engine_code};
pub use fork::{ForkRequest, Forked};
pub use log_shipper::{LogShipped, NOTIFY_PREFIX, notify_archived};
pub use restore::{RestoreRun, Restored};
pub use retention::Expired;
pub use scheduler::Roles;
pub use services::{ServiceCreate, ServiceState, ServiceView, UserConfig};

/// A handle on the control plane. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: Config,
    catalog: Catalog,
    engines: Engines,
    cancel: CancellationToken,
    /// Lease owner name of this process in the catalog.
    owner: String,
    /// Wakes the copy workers when a job is created in this process.
    jobs_created: tokio::sync::Notify,
    /// Log numbering per service, once a backup told it (see `log_sequence`).
    sequences:
        std::sync::Mutex<std::collections::HashMap<String, Arc<dyn btar_engine::LogSequence>>>,
    /// The last compliance check `/metrics` ran, and when.
    check_cache: tokio::sync::Mutex<Option<(std::time::Instant, check::CheckReport)>>,
}

impl ControlPlane {
    /// Opens the catalog the config names and registers the config's services that it lacks.
    /// `engines` are the engines this btar is built with; each checks its services' settings.
    pub async fn open(cfg: Config, engines: Engines, cancel: CancellationToken) -> Result<Self> {
        let catalog = Catalog::open_with(
            &cfg.catalog_url(),
            cfg.catalog_options(),
            Arc::new(btar_catalog::SystemClock),
        )
        .await?;
        Self::with_catalog(cfg, engines, catalog, cancel).await
    }

    pub async fn with_catalog(
        cfg: Config,
        engines: Engines,
        catalog: Catalog,
        cancel: CancellationToken,
    ) -> Result<Self> {
        for s in &cfg.services {
            engines
                .get(s.engine)
                .and_then(|e| s.agent().map_or(Ok(()), |a| e.check_settings(a)))
                .map_err(|e| ConfigError::Invalid(format!("service `{}`: {e}", s.name)))?;
        }
        let owner = format!(
            "{}-{}-{:08x}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "btar".into()),
            std::process::id(),
            rand::random::<u32>()
        );
        let cp = ControlPlane {
            inner: Arc::new(Inner {
                cfg,
                catalog,
                engines,
                cancel,
                owner,
                jobs_created: tokio::sync::Notify::new(),
                sequences: Default::default(),
                check_cache: Default::default(),
            }),
        };
        cp.register_config_services().await?;
        Ok(cp)
    }

    pub fn config(&self) -> &Config {
        &self.inner.cfg
    }

    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    pub fn cancel_token(&self) -> &CancellationToken {
        &self.inner.cancel
    }

    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// A service declared in the config is registered once; afterwards the catalog (changed through
    /// the API or `btar service update`) is authoritative for its regions and plan.
    async fn register_config_services(&self) -> Result<()> {
        let catalog = self.catalog();
        for s in &self.config().services {
            // A deleted row counts as registered: deletion sticks (only `service create` brings
            // the name back), so the config never resurrects a service.
            match catalog.get_service_of_record(&s.name).await {
                Ok(_) => continue,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            catalog
                .create_service(&NewService {
                    name: s.name.clone(),
                    engine: s.engine,
                    cloud: s.cloud.clone(),
                    plan: s.plan.clone().unwrap_or_default(),
                    user_config: UserConfig {
                        additional_backup_regions: Some(s.additional_backup_regions.clone()),
                        ..UserConfig::default()
                    }
                    .to_value(),
                })
                .await?;
            // No location is created here: registering runs on every command against a catalog
            // that does not know the service yet (a new catalog, a lost one), and a location made
            // then at an unmounted mount point would take WAL the real one never sees. `btar
            // service init`, the first backup and `btar up` create it, explicitly.
        }
        Ok(())
    }

    /// The catalog's view of a live service.
    pub async fn service(&self, name: &str) -> Result<btar_catalog::Service> {
        let s = match self.catalog().get_service(name).await {
            Ok(s) => s,
            Err(e) if e.is_not_found() => {
                let known: Vec<String> = self
                    .catalog()
                    .list_services()
                    .await?
                    .into_iter()
                    .filter(|s| s.deleted_at.is_none())
                    .map(|s| s.name)
                    .collect();
                return Err(ControlError::NotFound(format!(
                    "unknown service `{name}` (known: {})",
                    known.join(", ")
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if s.deleted_at.is_some() {
            return Err(ControlError::NotFound(format!(
                "service `{name}` was deleted"
            )));
        }
        Ok(s)
    }

    /// The catalog's record of a service, live or deleted (for what outlives a deletion: its
    /// backups).
    pub async fn service_of_record(&self, name: &str) -> Result<btar_catalog::Service> {
        match self.catalog().get_service_of_record(name).await {
            Ok(s) => Ok(s),
            Err(e) if e.is_not_found() => self.service(name).await,
            Err(e) => Err(e.into()),
        }
    }

    pub fn engines(&self) -> &Engines {
        &self.inner.engines
    }

    /// The engine of a service.
    pub fn engine(&self, svc: &btar_catalog::Service) -> Result<&dyn Engine> {
        Ok(self.engines().get(svc.engine)?)
    }

    /// The engine of the service a location holds.
    pub fn engine_of(&self, loc: &Location) -> Result<&dyn Engine> {
        Ok(self.engines().of(loc)?)
    }

    /// Agent settings of a service whose database this process can reach: from the config, or those
    /// a fork was registered with.
    pub fn agent_settings(&self, svc: &btar_catalog::Service) -> Option<AgentSettings> {
        if let Ok(s) = self.config().service(Some(&svc.name))
            && let Some(agent) = s.agent()
        {
            return Some(agent.clone());
        }
        UserConfig::of(svc).ok()?.agents.remove(&svc.engine)
    }

    /// Opens an existing location of `service` in `region`.
    pub async fn location(&self, service: &str, region: &str) -> Result<Location> {
        self.config()
            .location(service, region, self.cancel_token())
            .await
    }
}
