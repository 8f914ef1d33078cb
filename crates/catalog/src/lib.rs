//! btar's control-plane catalog: the service list, an index of the backups in every location, the
//! copy-job log, lag samples, WAL watermarks, events and the scheduler's leader lease.
//!
//! The catalog is an index, not the source of truth: every location is self-describing, so all of
//! this can be rebuilt by listing the stores. It lives in SQLite (the embedded default, one file)
//! or in PostgreSQL when several btar processes share the work; both run the same runtime queries
//! through `sqlx::Any`, with times stored as Unix milliseconds.

mod alerts;
mod backups;
mod clock;
mod copy_jobs;
mod db;
mod error;
mod events;
mod lag;
mod locations;
mod services;
mod streams;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::AnyPool;

use crate::error::DbContext;

pub use alerts::Alert;
pub use backups::{BackupRecord, Role};
pub use btar_engine::EngineKind;
pub use clock::{Clock, ManualClock, SystemClock};
pub use copy_jobs::{
    ClaimedJob, CopyJob, CopyJobFilter, CopyJobTotals, CreatedBy, JobKind, JobLease, JobOutcome,
    JobProgress, JobState, NewCopyJob,
};
pub use db::Backend;
pub use error::{CatalogError, Result};
pub use events::{Event, EventFilter};
pub use lag::{LagReport, LagSample, LagSeries, Period, Point, Watermark};
pub use services::{NewService, REGIONS_CHANGE_INTERVAL_HOURS, Service, ServiceUpdate};
pub use streams::StreamStatus;

/// Tunables of a catalog handle.
#[derive(Debug, Clone)]
pub struct CatalogOptions {
    /// Pool size; SQLite serialises writers anyway, so a few connections suffice there.
    pub max_connections: u32,
    /// Attempts (claims) a copy job gets before a failure is final.
    pub max_attempts: i64,
    /// Delay before the first retry of a failed copy job; doubles with each further attempt.
    pub retry_base: Duration,
    /// Upper bound of the retry delay.
    pub retry_max: Duration,
}

impl Default for CatalogOptions {
    fn default() -> Self {
        CatalogOptions {
            max_connections: 8,
            max_attempts: 5,
            retry_base: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
        }
    }
}

/// A handle on the catalog. Cheap to clone; clones share the connection pool.
#[derive(Debug, Clone)]
pub struct Catalog {
    pool: AnyPool,
    backend: Backend,
    clock: Arc<dyn Clock>,
    options: CatalogOptions,
}

impl Catalog {
    /// Opens `sqlite://PATH?mode=rwc` or `postgres://…` and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, CatalogOptions::default(), Arc::new(SystemClock)).await
    }

    pub async fn open_with(
        url: &str,
        options: CatalogOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let backend = Backend::from_url(url)?;
        let pool = db::connect(url, backend, options.max_connections.max(1)).await?;
        db::migrate(&pool, backend, clock.now()).await?;
        Ok(Catalog {
            pool,
            backend,
            clock,
            options,
        })
    }

    /// One round trip to the database: whether the catalog answers now (readiness probes).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .db("ping")?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The schema version this build migrates to.
    pub fn schema_version() -> i64 {
        db::latest_schema_version()
    }

    /// Waits for in-flight queries and closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
