//! Point-in-time restore by binlog replay: which archived binlog files a restore needs from a
//! backup's consistent point to its target (refusing a gap in that run, naming the missing file),
//! fetching them from the location being restored from, and piping
//! `mariadb-binlog --start-position=P [--stop-datetime=T] FILES…` into the `mariadb` client of the
//! restored server.
//!
//! Binlog event times have one-second resolution: a time target replays the events stamped before
//! the target's second (`--stop-datetime` stops at the first event at or after it), so a restore
//! never holds a change made after the target.

use std::collections::BTreeSet;
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
use crate::target::{self, BinlogTarget, Gtid, GtidSet};
use crate::tools::{Conn, program};

/// The binlog file magic, then events of a 19-byte common header each.
pub(crate) const MAGIC: &[u8; 4] = b"\xfebin";
pub(crate) const HEADER: u64 = 19;
/// Event types that carry changes: QUERY_EVENT, XID_EVENT (a commit) and MariaDB's GTID_EVENT (one
/// per transaction).
pub(crate) const QUERY_EVENT: u8 = 2;
pub(crate) const XID_EVENT: u8 = 16;
pub(crate) const GTID_EVENT: u8 = 162;
/// Events that are no part of a transaction: one ends before them.
const STOP_EVENT: u8 = 3;
const ROTATE_EVENT: u8 = 4;
const FORMAT_DESCRIPTION_EVENT: u8 = 15;
const BINLOG_CHECKPOINT_EVENT: u8 = 161;
const GTID_LIST_EVENT: u8 = 163;
/// GTID_EVENT's post-header: sequence number (8 bytes), domain (4), flags (1).
pub(crate) const GTID_BODY: u64 = 13;
/// The GTID_EVENT flag of a transaction of one statement (DDL), with no BEGIN/COMMIT around it.
pub(crate) const FL_STANDALONE: u8 = 1;

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
    /// The server that wrote it.
    pub server: u32,
    /// For a GTID_EVENT, the transaction it begins.
    pub gtid: Option<GtidStart>,
}

/// What a GTID_EVENT says about the transaction it begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GtidStart {
    pub gtid: Gtid,
    /// One statement without BEGIN/COMMIT (DDL).
    pub standalone: bool,
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
        let server = u32::from_le_bytes([h[5], h[6], h[7], h[8]]);
        let size = u32::from_le_bytes([h[9], h[10], h[11], h[12]]) as u64;
        if size < HEADER || at + size > len {
            break;
        }
        let mut body = HEADER;
        let mut gtid = None;
        if h[4] == GTID_EVENT && size >= HEADER + GTID_BODY {
            let mut g = [0u8; GTID_BODY as usize];
            f.read_exact(&mut g).map_err(fail)?;
            body += GTID_BODY;
            let mut seq = [0u8; 8];
            seq.copy_from_slice(&g[..8]);
            gtid = Some(GtidStart {
                gtid: Gtid {
                    domain: u32::from_le_bytes([g[8], g[9], g[10], g[11]]),
                    server,
                    seq: u64::from_le_bytes(seq),
                },
                standalone: g[12] & FL_STANDALONE != 0,
            });
        }
        out.push(Event {
            when: when as i64,
            kind: h[4],
            at,
            end: at + size,
            server,
            gtid,
        });
        at += size;
        // Within the buffer when the event is: no system call per event.
        f.seek_relative((size - body) as i64).map_err(fail)?;
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
    /// `--stop-position` in the last file: where a position or GTID target cuts the binlog.
    pub stop_position: Option<u64>,
    /// Where the replay ends: the first event not replayed, or the end of the last file; with the
    /// binlog state (GTID list) there, as far as the backup's and the replayed GTIDs tell.
    pub reached: BinlogPoint,
    /// Time of the last event replayed (of any kind: a rotation too).
    pub last_event: Option<DateTime<Utc>>,
    /// Time of the last replayed event that changes data (a transaction or a statement); `None`
    /// when none does.
    pub last_change: Option<DateTime<Utc>>,
    /// The newest file replayed from its streamed tail (not archived yet), if any.
    pub streamed: Option<String>,
}

fn at_second(t: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t, 0)
}

/// Where a replay stops, as the plan walks the archive.
#[derive(Debug)]
enum Stop {
    Latest,
    /// Before the first event stamped at or after this second.
    Time(i64),
    /// Before the event at `position` of binlog file number `number`.
    At {
        file: String,
        number: u64,
        position: u64,
    },
    /// Right after the transaction of the last of these GTIDs to be replayed; `done` holds the
    /// domains already reached.
    Gtids {
        want: GtidSet,
        done: BTreeSet<u32>,
    },
}

/// The binlog state recorded with a backup (its `GTID of the last change`).
fn backup_state(point: &BinlogPoint) -> Result<GtidSet, EngineError> {
    let Some(g) = &point.gtid else {
        return Ok(GtidSet::new());
    };
    match target::parse_gtid_list(g) {
        Ok(Some(set)) => Ok(set),
        _ => Err(EngineError::Damaged(format!(
            "the backup's recorded GTID `{g}` is not a GTID list"
        ))),
    }
}

/// The offset where the transaction begun by GTID event `evs[i]` ends: before the next event that is
/// no part of it (the next transaction's GTID, a rotation, a checkpoint), or the end of the file's
/// events when they end with its commit. `None` when the file ends inside it.
fn group_end(evs: &[Event], i: usize) -> Option<(usize, u64)> {
    let tail = evs.get(i + 1..)?;
    let next = tail.iter().position(|e| {
        matches!(
            e.kind,
            GTID_EVENT
                | ROTATE_EVENT
                | STOP_EVENT
                | FORMAT_DESCRIPTION_EVENT
                | BINLOG_CHECKPOINT_EVENT
                | GTID_LIST_EVENT
        )
    });
    if let Some(j) = next {
        let j = i + 1 + j;
        return (j > i + 1).then(|| (j, evs[j].at));
    }
    let standalone = evs[i].gtid.is_some_and(|g| g.standalone);
    let last = tail.last()?;
    let complete = last.kind == XID_EVENT || (standalone && last.kind == QUERY_EVENT);
    complete.then_some((evs.len(), last.end))
}

/// Fetches the binlog files from `point` (a backup's consistent point, reached at `point_time`) to
/// `target` into `into`, refusing a gap on the way (naming the missing file). After the archived
/// run come the streamed tails of files not archived yet (see [`binlog::fetch_or_tail`]). Files past the
/// target are not fetched. A time target is reached only when an archived event is stamped at or
/// after it (a closed file ends with its rotation's event), or when it is not after the backup
/// itself: otherwise changes before it may sit in a binlog not archived yet, and the target is
/// refused. A position target must be an event boundary of an archived file at or after the
/// backup's point; a GTID target must be found in the archive after the backup's recorded GTID (see
/// [`crate::target`]).
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
    let region = loc.region().name();
    // The binlog state as replayed so far: the backup's, then each replayed transaction's GTID.
    let mut state = backup_state(point)?;
    let mut stop = match target {
        Target::Latest => Stop::Latest,
        Target::Time(t) => Stop::Time(t.timestamp()),
        Target::Position(s) => match target::parse(s)? {
            BinlogTarget::At {
                file,
                family,
                number,
                position,
            } => {
                if family != first.family {
                    return Err(EngineError::Invalid(format!(
                        "binlog position {file}:{position} is in no binlog of this archive: the backup's binlog files are named {}.NNNNNN",
                        first.family
                    )));
                }
                if (number, position) < (first.number, point.position) {
                    return Err(EngineError::Invalid(format!(
                        "binlog position {file}:{position} precedes the backup's consistent point {point}"
                    )));
                }
                Stop::At {
                    file,
                    number,
                    position,
                }
            }
            BinlogTarget::Gtids(want) => {
                let mut done = BTreeSet::new();
                for t in want.values() {
                    let Some(b) = state.get(&t.domain) else {
                        continue;
                    };
                    if b.seq > t.seq {
                        return Err(EngineError::Invalid(format!(
                            "GTID {t} precedes the backup's consistent point {point} (GTID {})",
                            target::show(&state)
                        )));
                    }
                    if b.seq == t.seq {
                        if b.server != t.server {
                            return Err(EngineError::Invalid(format!(
                                "GTID {t} is not in the binlog: sequence number {} of domain {} is {b} (the backup's point {point})",
                                t.seq, t.domain
                            )));
                        }
                        done.insert(t.domain);
                    }
                }
                Stop::Gtids { want, done }
            }
        },
        Target::Name(n) => {
            return Err(EngineError::Invalid(format!(
                "MySQL/MariaDB has no named restore points (`{n}`): restore to latest, a time (--target-time), \
                 a binlog position or a GTID (--target-lsn)"
            )));
        }
    };
    let run = binlog::run_from(loc, &point.file).await?;
    let mut plan = Plan {
        files: vec![],
        start: point.position,
        stop: match &stop {
            Stop::Time(s) => at_second(*s),
            _ => None,
        },
        stop_position: None,
        reached: point.clone(),
        last_event: None,
        last_change: None,
        streamed: None,
    };
    if let Stop::Gtids { want, done } = &stop
        && done.len() == want.len()
    {
        // The backup's own point: nothing to replay.
        return Ok(plan);
    }
    let mut n = first.number;
    // Set after a streamed tail of a file the server was still writing: what follows it cannot be
    // replayed without the part of it no location holds yet.
    let mut after_open_tail = false;
    loop {
        let name = seq.name_of(&point.file, n);
        let path = into.join(&name);
        // Past the archived run, the file the server was writing when the streamer last stored it.
        let mut source = if after_open_tail {
            None
        } else if n < run.end {
            binlog::fetch(loc, &name, &path)
                .await?
                .then_some(binlog::Source::Archive)
        } else {
            binlog::fetch_or_tail(loc, &name, &path).await?
        };
        let from = if n == first.number { point.position } else { 4 };
        if source == Some(binlog::Source::Tail) {
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if len < from {
                // The tail does not reach the backup's point yet: nothing of it to replay.
                let _ = std::fs::remove_file(&path);
                source = None;
            } else {
                plan.streamed = Some(name.clone());
            }
        }
        if source.is_none() {
            let newest = run
                .files
                .values()
                .next_back()
                .map(|o| o.name.clone())
                .unwrap_or_default();
            if run.files.range(n + 1..).next().is_none() {
                // The end of the archive: nothing past it to replay.
                return match (&stop, target) {
                    (Stop::Time(_), Target::Time(t)) if *t > point_time => {
                        let last = plan
                            .last_event
                            .map(|l| format!("its last event is stamped {}", l.to_rfc3339()))
                            .unwrap_or_else(|| "it holds no event after the backup".into());
                        Err(EngineError::Invalid(format!(
                            "target {} is past the binlog archived in region `{region}`: {last}, and {name} \
                             (which may hold changes before the target) is not archived there yet",
                            t.to_rfc3339()
                        )))
                    }
                    (Stop::At { file, position, .. }, _) => {
                        let newest = if newest.is_empty() {
                            "none from the backup's point on".to_string()
                        } else {
                            newest
                        };
                        let missing = if *file == name {
                            format!("{file} is not archived there")
                        } else {
                            format!("{file} is not archived there, nor is {name} before it")
                        };
                        Err(EngineError::Invalid(format!(
                            "binlog position {file}:{position} is past the binlog archived in region `{region}`: \
                             {missing} (newest archived: {newest}); it can be restored up to {}, the end of the \
                             last file archived without a gap after the backup",
                            plan.reached
                        )))
                    }
                    (Stop::Gtids { want, .. }, _) => Err(EngineError::Invalid(format!(
                        "GTID {} is not in the binlog archived in region `{region}`: from the backup's point \
                         {point} the archive ends at {} with binlog state {}; {name} is not archived there",
                        target::show(want),
                        plan.reached,
                        if state.is_empty() {
                            "empty (no GTID)".to_string()
                        } else {
                            target::show(&state)
                        }
                    ))),
                    _ => Ok(plan),
                };
            }
            let until = plan
                .last_event
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "the backup's consistent point".into());
            return Err(EngineError::Invalid(format!(
                "binlog gap in region `{region}`: {name} is missing from the archive (newest archived: {newest}); \
                 replay cannot pass it, so this location can recover only up to {until} ({}) from this backup",
                plan.reached
            )));
        }
        let walked = path.clone();
        let evs = tokio::task::spawn_blocking(move || events(&walked, from))
            .await
            .map_err(|e| EngineError::Failed(format!("reading {name}: {e}")))??;
        plan.files.push(path);
        let end = evs.last().map_or(from, |e| e.end);
        // Where this file is cut: the events replayed (`evs[..i]`) and the offset replay stops at.
        let cut: Option<(usize, u64)> = match &mut stop {
            Stop::Latest => None,
            Stop::Time(s) => evs
                .iter()
                .position(|e| e.when >= *s)
                .map(|i| (i, evs[i].at)),
            Stop::At {
                file,
                number,
                position,
            } if *number == n => {
                let p = *position;
                if p > end {
                    return Err(EngineError::Invalid(format!(
                        "binlog position {file}:{p} is past the end of {file} as archived in region `{region}`: \
                         its events end at {end}"
                    )));
                }
                let i = evs.iter().position(|e| e.at >= p).unwrap_or(evs.len());
                if p != from && p != end && evs.get(i).is_none_or(|e| e.at != p) {
                    let before = i.checked_sub(1).map_or(from, |j| evs[j].at);
                    let after = evs.get(i).map_or(end, |e| e.at);
                    return Err(EngineError::Invalid(format!(
                        "binlog position {file}:{p} is not an event boundary: the nearest in {file} are {before} and {after}"
                    )));
                }
                Some((i, p))
            }
            Stop::At { .. } => None,
            Stop::Gtids { want, done } => {
                let mut found = None;
                for (i, e) in evs.iter().enumerate() {
                    let Some(g) = e.gtid.map(|s| s.gtid) else {
                        continue;
                    };
                    let before = state.insert(g.domain, g);
                    let Some(t) = want.get(&g.domain) else {
                        continue;
                    };
                    if done.contains(&g.domain) {
                        let pending: Vec<String> = want
                            .values()
                            .filter(|w| !done.contains(&w.domain))
                            .map(|w| w.to_string())
                            .collect();
                        return Err(EngineError::Invalid(format!(
                            "GTID list {} is no state the binlog passed through: {g} (at {name}:{}) comes after {t} \
                             and before {} is reached",
                            target::show(want),
                            e.at,
                            pending.join(",")
                        )));
                    }
                    if g.seq == t.seq && g.server == t.server {
                        done.insert(g.domain);
                        if done.len() == want.len() {
                            found = Some(group_end(&evs, i).ok_or_else(|| {
                                EngineError::Invalid(format!(
                                    "GTID {g}'s transaction is not complete in the binlog archived in region \
                                     `{region}`: {name} ends inside it"
                                ))
                            })?);
                            break;
                        }
                    } else if g.seq >= t.seq {
                        let prev = before.map(|b| format!("from {b} ")).unwrap_or_default();
                        return Err(EngineError::Invalid(format!(
                            "GTID {t} is not in the binlog archived in region `{region}`: domain {} goes {prev}to {g} at {name}:{}",
                            t.domain, e.at
                        )));
                    }
                }
                found
            }
        };
        let replayed = &evs[..cut.map_or(evs.len(), |(i, _)| i)];
        let changed = replayed
            .iter()
            .filter(|e| matches!(e.kind, QUERY_EVENT | XID_EVENT | GTID_EVENT))
            .map(|e| e.when)
            .max();
        plan.last_change = plan.last_change.max(changed.and_then(at_second));
        if let Some(last) = replayed.iter().map(|e| e.when).max() {
            plan.last_event = plan.last_event.max(at_second(last));
        }
        if !matches!(stop, Stop::Gtids { .. }) {
            // The GTID walk above kept the state itself, up to its cut.
            for g in replayed.iter().filter_map(|e| e.gtid) {
                state.insert(g.gtid.domain, g.gtid);
            }
        }
        plan.reached = BinlogPoint {
            file: name,
            position: cut.map_or(end, |(_, at)| at),
            gtid: (!state.is_empty()).then(|| target::show(&state)),
        };
        if let Some((_, at)) = cut {
            if matches!(stop, Stop::At { .. } | Stop::Gtids { .. }) {
                plan.stop_position = Some(at);
            }
            return Ok(plan);
        }
        if source == Some(binlog::Source::Tail) && !closes(&evs) {
            after_open_tail = true;
        }
        n += 1;
    }
}

/// Whether a binlog file's events end with the rotation to the next file (or the stop of a
/// server shut down cleanly, which starts the next file when it starts again): a closed file. A
/// streamed tail without it was cut while the server still wrote the file.
pub(crate) fn closes(evs: &[Event]) -> bool {
    evs.last()
        .is_some_and(|e| e.kind == ROTATE_EVENT || e.kind == STOP_EVENT)
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
    if let Some(p) = plan.stop_position {
        // An integer --stop-position applies to the last file given: the plan's last.
        dump.arg(format!("--stop-position={p}"));
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

    /// A GTID_EVENT of `seq` in `domain` (server 1 per `event`), flags `flags`, with a checksum.
    fn gtid_event(seq: u64, domain: u32, flags: u8) -> Vec<u8> {
        let mut e = event(100, GTID_EVENT, 19 + 13 + 6 + 4);
        e[19..27].copy_from_slice(&seq.to_le_bytes());
        e[27..31].copy_from_slice(&domain.to_le_bytes());
        e[31] = flags;
        e
    }

    #[test]
    fn gtid_events_are_read_and_transactions_end_before_the_next() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("binlog.000001");
        let mut data = MAGIC.to_vec();
        data.extend(event(100, FORMAT_DESCRIPTION_EVENT, 40)); // 4..44
        data.extend(gtid_event(7, 0, 0)); // 44..86
        data.extend(event(100, 19, 30)); // 86..116, table map
        data.extend(event(100, 30, 50)); // 116..166, rows
        data.extend(event(100, XID_EVENT, 31)); // 166..197
        data.extend(gtid_event(8, 2, FL_STANDALONE)); // 197..239
        data.extend(event(100, QUERY_EVENT, 60)); // 239..299
        std::fs::write(&path, &data).unwrap_or_else(|e| panic!("{e}"));
        let evs = events(&path, 0).unwrap_or_default();
        let gtids: Vec<(u64, String, bool)> = evs
            .iter()
            .filter_map(|e| e.gtid.map(|g| (e.at, g.gtid.to_string(), g.standalone)))
            .collect();
        assert_eq!(
            gtids,
            vec![(44, "0-1-7".into(), false), (197, "2-1-8".into(), true)]
        );
        // The first ends before the next GTID; the last, a DDL, at the end of the file.
        assert_eq!(group_end(&evs, 1), Some((5, 197)));
        assert_eq!(group_end(&evs, 5), Some((7, 299)));
        // Cut inside the first transaction: the file ends inside it.
        assert_eq!(group_end(&evs[..4], 1), None);
        // A non-standalone transaction whose commit is archived ends at it.
        assert_eq!(group_end(&evs[..5], 1), Some((5, 197)));
        // A GTID event followed by nothing of its own.
        assert_eq!(group_end(&evs[..2], 1), None);
    }
}
