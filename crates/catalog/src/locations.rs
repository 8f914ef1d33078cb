//! Locations known to exist. A location is created once; the record of it is what lets btar refuse
//! to start a new one where it later finds none (DESIGN.md invariant 7).

use crate::Catalog;
use crate::db::ms;
use crate::error::{DbContext, Result};

impl Catalog {
    /// Records that `service` has a location in `region` (idempotent).
    pub async fn record_location(&self, service: &str, region: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO locations (service, region, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (service, region) DO NOTHING",
        )
        .bind(service)
        .bind(region)
        .bind(ms(self.now()))
        .execute(&self.pool)
        .await
        .db("record location")?;
        Ok(())
    }

    /// Whether a location of `service` in `region` was ever recorded.
    pub async fn location_known(&self, service: &str, region: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM locations WHERE service = $1 AND region = $2")
            .bind(service)
            .bind(region)
            .fetch_optional(&self.pool)
            .await
            .db("find location")?;
        Ok(row.is_some())
    }
}
