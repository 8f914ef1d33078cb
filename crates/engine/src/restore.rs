//! What a restore is asked for and what it reports, the same for every engine.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::AgentSettings;

/// The point a restore recovers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The end of the archive as far as it is gap-free.
    Latest,
    Time(DateTime<Utc>),
    /// A position in the engine's log: a PostgreSQL LSN `X/Y`; for MySQL/MariaDB a binlog position
    /// `FILE:POS` or a GTID list `D-S-N[,…]`, parsed by that engine.
    Position(String),
    /// A named restore point.
    Name(String),
}

/// The recoverable window of a location: from the end of its oldest backup to its newest archived
/// log reachable without crossing a gap.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub region: String,
    pub earliest: Option<DateTime<Utc>>,
    pub latest: Option<DateTime<Utc>>,
    pub backups: Vec<String>,
    /// Backups whose manifest cannot be read (damaged, altered, from a newer btar): reported, never
    /// restored from, and they do not hide their sound neighbours.
    pub damaged: Vec<DamagedBackup>,
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.earliest, self.latest) {
            (Some(a), Some(b)) => write!(f, "{} .. {}", a.to_rfc3339(), b.to_rfc3339()),
            _ => f.write_str("empty (no backups)"),
        }
    }
}

/// A backup of the location that cannot be used, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DamagedBackup {
    pub backup_name: String,
    pub reason: String,
}

/// Where a restored server archives its own logs from its promotion on. Without one its archiving
/// is off, so a restore never writes into the archive it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveTo {
    pub service: String,
    /// The service's home region, for a service the config does not declare (a fork).
    pub region: Option<String>,
}

/// A restore of one location's backup into a new data directory.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub target: Target,
    /// Restore this backup instead of choosing one for the target.
    pub backup: Option<String>,
    pub data_dir: PathBuf,
    /// The command line that runs this btar with its config (`/usr/bin/btar --config F`): the
    /// restored server fetches (and, with `archive`, pushes) its logs through it.
    pub btar: String,
    pub archive: Option<ArchiveTo>,
    /// Port of the restored server.
    pub port: Option<u16>,
    /// Listen on loopback only, with the server's socket in /tmp (a fork btar runs for the user).
    pub loopback_only: bool,
    /// Extra server settings, `key = value` in the engine's own configuration.
    pub settings: Vec<(String, String)>,
    /// Start the server, recover to the target and promote; otherwise only write the files.
    pub start: bool,
    /// The source service's agent settings, for where the engine's programs live.
    pub agent: Option<AgentSettings>,
    pub parallel: usize,
    pub promote_timeout: Duration,
}

/// The point a started restore reached.
#[derive(Debug, Clone, Serialize)]
pub struct Reached {
    pub timeline: u32,
    /// The log position reached (a PostgreSQL LSN; a MySQL/MariaDB binlog `FILE:POS`).
    pub lsn: String,
    pub last_commit_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreOutcome {
    pub region: String,
    pub backup: String,
    pub data_dir: String,
    pub bytes: u64,
    pub reached: Option<Reached>,
    /// Damaged backups passed over for an older sound one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped_damaged: Vec<DamagedBackup>,
    /// How btar reaches the started server (its agent settings), to register it as a service.
    #[serde(skip)]
    pub agent: Option<AgentSettings>,
    /// The started server's connection string, without secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conninfo: Option<String>,
}
