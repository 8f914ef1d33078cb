//! Runs each scenario against a temporary SQLite file and a throwaway PostgreSQL database.

use std::sync::Arc;

use btar_catalog::{Catalog, CatalogOptions, Clock, ManualClock};
use btar_testkit::PgDatabase;
use chrono::{DateTime, Utc};

pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z")
        .expect("valid time")
        .with_timezone(&Utc)
}

pub enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh catalog database; dropped (PostgreSQL) or deleted (SQLite) with the value.
pub struct TestDb {
    pub url: String,
    pub clock: Arc<ManualClock>,
    _pg: Option<PgDatabase>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(kind: Kind) -> TestDb {
        let clock = Arc::new(ManualClock::new(start_time()));
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("catalog.db").display()
                );
                TestDb {
                    url,
                    clock,
                    _pg: None,
                    _dir: Some(dir),
                }
            }
            Kind::Postgres => {
                let db = PgDatabase::create("catalog_test").await;
                TestDb {
                    url: db.url.clone(),
                    clock,
                    _pg: Some(db),
                    _dir: None,
                }
            }
        }
    }

    pub fn clock_now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub async fn open(&self) -> Catalog {
        self.open_with(CatalogOptions::default()).await
    }

    pub async fn open_with(&self, options: CatalogOptions) -> Catalog {
        Catalog::open_with(&self.url, options, self.clock.clone())
            .await
            .expect("open catalog")
    }
}

/// Defines `$scenario::sqlite` and `$scenario::postgres` tests that run `$scenario(TestDb)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let db = $crate::common::TestDb::new($crate::common::Kind::Sqlite).await;
                    super::$scenario(&db).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let db = $crate::common::TestDb::new($crate::common::Kind::Postgres).await;
                    super::$scenario(&db).await;
                }
            }
        )+
    };
}
