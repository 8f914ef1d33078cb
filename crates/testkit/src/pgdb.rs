//! Throwaway databases on the machine's PostgreSQL, for tests that use it as btar's shared catalog.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{Connection, PgConnection};

/// The machine's PostgreSQL (trust auth); `BTAR_TEST_PG_URL` overrides it.
pub fn admin_url() -> String {
    std::env::var("BTAR_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh database, dropped (with any connections still open to it) when the value is.
#[derive(Debug)]
pub struct PgDatabase {
    pub url: String,
    name: String,
}

impl PgDatabase {
    /// Creates `btar_<purpose>_…`; panics with what to install when no PostgreSQL answers.
    pub async fn create(purpose: &str) -> PgDatabase {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_micros())
            .unwrap_or(0);
        let name = format!(
            "btar_{purpose}_{}_{}_{micros}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
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
        PgDatabase {
            url: format!("{base}/{name}"),
            name,
        }
    }

    /// [`Self::create`] from synchronous code (e.g. tests that drive the `btar` binary).
    pub fn create_blocking(purpose: &str) -> PgDatabase {
        let purpose = purpose.to_string();
        std::thread::spawn(move || runtime().block_on(PgDatabase::create(&purpose)))
            .join()
            .expect("create test database")
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run inside a test's runtime, which cannot block on itself: use a thread with
        // its own. FORCE ends connections still open in pools the test did not close.
        let dropped = std::thread::spawn(move || {
            runtime().block_on(async move {
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
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}
