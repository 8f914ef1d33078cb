use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Connection, Decode, Row, Type};

use crate::error::{CatalogError, DbContext, Result};

/// Which database holds the catalog. The SQL is shared; the few differences (row locking, the
/// migration lock, identity columns) switch on this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self> {
        let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
        match scheme {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            other => Err(CatalogError::UnsupportedUrl(other.to_owned())),
        }
    }
}

struct Migration {
    version: i64,
    description: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Append only: a released migration is never edited, a change is a new version.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "initial schema",
        sqlite: include_str!("../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        description: "copy job retries name the job they retry",
        sqlite: include_str!("../migrations/sqlite/0002_retry_of.sql"),
        postgres: include_str!("../migrations/postgres/0002_retry_of.sql"),
    },
    Migration {
        version: 3,
        description: "locations known to exist",
        sqlite: include_str!("../migrations/sqlite/0003_locations.sql"),
        postgres: include_str!("../migrations/postgres/0003_locations.sql"),
    },
    Migration {
        version: 4,
        description: "alert conditions that hold",
        sqlite: include_str!("../migrations/sqlite/0004_alerts.sql"),
        postgres: include_str!("../migrations/postgres/0004_alerts.sql"),
    },
    Migration {
        version: 5,
        description: "streamed log positions",
        sqlite: include_str!("../migrations/sqlite/0005_stream_positions.sql"),
        postgres: include_str!("../migrations/postgres/0005_stream_positions.sql"),
    },
];

pub(crate) fn latest_schema_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

pub(crate) async fn connect(url: &str, backend: Backend, max_connections: u32) -> Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let mut options = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30));
    if backend == Backend::Sqlite {
        // Per-connection settings: several processes may share the file, so writers wait for the
        // lock instead of failing at once; NORMAL sync is durable enough in WAL mode.
        options = options.after_connect(|conn, _meta| {
            Box::pin(async move {
                sqlx::raw_sql("PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL")
                    .execute(conn)
                    .await?;
                Ok(())
            })
        });
    }
    let pool = options.connect(url).await.db("connect")?;
    if backend == Backend::Sqlite {
        // WAL is a property of the file, so setting it once lets readers run beside the writer in
        // every later connection and process.
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
            .fetch_one(&pool)
            .await
            .db("enable WAL")?;
        if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
            tracing::warn!(%mode, "SQLite catalog is not in WAL mode");
        }
    }
    Ok(pool)
}

/// Applies the migrations this binary knows and the database lacks, under a lock so that several
/// processes opening the catalog at once apply each one exactly once.
pub(crate) async fn migrate(pool: &AnyPool, backend: Backend, now: DateTime<Utc>) -> Result<()> {
    let mut conn = pool.acquire().await.db("migrate: acquire")?;
    let mut tx = match backend {
        // IMMEDIATE takes the write lock up front; a deferred transaction could not upgrade later.
        Backend::Sqlite => conn.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => conn.begin().await,
    }
    .db("migrate: begin")?;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock(4242000001)")
            .execute(&mut *tx)
            .await
            .db("migrate: lock")?;
    }
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )
    .execute(&mut *tx)
    .await
    .db("migrate: create schema_version")?;
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_version")
        .fetch_one(&mut *tx)
        .await
        .db("migrate: read version")?;
    let current = current.unwrap_or(0);
    let supported = latest_schema_version();
    if current > supported {
        return Err(CatalogError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        let sql = match backend {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        };
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .db("migrate: apply")?;
        sqlx::query(
            "INSERT INTO schema_version (version, description, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.description)
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .db("migrate: record version")?;
        tracing::info!(
            version = m.version,
            description = m.description,
            "catalog migrated"
        );
    }
    tx.commit().await.db("migrate: commit")
}

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A nullable float bound as text and cast in SQL. sqlx 0.9's Any driver sends a NULL `f64` to
/// PostgreSQL as `float4` (and a NULL `f32` as `float8`); the prepared statement then keeps that
/// type and rejects the next non-NULL `f64`. Rust prints floats in the shortest form that parses
/// back to the same value, so the text round trip is exact.
pub(crate) fn float_arg(v: Option<f64>) -> Option<String> {
    v.map(|v| v.to_string())
}

pub(crate) fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

pub(crate) fn get<'r, T>(row: &'r AnyRow, column: &'static str) -> Result<T>
where
    T: Decode<'r, Any> + Type<Any>,
{
    row.try_get(column).map_err(|e| CatalogError::Database {
        op: "decode",
        message: format!("column {column}: {e}"),
    })
}

pub(crate) fn get_time(row: &AnyRow, column: &'static str) -> Result<DateTime<Utc>> {
    let v: i64 = get(row, column)?;
    from_ms(column, v)
}

pub(crate) fn get_opt_time(row: &AnyRow, column: &'static str) -> Result<Option<DateTime<Utc>>> {
    get::<Option<i64>>(row, column)?
        .map(|v| from_ms(column, v))
        .transpose()
}

fn from_ms(column: &'static str, v: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(v).ok_or_else(|| CatalogError::Corrupt {
        column,
        value: v.to_string(),
    })
}

/// A ULID-like id: 48 bits of milliseconds then 80 random bits in Crockford base32, so ids sort by
/// creation time and are unique without coordination between processes.
pub(crate) fn new_id(now: DateTime<Utc>) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let millis = u128::from(u64::try_from(now.timestamp_millis()).unwrap_or(0) & 0xFFFF_FFFF_FFFF);
    let value = (millis << 80) | (rand::random::<u128>() >> 48);
    (0..26)
        .rev()
        .map(|i| char::from(ALPHABET[((value >> (i * 5)) & 31) as usize]))
        .collect()
}

/// Defines a closed set of words stored as TEXT, with its wire spelling in one place.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        // By hand rather than derived: the schema's values are the texts serde writes.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            #[allow(dead_code)]
            pub(crate) fn from_column(column: &'static str, value: &str) -> $crate::Result<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == value).ok_or_else(|| {
                    $crate::CatalogError::Corrupt { column, value: value.to_owned() }
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::CatalogError;

            fn from_str(s: &str) -> $crate::Result<Self> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(s))
                    .ok_or_else(|| {
                        let expected: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                        $crate::CatalogError::invalid(
                            stringify!($name),
                            format!("`{s}` is not one of {}", expected.join(", ")),
                        )
                    })
            }
        }
    };
}
pub(crate) use text_enum;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_differ() {
        let a = new_id(DateTime::from_timestamp_millis(1_000).unwrap_or_default());
        let b = new_id(DateTime::from_timestamp_millis(1_001).unwrap_or_default());
        let c = new_id(DateTime::from_timestamp_millis(1_001).unwrap_or_default());
        assert_eq!(a.len(), 26);
        assert!(a < b);
        assert_ne!(b, c);
    }

    #[test]
    fn url_schemes() {
        assert_eq!(
            Backend::from_url("sqlite://x.db?mode=rwc").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("postgres://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert!(matches!(
            Backend::from_url("mysql://secret@h/db"),
            Err(CatalogError::UnsupportedUrl(s)) if s == "mysql"
        ));
    }
}
