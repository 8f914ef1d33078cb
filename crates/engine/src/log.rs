//! The order of an engine's archived log files, and how far an archive is gap-free.
//!
//! Only the engine knows how its log files are named and numbered (PostgreSQL's WAL segments roll
//! their log id over at a point set by the cluster's segment size; a binlog is `base.NNNNNN`). The
//! replicator's watermark, the lag and retention work on [`LogPosition`]s the engine's
//! [`LogSequence`] gives them.

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::Serialize;

/// Where a log file sits in its sequence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPosition {
    /// Files of one family follow each other (a PostgreSQL timeline, a binlog base name); numbers of
    /// different families do not.
    pub family: String,
    /// Consecutive files have consecutive numbers.
    pub number: u64,
}

/// An engine's numbering of its log files.
pub trait LogSequence: Send + Sync + Debug {
    /// The position of a file in its sequence; `None` for files outside it (PostgreSQL's history,
    /// backup-label and partial files), which no gap rule applies to.
    fn position(&self, name: &str) -> Option<LogPosition>;

    /// The name of the file at `number` in the family of `like` (a file of that family).
    fn name_of(&self, like: &str, number: u64) -> String;
}

/// Files named `base.NNNNNN` (MySQL/MariaDB binlogs): one family per base name, the number's width
/// kept from the file the name is made like.
#[derive(Debug, Clone, Copy, Default)]
pub struct NumberedFiles;

impl LogSequence for NumberedFiles {
    fn position(&self, name: &str) -> Option<LogPosition> {
        let (base, digits) = name.rsplit_once('.')?;
        if base.is_empty() || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(LogPosition {
            family: base.to_string(),
            number: digits.parse().ok()?,
        })
    }

    fn name_of(&self, like: &str, number: u64) -> String {
        let (base, digits) = like.rsplit_once('.').unwrap_or((like, ""));
        let width = digits.len();
        format!("{base}.{number:0width$}")
    }
}

/// How far one log directory's archive is gap-free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Watermark {
    /// The log directory (`logs/<timeline>/`).
    pub timeline: String,
    /// The oldest file present.
    pub first: String,
    /// The highest file such that every file from `first` up to it is present.
    pub watermark: String,
    /// The newest file present (beyond `watermark` if there is a gap).
    pub newest: String,
    /// The first file missing after `watermark`, if any file beyond it is present.
    pub first_missing: Option<String>,
    /// Files present in this sequence.
    pub segments: u64,
}

/// Gap-free watermarks of a set of archived `(timeline, name)` log files, one per log directory and
/// family. Files outside the sequence are ignored.
pub fn watermarks<I>(logs: I, seq: &dyn LogSequence) -> Vec<Watermark>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut by_family: BTreeMap<(String, String), BTreeMap<u64, String>> = BTreeMap::new();
    for (timeline, name) in logs {
        if let Some(pos) = seq.position(&name) {
            by_family
                .entry((timeline, pos.family))
                .or_default()
                .insert(pos.number, name);
        }
    }
    by_family
        .into_iter()
        .filter_map(|((timeline, _), files)| {
            let (&first_n, first) = files.first_key_value()?;
            let (&newest_n, newest) = files.last_key_value()?;
            let mut mark = first_n;
            while files.contains_key(&(mark + 1)) {
                mark += 1;
            }
            Some(Watermark {
                timeline,
                first: first.clone(),
                watermark: files
                    .get(&mark)
                    .cloned()
                    .unwrap_or_else(|| seq.name_of(first, mark)),
                newest: newest.clone(),
                first_missing: (mark < newest_n).then(|| seq.name_of(first, mark + 1)),
                segments: files.len() as u64,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_binlogs_stop_at_the_first_gap() {
        let logs = [
            "binlog.000001",
            "binlog.000002",
            "binlog.000004",
            "binlog.index",
        ]
        .map(|n| ("1".to_string(), n.to_string()));
        let w = watermarks(logs, &NumberedFiles);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].first, "binlog.000001");
        assert_eq!(w[0].watermark, "binlog.000002");
        assert_eq!(w[0].newest, "binlog.000004");
        assert_eq!(w[0].first_missing.as_deref(), Some("binlog.000003"));
        assert_eq!(w[0].segments, 3);
    }

    #[test]
    fn families_are_watermarked_apart() {
        let logs = ["a.000007", "b.000001", "b.000002"].map(|n| ("1".to_string(), n.to_string()));
        let w = watermarks(logs, &NumberedFiles);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].watermark, "a.000007");
        assert_eq!(w[1].watermark, "b.000002");
        assert!(w.iter().all(|w| w.first_missing.is_none()));
    }
}
