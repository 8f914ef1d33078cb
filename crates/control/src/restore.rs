//! Restores, the one path behind `btar restore` and Fork & restore: a service the catalog knows
//! (declared in the config, registered through the API, or a fork), one of its locations, and the
//! service's engine.

use std::path::PathBuf;
use std::time::Duration;

use btar_catalog::Role;
use btar_engine::{ArchiveTo, Progress, RestoreOutcome, RestoreRequest, Target};
use btar_format::Location;
use serde::Serialize;

use crate::ControlPlane;
use crate::error::{ControlError, Result};

/// A restore of a service's backup into a new data directory.
#[derive(Debug, Clone)]
pub struct RestoreRun {
    pub service: String,
    /// The location to restore from; by default the home region, or — when that cannot be read —
    /// the first other location of the service that can.
    pub region: Option<String>,
    pub target: Target,
    /// Restore this backup instead of choosing one for the target.
    pub backup: Option<String>,
    pub data_dir: PathBuf,
    /// Port of the restored server; with `start`, a free one by default.
    pub port: Option<u16>,
    /// Extra server settings, `key = value` in the engine's configuration.
    pub settings: Vec<(String, String)>,
    /// Start the server, recover to the target and promote.
    pub start: bool,
    /// Keep archiving the restored server's logs into the service's own archive (a restore that
    /// replaces the service); off by default.
    pub archive: bool,
    pub promote_timeout: Duration,
    /// Let the restored server listen on loopback only (drills; the engine knows how).
    pub loopback_only: bool,
}

/// What a restore did, and from where.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    #[serde(flatten)]
    pub outcome: RestoreOutcome,
    /// `primary` or `secondary`: the role of the location restored from.
    pub source_location: Role,
    pub port: Option<u16>,
    /// Set when the home region could not be read and another location served the restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

pub(crate) fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| ControlError::Task(format!("no free port for the restored server: {e}")))
}

impl ControlPlane {
    /// Restores a backup of a service known to the catalog (a deleted one too: its backups are kept
    /// until retention).
    pub async fn restore(&self, run: RestoreRun, progress: &dyn Progress) -> Result<Restored> {
        let svc = self.service_of_record(&run.service).await?;
        let (loc, role, fallback) = match &run.region {
            Some(r) => {
                let loc = self.location(&svc.name, r).await?;
                let role = if *r == svc.cloud {
                    Role::Primary
                } else {
                    Role::Secondary
                };
                (loc, role, None)
            }
            None => self.readable_location(&svc).await?,
        };
        let port = match run.port {
            Some(p) => Some(p),
            None if run.start && !run.settings.iter().any(|(k, _)| k == "port") => {
                Some(free_port()?)
            }
            None => None,
        };
        let req = RestoreRequest {
            target: run.target,
            backup: run.backup,
            data_dir: std::path::absolute(&run.data_dir).unwrap_or(run.data_dir),
            btar: self.config().self_command(),
            archive: run.archive.then(|| ArchiveTo {
                service: svc.name.clone(),
                region: Some(svc.cloud.clone()),
            }),
            port,
            loopback_only: run.loopback_only,
            settings: run.settings,
            start: run.start,
            agent: self.agent_settings(&svc),
            parallel: self.config().storage.restore_parallel_files(),
            promote_timeout: run.promote_timeout,
        };
        let outcome = self.restore_from(&loc, &req, progress).await?;
        Ok(Restored {
            outcome,
            source_location: role,
            port,
            fallback,
        })
    }

    /// Restores from one location with the engine of the service it holds.
    pub(crate) async fn restore_from(
        &self,
        loc: &Location,
        req: &RestoreRequest,
        progress: &dyn Progress,
    ) -> Result<RestoreOutcome> {
        Ok(self.engine_of(loc)?.restore(loc, req, progress).await?)
    }

    /// The home location, or — when it cannot be read (store down, location missing) — the first
    /// other location of the service that can: a disaster is when restores matter most.
    async fn readable_location(
        &self,
        svc: &btar_catalog::Service,
    ) -> Result<(Location, Role, Option<String>)> {
        let mut first_error: Option<(String, ControlError)> = None;
        for place in self.locations_of(svc).await? {
            let probe = async {
                let loc = self.location(&svc.name, &place.region).await?;
                loc.list_backups().await?;
                Ok::<_, ControlError>(loc)
            }
            .await;
            match probe {
                Ok(loc) => {
                    let fallback = first_error.map(|(from, e)| {
                        format!(
                            "region `{from}` cannot be read ({e}); restoring from `{}`",
                            place.region
                        )
                    });
                    return Ok((loc, place.role, fallback));
                }
                Err(e) => {
                    first_error.get_or_insert((place.region.clone(), e));
                }
            }
        }
        Err(match first_error {
            Some((region, e)) => ControlError::NotFound(format!(
                "no location of `{}` can be read (first: `{region}`: {e})",
                svc.name
            )),
            None => ControlError::NotFound(format!("service `{}` has no location", svc.name)),
        })
    }
}
