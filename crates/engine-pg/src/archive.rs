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
        Ok(idx)
    }

    /// Newest archive time of any segment (the end of the recoverable window if there is no gap).
    pub fn newest(&self) -> Option<DateTime<Utc>> {
        self.segments
            .values()
            .flatten()
            .map(|a| a.archived_at)
            .max()
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
