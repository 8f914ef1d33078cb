use btar_format::FormatError;
use btar_region::RegionError;

use crate::EngineKind;

/// An engine's failure, classified once by the engine that raised it so that the layers above —
/// which know no engine — can answer with the right status and tell a retry from a dead end. The
/// message is the engine's own, with what went wrong and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Format(#[from] FormatError),

    /// The request cannot be served as asked: a target outside the recoverable window, nothing to
    /// restore there, a restore directory in use, a log name the engine does not archive, invalid
    /// agent settings.
    #[error("{0}")]
    Invalid(String),

    /// Only a damaged stored backup could serve the request: the request is fine, the stored state
    /// is not.
    #[error("{0}")]
    Damaged(String),

    /// The database could not be reached or refused the session; may work when run again.
    #[error("{0}")]
    Unavailable(String),

    /// Anything else: the database or a local step failed in a way an operator must look at.
    #[error("{0}")]
    Failed(String),

    #[error("this btar is built without the {product} engine (`{0}`)", product = .0.product())]
    NotBuiltIn(EngineKind),
}

impl EngineError {
    /// Whether running the same operation again may succeed without an operator: a store or a
    /// database that was unreachable.
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Unavailable(_) => true,
            EngineError::Format(f) => f.is_retryable(),
            _ => false,
        }
    }
}

impl From<RegionError> for EngineError {
    fn from(e: RegionError) -> Self {
        EngineError::Format(FormatError::Region(e))
    }
}
