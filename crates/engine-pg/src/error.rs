use btar_format::FormatError;
use thiserror::Error;

/// PostgreSQL engine errors: each says what went wrong and what to fix.
#[derive(Debug, Error)]
pub enum PgError {
    #[error(transparent)]
    Format(#[from] FormatError),

    #[error("cannot connect to PostgreSQL ({target}): {message}")]
    Connect { target: String, message: String },

    #[error("cannot stream WAL from this server: {0}")]
    CannotStream(String),

    #[error("streaming replication from {target}: {message}")]
    Replication { target: String, message: String },

    #[error("invalid conninfo: {0}")]
    Conninfo(String),

    #[error("PostgreSQL query `{query}` failed: {message}")]
    Query {
        query: &'static str,
        message: String,
    },

    #[error("role `{role}` lacks backup privileges: connect as a superuser, or run: {missing}")]
    Privilege { role: String, missing: String },

    #[error(
        "archive_mode is `{0}`: set archive_mode = on and archive_command = 'btar --config FILE wal-push %p', then restart PostgreSQL"
    )]
    ArchiveModeOff(String),

    #[error("PostgreSQL {0} is not supported (btar needs 13 or newer)")]
    UnsupportedVersion(i32),

    #[error(
        "WAL segment {segment} (timeline {timeline}) is missing from the archive in region `{region}`; the backup needs every segment from {first} to {last}"
    )]
    MissingWal {
        region: String,
        timeline: String,
        segment: String,
        first: String,
        last: String,
    },

    #[error(
        "WAL segment {segment} is missing from the archive in region `{region}`, so recovery cannot pass it; restore to a target before {reachable_until}, or restore from another location"
    )]
    WalGap {
        region: String,
        segment: String,
        reachable_until: String,
    },

    #[error("`{0}` is not a WAL file name btar archives (segment, .history, .partial or .backup)")]
    BadWalName(String),

    #[error(
        "no backup in region `{region}` can serve this target; recoverable window there: {window}"
    )]
    TargetOutOfWindow { region: String, window: String },

    #[error("region `{region}` holds no backup of service `{service}`")]
    NoBackups { region: String, service: String },

    #[error(
        "backup `{backup}` in region `{region}` is damaged and cannot serve this target: {reason}"
    )]
    BackupDamaged {
        region: String,
        backup: String,
        reason: String,
    },

    #[error("`{0}` is not a recovery target: an LSN is written X/Y in hexadecimal")]
    BadTarget(String),

    #[error(
        "restore directory {0} exists and is not empty: a restore writes into a new or empty \
         directory; choose another --data-dir, or remove this one if it is left over from an \
         earlier restore"
    )]
    DirNotEmpty(String),

    #[error(
        "another btar restore is writing into {0} now; wait for it, or choose another --data-dir"
    )]
    RestoreRunning(String),

    /// A directory left by a restore that was killed after it started a server, which clients may
    /// have used since: btar does not remove it by itself.
    #[error(
        "restore directory {0} holds a restore that was interrupted after it started PostgreSQL, \
         which may have been used since; if that is not wanted, stop the server if it still runs \
         (pg_ctl stop -D {0}) and remove the directory, then run the restore again; or choose \
         another --data-dir"
    )]
    InterruptedRestore(String),

    #[error("{what} on {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("PostgreSQL binaries not found: {0}")]
    Binaries(String),

    #[error("restored PostgreSQL did not reach its target: {0}")]
    Recovery(String),

    /// A restore that failed after writing into its data directory, and what became of that.
    #[error("{failure}; {cleanup}")]
    RestoreFailed {
        failure: Box<PgError>,
        cleanup: String,
    },
}

impl From<btar_region::RegionError> for PgError {
    fn from(e: btar_region::RegionError) -> Self {
        PgError::Format(FormatError::Region(e))
    }
}

impl PgError {
    pub fn io(what: &'static str, path: impl std::fmt::Display, source: std::io::Error) -> Self {
        PgError::Io {
            what,
            path: path.to_string(),
            source,
        }
    }
}
