//! Gap-free watermarks of a log archive: how far recovery can replay without hitting a missing file.

use std::collections::BTreeMap;

use serde::Serialize;

/// Where a log file sits in its sequence, if it is a sequence file at all (history, backup-label and
/// partial files are not).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SegmentPosition {
    /// A PostgreSQL WAL segment `TTTTTTTTLLLLLLLLSSSSSSSS`, numbered across log ids.
    Wal { timeline: String, number: u64 },
    /// A numbered file such as a MySQL binlog `binlog.000042`.
    Numbered {
        base: String,
        number: u64,
        width: usize,
    },
}

impl SegmentPosition {
    pub fn parse(name: &str, wal_segment_size: u64) -> Option<Self> {
        if name.len() == 24 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            let log = u64::from_str_radix(&name[8..16], 16).ok()?;
            let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
            return Some(SegmentPosition::Wal {
                timeline: name[..8].to_ascii_uppercase(),
                number: log * per_log(wal_segment_size) + seg,
            });
        }
        let (base, digits) = name.rsplit_once('.')?;
        if base.is_empty() || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(SegmentPosition::Numbered {
            base: base.to_string(),
            number: digits.parse().ok()?,
            width: digits.len(),
        })
    }

    fn family(&self) -> &str {
        match self {
            SegmentPosition::Wal { timeline, .. } => timeline,
            SegmentPosition::Numbered { base, .. } => base,
        }
    }

    fn number(&self) -> u64 {
        match self {
            SegmentPosition::Wal { number, .. } | SegmentPosition::Numbered { number, .. } => {
                *number
            }
        }
    }

    /// The file name of position `number` in this position's sequence.
    fn name_of(&self, number: u64, wal_segment_size: u64) -> String {
        match self {
            SegmentPosition::Wal { timeline, .. } => {
                let per = per_log(wal_segment_size);
                format!("{timeline}{:08X}{:08X}", number / per, number % per)
            }
            SegmentPosition::Numbered { base, width, .. } => format!("{base}.{number:0width$}"),
        }
    }
}

/// Segments per log id: PostgreSQL numbers a segment (log id, segment) with the segment part wrapping
/// at 4 GiB / segment size, so `…000000FF` is followed by `…0000000100000000` with 16 MiB segments.
fn per_log(wal_segment_size: u64) -> u64 {
    (0x1_0000_0000u64 / wal_segment_size.max(1)).max(1)
}

/// How far one timeline's archive is gap-free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Watermark {
    /// The log directory (`logs/<timeline>/`).
    pub timeline: String,
    /// The oldest segment present.
    pub first: String,
    /// The highest segment such that every segment from `first` up to it is present.
    pub watermark: String,
    /// The newest segment present (beyond `watermark` if there is a gap).
    pub newest: String,
    /// The first segment missing after `watermark`, if any segment beyond it is present.
    pub first_missing: Option<String>,
    /// Segments present on this timeline.
    pub segments: u64,
}

/// Gap-free watermarks of a set of archived `(timeline, name)` log files, one per timeline (and per
/// sequence, should a timeline directory hold several). Non-segment files are ignored.
pub fn watermarks<I>(logs: I, wal_segment_size: u64) -> Vec<Watermark>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut by_seq: BTreeMap<(String, String), BTreeMap<u64, SegmentPosition>> = BTreeMap::new();
    for (timeline, name) in logs {
        if let Some(pos) = SegmentPosition::parse(&name, wal_segment_size) {
            by_seq
                .entry((timeline, pos.family().to_string()))
                .or_default()
                .insert(pos.number(), pos);
        }
    }
    by_seq
        .into_iter()
        .filter_map(|((timeline, _), segs)| {
            let (&first_n, first) = segs.first_key_value()?;
            let (&newest_n, _) = segs.last_key_value()?;
            let mut mark = first_n;
            while segs.contains_key(&(mark + 1)) {
                mark += 1;
            }
            let name = |n| first.name_of(n, wal_segment_size);
            Some(Watermark {
                timeline,
                first: name(first_n),
                watermark: name(mark),
                newest: name(newest_n),
                first_missing: (mark < newest_n).then(|| name(mark + 1)),
                segments: segs.len() as u64,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 16 << 20;

    fn logs(tl: &str, names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| (tl.to_string(), n.to_string()))
            .collect()
    }

    #[test]
    fn wal_watermark_stops_at_the_first_gap_and_crosses_log_ids() {
        let w = watermarks(
            logs(
                "00000001",
                &[
                    "0000000100000000000000FE",
                    "0000000100000000000000FF",
                    "000000010000000100000000",
                    "000000010000000100000002",
                    "00000001.history",
                    "000000010000000100000000.00000028.backup",
                    "000000010000000100000003.partial",
                ],
            ),
            SEG,
        );
        assert_eq!(
            w,
            vec![Watermark {
                timeline: "00000001".into(),
                first: "0000000100000000000000FE".into(),
                watermark: "000000010000000100000000".into(),
                newest: "000000010000000100000002".into(),
                first_missing: Some("000000010000000100000001".into()),
                segments: 4,
            }]
        );
    }

    #[test]
    fn wal_segment_size_decides_the_roll_over() {
        // With 1 GiB segments a log id holds 4 segments: …03 is followed by the next log id's …00.
        let w = watermarks(
            logs(
                "00000001",
                &["000000010000000000000003", "000000010000000100000000"],
            ),
            1 << 30,
        );
        assert_eq!(w[0].watermark, "000000010000000100000000");
        assert_eq!(w[0].first_missing, None);
    }

    #[test]
    fn numbered_binlogs() {
        let w = watermarks(
            logs("1", &["binlog.000001", "binlog.000002", "binlog.000004"]),
            SEG,
        );
        assert_eq!(w[0].watermark, "binlog.000002");
        assert_eq!(w[0].first_missing.as_deref(), Some("binlog.000003"));
    }
}
