//! A local spool of archived log files fetched ahead of a restore.
//!
//! A database in recovery asks for its log files one process at a time (PostgreSQL's
//! `restore_command`), so each file would pay process start, a TLS handshake and two round trips. A
//! background prefetcher instead fetches the files that will be asked for next into this directory,
//! and the next request delivers from here without touching the network.
//!
//! Files stay sealed exactly as the store holds them; they are authenticated and opened only when
//! delivered, with the location's key, so a spool file that was damaged or swapped on the local
//! disk is noticed and fetched again instead of being replayed. The spool also keeps the
//! location's descriptor, which is what lets a request open the location without the store.
//!
//! Layout of a spool directory (one per region, service and region URL):
//! `service.json` (the descriptor), `prefetch.lock`, `hits` (one line per delivery, for tests and
//! operators) and `files/<name>` (sealed log files).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use btar_format::Location;
use btar_region::RegionError;
use futures::StreamExt;

use crate::{EngineError, LogSequence};

const DESCRIPTOR: &str = "service.json";
const LOCK: &str = "prefetch.lock";
const STARTING: &str = "prefetch.starting";
/// How long a started prefetcher counts as running before it holds its lock.
const STARTING_FOR: std::time::Duration = std::time::Duration::from_secs(3);
const HITS: &str = "hits";
const FILES: &str = "files";
/// A hits file is a trace, not a ledger: it restarts rather than grow through a long recovery.
const MAX_HITS_BYTES: u64 = 1 << 20;
/// A spooled file is asked for within minutes or not at all (that restore ended): older ones go.
const MAX_AGE: std::time::Duration = std::time::Duration::from_secs(3600);
/// A temporary file this old was left by a prefetcher that died while writing it.
const LEFTOVER_AGE: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("log spool {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl SpoolError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        SpoolError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// How much a spool may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpoolLimits {
    pub max_files: usize,
    pub max_bytes: u64,
}

/// One spool directory.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    limits: SpoolLimits,
}

/// A file in the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    bytes: u64,
    age: std::time::Duration,
}

/// The `count` names that follow `name` in its sequence (across PostgreSQL's log-id rollover, as
/// the sequence numbers it); empty for a name outside the sequence.
pub fn next_names(seq: &dyn LogSequence, name: &str, count: usize) -> Vec<String> {
    let Some(pos) = seq.position(name) else {
        return Vec::new();
    };
    (1..=count as u64)
        .filter_map(|i| pos.number.checked_add(i))
        .map(|n| seq.name_of(name, n))
        .collect()
}

impl Spool {
    /// Opens (creating it, private to this user) the spool directory `dir`.
    pub fn open(dir: &Path, limits: SpoolLimits) -> Result<Self, SpoolError> {
        let files = dir.join(FILES);
        std::fs::create_dir_all(&files).map_err(|e| SpoolError::io(&files, e))?;
        // Spooled files are sealed, but their names and sizes still tell about the database.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| SpoolError::io(dir, e))?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            limits,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(FILES).join(name)
    }

    /// The descriptor bytes kept by [`Spool::keep_descriptor`], if any.
    pub fn descriptor(&self) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join(DESCRIPTOR)).ok()
    }

    /// Keeps the descriptor of `loc` (as opened from the store) for later [`Location::open_cached`].
    pub fn keep_descriptor(&self, loc: &Location) -> Result<(), SpoolError> {
        let raw = serde_json::to_vec(loc.descriptor())
            .map_err(|e| SpoolError::io(&self.dir, std::io::Error::other(e)))?;
        if self.descriptor().is_some_and(|old| old != raw) {
            // Another location under the same name (deleted and created again): its files would
            // still authenticate with the region's key, so none of the old ones may be delivered.
            for e in self.entries() {
                let _ = std::fs::remove_file(self.file(&e.name));
            }
        }
        write_replace(&self.dir.join(DESCRIPTOR), &raw)
    }

    /// Drops the kept descriptor — it opened something it should not have, or failed to — and
    /// the files spooled with it: if the location was created again under the same name, they
    /// would still authenticate with the region's key.
    pub fn forget_descriptor(&self) {
        let _ = std::fs::remove_file(self.dir.join(DESCRIPTOR));
        for e in self.entries() {
            let _ = std::fs::remove_file(self.file(&e.name));
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.file(name).is_file()
    }

    /// The content of spooled `name` (in log directory `log_dir` of `loc`), authenticated and
    /// opened; `None` if it is not spooled. A spooled file that does not open is removed, so the
    /// caller fetches it from the store.
    pub async fn take(&self, loc: &Location, log_dir: &str, name: &str) -> Option<Vec<u8>> {
        let path = self.file(name);
        let sealed = tokio::fs::read(&path).await.ok()?;
        let (l, d, n) = (loc.clone(), log_dir.to_string(), name.to_string());
        let opened = tokio::task::spawn_blocking(move || l.open_log(&d, &n, &sealed)).await;
        match opened {
            Ok(Ok(plain)) => {
                let _ = std::fs::remove_file(&path);
                Some(plain)
            }
            Ok(Err(e)) => {
                tracing::warn!(file = name, error = %e, "spooled log file does not open; discarded, fetching it again");
                let _ = std::fs::remove_file(&path);
                None
            }
            Err(_) => None,
        }
    }

    /// Notes a delivery from the spool.
    pub fn record_hit(&self, name: &str) {
        let path = self.dir.join(HITS);
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX_HITS_BYTES) {
            let _ = std::fs::remove_file(&path);
        }
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            let _ = writeln!(f, "{name}");
        }
    }

    /// The prefetcher's lock, if no other prefetcher holds it.
    pub fn try_lock(&self) -> Result<Option<File>, SpoolError> {
        let path = self.dir.join(LOCK);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| SpoolError::io(&path, e))?;
        match f.try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(SpoolError::io(&path, e)),
        }
    }

    /// Notes that a prefetcher was just started: until it holds the lock (process start takes
    /// longer than the database needs to replay a file), requests wait for it rather than race it.
    pub fn mark_starting(&self) {
        let _ = std::fs::write(self.dir.join(STARTING), b"");
    }

    /// Called by the prefetcher once it holds the lock.
    pub fn clear_starting(&self) {
        let _ = std::fs::remove_file(self.dir.join(STARTING));
    }

    /// Whether a prefetcher runs or is starting.
    pub fn prefetcher_active(&self) -> bool {
        let starting = std::fs::metadata(self.dir.join(STARTING))
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|e| e < STARTING_FOR));
        starting || matches!(self.try_lock(), Ok(None))
    }

    fn entries(&self) -> Vec<Entry> {
        let Ok(rd) = std::fs::read_dir(self.dir.join(FILES)) else {
            return Vec::new();
        };
        rd.filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let meta = e.metadata().ok()?;
                let age = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .unwrap_or_default();
                Some(Entry {
                    name,
                    bytes: meta.len(),
                    age,
                })
            })
            .collect()
    }

    /// Removes what a restore that now asks for `requested` will not ask for: files before it in
    /// its sequence (PostgreSQL asks in order, and one it asks again is fetched again), leftovers
    /// of interrupted writes, files left by an earlier restore (old, or further ahead than any
    /// prefetch reaches), and — beyond the limits — files of other families (another timeline)
    /// first, then the ones furthest ahead.
    pub fn prune(&self, seq: &dyn LogSequence, requested: &str) {
        let Some(at) = seq.position(requested) else {
            return;
        };
        let mut keep: Vec<(bool, u64, Entry)> = Vec::new();
        for e in self.entries() {
            let pos = seq.position(&e.name);
            // A dot-file is a prefetcher's write in progress, unless it is old.
            let stale = (e.name.starts_with('.') && e.age > LEFTOVER_AGE)
                || e.age > MAX_AGE
                || pos.as_ref().is_some_and(|p| {
                    p.family == at.family
                        && (p.number < at.number
                            || p.number - at.number > self.limits.max_files as u64)
                });
            if stale {
                let _ = std::fs::remove_file(self.file(&e.name));
                continue;
            }
            if e.name.starts_with('.') {
                continue;
            }
            match pos {
                Some(p) if p.family == at.family => keep.push((false, p.number, e)),
                Some(p) => keep.push((true, p.number, e)),
                None => keep.push((true, u64::MAX, e)),
            }
        }
        keep.sort_by_key(|(other, n, _)| (*other, *n));
        let mut bytes = 0u64;
        for (i, (_, _, e)) in keep.iter().enumerate() {
            bytes = bytes.saturating_add(e.bytes);
            if i >= self.limits.max_files || bytes > self.limits.max_bytes {
                let _ = std::fs::remove_file(self.file(&e.name));
            }
        }
    }

    /// Fetches the sealed objects of `files` (`(log dir, name)`, in the order they will be asked
    /// for) that the spool lacks, `parallel` at a time, stopping at the first one the store does not
    /// have (the end of the archive) and at the limits. Returns how many were spooled.
    pub async fn fill(
        &self,
        loc: &Location,
        files: &[(String, String)],
        parallel: usize,
    ) -> Result<usize, SpoolError> {
        let present: Vec<Entry> = self
            .entries()
            .into_iter()
            .filter(|e| !e.name.starts_with('.'))
            .collect();
        let mut count = present.len();
        let mut bytes: u64 = present.iter().map(|e| e.bytes).sum();
        let wanted: Vec<&(String, String)> =
            files.iter().filter(|(_, n)| !self.contains(n)).collect();
        let mut gets = futures::stream::iter(wanted)
            .map(|(dir, name)| async move {
                let got = loc.region().get(&loc.log_key(dir, name)).await;
                (name, got)
            })
            .buffered(parallel.max(1));
        let mut spooled = 0;
        while let Some((name, got)) = gets.next().await {
            let sealed = match got {
                Ok(b) => b,
                Err(RegionError::NotFound { .. }) => break,
                Err(e) => return Err(EngineError::from(e).into()),
            };
            count += 1;
            bytes = bytes.saturating_add(sealed.len() as u64);
            if count > self.limits.max_files || bytes > self.limits.max_bytes {
                break;
            }
            write_replace(&self.file(name), &sealed)?;
            spooled += 1;
        }
        Ok(spooled)
    }
}

/// Writes `path` under a temporary dot-name in the same directory and renames it over, so a reader
/// never sees a partial file. No fsync: a spool file lost in a crash is fetched again, and one
/// damaged does not authenticate.
fn write_replace(path: &Path, data: &[u8]) -> Result<(), SpoolError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("x");
    let tmp = path.with_file_name(format!(".{name}.{}", std::process::id()));
    std::fs::write(&tmp, data).map_err(|e| SpoolError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        SpoolError::io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::NumberedFiles;

    fn spool(max_files: usize, max_bytes: u64) -> (tempfile::TempDir, Spool) {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(
            &d.path().join("sp"),
            SpoolLimits {
                max_files,
                max_bytes,
            },
        )
        .unwrap();
        (d, s)
    }

    fn names(s: &Spool) -> Vec<String> {
        let mut v: Vec<String> = s.entries().into_iter().map(|e| e.name).collect();
        v.sort();
        v
    }

    #[test]
    fn next_names_follow_the_sequence() {
        assert_eq!(
            next_names(&NumberedFiles, "binlog.000009", 3),
            ["binlog.000010", "binlog.000011", "binlog.000012"]
        );
        assert!(next_names(&NumberedFiles, "not-numbered", 3).is_empty());
        assert!(next_names(&NumberedFiles, "binlog.000001", 0).is_empty());
    }

    #[test]
    fn prune_drops_older_files_then_keeps_the_nearest_within_limits() {
        let (_d, s) = spool(3, 25);
        for (n, size) in [
            ("b.000001", 10),
            ("b.000002", 10),
            ("b.000004", 10),
            ("b.000005", 10),
            ("b.000006", 10),
            ("b.000009", 1),
            ("c.000001", 1),
            (".b.000007.123", 1),
            (".b.000008.123", 1),
        ] {
            std::fs::write(s.file(n), vec![0u8; size]).unwrap();
        }
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
        File::options()
            .write(true)
            .open(s.file(".b.000007.123"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        s.prune(&NumberedFiles, "b.000003");
        // Older ones, one beyond any prefetch window and an old half-written one go; one being
        // written stays; of the rest, two fit 25 bytes.
        assert_eq!(names(&s), [".b.000008.123", "b.000004", "b.000005"]);

        let (_d, s) = spool(2, 1000);
        for n in ["b.000004", "b.000005", "c.000001"] {
            std::fs::write(s.file(n), b"x").unwrap();
        }
        s.prune(&NumberedFiles, "b.000004");
        // Another family (a timeline recovery left) goes before our own.
        assert_eq!(names(&s), ["b.000004", "b.000005"]);
        s.prune(&NumberedFiles, "b.000003");
        assert_eq!(names(&s), ["b.000004", "b.000005"]);
        // A restore asking from further back: these are beyond any window it prefetches.
        s.prune(&NumberedFiles, "b.000001");
        assert!(names(&s).is_empty());
    }

    #[test]
    fn the_prefetch_lock_is_held_once() {
        let (_d, s) = spool(8, 1 << 30);
        let held = s.try_lock().unwrap();
        assert!(held.is_some());
        assert!(s.try_lock().unwrap().is_none());
        drop(held);
        assert!(s.try_lock().unwrap().is_some());
    }
}
