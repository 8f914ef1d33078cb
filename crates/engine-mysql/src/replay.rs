//! Point-in-time restore by binlog replay: which archived binlog files a restore needs from a
//! backup's consistent point to its target (refusing a gap in that run, naming the missing file),
//! fetching them from the location being restored from, and piping
//! `mariadb-binlog --start-position=P [--stop-datetime=T] FILES…` into the `mariadb` client of the
//! restored server.
//!
//! Binlog event times have one-second resolution: a time target replays the events stamped before
//! the target's second (`--stop-datetime` stops at the first event at or after it), so a restore
//! never holds a change made after the target.

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use btar_engine::log::NumberedFiles;
use btar_engine::{EngineError, LogSequence, Target};
use btar_format::Location;
use chrono::{DateTime, Utc};
use tokio::process::Command;

use crate::MysqlSettings;
use crate::backup::BinlogPoint;
use crate::binlog;
use crate::tools::{Conn, program};

/// The binlog file magic, then events of a 19-byte common header each.
const MAGIC: &[u8; 4] = b"\xfebin";
const HEADER: u64 = 19;
/// Event types that carry changes: QUERY_EVENT, XID_EVENT (a commit) and MariaDB's GTID_EVENT (one
/// per transaction).
const QUERY_EVENT: u8 = 2;
const XID_EVENT: u8 = 16;
const GTID_EVENT: u8 = 162;

/// One event of a binlog file, from its common header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Seconds since the epoch, as the server stamped it.
    pub when: i64,
    pub kind: u8,
    /// Offset of the event in its file.
    pub at: u64,
    /// Offset just past it.
    pub end: u64,
}

/// The events of a binlog file from offset `from` (an event boundary; the file's first event
/// when below 4), by walking the common headers: cheap, and bounded memory for any file size. A
/// truncated trailing event ends the walk.
pub fn events(path: &Path, from: u64) -> Result<Vec<Event>, EngineError> {
    let fail = |e: std::io::Error| EngineError::Failed(format!("reading {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(fail)?;
    let len = file.metadata().map_err(fail)?.len();
    let mut f = BufReader::with_capacity(1 << 16, file);
    let mut magic = [0u8; 4];
    if f.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Err(EngineError::Damaged(format!(
            "{} is not a binlog file (no binlog magic)",
            path.display()
        )));
    }
    let mut at = from.max(4);
    f.seek(SeekFrom::Start(at)).map_err(fail)?;
    let mut out = vec![];
    let mut h = [0u8; HEADER as usize];
    while at + HEADER <= len {
        f.read_exact(&mut h).map_err(fail)?;
        let when = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let size = u32::from_le_bytes([h[9], h[10], h[11], h[12]]) as u64;
        if size < HEADER || at + size > len {
            break;
        }
        out.push(Event {
            when: when as i64,
            kind: h[4],
            at,
            end: at + size,
        });
        at += size;
        // Within the buffer when the event is: no system call per event.
        f.seek_relative((size - HEADER) as i64).map_err(fail)?;
    }
    Ok(out)
}

/// The archived binlog files a restore replays, fetched into a local directory.
#[derive(Debug)]
pub struct Plan {
    /// Local copies, in order; the first is read from `start`.
    pub files: Vec<PathBuf>,
    pub start: u64,
    /// `--stop-datetime`, in whole seconds.
    pub stop: Option<DateTime<Utc>>,
    /// Where the replay ends: the first event not replayed, or the end of the last file.
    pub reached: BinlogPoint,
    /// Time of the last event replayed (of any kind: a rotation too).
    pub last_event: Option<DateTime<Utc>>,
    /// Time of the last replayed event that changes data (a transaction or a statement); `None`
    /// when none does.
    pub last_change: Option<DateTime<Utc>>,
}

fn at_second(t: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t, 0)
}

/// Fetches the binlog files from `point` (a backup's consistent point, reached at `point_time`) to
/// `target` into `into`, refusing a gap on the way (naming the missing file). Files past the
/// target's second are not fetched. A time target is reached only when an archived event is
/// stamped at or after it (a closed file ends with its rotation's event), or when it is not after
/// the backup itself: otherwise changes before it may sit in a binlog not archived yet, and the
/// target is refused.
pub async fn plan(
    loc: &Location,
    point: &BinlogPoint,
    point_time: DateTime<Utc>,
    target: &Target,
    into: &Path,
) -> Result<Plan, EngineError> {
    let seq = NumberedFiles;
    let first = seq.position(&point.file).ok_or_else(|| {
        EngineError::Damaged(format!(
            "the backup's binlog file `{}` is not a numbered binlog name",
            point.file
        ))
    })?;
    let stop_secs = match target {
        Target::Latest => None,
        Target::Time(t) => Some(t.timestamp()),
        other => {
            return Err(EngineError::Invalid(format!(
                "MySQL/MariaDB restores to latest or a time (--target-time); {other:?} is not supported"
            )));
        }
    };
    let run = binlog::run_from(loc, &point.file).await?;
    let region = loc.region().name();
    let mut plan = Plan {
        files: vec![],
        start: point.position,
        stop: stop_secs.and_then(at_second),
        reached: point.clone(),
        last_event: None,
        last_change: None,
    };
    plan.reached.gtid = None;
    let mut n = first.number;
    loop {
        let name = seq.name_of(&point.file, n);
        let path = into.join(&name);
        let present = n < run.end && binlog::fetch(loc, &name, &path).await?;
        if !present {
            if run.files.range(n + 1..).next().is_none() {
                // The end of the archive: nothing past it to replay.
                if let Target::Time(t) = target
                    && *t > point_time
                {
                    let last = plan
                        .last_event
                        .map(|l| format!("its last event is stamped {}", l.to_rfc3339()))
                        .unwrap_or_else(|| "it holds no event after the backup".into());
                    return Err(EngineError::Invalid(format!(
                        "target {} is past the binlog archived in region `{region}`: {last}, and {name} \
                         (which may hold changes before the target) is not archived there yet",
                        t.to_rfc3339()
                    )));
                }
                return Ok(plan);
            }
            let newest = run
                .files
                .values()
                .next_back()
                .map(|o| o.name.clone())
                .unwrap_or_default();
            let until = plan
                .last_event
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "the backup's consistent point".into());
            return Err(EngineError::Invalid(format!(
                "binlog gap in region `{region}`: {name} is missing from the archive (newest archived: {newest}); \
                 replay cannot pass it, so this location can recover only up to {until} from this backup"
            )));
        }
        let from = if n == first.number { point.position } else { 4 };
        let walked = path.clone();
        let evs = tokio::task::spawn_blocking(move || events(&walked, from))
            .await
            .map_err(|e| EngineError::Failed(format!("reading {name}: {e}")))??;
        plan.files.push(path);
        let cut = stop_secs.and_then(|s| evs.iter().position(|e| e.when >= s));
        let replayed = &evs[..cut.unwrap_or(evs.len())];
        let changed = replayed
            .iter()
            .filter(|e| matches!(e.kind, QUERY_EVENT | XID_EVENT | GTID_EVENT))
            .map(|e| e.when)
            .max();
        plan.last_change = plan.last_change.max(changed.and_then(at_second));
        if let Some(last) = replayed.iter().map(|e| e.when).max() {
            plan.last_event = plan.last_event.max(at_second(last));
        }
        plan.reached = BinlogPoint {
            file: name,
            position: match cut {
                Some(i) => evs[i].at,
                None => evs.last().map_or(from, |e| e.end),
            },
            gtid: None,
        };
        if cut.is_some() {
            return Ok(plan);
        }
        n += 1;
    }
}

/// Replays the plan into the server `s` reaches: `mariadb-binlog … | mariadb`.
pub async fn replay(plan: &Plan, s: &MysqlSettings) -> Result<(), EngineError> {
    if plan.files.is_empty() {
        return Ok(());
    }
    let tool = program(Some(s), "mariadb-binlog")?;
    let mut dump = Command::new(&tool);
    // Times in and out of mariadb-binlog are in its local zone: make that UTC.
    dump.env("TZ", "UTC")
        .arg("--no-defaults")
        .arg(format!("--start-position={}", plan.start));
    if let Some(t) = plan.stop {
        dump.arg(format!("--stop-datetime={}", t.format("%Y-%m-%d %H:%M:%S")));
    }
    let mut dump = dump
        .args(&plan.files)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| EngineError::Failed(format!("cannot run {}: {e}", tool.display())))?;
    let Some(sql) = dump.stdout.take() else {
        return Err(EngineError::Failed("mariadb-binlog without stdout".into()));
    };
    let sql: Stdio = sql
        .try_into()
        .map_err(|e| EngineError::Failed(format!("mariadb-binlog's stdout: {e}")))?;
    let client_path = program(Some(s), "mariadb")?;
    let conn = Conn::new(s)?;
    let client = Command::new(&client_path)
        .args(&conn.args)
        .args(["--binary-mode", "--batch", "--connect-timeout=10"])
        .stdin(sql)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| EngineError::Failed(format!("cannot run {}: {e}", client_path.display())))?;
    let (dumped, applied) = tokio::join!(dump.wait_with_output(), client.wait_with_output());
    let applied = applied.map_err(|e| EngineError::Failed(format!("waiting for mariadb: {e}")))?;
    let dumped =
        dumped.map_err(|e| EngineError::Failed(format!("waiting for mariadb-binlog: {e}")))?;
    if !applied.status.success() {
        return Err(EngineError::Failed(format!(
            "replaying binlogs into the restored server failed: mariadb ({}): {}",
            applied.status,
            String::from_utf8_lossy(&applied.stderr).trim()
        )));
    }
    if !dumped.status.success() {
        return Err(EngineError::Failed(format!(
            "mariadb-binlog failed ({}): {}",
            dumped.status,
            String::from_utf8_lossy(&dumped.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(when: u32, kind: u8, size: u32) -> Vec<u8> {
        let mut e = vec![];
        e.extend_from_slice(&when.to_le_bytes());
        e.push(kind);
        e.extend_from_slice(&1u32.to_le_bytes());
        e.extend_from_slice(&size.to_le_bytes());
        e.extend_from_slice(&0u32.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        e.resize(size as usize, 0);
        e
    }

    #[test]
    fn event_headers_are_walked_and_a_torn_tail_ignored() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("binlog.000001");
        let mut data = MAGIC.to_vec();
        data.extend(event(100, 15, 40));
        data.extend(event(101, GTID_EVENT, 30));
        data.extend(event(103, 16, 31));
        data.extend(&event(104, 2, 50)[..25]);
        std::fs::write(&path, &data).unwrap_or_else(|e| panic!("{e}"));
        let evs = events(&path, 0).unwrap_or_default();
        let got: Vec<(i64, u8, u64, u64)> =
            evs.iter().map(|e| (e.when, e.kind, e.at, e.end)).collect();
        assert_eq!(
            got,
            vec![
                (100, 15, 4, 44),
                (101, GTID_EVENT, 44, 74),
                (103, 16, 74, 105)
            ]
        );
        let from = events(&path, 74).unwrap_or_default();
        assert_eq!(from.len(), 1);
        std::fs::write(&path, b"not a binlog").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(events(&path, 0), Err(EngineError::Damaged(_))));
    }
}
