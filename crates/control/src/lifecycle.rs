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

/// A backup written out in the engine's native form.
#[derive(Debug, Clone, Serialize)]
pub struct Downloaded {
    pub service: String,
    pub region: String,
    pub backup: String,
    pub dir: String,
    pub bytes: u64,
    /// Log files placed beside the data so the database makes it consistent on its own.
    pub logs: Vec<String>,
}

impl ControlPlane {
    /// Writes backup `backup` of `service` from `region` into the empty (or new) directory `to`,
    /// usable without btar (Alibaba's backup download): its files, and the log files it needs in
    /// the engine's own place (PostgreSQL: `pg_wal`, so the server starts on it and recovers to the
    /// backup's end by itself). No recovery settings are written: it points at no archive.
    pub async fn download_backup(
        &self,
        service: &str,
        region: &str,
        backup: &str,
        to: &std::path::Path,
    ) -> Result<Downloaded> {
        let loc = self.location(service, region).await?;
        let engine = self.engine_of(&loc)?;
        let manifest = loc.read_manifest(backup).await?;
        if std::fs::read_dir(to).is_ok_and(|mut d| d.next().is_some()) {
            return Err(ControlError::Invalid(format!(
                "{} is not empty: a download goes into a new or empty directory",
                to.display()
            )));
        }
        std::fs::create_dir_all(to)
            .map_err(|e| ControlError::Invalid(format!("cannot create {}: {e}", to.display())))?;
        {
            use std::os::unix::fs::PermissionsExt;
            // PostgreSQL starts only on a data directory private to its user.
            let _ = std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700));
        }
        let reader = btar_format::FileReader::new(loc.clone(), 16);
        let parallel = self.config().storage.restore_parallel_files();
        let bytes = reader
            .restore_tree(&manifest, to, parallel, &|_| {})
            .await?;
        let mut logs = Vec::new();
        if let Some(sub) = engine.native_log_dir() {
            let dir = to.join(sub);
            std::fs::create_dir_all(dir.join("archive_status")).map_err(|e| {
                ControlError::Invalid(format!("cannot create {}: {e}", dir.display()))
            })?;
            let needed = engine
                .backup_point(&manifest)
                .map(|p| p.logs)
                .unwrap_or_default();
            for name in needed {
                if !engine.fetch_log(&loc, &name, &dir.join(&name)).await? {
                    return Err(ControlError::Invalid(format!(
                        "log file {name}, which backup {backup} needs to be consistent, is not archived in region `{region}`"
                    )));
                }
                logs.push(name);
            }
        }
        let _ = self
            .catalog()
            .append_event(
                Some(service),
                "backup_downloaded",
                &format!(
                    "backup {backup} from region {region} written to {}",
                    to.display()
                ),
            )
            .await;
        Ok(Downloaded {
            service: service.into(),
            region: region.into(),
            backup: backup.into(),
            dir: to.display().to_string(),
            bytes,
            logs,
        })
    }

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
