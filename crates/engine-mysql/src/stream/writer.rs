//! One location's writer: stores each spooled binlog file's bytes up to its cut as tail pieces
//! (`Location::put_tail_piece`), at most one piece per `min_interval`. Pieces never cross a
//! [`BLOCK`] boundary, and the pieces of a block are consolidated into one after
//! [`CONSOLIDATE_AFTER`] and when the block is full, so a file of any size is a bounded number of
//! objects. A file the location has archived loses its tail (the archive supersedes it). A store
//! that fails is retried from 1 s, doubling to 30 s, and its error reported.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use btar_engine::{EngineError, StreamTarget};
use btar_format::{FormatError, Location, OPEN_ENDED, TailPiece, covering};
use btar_region::CancellationToken;

use super::{FIRST_DELAY, MAX_DELAY, SharedState, lock};

/// Pieces lie within one block of this many bytes of a file; it bounds what a consolidation
/// reads and seals at once (16 MiB blocks: 116 MiB peak RSS under sysbench in bench/mysql).
pub(super) const BLOCK: u64 = 4 << 20;
/// Pieces of one block that are consolidated into one.
const CONSOLIDATE_AFTER: usize = 16;
/// How often the location is looked at for files it has archived.
const SWEEP: Duration = Duration::from_secs(10);

pub(super) struct Writer {
    pub target: StreamTarget,
    pub family: String,
    pub shared: SharedState,
    pub grew: tokio::sync::watch::Receiver<u64>,
    pub min_interval: Duration,
    pub stop: CancellationToken,
}

/// What this location holds of one file.
#[derive(Debug, Default)]
struct FileTail {
    name: String,
    /// Pieces stored (listed at first, then as written), as byte ranges.
    pieces: Vec<(u64, u64)>,
    /// Bytes held contiguous from 0.
    stored: u64,
    /// Archived in this location, or gone from the spool: nothing more to store.
    done: bool,
}

/// A spooled file as the writer sees it.
struct Spooled {
    number: u64,
    name: String,
    path: PathBuf,
    safe: u64,
}

impl Writer {
    pub async fn run(mut self) {
        let loc = self.target.location.clone();
        // What a stopped streamer left of files archived since.
        let swept = tokio::select! {
            _ = self.stop.cancelled() => return,
            r = loc.sweep_superseded_tails() => r,
        };
        if let Err(e) = swept {
            tracing::warn!(region = %self.target.region, error = %e, "superseded binlog tails not swept");
        }
        let mut files: BTreeMap<u64, FileTail> = BTreeMap::new();
        let mut last_put: Option<Instant> = None;
        let mut swept = Instant::now();
        let mut delay = FIRST_DELAY;
        loop {
            let snapshot = self.snapshot();
            // A store that hangs must not hold up a stop.
            let passed = tokio::select! {
                _ = self.stop.cancelled() => return,
                r = self.pass(&loc, &snapshot, &mut files, &mut last_put) => r,
            };
            match passed {
                Ok(()) => {
                    delay = FIRST_DELAY;
                    self.set_error(None);
                }
                Err(e) => {
                    if self.stop.is_cancelled() {
                        return;
                    }
                    tracing::warn!(region = %self.target.region, error = %e, "binlog tail not stored; trying again");
                    self.set_error(Some(e.to_string()));
                    tokio::select! {
                        _ = self.stop.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(MAX_DELAY);
                    continue;
                }
            }
            if swept.elapsed() >= SWEEP {
                swept = Instant::now();
                let r = tokio::select! {
                    _ = self.stop.cancelled() => return,
                    r = self.sweep(&loc, &snapshot, &mut files) => r,
                };
                if let Err(e) = r {
                    tracing::warn!(region = %self.target.region, error = %e, "superseded binlog tails not swept");
                }
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                r = self.grew.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    fn snapshot(&mut self) -> Vec<Spooled> {
        self.grew.borrow_and_update();
        lock(&self.shared)
            .files
            .iter()
            .map(|(n, r)| Spooled {
                number: *n,
                name: r.name.clone(),
                path: r.path.clone(),
                safe: r.safe,
            })
            .collect()
    }

    fn set_error(&self, error: Option<String>) {
        if let Some(h) = lock(&self.shared).held.get_mut(&self.target.region) {
            h.error = error;
        }
    }

    fn set_stored(&self, number: u64, stored: u64) {
        let mut guard = lock(&self.shared);
        let sh = &mut *guard;
        // A file the spool dropped meanwhile is no longer reported.
        if sh.files.contains_key(&number)
            && let Some(h) = sh.held.get_mut(&self.target.region)
        {
            h.stored.insert(number, stored);
        }
    }

    /// Stores what each file has beyond what the location holds, oldest file first.
    async fn pass(
        &self,
        loc: &Location,
        snapshot: &[Spooled],
        files: &mut BTreeMap<u64, FileTail>,
        last_put: &mut Option<Instant>,
    ) -> Result<(), EngineError> {
        for f in snapshot {
            // Not before its first event (its creation time) is here to tell which file it is.
            if f.safe <= 4 && !files.contains_key(&f.number) {
                continue;
            }
            let t = match files.entry(f.number) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let t = e.insert(self.load(loc, f).await?);
                    // What the location holds from before this session counts from the start.
                    self.set_stored(f.number, if t.done { u64::MAX } else { t.stored });
                    t
                }
            };
            if t.done {
                self.set_stored(f.number, u64::MAX);
                continue;
            }
            while t.stored < f.safe {
                if let Some(at) = *last_put {
                    tokio::select! {
                        _ = self.stop.cancelled() => return Ok(()),
                        _ = tokio::time::sleep_until((at + self.min_interval).into()) => {}
                    }
                }
                let start = t.stored;
                let end = f.safe.min((start / BLOCK + 1) * BLOCK);
                let Some(data) = read_range(&f.path, start, end).await? else {
                    // Dropped from the spool: archived in the primary, shipped from there.
                    t.done = true;
                    break;
                };
                loc.put_tail_piece(&self.family, &f.name, start, &data, OPEN_ENDED)
                    .await?;
                *last_put = Some(Instant::now());
                t.pieces.push((start, end));
                t.stored = end;
                self.set_stored(f.number, end);
                self.consolidate(loc, f, t).await?;
            }
        }
        Ok(())
    }

    /// What the location already holds of a file: its tail pieces, or its archived copy. A tail
    /// of another file of the same name (a binlog name reused after `RESET MASTER`) is refused:
    /// appending to it would make one file of two.
    async fn load(&self, loc: &Location, f: &Spooled) -> Result<FileTail, EngineError> {
        let listed = loc.tail_pieces(&self.family, &f.name).await?;
        let stored = covering(&listed).last().map_or(0, |p| p.end);
        if stored > 0
            && let Some(head) = loc.read_tail_head(&self.family, &f.name, &listed).await?
        {
            let n = head.len().min(f.safe as usize) as u64;
            if let Some(ours) = read_range(&f.path, 0, n).await?
                && ours != head[..n as usize]
            {
                return Err(EngineError::Invalid(format!(
                    "region `{}` holds a streamed tail of {} that is not the server's {} (was RESET MASTER run, or is this another server?): archive it as a new service",
                    self.target.region, f.name, f.name
                )));
            }
        }
        let done = stored == 0 && self.archived(loc, &f.name).await?;
        Ok(FileTail {
            name: f.name.clone(),
            pieces: listed.iter().map(|p| (p.start, p.end)).collect(),
            stored,
            done,
        })
    }

    async fn archived(&self, loc: &Location, name: &str) -> Result<bool, EngineError> {
        Ok(loc
            .region()
            .head(&loc.log_key(&self.family, name))
            .await
            .map_err(FormatError::from)?
            .is_some())
    }

    /// One piece for the block the last piece ended in, once it has many or is full.
    async fn consolidate(
        &self,
        loc: &Location,
        f: &Spooled,
        t: &mut FileTail,
    ) -> Result<(), EngineError> {
        let block = (t.stored - 1) / BLOCK * BLOCK;
        let within: Vec<(u64, u64)> = t
            .pieces
            .iter()
            .copied()
            .filter(|(s, e)| *s >= block && *e <= t.stored)
            .collect();
        let full = t.stored == block + BLOCK;
        if within.len() <= 1 || !(within.len() > CONSOLIDATE_AFTER || full) {
            return Ok(());
        }
        let Some(data) = read_range(&f.path, block, t.stored).await? else {
            return Ok(());
        };
        loc.put_tail_piece(&self.family, &f.name, block, &data, OPEN_ENDED)
            .await?;
        let merged = (block, t.stored);
        let old: Vec<TailPiece> = within
            .iter()
            .filter(|p| **p != merged)
            .map(|(s, e)| piece(&self.family, &f.name, *s, *e))
            .collect();
        loc.delete_tail_pieces(&old).await?;
        t.pieces.retain(|p| !within.contains(p) || *p == merged);
        if !t.pieces.contains(&merged) {
            t.pieces.push(merged);
        }
        Ok(())
    }

    /// Deletes the tails of files this location has archived: any but the newest file received,
    /// also one the spool has dropped since (archived in the primary, so soon here too).
    async fn sweep(
        &self,
        loc: &Location,
        snapshot: &[Spooled],
        files: &mut BTreeMap<u64, FileTail>,
    ) -> Result<(), EngineError> {
        let newest = snapshot.last().map(|f| f.number);
        for (n, t) in files.iter_mut() {
            if t.done || Some(*n) == newest || !self.archived(loc, &t.name).await? {
                continue;
            }
            let listed = loc.tail_pieces(&self.family, &t.name).await?;
            loc.delete_tail_pieces(&listed).await?;
            t.done = true;
            self.set_stored(*n, u64::MAX);
        }
        files.retain(|n, t| !t.done || snapshot.iter().any(|f| f.number == *n));
        Ok(())
    }
}

fn piece(family: &str, name: &str, start: u64, end: u64) -> TailPiece {
    TailPiece {
        timeline: family.into(),
        name: name.into(),
        start,
        end,
        last_modified: chrono::Utc::now(),
    }
}

/// Bytes `start..end` of a spooled file; `None` when it was removed.
async fn read_range(
    path: &std::path::Path,
    start: u64,
    end: u64,
) -> Result<Option<Vec<u8>>, EngineError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(EngineError::Failed(format!(
                    "reading {}: {e}",
                    path.display()
                )));
            }
        };
        let mut buf = vec![0u8; (end - start) as usize];
        f.read_exact_at(&mut buf, start)
            .map_err(|e| EngineError::Failed(format!("reading {}: {e}", path.display())))?;
        Ok(Some(buf))
    })
    .await
    .map_err(|e| EngineError::Failed(format!("reading the spool: {e}")))?
}
