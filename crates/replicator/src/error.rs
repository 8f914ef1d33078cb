use btar_format::FormatError;
use btar_region::RegionError;
use thiserror::Error;

/// Why a copy failed. Each message is one line naming the region and, where there is one, the object,
/// so a copy job's `status_message` can be this text as is.
#[derive(Debug, Error)]
pub enum CopyError {
    #[error(
        "destination region `{region}` has no encryption key (set `key` in its config or {env_var}); nothing was copied"
    )]
    DestinationKeyMissing { region: String, env_var: String },

    #[error(
        "source `{source_region}` and destination `{destination}` are the same region ({reason}); a copy must go to another region"
    )]
    SameRegion {
        source_region: String,
        destination: String,
        reason: String,
    },

    #[error(
        "region `{region}`: service `{service}` uses a different chunk-id key than the source; chunk ids would not match"
    )]
    ChunkKeyMismatch { region: String, service: String },

    #[error(
        "source region `{region}`: object `{key}` failed verification and was not copied: {reason}"
    )]
    SourceDamaged {
        region: String,
        key: String,
        reason: String,
    },

    #[error("source region `{region}`: log `{key}` not found")]
    LogNotFound { region: String, key: String },

    #[error(
        "destination region `{region}`: a different log file `{key}` is already archived; refusing to overwrite"
    )]
    LogConflict { region: String, key: String },

    #[error(
        "destination region `{region}`: backup `{backup}` is missing {missing} chunk(s) after the copy (first: `{first_key}`); manifest not committed"
    )]
    Incomplete {
        region: String,
        backup: String,
        missing: usize,
        first_key: String,
    },

    #[error("copy cancelled; nothing was committed, a re-run resumes")]
    Cancelled,

    #[error(transparent)]
    Format(FormatError),

    #[error(transparent)]
    Region(RegionError),

    #[error("internal task failed: {0}")]
    Task(String),
}

impl From<RegionError> for CopyError {
    fn from(e: RegionError) -> Self {
        match e {
            // One variant for cancellation whatever layer noticed it, so callers match once.
            RegionError::Cancelled => CopyError::Cancelled,
            e => CopyError::Region(e),
        }
    }
}

impl From<FormatError> for CopyError {
    fn from(e: FormatError) -> Self {
        match e {
            FormatError::Region(r) => r.into(),
            e => CopyError::Format(e),
        }
    }
}

impl CopyError {
    /// An error opening an object read from the source: damage or a failed seal becomes
    /// [`CopyError::SourceDamaged`] naming the object, so a copy job's message says what to repair;
    /// anything else keeps its kind (a store outage stays retryable).
    pub(crate) fn from_source(e: FormatError) -> Self {
        match e {
            FormatError::WrongKeyOrTampered { region, key } => CopyError::SourceDamaged {
                region,
                key,
                reason: "authentication failed (wrong key, or the object was altered)".into(),
            },
            FormatError::Damaged {
                region,
                key,
                reason,
            } => CopyError::SourceDamaged {
                region,
                key,
                reason,
            },
            e => e.into(),
        }
    }
}

impl From<tokio::task::JoinError> for CopyError {
    fn from(e: tokio::task::JoinError) -> Self {
        CopyError::Task(e.to_string())
    }
}

impl CopyError {
    /// Whether re-running the same copy may succeed (cancelled, or the store was unavailable), as
    /// opposed to damage or misconfiguration that needs an operator.
    pub fn is_retryable(&self) -> bool {
        match self {
            CopyError::Cancelled | CopyError::Task(_) => true,
            CopyError::Region(r) => r.is_retryable(),
            CopyError::Format(f) => f.is_retryable(),
            _ => false,
        }
    }
}
