//! How a location comes to be. A location is created once, explicitly: when the service
//! is registered, on its first backup, or on the first copy into an additional region. After that a
//! missing descriptor is an error, never a reason to start over — a vanished mount point, bucket or
//! prefix must not swallow backups or WAL (DESIGN.md invariant 7). The catalog tells "first" from
//! "vanished": it indexes every backup and the log watermark of every destination.

use btar_engine::EngineKind;
use btar_format::{FormatError, Location};

use crate::ControlPlane;
use crate::error::{ControlError, Result};

impl ControlPlane {
    /// Creates (or opens) the home location of a service being registered (service create, fork),
    /// so that its `wal-push` finds it before the first backup; refuses where the catalog knows a
    /// location that is now missing.
    pub async fn create_home_location(
        &self,
        service: &str,
        region: &str,
        engine: EngineKind,
    ) -> Result<Location> {
        let loc = match self.location(service, region).await {
            Err(ControlError::Format(FormatError::NoLocation { .. })) => {
                if let Err(refused) = self.refuse_if_known(service, region).await {
                    // Another writer (a second server on the same catalog) may have created it
                    // between our look and the catalog's answer: it records only after creating.
                    return match self.location(service, region).await {
                        Ok(loc) => Ok(loc),
                        Err(_) => Err(refused),
                    };
                }
                let r = self.config().open_region(region, self.cancel_token())?;
                Location::create(&r, service, engine.as_str(), None)
                    .await?
                    .with_compression_level(self.config().storage.compression_level)
            }
            other => other?,
        };
        self.remember(service, region).await?;
        Ok(loc)
    }

    /// Creates the home location of a service just created through the API (`service create`),
    /// so its `wal-push` works before the first backup. Best effort: an unreachable region leaves
    /// the creation to the first backup.
    pub(crate) async fn register_location(&self, service: &str, region: &str, engine: EngineKind) {
        if let Err(e) = self.create_home_location(service, region, engine).await {
            tracing::warn!(service, region, error = %e,
                "home location not created yet; the first backup creates it");
        }
    }

    /// `btar service init`: creates the home location of a service declared in the config (or
    /// opens it when it exists), so its log archive works before the first backup.
    pub async fn init_location(&self, service: &str) -> Result<Location> {
        let svc = self.service(service).await?;
        self.create_home_location(&svc.name, &svc.cloud, svc.engine)
            .await
    }

    /// The home location a backup writes into: created on the service's first backup, required to
    /// exist once it was created.
    pub(crate) async fn home_location_for_backup(
        &self,
        svc: &btar_catalog::Service,
    ) -> Result<Location> {
        self.create_home_location(&svc.name, &svc.cloud, svc.engine)
            .await
    }

    /// The secondary location of `src`'s service in region `dst` for a copy or log shipping:
    /// created on the first copy, required to exist once it was created.
    pub(crate) async fn secondary_location(&self, src: &Location, dst: &str) -> Result<Location> {
        let region = self.config().open_region(dst, self.cancel_token())?;
        let loc = match btar_replicator::open_destination(src, &region).await {
            Err(btar_replicator::CopyError::Format(FormatError::NoLocation { .. })) => {
                if let Err(refused) = self.refuse_if_known(src.service(), dst).await {
                    // A concurrent copy (another server on the same catalog) may have created it
                    // between our look and the catalog's answer: it records only after creating.
                    return btar_replicator::open_destination(src, &region)
                        .await
                        .map_err(|_| refused);
                }
                btar_replicator::create_destination(src, &region).await?
            }
            other => other?,
        };
        self.remember(src.service(), dst).await?;
        Ok(loc)
    }

    async fn remember(&self, service: &str, region: &str) -> Result<()> {
        if !self.catalog().location_known(service, region).await? {
            self.catalog().record_location(service, region).await?;
        }
        Ok(())
    }

    async fn refuse_if_known(&self, service: &str, region: &str) -> Result<()> {
        let backups = self
            .catalog()
            .list_backups(service, Some(region))
            .await?
            .len();
        let what = if backups > 0 {
            format!("{backups} backup(s)")
        } else if self
            .catalog()
            .get_watermark(service, region)
            .await?
            .is_some()
        {
            "shipped WAL".to_string()
        } else if self.catalog().location_known(service, region).await? {
            "its creation".to_string()
        } else {
            return Ok(());
        };
        Err(ControlError::LocationVanished {
            region: region.into(),
            service: service.into(),
            what,
        })
    }
}
