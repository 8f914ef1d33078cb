use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::Catalog;
use crate::db::{delta, get, get_time, ms};
use crate::error::{DbContext, Result};

/// Something that happened: a backup committed or failed, a fork, a deletion, an alert…
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"id": 42, "at": "2026-11-30T03:00:12Z", "service": "orders",
    "kind": "backup_committed", "message": "backup 20261130T030000123Z committed in aws-eu-west-1"})))]
pub struct Event {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub service: Option<String>,
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub service: Option<String>,
    /// Only events with a larger id: lets a follower poll for what is new.
    pub after_id: Option<i64>,
    pub limit: Option<u32>,
}

fn event_from_row(row: &AnyRow) -> Result<Event> {
    Ok(Event {
        id: get(row, "id")?,
        at: get_time(row, "at")?,
        service: get(row, "service")?,
        kind: get(row, "kind")?,
        message: get(row, "message")?,
    })
}

impl Catalog {
    /// Appends an event and returns its id; ids grow with time.
    pub async fn append_event(
        &self,
        service: Option<&str>,
        kind: &str,
        message: &str,
    ) -> Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO events (at, service, kind, message) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(ms(self.now()))
        .bind(service)
        .bind(kind)
        .bind(message)
        .fetch_one(&self.pool)
        .await
        .db("append event")
    }

    /// Newest first.
    pub async fn list_events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT id, at, service, kind, message FROM events
             WHERE ($1 IS NULL OR service = $1) AND id > $2
             ORDER BY id DESC LIMIT $3",
        )
        .bind(filter.service.as_deref())
        .bind(filter.after_id.unwrap_or(0))
        .bind(filter.limit.map_or(1000, i64::from))
        .fetch_all(&self.pool)
        .await
        .db("list events")?;
        rows.iter().map(event_from_row).collect()
    }

    /// Takes or renews the lease `name` for `owner` for `ttl`. `true` while `owner` leads: it
    /// held the lease already, or the previous leader's lease expired. Call again before `ttl`
    /// runs out to stay leader.
    pub async fn try_lead(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let now = self.now();
        let done = sqlx::query(
            "INSERT INTO leader_leases (name, owner, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,
                 expires_at = excluded.expires_at
             WHERE leader_leases.owner = excluded.owner OR leader_leases.expires_at <= $4",
        )
        .bind(name)
        .bind(owner)
        .bind(ms(now + delta(ttl)))
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .db("try lead")?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lease up at once so another process need not wait for it to expire.
    pub async fn resign_lead(&self, name: &str, owner: &str) -> Result<()> {
        sqlx::query("DELETE FROM leader_leases WHERE name = $1 AND owner = $2")
            .bind(name)
            .bind(owner)
            .execute(&self.pool)
            .await
            .db("resign lead")?;
        Ok(())
    }
}
