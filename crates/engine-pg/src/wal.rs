//! The WAL archive: `btar wal-push %p` (archive_command) and `btar wal-fetch %f %p` (restore_command).
//!
//! Files live under `logs/<timeline>/<name>`: segments and `.partial` files under the timeline in their
//! name, `.history` files under the timeline they introduce.

use std::path::Path;

use btar_format::{Location, LogPut};
use bytes::Bytes;

use crate::error::PgError;

/// What kind of WAL file a name denotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalFile {
    Segment { timeline: String },
    Partial { timeline: String },
    History { timeline: String },
    BackupHistory { timeline: String },
}

impl WalFile {
    pub fn parse(name: &str) -> Result<Self, PgError> {
        let hex = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
        };
        let bad = || PgError::BadWalName(name.to_string());
        if name.len() == 24 && hex(name) {
            return Ok(WalFile::Segment {
                timeline: name[..8].to_string(),
            });
        }
        if let Some(seg) = name.strip_suffix(".partial")
            && seg.len() == 24
            && hex(seg)
        {
            return Ok(WalFile::Partial {
                timeline: name[..8].to_string(),
            });
        }
        if let Some(tli) = name.strip_suffix(".history")
            && tli.len() == 8
            && hex(tli)
        {
            return Ok(WalFile::History {
                timeline: tli.to_string(),
            });
        }
        if let Some(rest) = name.strip_suffix(".backup")
            && rest.len() == 33
            && hex(&rest[..24])
        {
            return Ok(WalFile::BackupHistory {
                timeline: name[..8].to_string(),
            });
        }
        Err(bad())
    }

    pub fn timeline(&self) -> &str {
        match self {
            WalFile::Segment { timeline }
            | WalFile::Partial { timeline }
            | WalFile::History { timeline }
            | WalFile::BackupHistory { timeline } => timeline,
        }
    }
}

/// Archives one WAL file; returns once it is durable in the location. Re-pushing identical content
/// succeeds (PostgreSQL retries after crashes); different content under the same name fails.
pub async fn push(loc: &Location, path: &Path) -> Result<LogPut, PgError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| PgError::BadWalName(path.display().to_string()))?;
    let kind = WalFile::parse(name)?;
    let data = tokio::fs::read(path)
        .await
        .map_err(|e| PgError::io("reading WAL file", path.display(), e))?;
    Ok(loc
        .put_log(kind.timeline(), name, Bytes::from(data))
        .await?)
}

/// Fetches one WAL file into `dest` (written to a temporary name, then renamed, so PostgreSQL never
/// reads a partial file). Returns `false` if the archive does not have it.
///
/// A segment not yet archived is served from its streamed tail (issue 14), zero-filled to the
/// segment's size as `pg_receivewal`'s `.partial` files are: recovery replays the streamed records
/// and stops at the zeros, as at the end of WAL. The archive is asked again after an empty tail,
/// because a streamer deletes a tail only once the archived segment is there.
pub async fn fetch(loc: &Location, name: &str, dest: &Path) -> Result<bool, PgError> {
    let kind = WalFile::parse(name)?;
    let timeline = kind.timeline();
    if loc.fetch_log_to(timeline, name, dest).await? {
        return Ok(true);
    }
    if !matches!(kind, WalFile::Segment { .. }) {
        return Ok(false);
    }
    if let Some(tail) = loc.read_tail(timeline, name).await?
        && !tail.bytes.is_empty()
    {
        if tail.file_len == btar_format::OPEN_ENDED || tail.file_len > MAX_SEGMENT {
            return Err(btar_format::FormatError::Damaged {
                region: loc.region().name().into(),
                key: name.into(),
                reason: format!(
                    "its streamed tail claims a segment of {} bytes",
                    tail.file_len
                ),
            }
            .into());
        }
        let mut bytes = tail.bytes;
        bytes.resize(tail.file_len.max(bytes.len() as u64) as usize, 0);
        btar_format::deliver_file(bytes, dest).await?;
        return Ok(true);
    }
    Ok(loc.fetch_log_to(timeline, name, dest).await?)
}

/// The largest WAL segment PostgreSQL allows (`initdb --wal-segsize=1024`).
const MAX_SEGMENT: u64 = 1 << 30;

/// `initdb`'s default `--wal-segsize`; what a location without a backup (so without a recorded
/// segment size) is numbered by.
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 << 20;

/// The segment size a fetched segment of `len` bytes shows: PostgreSQL's sizes are powers of two
/// from 1 MiB to 1 GiB; anything else (a damaged file) is numbered by the default rather than
/// guessed from.
pub fn segment_size_of_len(len: u64) -> u64 {
    if len.is_power_of_two() && ((1 << 20)..=(1 << 30)).contains(&len) {
        len
    } else {
        DEFAULT_SEGMENT_SIZE
    }
}

/// Segments per log id: PostgreSQL names a segment (log id, segment) with the segment part wrapping
/// at 4 GiB / segment size, so with 16 MiB segments `…000000FF` is followed by `…0000000100000000`,
/// and with 64 MiB ones `…0000003F` is.
fn per_log(seg_size: u64) -> u64 {
    (0x1_0000_0000u64 / seg_size.max(1)).max(1)
}

/// Segment number (log, seg) of a 24-hex-digit segment name, for range checks.
pub fn segment_number(name: &str, seg_size: u64) -> Option<u64> {
    let (log, seg) = (name.get(8..16)?, name.get(16..24)?);
    if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let log = u64::from_str_radix(log, 16).ok()?;
    let seg = u64::from_str_radix(seg, 16).ok()?;
    Some(log * per_log(seg_size) + seg)
}

/// The segment name of segment number `n` on `timeline`.
pub fn segment_name(timeline: &str, n: u64, seg_size: u64) -> String {
    let per = per_log(seg_size);
    format!("{timeline}{:08X}{:08X}", n / per, n % per)
}

/// The order of WAL segments for the engine layer: one family per timeline, numbered across log
/// ids by the cluster's segment size. History, backup-label and partial files are outside it.
#[derive(Debug, Clone, Copy)]
pub struct WalSequence {
    seg_size: u64,
}

impl WalSequence {
    pub fn new(seg_size: u64) -> Self {
        Self { seg_size }
    }
}

impl btar_engine::LogSequence for WalSequence {
    fn position(&self, name: &str) -> Option<btar_engine::LogPosition> {
        Some(btar_engine::LogPosition {
            number: segment_number(name, self.seg_size)?,
            family: name.get(..8)?.to_ascii_uppercase(),
        })
    }

    fn name_of(&self, like: &str, number: u64) -> String {
        segment_name(like.get(..8).unwrap_or("00000001"), number, self.seg_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wal_names() {
        assert_eq!(
            WalFile::parse("000000010000000A000000FF").unwrap(),
            WalFile::Segment {
                timeline: "00000001".into()
            }
        );
        assert_eq!(
            WalFile::parse("00000002.history").unwrap(),
            WalFile::History {
                timeline: "00000002".into()
            }
        );
        assert!(matches!(
            WalFile::parse("000000010000000A000000FF.partial").unwrap(),
            WalFile::Partial { .. }
        ));
        assert!(matches!(
            WalFile::parse("000000010000000000000002.00000028.backup").unwrap(),
            WalFile::BackupHistory { .. }
        ));
        for bad in [
            "",
            "x",
            "../../etc/passwd",
            "000000010000000a000000ff",
            "00000001.hist",
        ] {
            assert!(WalFile::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn watermark_crosses_log_ids_by_the_segment_size() {
        use btar_engine::{LogSequence, watermarks};
        let tl = |names: &[&str]| -> Vec<(String, String)> {
            names
                .iter()
                .map(|n| ("00000001".to_string(), n.to_string()))
                .collect()
        };
        let w = watermarks(
            tl(&[
                "0000000100000000000000FE",
                "0000000100000000000000FF",
                "000000010000000100000000",
                "000000010000000100000002",
                "00000001.history",
                "000000010000000100000000.00000028.backup",
                "000000010000000100000003.partial",
            ]),
            &WalSequence::new(16 << 20),
        );
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].watermark, "000000010000000100000000");
        assert_eq!(
            w[0].first_missing.as_deref(),
            Some("000000010000000100000001")
        );
        assert_eq!(w[0].segments, 4);
        // 64 MiB segments: a log id holds 64, so …3F is followed by the next log id's …00 — and
        // numbered with the default 16 MiB, the same files would show a false gap there.
        let rollover = tl(&["00000001000000000000003F", "000000010000000100000000"]);
        let w = watermarks(rollover.clone(), &WalSequence::new(64 << 20));
        assert_eq!(w[0].watermark, "000000010000000100000000");
        assert_eq!(w[0].first_missing, None);
        let wrong = watermarks(rollover, &WalSequence::new(16 << 20));
        assert!(wrong[0].first_missing.is_some());
        let s = WalSequence::new(1 << 30);
        assert_eq!(
            s.name_of("000000010000000000000003", 4),
            "000000010000000100000000"
        );
    }

    #[test]
    fn names_to_prefetch_cross_log_ids_by_the_segment_size() {
        use btar_engine::spool::next_names;
        let s16 = WalSequence::new(segment_size_of_len(16 << 20));
        assert_eq!(
            next_names(&s16, "0000000200000003000000FE", 3),
            [
                "0000000200000003000000FF",
                "000000020000000400000000",
                "000000020000000400000001"
            ]
        );
        let s64 = WalSequence::new(segment_size_of_len(64 << 20));
        assert_eq!(
            next_names(&s64, "00000001000000000000003F", 1),
            ["000000010000000100000000"]
        );
        // A length no segment has: numbered by the default, not by the damaged file.
        assert_eq!(segment_size_of_len(12345), DEFAULT_SEGMENT_SIZE);
        assert_eq!(segment_size_of_len(1 << 30), 1 << 30);
        assert_eq!(segment_size_of_len(2 << 30), DEFAULT_SEGMENT_SIZE);
    }

    #[test]
    fn segment_numbers_round_trip() {
        let s = 16 << 20;
        let n = segment_number("000000010000000A000000FF", s).unwrap();
        assert_eq!(segment_name("00000001", n, s), "000000010000000A000000FF");
        assert_eq!(
            segment_name("00000001", n + 1, s),
            "000000010000000B00000000"
        );
    }
}
