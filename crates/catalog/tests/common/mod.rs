//! Runs each scenario against a temporary SQLite file and a throwaway PostgreSQL database.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use btar_catalog::{Catalog, CatalogOptions, Clock, ManualClock};
use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};

/// The machine's PostgreSQL (trust auth); overridable for unusual setups.
fn admin_url() -> String {
    std::env::var("BTAR_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

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
    pg_database: Option<String>,
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
                    pg_database: None,
                    _dir: Some(dir),
                }
            }
            Kind::Postgres => {
                static SEQ: AtomicU32 = AtomicU32::new(0);
                let name = format!(
                    "btar_catalog_test_{}_{}_{}",
                    std::process::id(),
                    SEQ.fetch_add(1, Ordering::Relaxed),
                    Utc::now().timestamp_micros() % 1_000_000
                );
                let admin = admin_url();
                let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
                    panic!(
                        "cannot connect to PostgreSQL at {admin} ({e}); these tests need a local \
                         PostgreSQL with trust auth for user postgres (or set BTAR_TEST_PG_URL)"
                    )
                });
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                conn.close().await.ok();
                let (base, _) = admin.rsplit_once('/').expect("URL names a database");
                TestDb {
                    url: format!("{base}/{name}"),
                    clock,
                    pg_database: Some(name),
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

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_database.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot block on itself: use a thread with
        // its own. FORCE ends connections still open in pools the test did not close.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut conn = PgConnection::connect(&admin_url()).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop a test database");
        }
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
