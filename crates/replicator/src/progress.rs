use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Tuning of one copy.
#[derive(Debug, Clone, Copy)]
pub struct CopyOptions {
    /// Chunks in flight at once. Memory is about `parallelism × 3 × chunk size` (sealed source, plaintext,
    /// re-sealed destination), whatever the size of the backup.
    pub parallelism: usize,
    /// Log files in flight at once; kept lower than `parallelism` because a WAL segment is 16 MiB or more.
    pub log_parallelism: usize,
    /// Format v2: size at which a destination pack is sealed and uploaded.
    pub pack_size: usize,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            parallelism: 16,
            log_parallelism: 4,
            pack_size: btar_format::WriterOptions::DEFAULT_PACK_SIZE,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyPhase {
    /// Reading the source manifest and diffing chunk ids against the destination.
    Planning,
    Copying,
    /// Confirming every chunk the manifest names is in the destination.
    Verifying,
    Committing,
    Done,
}

/// A snapshot of a running backup copy, handed to the progress callback.
#[derive(Debug, Clone, Serialize)]
pub struct CopyProgress {
    pub backup: String,
    pub phase: CopyPhase,
    /// Distinct chunks the backup names.
    pub chunks_total: u64,
    /// Distinct chunks the destination lacked when the copy was planned.
    pub chunks_missing: u64,
    pub chunks_copied: u64,
    pub bytes_planned: u64,
    pub bytes_transferred: u64,
}

/// The result of a backup copy.
#[derive(Debug, Clone, Serialize)]
pub struct CopyOutcome {
    pub backup: String,
    /// The destination already had this backup's manifest: nothing was done.
    pub already_complete: bool,
    /// Distinct chunks the backup names.
    pub chunks_total: u64,
    pub chunks_copied: u64,
    pub chunks_already_present: u64,
    /// Plaintext bytes of the chunks the destination lacked. Plaintext, because it is known from the
    /// manifest before any transfer and means the same in every region, while stored sizes depend on
    /// each region's compression and sealing.
    pub bytes_planned: u64,
    /// Sealed bytes read from the source.
    pub bytes_read: u64,
    /// Sealed chunk bytes written to the destination: what the copy cost on the wire (the manifest, a
    /// few KiB, is not counted).
    pub bytes_transferred: u64,
    /// In JSON: `duration_seconds`, a number (not serde's `{secs, nanos}`).
    #[serde(rename = "duration_seconds", serialize_with = "seconds")]
    pub duration: Duration,
}

/// A snapshot of a running log copy.
#[derive(Debug, Clone, Serialize)]
pub struct LogProgress {
    /// Log files the destination lacked when the copy started.
    pub logs_missing: u64,
    pub logs_copied: u64,
    pub bytes_transferred: u64,
    /// The last file shipped, `timeline/name`.
    pub last: Option<String>,
    /// When that file became durable in the source (for WAL lag: shipped-at minus this).
    pub last_source_time: Option<DateTime<Utc>>,
}

/// The result of a log copy.
#[derive(Debug, Clone, Serialize)]
pub struct LogCopyOutcome {
    /// Log files listed in the source.
    pub logs_total: u64,
    pub logs_copied: u64,
    pub logs_already_present: u64,
    /// Sealed bytes written to the destination.
    pub bytes_transferred: u64,
    /// Per timeline, how far the destination's archive is gap-free (see [`btar_engine::watermarks`]).
    pub watermarks: Vec<btar_engine::Watermark>,
    /// When the newest file listed in the source became durable there.
    pub newest_source_time: Option<DateTime<Utc>>,
    /// In JSON: `duration_seconds`, a number.
    #[serde(rename = "duration_seconds", serialize_with = "seconds")]
    pub duration: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}
