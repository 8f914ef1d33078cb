//! The marker of a restore in progress. A restore writes it into its data directory before anything
//! else and removes it when it succeeds, so a directory left by a restore that was killed (SIGKILL,
//! a crash, a reboot) can be told from one that holds somebody's data. The restoring process holds
//! an exclusive lock on it, released by the kernel when the process dies however it dies, so a
//! restore still running is never mistaken for a dead one.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use crate::PgError;

/// The marker's file name in the data directory.
pub const MARKER: &str = "btar-restore.partial";

/// How far the restore that wrote the marker got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Writing files: nothing but btar has touched the directory.
    Filling,
    /// A server was started on the directory; clients may have used it.
    Started,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Filling => "filling",
            Phase::Started => "started",
        }
    }
}

/// A held marker: the directory is this process's restore until [`Partial::finish`].
#[derive(Debug)]
pub struct Partial {
    file: File,
    phase: Phase,
}

impl Partial {
    /// Opens (or creates) the marker in `dir` and locks it. A lock held elsewhere means another
    /// restore is writing into `dir` now.
    pub fn claim(dir: &Path) -> Result<Self, PgError> {
        let path = dir.join(MARKER);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| PgError::io("opening", path.display(), e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(PgError::RestoreRunning(dir.display().to_string()));
            }
            Err(TryLockError::Error(e)) => return Err(PgError::io("locking", path.display(), e)),
        }
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| PgError::io("reading", path.display(), e))?;
        // An empty marker (just created, or killed before its first write) is still filling.
        let phase = if text.starts_with(Phase::Started.as_str()) {
            Phase::Started
        } else {
            Phase::Filling
        };
        Ok(Self { file, phase })
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Records `phase` durably before the step it names, so a kill during that step leaves it.
    pub fn set(&mut self, phase: Phase, dir: &Path) -> Result<(), PgError> {
        let path = dir.join(MARKER);
        let text = format!(
            "{}\nbtar restore, pid {}; removed when the restore succeeds\n",
            phase.as_str(),
            std::process::id()
        );
        let f = &mut self.file;
        f.set_len(0)
            .and_then(|()| f.rewind())
            .and_then(|()| f.write_all(text.as_bytes()))
            .and_then(|()| f.sync_all())
            .map_err(|e| PgError::io("writing", path.display(), e))?;
        self.phase = phase;
        Ok(())
    }

    /// The restore succeeded: the directory is an ordinary data directory from now on.
    pub fn finish(self, dir: &Path) -> Result<(), PgError> {
        let path = dir.join(MARKER);
        std::fs::remove_file(&path).map_err(|e| PgError::io("removing", path.display(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second restore into a directory whose restore is still running is refused, and the
    /// marker's phase survives its writer (as it must survive a kill).
    #[test]
    fn a_held_marker_refuses_a_second_restore_and_keeps_its_phase() {
        let dir = std::env::temp_dir().join(format!("btar-partial-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut first = Partial::claim(&dir).unwrap();
        first.set(Phase::Started, &dir).unwrap();
        let second = Partial::claim(&dir).unwrap_err();
        assert!(matches!(second, PgError::RestoreRunning(_)), "{second}");
        drop(first);
        let again = Partial::claim(&dir).unwrap();
        assert_eq!(again.phase(), Phase::Started);
        again.finish(&dir).unwrap();
        assert!(!dir.join(MARKER).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
