//! Database servers btar runs itself: `btar up`'s embedded default and its forks.

use std::path::{Path, PathBuf};

use crate::{AgentSettings, EngineError};

/// The OS user a server must run as when btar runs as root (PostgreSQL refuses to run as root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: Option<String>,
}

/// A local server to create and run under `dir`.
#[derive(Debug, Clone)]
pub struct LocalSpec {
    /// The directory btar up owns (config, keys, regions, the server's data).
    pub dir: PathBuf,
    pub port: u16,
    /// The command the server archives each log file with (`btar … wal-push`); unused by an
    /// engine whose log btar follows instead (MariaDB).
    pub archive_command: String,
    /// File holding the administrator's password for TCP connections (created when missing).
    pub password_file: PathBuf,
}

/// An engine's way to run a throwaway server of its own.
pub trait LocalServer: Send + Sync {
    /// Who the server must run as when btar runs as root; `None` when btar may run it as itself.
    fn os_user(&self) -> Option<OsUser>;

    /// Hands `dir` (recursively) to the server's OS user.
    fn hand_over(&self, dir: &Path) -> Result<(), EngineError>;

    /// The agent settings of the server [`Self::ensure_running`] runs for `spec`.
    fn settings(&self, spec: &LocalSpec) -> AgentSettings;

    /// The data directory of the server [`Self::ensure_running`] runs for `spec` (under `spec.dir`).
    fn data_dir(&self, spec: &LocalSpec) -> PathBuf;

    /// Whether `settings` name a server this spec created (and btar therefore runs).
    fn is_ours(&self, spec: &LocalSpec, settings: &AgentSettings) -> bool;

    /// Creates the server on first use and starts it unless it runs; `true` when this call started
    /// it.
    fn ensure_running(
        &self,
        spec: &LocalSpec,
        settings: &AgentSettings,
    ) -> Result<bool, EngineError>;

    /// Data directories under `dir` whose server is running (forks restored there).
    fn running(&self, dir: &Path) -> Vec<PathBuf>;

    /// Stops the server whose data directory is `data_dir`.
    fn stop(&self, settings: &AgentSettings, data_dir: &Path) -> Result<(), EngineError>;

    /// The settings' connection string, without secrets (for messages).
    fn describe(&self, settings: &AgentSettings) -> Option<String>;
}

/// The data directories of forks restored under a `btar up` directory (`<dir>/forks/*`), running
/// or not.
pub fn fork_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("forks"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}
