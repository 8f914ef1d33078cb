//! The replicator role (DESIGN.md, "Roles"): copies committed backups and archived log files from a
//! primary location to a secondary one. It never touches a database: a secondary backup is made from the
//! primary backup's chunks, decrypted with the source region's key and re-sealed with the destination's.
//!
//! There is no catalog here. Work reports progress through a callback and returns an outcome, so a
//! caller can record copy-job states (`CREATED → RUNNING → COMPLETED | FAILED`) wherever it keeps them.
//!
//! Every entry point is idempotent and resumable: re-running after a crash or cancellation ships only
//! what the destination still lacks, and a destination manifest appears only once every chunk it names
//! is durable there.

mod backup_copy;
mod destination;
mod error;
mod log_copy;
mod packed_copy;
mod progress;

pub use backup_copy::copy_backup;
pub use destination::{create_destination, open_destination};
pub use error::CopyError;
pub use log_copy::{DamagedLog, LogCopied, copy_log, copy_logs, copy_logs_skipping_damaged};
pub use progress::{
    CopyOptions, CopyOutcome, CopyPhase, CopyProgress, LogCopyOutcome, LogProgress,
};
