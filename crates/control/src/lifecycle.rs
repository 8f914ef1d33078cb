//! Lifecycle without the server (pgBackRest's `expire`, `backup delete`): an operator removes one
//! backup from one location, or applies retention to chosen services and regions — the plan
//! printed first, with `--dry-run` only printed. Both are safe beside a running server: a manifest
//! is deleted first, and what it alone named (packs, logs) goes in a retention pass, after the
//! grace period, as for any expired backup.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::ControlPlane;
use crate::error::{ControlError, Result};

#[derive(Debug, Clone, Serialize)]
pub struct DeletedBackup {
    pub service: String,
    pub region: String,
    pub backup: String,
    /// The location's newest backup was deleted (only with `force`).
    pub was_newest: bool,
}

impl ControlPlane {
    /// Deletes backup `backup` of `service` from `region`'s location. The location's newest backup is
    /// refused unless `force`: the log archive after it, and the recoverable window up to now, rest
    /// on it. A backup never depends on another (each manifest names its own packs), so no later
    /// one breaks.
    pub async fn delete_backup(
        &self,
        service: &str,
        region: &str,
        backup: &str,
        force: bool,
    ) -> Result<DeletedBackup> {
        let loc = self.location(service, region).await?;
        let names = loc.list_backups().await?;
        if !names.iter().any(|n| n == backup) {
            return Err(ControlError::NotFound(format!(
                "backup `{backup}` of service `{service}` is not in region `{region}`"
            )));
        }
        let was_newest = names.last().is_some_and(|n| n == backup);
        if was_newest && !force {
            return Err(ControlError::Conflict(format!(
                "`{backup}` is the newest backup of `{service}` in region `{region}`: restores to \
                 latest start from it; pass --force to delete it anyway"
            )));
        }
        loc.delete_manifest(backup).await?;
        self.catalog()
            .delete_backup(service, region, backup)
            .await?;
        let _ = self
            .catalog()
            .append_event(
                Some(service),
                "backup_deleted",
                &format!("backup {backup} deleted from region {region} by an operator"),
            )
            .await;
        tracing::info!(service, region, backup, was_newest, "backup deleted");
        Ok(DeletedBackup {
            service: service.into(),
            region: region.into(),
            backup: backup.into(),
            was_newest,
        })
    }

    /// Retention for `service` (or every service) in `region` (or every location) at `now`; with
    /// `dry_run` the plan only (nothing deleted, nothing repacked).
    pub async fn expire(
        &self,
        service: Option<&str>,
        region: Option<&str>,
        dry_run: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<crate::Expired>> {
        if let Some(s) = service {
            self.catalog().get_service_of_record(s).await?;
        }
        self.retention_pass(now, service, region, dry_run).await
    }
}
