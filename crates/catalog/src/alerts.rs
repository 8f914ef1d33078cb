//! Alert conditions that hold now. Opening one that already holds, or closing one that does not,
//! changes nothing and says so: that is what makes an alert go out once per condition, from any
//! number of servers sharing the catalog.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;

use crate::Catalog;
use crate::db::{get, get_time, ms};
use crate::error::{DbContext, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// The condition, e.g. `copy_failed/orders/eu-west`.
    pub key: String,
    pub service: Option<String>,
    pub kind: String,
    pub message: String,
    pub since: DateTime<Utc>,
}

fn alert_from_row(row: &AnyRow) -> Result<Alert> {
    Ok(Alert {
        key: get(row, "key")?,
        service: get(row, "service")?,
        kind: get(row, "kind")?,
        message: get(row, "message")?,
        since: get_time(row, "since")?,
    })
}

impl Catalog {
    /// Conditions that hold, oldest first.
    pub async fn list_alerts(&self) -> Result<Vec<Alert>> {
        let rows = sqlx::query(
            "SELECT key, service, kind, message, since FROM alerts ORDER BY since, key",
        )
        .fetch_all(&self.pool)
        .await
        .db("list alerts")?;
        rows.iter().map(alert_from_row).collect()
    }

    /// Records that `key` holds; `true` if it did not before (the caller alerts).
    pub async fn open_alert(
        &self,
        key: &str,
        service: Option<&str>,
        kind: &str,
        message: &str,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO alerts (key, service, kind, message, since) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(service)
        .bind(kind)
        .bind(message)
        .bind(ms(self.now()))
        .execute(&self.pool)
        .await
        .db("open alert")?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that `key` no longer holds; the alert as it was if it did (the caller resolves it).
    pub async fn close_alert(&self, key: &str) -> Result<Option<Alert>> {
        let row = sqlx::query(
            "DELETE FROM alerts WHERE key = $1 RETURNING key, service, kind, message, since",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .db("close alert")?;
        row.as_ref().map(alert_from_row).transpose()
    }
}
