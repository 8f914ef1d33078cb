use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use btar_format::verify::Problem;
use btar_format::{BackupWriter, Location, LogPut, Manifest};
use chrono::{DateTime, Utc};

use crate::{
    AgentSettings, EngineError, EngineKind, LocalServer, LogFollower, LogSequence, LogStreamer,
    Progress, RestoreOutcome, RestoreRequest, Window,
};

#[derive(Debug, Clone, Copy)]
pub struct BackupOptions {
    /// Files read at once.
    pub parallel_files: usize,
    /// How long the backup may wait for the server to archive the logs it needs before it is
    /// abandoned.
    pub archive_wait: Duration,
}

impl Default for BackupOptions {
    fn default() -> Self {
        Self {
            parallel_files: 4,
            archive_wait: Duration::from_secs(600),
        }
    }
}

/// Where a backup starts and stops in the engine's log, as its manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupPoint {
    /// Log position of the start (a PostgreSQL LSN).
    pub start: String,
    pub stop: String,
    pub started_at: DateTime<Utc>,
    /// The log files a restore of this backup needs, in order: from the one holding its start to
    /// the one holding its stop.
    pub logs: Vec<String>,
}

/// A log file made durable in a location.
#[derive(Debug, Clone)]
pub struct PushedLog {
    /// The log directory it went to (`logs/<timeline>/`).
    pub timeline: String,
    pub name: String,
    pub put: LogPut,
}

/// What a database engine provides. Implementations live in their own crates (`btar-engine-pg`);
/// nothing above this layer matches on an engine.
#[async_trait::async_trait]
pub trait Engine: Send + Sync + std::fmt::Debug {
    fn kind(&self) -> EngineKind;

    /// Checks a service's agent settings; the error names what is wrong (an unknown key, a missing
    /// connection string).
    fn check_settings(&self, settings: &AgentSettings) -> Result<(), EngineError>;

    /// Takes a backup of the server `settings` reach into the writer's location and commits its
    /// manifest, last.
    async fn backup(
        &self,
        writer: &BackupWriter,
        settings: &AgentSettings,
        opts: BackupOptions,
        progress: &dyn Progress,
    ) -> Result<Manifest, EngineError>;

    /// Where a backup starts and stops in the log; `None` when its manifest lacks this engine's
    /// facts.
    fn backup_point(&self, m: &Manifest) -> Option<BackupPoint>;

    /// The recoverable window of a location and its sound backups (oldest first).
    async fn window(&self, loc: &Location) -> Result<(Window, Vec<Manifest>), EngineError>;

    /// Restores a backup of `loc` as the request says. On failure the data directory is left as
    /// the engine documents (empty but for its log), so the same request can be run again.
    async fn restore(
        &self,
        loc: &Location,
        req: &RestoreRequest,
        progress: &dyn Progress,
    ) -> Result<RestoreOutcome, EngineError>;

    /// Archives one log file (the server's archive hook); durable when this returns.
    async fn push_log(&self, loc: &Location, path: &Path) -> Result<PushedLog, EngineError>;

    /// Fetches one archived log file to `dest`; `false` when it is not in the archive.
    async fn fetch_log(&self, loc: &Location, name: &str, dest: &Path)
    -> Result<bool, EngineError>;

    /// The log directory (`logs/<dir>/`) an archived log file `name` lives in; `None` for a name
    /// this engine does not archive. Lets a caller holding a file's sealed bytes open them.
    fn log_dir(&self, _name: &str) -> Option<String> {
        None
    }

    /// The numbering a restore asks for log files in after `name`, judged from that file's length
    /// (`len` bytes, which for PostgreSQL is the cluster's segment size); `None` for files outside
    /// a sequence (history, backup-label and partial files), which are never fetched ahead.
    fn fetch_sequence(&self, _name: &str, _len: u64) -> Option<Arc<dyn LogSequence>> {
        None
    }

    /// The numbering of this engine's log files; `newest` (the location's newest backup) carries
    /// what the numbering depends on, such as PostgreSQL's segment size.
    fn log_sequence(&self, newest: Option<&Manifest>) -> Arc<dyn LogSequence>;

    /// Holes in the location's log archive that stop a restore (of `only`, or of any backup).
    async fn log_gaps(
        &self,
        loc: &Location,
        only: Option<&str>,
    ) -> Result<Vec<Problem>, EngineError>;

    /// The engine's way to run a server of its own, if it has one.
    fn local_server(&self) -> Option<&dyn LocalServer> {
        None
    }

    /// Where, inside a downloaded backup's directory, the log files the backup needs to be
    /// consistent go so the database's own tools use them without btar (PostgreSQL: `pg_wal`);
    /// `None` when the engine's native form needs no log files (MariaDB: `--prepare` applies the
    /// redo log that is part of the backup).
    fn native_log_dir(&self) -> Option<&'static str> {
        None
    }

    /// Whether restore drills can run for this engine: [`Engine::probe`] and
    /// [`Engine::stop_restored`] work for the servers its restores start.
    fn drills(&self) -> bool {
        false
    }

    /// Runs `sql` on a server a restore started; its first row as text, or `None` when it returns
    /// no row (a drill's validation query). `source` are the settings of the service restored (the
    /// restored server holds its accounts).
    async fn probe(
        &self,
        _outcome: &RestoreOutcome,
        _source: Option<&AgentSettings>,
        _sql: &str,
    ) -> Result<Option<String>, EngineError> {
        Err(EngineError::Invalid(
            "this engine cannot run a validation query on a restored server yet".into(),
        ))
    }

    /// Stops a server a restore started in `data_dir` (a drill cleans up after itself); nothing to
    /// do when none runs there.
    async fn stop_restored(&self, _data_dir: &Path) -> Result<(), EngineError> {
        Err(EngineError::Invalid(
            "this engine cannot stop a restored server yet".into(),
        ))
    }

    /// The engine's way to follow its server's log into the archive, if its server does not push
    /// each log file itself (MySQL/MariaDB's binlog; PostgreSQL archives WAL with
    /// `archive_command`).
    fn log_follower(&self) -> Option<&dyn LogFollower> {
        None
    }

    /// The engine's streamer: the server's log as it is written, into every location within about
    /// a second (DESIGN.md, "Roles").
    fn log_streamer(&self) -> Option<&dyn LogStreamer> {
        None
    }
}
