use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::Catalog;
use crate::db::{get, get_time, ms, text_enum};
use crate::error::{DbContext, Result};

text_enum! {
    /// Whether a location is the service's home region or an additional backup region.
    Role { Primary => "primary", Secondary => "secondary" }
}

/// One committed backup in one location, as found in that location's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupRecord {
    pub service: String,
    pub region: String,
    pub backup_name: String,
    pub backup_time: DateTime<Utc>,
    pub data_size: i64,
    pub stored_size: i64,
    pub role: Role,
    pub committed_at: DateTime<Utc>,
}

fn backup_from_row(row: &AnyRow) -> Result<BackupRecord> {
    let role: String = get(row, "role")?;
    Ok(BackupRecord {
        service: get(row, "service")?,
        region: get(row, "region")?,
        backup_name: get(row, "backup_name")?,
        backup_time: get_time(row, "backup_time")?,
        data_size: get(row, "data_size")?,
        stored_size: get(row, "stored_size")?,
        role: Role::from_column("backups.role", &role)?,
        committed_at: get_time(row, "committed_at")?,
    })
}

impl Catalog {
    /// Records a committed backup; re-indexing the same backup (e.g. when rebuilding the catalog
    /// from the stores) overwrites the row.
    pub async fn upsert_backup(&self, b: &BackupRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO backups (service, region, backup_name, backup_time, data_size,
                 stored_size, role, committed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (service, region, backup_name) DO UPDATE SET
                 backup_time = excluded.backup_time, data_size = excluded.data_size,
                 stored_size = excluded.stored_size, role = excluded.role,
                 committed_at = excluded.committed_at",
        )
        .bind(&b.service)
        .bind(&b.region)
        .bind(&b.backup_name)
        .bind(ms(b.backup_time))
        .bind(b.data_size)
        .bind(b.stored_size)
        .bind(b.role.as_str())
        .bind(ms(b.committed_at))
        .execute(&self.pool)
        .await
        .db("upsert backup")?;
        Ok(())
    }

    /// The service's backups, oldest first, in every location or only in `region`.
    pub async fn list_backups(
        &self,
        service: &str,
        region: Option<&str>,
    ) -> Result<Vec<BackupRecord>> {
        let rows = sqlx::query(
            "SELECT service, region, backup_name, backup_time, data_size, stored_size, role,
                 committed_at
             FROM backups WHERE service = $1 AND ($2 IS NULL OR region = $2)
             ORDER BY backup_time, backup_name, region",
        )
        .bind(service)
        .bind(region)
        .fetch_all(&self.pool)
        .await
        .db("list backups")?;
        rows.iter().map(backup_from_row).collect()
    }

    /// Drops a backup from the index (after retention deleted it); `false` if it was not there.
    pub async fn delete_backup(
        &self,
        service: &str,
        region: &str,
        backup_name: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM backups WHERE service = $1 AND region = $2 AND backup_name = $3",
        )
        .bind(service)
        .bind(region)
        .bind(backup_name)
        .execute(&self.pool)
        .await
        .db("delete backup")?;
        Ok(done.rows_affected() > 0)
    }
}
