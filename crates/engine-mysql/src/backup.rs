//! Physical backup: `mariadb-backup --backup --stream=xbstream` read from its stdout and split into
//! the files it carries ([`crate::xbstream`]), each written into the format as its own entry — pages
//! at their own offsets, so an incremental stores only changed pages — with bounded memory and no
//! local copy; the binlog position of the consistent point taken from its log, then the manifest,
//! last. A failed or killed run leaves no manifest.

use std::collections::VecDeque;
use std::process::Stdio;

use btar_engine::EngineError;
use btar_format::{BackupWriter, Manifest, backup_name_at};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use crate::MysqlSettings;
use crate::tools::{Conn, program, query};

/// A position in the binlog: the file, the byte offset in it, and the GTID of the last change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BinlogPoint {
    pub file: String,
    pub position: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
}

impl std::fmt::Display for BinlogPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.position)
    }
}

/// MySQL/MariaDB facts recorded in a manifest's `engine_meta`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MysqlMeta {
    pub server_version: String,
    /// The backup's consistent point: restoring it yields the database as of this binlog position.
    pub binlog: BinlogPoint,
    pub backup_start_time: DateTime<Utc>,
    pub backup_stop_time: DateTime<Utc>,
    /// The file entry holding the whole xbstream, in backups taken before the stream was split into
    /// its files (restored through `mbstream -x`); absent when each file is its own entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_file: Option<String>,
}

impl MysqlMeta {
    pub fn of(m: &Manifest) -> Option<MysqlMeta> {
        serde_json::from_value(m.engine_meta.clone()).ok()
    }
}

/// Parses mariadb-backup's report of the consistent point:
/// `MySQL binlog position: filename 'binlog.000001', position '832', GTID of the last change '0-1-3'`.
pub fn parse_binlog_line(line: &str) -> Option<BinlogPoint> {
    let rest = line.split_once("MySQL binlog position:")?.1;
    let quoted = |after: &str| -> Option<String> {
        let s = rest.split_once(after)?.1;
        let s = s.split_once('\'')?.1;
        Some(s.split_once('\'')?.0.to_string())
    };
    Some(BinlogPoint {
        file: quoted("filename")?,
        position: quoted("position")?.parse().ok()?,
        gtid: quoted("GTID of the last change").filter(|g| !g.is_empty()),
    })
}

/// What the server says about itself before a backup; refuses servers a backup could not serve.
#[derive(Debug)]
struct Facts {
    version: String,
}

async fn preflight(s: &MysqlSettings) -> Result<Facts, EngineError> {
    let row = query(s, "SELECT @@version, @@log_bin, @@binlog_format").await?;
    let f: Vec<&str> = row.split('\t').collect();
    let (version, log_bin, format) = match f.as_slice() {
        [v, l, b] => (v.to_string(), *l, *b),
        _ => {
            return Err(EngineError::Failed(format!(
                "unexpected answer from MariaDB ({}): {row:?}",
                s.describe()
            )));
        }
    };
    if !version.contains("MariaDB") {
        return Err(EngineError::Invalid(format!(
            "server {} is MySQL {version}: btar backs up MariaDB with mariadb-backup; MySQL (xtrabackup) is not supported yet",
            s.describe()
        )));
    }
    if log_bin != "1" {
        return Err(EngineError::Invalid(format!(
            "binary logging is off on {}: set log_bin (e.g. `log_bin = binlog`) and server_id in the server's configuration and restart it; btar needs the binlog for its archive and point-in-time restore",
            s.describe()
        )));
    }
    if format.eq_ignore_ascii_case("STATEMENT") {
        return Err(EngineError::Invalid(format!(
            "binlog_format is STATEMENT on {}: set binlog_format = ROW (or MIXED) so replayed binlogs reproduce the data exactly",
            s.describe()
        )));
    }
    Ok(Facts { version })
}

/// What mariadb-backup wrote to stderr: the consistent point, whether it finished, and its last lines
/// (for the error message when it did not).
#[derive(Debug, Default)]
struct ToolLog {
    point: Option<BinlogPoint>,
    completed: bool,
    tail: VecDeque<String>,
}

async fn read_log<R: AsyncRead + Unpin>(r: R) -> ToolLog {
    let mut log = ToolLog::default();
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(p) = parse_binlog_line(&line) {
            log.point = Some(p);
        }
        if line.contains("completed OK!") {
            log.completed = true;
        }
        if log.tail.len() == 20 {
            log.tail.pop_front();
        }
        log.tail.push_back(line);
    }
    log
}

/// Takes a backup of the server `s` reaches into the writer's location and commits its manifest.
pub async fn run(writer: &BackupWriter, s: &MysqlSettings) -> Result<Manifest, EngineError> {
    let loc = writer.location();
    let facts = preflight(s).await?;
    let tool = program(Some(s), "mariadb-backup")?;
    // mariadb-backup wants a target directory even when streaming; it stays (nearly) empty.
    let target = tempfile::Builder::new()
        .prefix("btar-mariadb-backup-")
        .tempdir()
        .map_err(|e| EngineError::Failed(format!("temporary directory: {e}")))?;
    let conn = Conn::new(s)?;
    let mut cmd = Command::new(&tool);
    cmd.args(&conn.args)
        .args(["--backup", "--stream=xbstream"])
        .arg(format!("--target-dir={}", target.path().display()));
    if let Some(d) = &s.datadir {
        cmd.arg(format!("--datadir={d}"));
    }
    let started_at = Utc::now();
    let name = backup_name_at(started_at);
    tracing::info!(service = loc.service(), backup = %name, server = %s.describe(), "mariadb-backup starting");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| EngineError::Failed(format!("cannot run {}: {e}", tool.display())))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(EngineError::Failed("mariadb-backup without pipes".into()));
    };
    let log = tokio::spawn(read_log(stderr));
    // On an error here the child is killed when dropped: no manifest, only unreferenced chunks.
    let entries = crate::xbstream::split(stdout, writer).await?;
    let status = child
        .wait()
        .await
        .map_err(|e| EngineError::Failed(format!("waiting for mariadb-backup: {e}")))?;
    let log = log
        .await
        .map_err(|e| EngineError::Failed(format!("mariadb-backup log: {e}")))?;
    let tail = || log.tail.iter().cloned().collect::<Vec<_>>().join("\n");
    if !status.success() || !log.completed {
        return Err(EngineError::Failed(format!(
            "mariadb-backup failed ({status}); no backup was committed. Its last lines:\n{}",
            tail()
        )));
    }
    let Some(point) = log.point.clone() else {
        return Err(EngineError::Failed(format!(
            "mariadb-backup reported no binlog position (is log_bin on?); no backup was committed. Its last lines:\n{}",
            tail()
        )));
    };
    let meta = MysqlMeta {
        server_version: facts.version,
        binlog: point,
        backup_start_time: started_at,
        backup_stop_time: Utc::now(),
        stream_file: None,
    };
    let meta = serde_json::to_value(&meta).map_err(|e| EngineError::Failed(e.to_string()))?;
    let manifest = writer.finish(&name, started_at, entries, meta).await?;
    loc.commit_manifest(&manifest).await?;
    tracing::info!(service = loc.service(), backup = %name, bytes = manifest.stats.logical_bytes, "mariadb backup committed");
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_consistent_point_from_mariadb_backup() {
        let line = "[00] 2026-11-29 23:19:52 MySQL binlog position: filename 'binlog.000001', position '832', GTID of the last change '0-1-3'";
        assert_eq!(
            parse_binlog_line(line),
            Some(BinlogPoint {
                file: "binlog.000001".into(),
                position: 832,
                gtid: Some("0-1-3".into())
            })
        );
        let no_gtid = "MySQL binlog position: filename 'mysql-bin.000042', position '4', GTID of the last change ''";
        let p = parse_binlog_line(no_gtid);
        assert_eq!(
            p.as_ref().map(|p| p.to_string()).as_deref(),
            Some("mysql-bin.000042:4")
        );
        assert_eq!(p.and_then(|p| p.gtid), None);
        assert_eq!(parse_binlog_line("[00] Streaming ./ibdata1"), None);
    }
}
