use chrono::{DateTime, Utc};
use thiserror::Error;

/// Everything that can go wrong with the catalog. Each message is one line naming the object, so an
/// operator (or an API error body) can act on it directly.
#[derive(Debug, Error)]
pub enum CatalogError {
    // Only the scheme: the rest of a PostgreSQL URL may hold a password.
    #[error(
        "catalog URL scheme `{0}` is not supported (use sqlite://PATH?mode=rwc or postgres://…)"
    )]
    UnsupportedUrl(String),

    #[error("catalog database: {op} failed: {message}")]
    Database { op: &'static str, message: String },

    #[error("catalog schema version {found} is newer than this btar understands ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },

    #[error("{what} `{id}` not found")]
    NotFound { what: &'static str, id: String },

    #[error("service `{0}` already exists")]
    ServiceExists(String),

    #[error(
        "service `{service}`: additional_backup_regions may change once per 24 h; next change allowed at {next_allowed_at}"
    )]
    RegionsChangeTooSoon {
        service: String,
        next_allowed_at: DateTime<Utc>,
    },

    #[error("service `{0}` was changed concurrently; retry")]
    Conflict(String),

    #[error("copy job `{job}`: lease of `{owner}` (attempt {attempt}) was lost")]
    LeaseLost {
        job: String,
        owner: String,
        attempt: i64,
    },

    #[error("unknown period `{0}` (expected hour, day, week, month or year)")]
    InvalidPeriod(String),

    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },

    #[error("catalog column {column} holds unexpected value `{value}`")]
    Corrupt { column: &'static str, value: String },
}

impl CatalogError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, CatalogError::NotFound { .. })
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        CatalogError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// Attaches the operation name to a driver error; the driver's own text is kept on the same line.
pub(crate) trait DbContext<T> {
    fn db(self, op: &'static str) -> Result<T>;
}

impl<T> DbContext<T> for std::result::Result<T, sqlx::Error> {
    fn db(self, op: &'static str) -> Result<T> {
        self.map_err(|e| CatalogError::Database {
            op,
            message: e.to_string().replace('\n', " "),
        })
    }
}
