//! What a location's WAL archive can serve: an index of archived segments built from one listing, and
//! the first gap after a base backup. A restore must not silently stop at a missing segment and
//! promote there — PostgreSQL would take the gap for the end of WAL and lose everything after it.

use std::collections::BTreeMap;

use btar_format::Location;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;

use crate::error::PgError;
use crate::wal::{self, WalFile};

/// One archived segment: its timeline and when it became durable in the location.
#[derive(Debug, Clone)]
struct Archived {
    timeline: u32,
    archived_at: DateTime<Utc>,
}

/// Archived segments by segment number (all timelines).
#[derive(Debug, Default)]
pub struct ArchiveIndex {
    segments: BTreeMap<u64, Vec<Archived>>,
    seg_size: u64,
}

/// A run of consecutive missing segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapRun {
    pub first: String,
    pub last: String,
    pub count: u64,
    /// Archive time of the last segment before the run.
    pub reachable_until: Option<DateTime<Utc>>,
}

/// The first segment recovery would need but the archive lacks.
#[derive(Debug, Clone)]
pub struct Gap {
    pub segment: String,
    /// Archive time of the last segment before the gap: recovery can reach commits up to about here.
    pub reachable_until: Option<DateTime<Utc>>,
}

impl ArchiveIndex {
    pub async fn load(loc: &Location, seg_size: u64) -> Result<Self, PgError> {
        let mut idx = Self {
            segments: BTreeMap::new(),
            seg_size,
        };
        let objects: Vec<_> = loc.list_logs().try_collect().await?;
        for o in objects {
            if !matches!(WalFile::parse(&o.name), Ok(WalFile::Segment { .. })) {
                continue;
            }
            let (Some(n), Ok(timeline)) = (
                wal::segment_number(&o.name, seg_size),
                u32::from_str_radix(&o.timeline, 16),
            ) else {
                continue;
            };
            idx.segments.entry(n).or_default().push(Archived {
                timeline,
                archived_at: o.last_modified,
            });
        }
        idx.add_streamed(loc).await?;
        Ok(idx)
    }

    /// Segments not archived but streamed (issue 14): each counts as present from when its newest
    /// readable piece was stored, so the window ends at the streamed point. Only a tail readable
    /// from its first byte counts: that is what a restore is handed.
    async fn add_streamed(&mut self, loc: &Location) -> Result<(), PgError> {
        for ((tli, name), pieces) in loc.tails_by_file().await? {
            let (Some(n), Ok(timeline)) = (
                wal::segment_number(&name, self.seg_size),
                u32::from_str_radix(&tli, 16),
            ) else {
                continue;
            };
            let Some(stored_at) = btar_format::covering(&pieces)
                .iter()
                .map(|p| p.last_modified)
                .max()
            else {
                continue;
            };
            let slot = self.segments.entry(n).or_default();
            if !slot.iter().any(|a| a.timeline == timeline) {
                slot.push(Archived {
                    timeline,
                    archived_at: stored_at,
                });
            }
        }
        Ok(())
    }

    /// Newest archive time of any segment (the end of the recoverable window if there is no gap).
    pub fn newest(&self) -> Option<DateTime<Utc>> {
        self.segments
            .values()
            .flatten()
            .map(|a| a.archived_at)
            .max()
    }

    /// Every run of missing segments from `start_wal` to the newest archived segment, on the
    /// timelines recovery from there may follow (see [`Self::first_gap`]), oldest first.
    pub fn gaps(&self, start_wal: &str) -> Vec<GapRun> {
        let mut runs = Vec::new();
        let mut from = start_wal.to_string();
        let end = self.segments.keys().next_back().copied().unwrap_or(0);
        while let Some(gap) = self.first_gap(&from) {
            let (Some(first), Some(Ok(tli))) = (
                wal::segment_number(&gap.segment, self.seg_size),
                gap.segment.get(..8).map(|t| u32::from_str_radix(t, 16)),
            ) else {
                break;
            };
            // The hole ends at the next segment on a timeline recovery can follow from here.
            let holder = |n: u64| {
                self.segments
                    .get(&n)
                    .and_then(|v| v.iter().map(|a| a.timeline).filter(|t| *t >= tli).max())
            };
            // Over the archived segments only: a far-off bogus name must not mean a long walk.
            let Some((next, next_tli)) = self
                .segments
                .range(first + 1..=end)
                .find_map(|(n, _)| holder(*n).map(|t| (*n, t)))
            else {
                break;
            };
            runs.push(GapRun {
                last: wal::segment_name(&gap.segment[..8], next - 1, self.seg_size),
                first: gap.segment,
                count: next - first,
                reachable_until: gap.reachable_until,
            });
            from = wal::segment_name(&format!("{next_tli:08X}"), next, self.seg_size);
        }
        runs
    }

    /// Walks segments from `start_wal` on timelines at or after its own and returns the first hole
    /// before the newest archived segment. Segment numbers continue across a timeline switch, so one
    /// present on any later timeline fills the slot (a history file decides which at replay time).
    pub fn first_gap(&self, start_wal: &str) -> Option<Gap> {
        let start = wal::segment_number(start_wal, self.seg_size)?;
        let min_tli = u32::from_str_radix(start_wal.get(..8)?, 16).ok()?;
        let on_path = |n: u64| -> Option<&Archived> {
            self.segments
                .get(&n)?
                .iter()
                .filter(|a| a.timeline >= min_tli)
                .max_by_key(|a| a.timeline)
        };
        let last = self
            .segments
            .range(start..)
            .rev()
            .find(|(_, v)| v.iter().any(|a| a.timeline >= min_tli))
            .map(|(n, _)| *n)?;
        let mut before: Option<&Archived> = None;
        let mut tli = min_tli;
        for n in start..=last {
            match on_path(n) {
                Some(a) => {
                    tli = a.timeline;
                    before = Some(a);
                }
                None => {
                    return Some(Gap {
                        segment: wal::segment_name(&format!("{tli:08X}"), n, self.seg_size),
                        reachable_until: before.map(|a| a.archived_at),
                    });
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 16 << 20;

    fn index(present: &[(u32, u64)]) -> ArchiveIndex {
        let mut idx = ArchiveIndex {
            segments: BTreeMap::new(),
            seg_size: SEG,
        };
        for (tli, n) in present {
            idx.segments.entry(*n).or_default().push(Archived {
                timeline: *tli,
                archived_at: Utc::now(),
            });
        }
        idx
    }

    #[test]
    fn every_gap_is_reported_once() {
        // 1..=3 present, 4 missing, 5 present, 6..=8 missing, 9 present.
        let idx = index(&[(1, 1), (1, 2), (1, 3), (1, 5), (1, 9)]);
        let runs = idx.gaps(&wal::segment_name("00000001", 1, SEG));
        let got: Vec<_> = runs.iter().map(|r| (r.first.clone(), r.count)).collect();
        assert_eq!(
            got,
            vec![
                (wal::segment_name("00000001", 4, SEG), 1),
                (wal::segment_name("00000001", 6, SEG), 3)
            ]
        );
        assert_eq!(runs[1].last, wal::segment_name("00000001", 8, SEG));
        assert!(idx.gaps(&wal::segment_name("00000001", 9, SEG)).is_empty());
    }

    #[test]
    fn a_later_timeline_fills_the_slot() {
        // Timeline 2 branches off at 3 and holds 4; 5 is missing on every timeline.
        let idx = index(&[(1, 1), (1, 2), (2, 3), (2, 4), (2, 6)]);
        let runs = idx.gaps(&wal::segment_name("00000001", 1, SEG));
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(runs[0].first, wal::segment_name("00000002", 5, SEG));
        assert_eq!(runs[0].count, 1);
    }
}
