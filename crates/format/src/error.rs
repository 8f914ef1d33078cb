use btar_region::RegionError;
use thiserror::Error;

/// Errors of the backup format. Messages name the region and object concerned.
#[derive(Debug, Error)]
pub enum FormatError {
    #[error(transparent)]
    Region(#[from] RegionError),

    #[error("region `{region}`: object `{key}` is damaged: {reason}")]
    Damaged {
        region: String,
        key: String,
        reason: String,
    },

    #[error(
        "region `{region}`: cannot open `{key}` with this region's key (wrong key, or the object was altered)"
    )]
    WrongKeyOrTampered { region: String, key: String },

    #[error(
        "region `{region}`: service `{service}` has no btar location here (no {key}); locations are created only by `btar service init` or `btar service create`, a first backup or a first copy — if this service was backed up here before, the region's mount point, bucket or prefix is missing"
    )]
    NoLocation {
        region: String,
        service: String,
        key: String,
    },

    #[error(
        "region `{region}`: `{key}` uses format version {found}; this btar reads up to {supported}"
    )]
    UnsupportedVersion {
        region: String,
        key: String,
        found: u32,
        supported: u32,
    },

    #[error("region `{region}`: service `{service}` is a `{found}` service, not `{expected}`")]
    EngineMismatch {
        region: String,
        service: String,
        found: String,
        expected: String,
    },

    #[error(
        "region `{region}`: the location of service `{service}` has another chunk-id key than the service's other locations"
    )]
    ChunkKeyMismatch { region: String, service: String },

    #[error("region `{region}`: backup `{backup}` of service `{service}` not found")]
    BackupNotFound {
        region: String,
        service: String,
        backup: String,
    },

    #[error("invalid name `{name}`: {reason}")]
    InvalidName { name: String, reason: String },

    #[error(
        "a tail piece of `{name}` must be 1 byte or more, within the file's {file_len} bytes ({start}..{end} is not)"
    )]
    BadTailPiece {
        name: String,
        start: u64,
        end: u64,
        file_len: u64,
    },

    #[error("local I/O on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("internal task failed: {0}")]
    Task(String),
}

impl FormatError {
    /// See [`RegionError::is_retryable`]; a damaged or unreadable object never is.
    pub fn is_retryable(&self) -> bool {
        matches!(self, FormatError::Region(e) if e.is_retryable())
    }

    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        FormatError::Io {
            path: path.into(),
            source,
        }
    }
}
