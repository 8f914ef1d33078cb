//! The streamer's last report per location: how far the streamed log is, for the lag report and
//! `/metrics`. Replaced, not appended: history of the lag is in `lag_samples`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::Catalog;
use crate::db::{float_arg, get, get_time, ms};
use crate::error::{DbContext, Result};

/// Where the WAL streamer (`btar log-stream`) last reported one location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"service": "orders", "region": "aws-eu-central-1", "primary": false,
    "position": "0/3A000148", "server_position": "0/3A000148", "bytes_behind": 0,
    "seconds_behind": 0.0, "slot_retained_bytes": 1048576, "error": null,
    "updated_at": "2026-11-30T07:00:01Z"})))]
pub struct StreamStatus {
    pub service: String,
    pub region: String,
    /// The home region: the server is told WAL is flushed once it is stored here.
    pub primary: bool,
    /// Log position the location holds (archive plus streamed tail), in the engine's notation.
    pub position: String,
    /// The server's flushed WAL position the streamer last knew.
    pub server_position: String,
    pub bytes_behind: i64,
    /// How long the oldest WAL the location lacks has been waiting; 0 when current.
    pub seconds_behind: f64,
    /// WAL the server keeps for the streamer's replication slot.
    pub slot_retained_bytes: Option<i64>,
    /// Why the last store into this location failed, if it did.
    pub error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

fn from_row(row: &AnyRow) -> Result<StreamStatus> {
    Ok(StreamStatus {
        service: get(row, "service")?,
        region: get(row, "region")?,
        primary: get::<i64>(row, "is_primary")? != 0,
        position: get(row, "position")?,
        server_position: get(row, "server_position")?,
        bytes_behind: get(row, "bytes_behind")?,
        seconds_behind: get(row, "seconds_behind")?,
        slot_retained_bytes: get(row, "slot_retained_bytes")?,
        error: get(row, "error")?,
        updated_at: get_time(row, "updated_at")?,
    })
}

impl Catalog {
    /// Replaces the service's stream positions with `rows` (a region no longer streamed to loses
    /// its row).
    pub async fn record_stream_positions(
        &self,
        service: &str,
        rows: &[StreamStatus],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await.db("stream positions: begin")?;
        sqlx::query("DELETE FROM stream_positions WHERE service = $1")
            .bind(service)
            .execute(&mut *tx)
            .await
            .db("stream positions: clear")?;
        for r in rows {
            sqlx::query(
                "INSERT INTO stream_positions (service, region, is_primary, position, server_position,
                     bytes_behind, seconds_behind, slot_retained_bytes, error, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, CAST($7 AS DOUBLE PRECISION), $8, $9, $10)",
            )
            .bind(service)
            .bind(&r.region)
            .bind(i64::from(r.primary))
            .bind(&r.position)
            .bind(&r.server_position)
            .bind(r.bytes_behind)
            .bind(float_arg(Some(r.seconds_behind)))
            .bind(r.slot_retained_bytes)
            .bind(&r.error)
            .bind(ms(r.updated_at))
            .execute(&mut *tx)
            .await
            .db("stream positions: insert")?;
        }
        tx.commit().await.db("stream positions: commit")
    }

    /// Every service's stream positions, by service then region.
    pub async fn list_stream_positions(&self) -> Result<Vec<StreamStatus>> {
        let rows = sqlx::query(
            "SELECT service, region, is_primary, position, server_position, bytes_behind,
                 seconds_behind, slot_retained_bytes, error, updated_at
             FROM stream_positions ORDER BY service, region",
        )
        .fetch_all(&self.pool)
        .await
        .db("list stream positions")?;
        rows.iter().map(from_row).collect()
    }
}
