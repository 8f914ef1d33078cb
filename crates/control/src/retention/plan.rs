//! What one retention pass deletes in one location, and why: a pure function of what the location
//! holds, its policy and the time. No store, no clock, no engine: the executor lists, turns engine
//! facts into log positions ([`LogFact::position`], [`FirstLog`]) and applies the plan.

use std::collections::{HashMap, HashSet};
use std::fmt;

use btar_format::ChunkId;
use chrono::{DateTime, TimeDelta, Utc};

/// Unreferenced chunks (v1) and packs (v2) younger than this are kept (an uncommitted backup may
/// be using them).
pub const CHUNK_GRACE: TimeDelta = TimeDelta::hours(48);

/// The retention of one location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub keep_days: u32,
    /// Whether new backups or copies still arrive. A location that gets none (its region removed,
    /// its service deleted) lets even its newest backup expire: nothing will replace it.
    pub receiving: bool,
}

impl Policy {
    fn keep(&self) -> TimeDelta {
        TimeDelta::days(self.keep_days.into())
    }
}

/// One backup of the location, in listing order (oldest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListedBackup {
    Sound(BackupFacts),
    /// A manifest that cannot be read (damaged, wrong key, newer format). Kept for an operator; the
    /// chunks it names are unknown, so none is collected while it is there.
    Damaged {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupFacts {
    pub name: String,
    pub completed_at: DateTime<Utc>,
    /// Where its restore starts in the log sequence; `None` when unknown, and then no log before it
    /// is deleted.
    pub first_log: Option<FirstLog>,
    /// Content objects its manifest names: v1 chunks and v2 packs (duplicates allowed).
    pub chunks: Vec<ChunkId>,
}

/// The first log a backup's restore needs, and when the backup started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstLog {
    pub position: u64,
    pub started_at: DateTime<Utc>,
}

/// One archived log file as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFact {
    pub timeline: String,
    pub name: String,
    /// Its place in the log sequence; `None` for files outside it (history, backup labels, partial
    /// segments), which only go when no backup is left.
    pub position: Option<u64>,
    pub last_modified: DateTime<Utc>,
}

/// One content object as listed: a v1 chunk, or a v2 pack, pack index or superseded marker (by
/// the pack's id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkFact {
    pub key: String,
    pub id: ChunkId,
    pub last_modified: DateTime<Utc>,
    /// For a marker: when a repack moved the pack's live blocks out.
    pub superseded: Option<DateTime<Utc>>,
}

/// Why something is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Completed before the location's retention period.
    Expired {
        completed_at: DateTime<Utc>,
        keep_days: u32,
    },
    /// The newest backup, past its period, of a location that no longer receives backups; a
    /// receiving location would keep it.
    LocationRetired {
        completed_at: DateTime<Utc>,
        keep_days: u32,
    },
    /// Before (in sequence and in time) the start of the oldest backup kept.
    LogBeforeOldestKept { oldest_kept: String },
    /// No backup is left that any log could serve.
    NoBackupLeft,
    /// Named by no kept manifest, and older than [`CHUNK_GRACE`].
    UnreferencedChunk { age: TimeDelta },
    /// A pack repacked more than [`CHUNK_GRACE`] ago (and its marker), named by no kept manifest.
    Superseded { since: DateTime<Utc> },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Expired {
                completed_at,
                keep_days,
            } => write!(f, "completed {completed_at}, past {keep_days} days"),
            Reason::LocationRetired {
                completed_at,
                keep_days,
            } => write!(
                f,
                "newest backup, completed {completed_at}, past {keep_days} days, \
                 in a location receiving no more backups"
            ),
            Reason::LogBeforeOldestKept { oldest_kept } => {
                write!(f, "before {oldest_kept}, the oldest backup kept")
            }
            Reason::NoBackupLeft => f.write_str("no backup left"),
            Reason::UnreferencedChunk { age } => {
                write!(f, "named by no kept backup, {} h old", age.num_hours())
            }
            Reason::Superseded { since } => {
                write!(f, "repacked at {since}, named by no kept backup")
            }
        }
    }
}

/// Why a backup is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepReason {
    WithinPeriod {
        expires_at: DateTime<Utc>,
    },
    /// Past its period, but the newest of a location still receiving backups.
    NewestWhileReceiving,
    Damaged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupDeletion {
    pub name: String,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptBackup {
    pub name: String,
    pub reason: KeepReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDeletion {
    pub timeline: String,
    pub name: String,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkDeletion {
    pub key: String,
    pub reason: Reason,
}

/// Everything one pass deletes, in the order it must be done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Manifests, oldest first.
    pub backups: Vec<BackupDeletion>,
    /// Every other listed backup, oldest first.
    pub kept: Vec<KeptBackup>,
    /// Oldest first, so a pass killed midway leaves the archive a shorter head, never a hole.
    pub logs: Vec<LogDeletion>,
    pub chunks: Vec<ChunkDeletion>,
    /// Damaged manifests that stopped chunk collection this pass (in a pass that expired backups).
    pub chunks_held_by: Vec<String>,
}

/// Which listings [`plan`] would read: the executor skips the others (listing every chunk of a
/// location is expensive, and a pass that expires nothing needs none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub logs: bool,
    pub chunks: bool,
}

pub fn needs(backups: &[ListedBackup], policy: Policy, now: DateTime<Utc>) -> Needs {
    let d = decide(backups, policy, now);
    Needs {
        logs: d.log_rule().is_some(),
        chunks: d.collects_chunks(),
    }
}

/// The plan for one location. Logs and chunks are considered only in a pass that expires a backup
/// (what no kept backup needs changes only then).
pub fn plan(
    backups: &[ListedBackup],
    logs: &[LogFact],
    chunks: &[ChunkFact],
    policy: Policy,
    now: DateTime<Utc>,
) -> RetentionPlan {
    let d = decide(backups, policy, now);
    let logs = d.log_rule().map(|r| r.apply(logs)).unwrap_or_default();
    let chunks = if d.collects_chunks() {
        unreferenced(&d.sound_kept, chunks, now)
    } else {
        Vec::new()
    };
    let chunks_held_by = if d.deleted.is_empty() {
        Vec::new()
    } else {
        d.damaged.iter().map(|n| n.to_string()).collect()
    };
    RetentionPlan {
        backups: d.deleted,
        kept: d.kept,
        logs,
        chunks,
        chunks_held_by,
    }
}

/// The backups' fates, from which the log and chunk rules follow.
struct Decided<'a> {
    deleted: Vec<BackupDeletion>,
    kept: Vec<KeptBackup>,
    sound_kept: Vec<&'a BackupFacts>,
    damaged: Vec<&'a str>,
}

fn decide(backups: &[ListedBackup], policy: Policy, now: DateTime<Utc>) -> Decided<'_> {
    let mut d = Decided {
        deleted: Vec::new(),
        kept: Vec::new(),
        sound_kept: Vec::new(),
        damaged: Vec::new(),
    };
    for (i, listed) in backups.iter().enumerate() {
        let b = match listed {
            ListedBackup::Sound(b) => b,
            ListedBackup::Damaged { name } => {
                d.damaged.push(name);
                d.kept.push(kept(name, KeepReason::Damaged));
                continue;
            }
        };
        // The newest listed, damaged or not: a damaged newest protects no older sound backup.
        let newest = i + 1 == backups.len();
        match fate(b, newest, policy, now) {
            Fate::Delete(reason) => d.deleted.push(BackupDeletion {
                name: b.name.clone(),
                reason,
            }),
            Fate::Keep(why) => {
                d.sound_kept.push(b);
                d.kept.push(kept(&b.name, why));
            }
        }
    }
    d
}

enum Fate {
    Delete(Reason),
    Keep(KeepReason),
}

fn fate(b: &BackupFacts, newest: bool, policy: Policy, now: DateTime<Utc>) -> Fate {
    let (completed_at, keep_days) = (b.completed_at, policy.keep_days);
    if completed_at >= now - policy.keep() {
        let expires_at = completed_at + policy.keep();
        Fate::Keep(KeepReason::WithinPeriod { expires_at })
    } else if !newest {
        Fate::Delete(Reason::Expired {
            completed_at,
            keep_days,
        })
    } else if policy.receiving {
        Fate::Keep(KeepReason::NewestWhileReceiving)
    } else {
        Fate::Delete(Reason::LocationRetired {
            completed_at,
            keep_days,
        })
    }
}

fn kept(name: &str, reason: KeepReason) -> KeptBackup {
    KeptBackup {
        name: name.into(),
        reason,
    }
}

/// Which logs go.
enum LogRule<'a> {
    /// Those before the oldest kept backup's first log and also archived before that backup
    /// started: position alone never condemns a file written while the backup ran or after.
    Before { backup: &'a str, first: FirstLog },
    /// Every one: no backup is left (and no damaged one that might still be restored by hand).
    All,
}

impl Decided<'_> {
    fn log_rule(&self) -> Option<LogRule<'_>> {
        if self.deleted.is_empty() {
            return None;
        }
        match self.sound_kept.first() {
            Some(oldest) => Some(LogRule::Before {
                backup: &oldest.name,
                first: oldest.first_log?,
            }),
            None if self.damaged.is_empty() => Some(LogRule::All),
            None => None,
        }
    }

    fn collects_chunks(&self) -> bool {
        !self.deleted.is_empty() && self.damaged.is_empty()
    }
}

impl LogRule<'_> {
    fn apply(&self, logs: &[LogFact]) -> Vec<LogDeletion> {
        let mut doomed: Vec<(&LogFact, Reason)> = logs
            .iter()
            .filter_map(|l| match self {
                LogRule::All => Some((l, Reason::NoBackupLeft)),
                LogRule::Before { backup, first } => {
                    let before = l.position.is_some_and(|p| p < first.position)
                        && l.last_modified < first.started_at;
                    before.then(|| {
                        let oldest_kept = backup.to_string();
                        (l, Reason::LogBeforeOldestKept { oldest_kept })
                    })
                }
            })
            .collect();
        // Sequence files by position (then timeline); files outside the sequence last.
        fn order(l: &LogFact) -> (bool, Option<u64>, &str, &str) {
            (l.position.is_none(), l.position, &l.timeline, &l.name)
        }
        doomed.sort_by(|(a, _), (b, _)| order(a).cmp(&order(b)));
        doomed
            .into_iter()
            .map(|(l, reason)| LogDeletion {
                timeline: l.timeline.clone(),
                name: l.name.clone(),
                reason,
            })
            .collect()
    }
}

/// Chunks no kept manifest names, past the grace period, in listing order; superseded markers
/// after every pack. A pack a repack superseded keeps the grace period from its newest marker, not
/// from when it was written: until then a backup may still take it as a dedupe base.
fn unreferenced(
    kept: &[&BackupFacts],
    chunks: &[ChunkFact],
    now: DateTime<Utc>,
) -> Vec<ChunkDeletion> {
    let referenced: HashSet<&ChunkId> = kept.iter().flat_map(|b| &b.chunks).collect();
    let mut superseded: HashMap<&ChunkId, DateTime<Utc>> = HashMap::new();
    for c in chunks {
        if let Some(at) = c.superseded {
            let t = superseded.entry(&c.id).or_insert(at);
            *t = (*t).max(at);
        }
    }
    let (mut objects, mut markers) = (Vec::new(), Vec::new());
    for c in chunks {
        if referenced.contains(&c.id) || c.last_modified >= now - CHUNK_GRACE {
            continue;
        }
        let reason = match superseded.get(&c.id) {
            Some(since) if *since >= now - CHUNK_GRACE => continue,
            Some(since) => Reason::Superseded { since: *since },
            None => Reason::UnreferencedChunk {
                age: now - c.last_modified,
            },
        };
        let out = if c.superseded.is_some() {
            &mut markers
        } else {
            &mut objects
        };
        out.push(ChunkDeletion {
            key: c.key.clone(),
            reason,
        });
    }
    objects.extend(markers);
    objects
}

#[cfg(test)]
mod tests;
