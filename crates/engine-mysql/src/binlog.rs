//! The binlog archive, one file at a time: `base.NNNNNN` lives under `logs/<base>/<name>`, so each
//! binlog base name is one family of [`NumberedFiles`] and one log directory.

use std::collections::BTreeMap;
use std::path::Path;

use btar_engine::log::NumberedFiles;
use btar_engine::{EngineError, LogSequence, watermarks};
use btar_format::verify::Problem;
use btar_format::{Location, LogObject, LogPut};
use futures::TryStreamExt;

use crate::backup::MysqlMeta;

/// The log directory of a binlog file: its base name.
pub fn family(name: &str) -> Result<String, EngineError> {
    NumberedFiles
        .position(name)
        .map(|p| p.family)
        .ok_or_else(|| {
            EngineError::Invalid(format!(
                "`{name}` is not a binlog file name btar archives (BASE.NNNNNN, e.g. binlog.000001)"
            ))
        })
}

/// Archives one binlog file; durable in the location when this returns. Pushing the same content
/// again succeeds; different content under the same name is refused. The file is read, sealed and
/// uploaded a frame at a time (a binlog reaches 1 GiB), so memory does not grow with its size.
pub async fn push(loc: &Location, path: &Path) -> Result<(String, String, LogPut), EngineError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| EngineError::Invalid(format!("`{}` names no file", path.display())))?
        .to_string();
    let fam = family(&name)?;
    let put = loc.put_log_file(&fam, &name, path).await?;
    Ok((fam, name, put))
}

/// Fetches one archived binlog into `dest` (temporary name, then rename), a frame at a time;
/// `false` when absent.
pub async fn fetch(loc: &Location, name: &str, dest: &Path) -> Result<bool, EngineError> {
    let fam = family(name)?;
    Ok(loc.fetch_log_file_to(&fam, name, dest).await?)
}

/// Where a binlog file a restore replays came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Archive,
    /// The streamed tail of a file not archived yet: what the server had written of it, up to
    /// its last whole transaction, a second or so before the streamer last stored it.
    Tail,
}

/// Fetches binlog file `name` into `dest` from the archive, or else from its streamed tail;
/// `None` when the location has neither. A tail is deleted only once its file is archived, so
/// the archive is asked again when the tail is gone: a file archived meanwhile is not missed.
pub async fn fetch_or_tail(
    loc: &Location,
    name: &str,
    dest: &Path,
) -> Result<Option<Source>, EngineError> {
    if fetch(loc, name, dest).await? {
        return Ok(Some(Source::Archive));
    }
    let fam = family(name)?;
    let tail = loc.read_tail(&fam, name).await?;
    // Archived while the tail was read (and the tail being deleted, perhaps under the reader):
    // the archived file is whole.
    if fetch(loc, name, dest).await? {
        return Ok(Some(Source::Archive));
    }
    let Some(t) = tail else {
        return Ok(None);
    };
    btar_format::deliver_file(t.bytes, dest).await?;
    Ok(Some(Source::Tail))
}

/// How much of binlog file `name` the location's streamed tail holds (bytes from 0), and when its
/// newest piece was stored; `None` without a tail.
pub async fn tail_extent(
    loc: &Location,
    name: &str,
) -> Result<Option<(u64, chrono::DateTime<chrono::Utc>)>, EngineError> {
    let pieces = loc.tail_pieces(&family(name)?, name).await?;
    let run = btar_format::covering(&pieces);
    Ok(run.last().map(|last| {
        let stored = run.iter().map(|p| p.last_modified).max();
        (last.end, stored.unwrap_or(last.last_modified))
    }))
}

/// The archived binlog files of one family from a backup's file onward, and where the gap-free run
/// from that file ends.
#[derive(Debug, Clone)]
pub struct Run {
    /// Archived files of the family numbered from the backup's file on, by number.
    pub files: BTreeMap<u64, LogObject>,
    /// Number of the first file not archived: the run is `first..end`.
    pub end: u64,
    /// That file's name when a later one is archived: the hole a replay cannot pass.
    pub gap: Option<String>,
}

impl Run {
    /// The last file of the gap-free run, if the backup's own file is archived.
    pub fn last(&self) -> Option<&LogObject> {
        self.end.checked_sub(1).and_then(|n| self.files.get(&n))
    }
}

/// The archive from binlog file `from` onward (a backup's consistent point's file).
pub async fn run_from(loc: &Location, from: &str) -> Result<Run, EngineError> {
    let fam = family(from)?;
    let first = NumberedFiles
        .position(from)
        .map(|p| p.number)
        .unwrap_or_default();
    let mut files = BTreeMap::new();
    let mut logs = loc.list_logs();
    while let Some(o) = logs.try_next().await? {
        if let Some(p) = NumberedFiles.position(&o.name)
            && o.timeline == fam
            && p.family == fam
            && p.number >= first
        {
            files.insert(p.number, o);
        }
    }
    let mut end = first;
    while files.contains_key(&end) {
        end += 1;
    }
    let gap = files
        .range(end..)
        .next()
        .map(|_| NumberedFiles.name_of(from, end));
    Ok(Run { files, end, gap })
}

/// Holes in the binlog archive: for each family, the first missing file after the gap-free run.
/// With `only`, the hole in the run from that backup's consistent point's file (that file included)
/// that its replay would have to cross.
pub async fn gaps(loc: &Location, only: Option<&str>) -> Result<Vec<Problem>, EngineError> {
    if let Some(b) = only {
        let m = loc.read_manifest(b).await?;
        let Some(meta) = MysqlMeta::of(&m) else {
            return Ok(vec![]);
        };
        let run = run_from(loc, &meta.binlog.file).await?;
        let newest = run.files.values().next_back().map(|o| o.name.clone());
        return Ok(run
            .gap
            .map(|missing| Problem {
                key: loc.log_key(&family(&missing).unwrap_or_default(), &missing),
                reason: format!(
                    "binlog gap: {missing} is missing after backup `{b}`'s point {} (newest archived: {}); replay cannot pass it",
                    meta.binlog,
                    newest.unwrap_or_default()
                ),
            })
            .into_iter()
            .collect());
    }
    let logs: Vec<(String, String)> = loc
        .list_logs()
        .map_ok(|o| (o.timeline, o.name))
        .try_collect()
        .await?;
    let mut out = vec![];
    for w in watermarks(logs, &NumberedFiles) {
        let Some(missing) = w.first_missing else {
            continue;
        };
        out.push(Problem {
            key: loc.log_key(&w.timeline, &missing),
            reason: format!(
                "binlog gap: {missing} is missing after {} (newest archived: {}); replay cannot pass it",
                w.watermark, w.newest
            ),
        });
    }
    Ok(out)
}
