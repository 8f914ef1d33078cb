use std::collections::HashSet;
use std::time::Instant;

use btar_format::{Location, LogObject, LogPut, layout};
use btar_region::RegionError;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

use crate::destination::check_pair;
use crate::error::CopyError;
use crate::progress::{CopyOptions, LogCopyOutcome, LogProgress};
use btar_engine::{LogSequence, watermarks};

/// The result of shipping one log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCopied {
    pub put: LogPut,
    /// Sealed bytes written to the destination (0 if it already had the file).
    pub bytes_transferred: u64,
}

/// Log files whose sealed object is larger than this are copied frame by frame as they are read,
/// never held whole: binlog files reach 1 GiB, and several files are prepared at once.
const WHOLE_UP_TO: u64 = 32 << 20;

/// A log file ready to be stored in the destination.
enum Prepared {
    /// Fetched, checked and re-sealed.
    Whole(Vec<u8>),
    /// Too large to hold: read, re-sealed and uploaded frame by frame when it is stored.
    Streamed,
}

/// Fetches a log file of `size` sealed bytes from the source, checks it and re-seals it for the
/// destination (a large one later, as it is stored). Assumes `check_pair` already passed.
async fn prepare(
    src: &Location,
    dst: &Location,
    timeline: &str,
    name: &str,
    size: u64,
) -> Result<Prepared, CopyError> {
    layout::validate_name(timeline)?;
    layout::validate_name(name)?;
    if size > WHOLE_UP_TO {
        return Ok(Prepared::Streamed);
    }
    let src_key = src.log_key(timeline, name);
    let sealed = match src.region().get(&src_key).await {
        Ok(b) => b,
        Err(RegionError::NotFound { region, key }) => {
            return Err(CopyError::LogNotFound { region, key });
        }
        Err(e) => return Err(e.into()),
    };
    let (s, d) = (src.clone(), dst.clone());
    let (t, n) = (timeline.to_string(), name.to_string());
    // The log key is the envelope's associated data, so a file moved or renamed in the source fails
    // here rather than being archived under the wrong name in the destination.
    tokio::task::spawn_blocking(move || d.reseal_log_from(&s, &t, &n, &sealed))
        .await?
        .map(Prepared::Whole)
        .map_err(CopyError::from_source)
}

/// Stores a prepared log file in the destination.
async fn store(
    src: &Location,
    dst: &Location,
    timeline: &str,
    name: &str,
    prepared: Prepared,
) -> Result<LogCopied, CopyError> {
    let resealed = match prepared {
        Prepared::Whole(r) => r,
        Prepared::Streamed => return store_streamed(src, dst, timeline, name).await,
    };
    let dst_key = dst.log_key(timeline, name);
    let written = resealed.len() as u64;
    // A conditional create, so two replicators (or a retry after a crash) never overwrite a file a
    // restore may already be reading; an existing one is compared instead.
    if dst
        .region()
        .put_if_absent(&dst_key, Bytes::from(resealed))
        .await?
    {
        return Ok(LogCopied {
            put: LogPut::Stored,
            bytes_transferred: written,
        });
    }
    // Already there: identical content is success, anything else a conflict.
    let theirs = dst.get_log(timeline, name).await?;
    let ours = src.get_log(timeline, name).await?;
    match (theirs, ours) {
        (Some(a), Some(b)) if a == b => Ok(LogCopied {
            put: LogPut::AlreadyPresent,
            bytes_transferred: 0,
        }),
        _ => Err(CopyError::LogConflict {
            region: dst.region().name().into(),
            key: dst_key,
        }),
    }
}

/// Stores a large log file frame by frame. Not a conditional create (a multipart upload has none):
/// two replicators racing here both write the same content, each frame sealed for the same key
/// and position, so a reader never sees a mix that opens to anything else.
async fn store_streamed(
    src: &Location,
    dst: &Location,
    timeline: &str,
    name: &str,
) -> Result<LogCopied, CopyError> {
    let dst_key = dst.log_key(timeline, name);
    if dst.region().head(&dst_key).await?.is_none() {
        return match dst
            .put_log_resealed_from(src, timeline, name)
            .await
            .map_err(CopyError::from_source)?
        {
            Some(written) => Ok(LogCopied {
                put: LogPut::Stored,
                bytes_transferred: written,
            }),
            None => Err(CopyError::LogNotFound {
                region: src.region().name().into(),
                key: src.log_key(timeline, name),
            }),
        };
    }
    match dst.same_log_as(src, timeline, name).await? {
        Some(true) => Ok(LogCopied {
            put: LogPut::AlreadyPresent,
            bytes_transferred: 0,
        }),
        _ => Err(CopyError::LogConflict {
            region: dst.region().name().into(),
            key: dst_key,
        }),
    }
}

/// Ships one log file from `src` to `dst`, e.g. right after `wal-push` made it durable in the primary.
/// An identical file already in `dst` is success ([`LogPut::AlreadyPresent`]); a different one is
/// [`CopyError::LogConflict`].
pub async fn copy_log(
    src: &Location,
    dst: &Location,
    timeline: &str,
    name: &str,
) -> Result<LogCopied, CopyError> {
    check_pair(src, dst)?;
    layout::validate_name(timeline)?;
    layout::validate_name(name)?;
    let src_key = src.log_key(timeline, name);
    let Some(info) = src.region().head(&src_key).await? else {
        return Err(CopyError::LogNotFound {
            region: src.region().name().into(),
            key: src_key,
        });
    };
    let prepared = prepare(src, dst, timeline, name, info.size).await?;
    store(src, dst, timeline, name, prepared).await
}

/// A source log file that failed verification and was not shipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedLog {
    pub key: String,
    pub reason: String,
}

/// Ships every log file of `src` that `dst` lacks, oldest first, and returns per-timeline gap-free
/// watermarks of `dst` afterwards. Files already in `dst` are not re-read (`btar verify` checks them).
/// The first damaged source file fails the run ([`CopyError::SourceDamaged`]).
pub async fn copy_logs(
    src: &Location,
    dst: &Location,
    opts: &CopyOptions,
    seq: &dyn LogSequence,
    progress: &(dyn Fn(&LogProgress) + Send + Sync),
) -> Result<LogCopyOutcome, CopyError> {
    let (outcome, damaged) = copy_logs_inner(src, dst, opts, seq, progress, false).await?;
    debug_assert!(damaged.is_empty());
    Ok(outcome)
}

/// [`copy_logs`], except that a damaged source file is left out and returned instead of failing
/// the run: the caller decides whether it matters (a backup's copy needs only its own WAL range).
/// The watermarks stop before a damaged file, since the destination has a gap there.
pub async fn copy_logs_skipping_damaged(
    src: &Location,
    dst: &Location,
    opts: &CopyOptions,
    seq: &dyn LogSequence,
    progress: &(dyn Fn(&LogProgress) + Send + Sync),
) -> Result<(LogCopyOutcome, Vec<DamagedLog>), CopyError> {
    copy_logs_inner(src, dst, opts, seq, progress, true).await
}

async fn copy_logs_inner(
    src: &Location,
    dst: &Location,
    opts: &CopyOptions,
    seq: &dyn LogSequence,
    progress: &(dyn Fn(&LogProgress) + Send + Sync),
    skip_damaged: bool,
) -> Result<(LogCopyOutcome, Vec<DamagedLog>), CopyError> {
    let started = Instant::now();
    check_pair(src, dst)?;
    let mut src_logs: Vec<LogObject> = src.list_logs().try_collect().await?;
    let mut present: HashSet<(String, String)> = dst
        .list_logs()
        .map_ok(|o| (o.timeline, o.name))
        .try_collect()
        .await?;
    // Archive order, so an interrupted run leaves the destination with a prefix of the source's
    // history and the watermark advances as far as the run got. Filesystem listings are unordered
    // and object stores list by key, hence the sort; the names break ties of equal timestamps.
    src_logs.sort_by(|a, b| {
        (a.last_modified, &a.timeline, &a.name).cmp(&(b.last_modified, &b.timeline, &b.name))
    });
    let logs_total = src_logs.len() as u64;
    let newest_source_time = src_logs.iter().map(|o| o.last_modified).max();
    let missing: Vec<LogObject> = src_logs
        .into_iter()
        .filter(|o| !present.contains(&(o.timeline.clone(), o.name.clone())))
        .collect();
    let mut p = LogProgress {
        logs_missing: missing.len() as u64,
        logs_copied: 0,
        bytes_transferred: 0,
        last: None,
        last_source_time: None,
    };
    progress(&p);
    let mut already = logs_total - p.logs_missing;
    let mut damaged = Vec::new();
    {
        // Fetched and re-sealed several at a time, but stored one after the other in archive order
        // (`buffered` yields in order): a copy killed anywhere leaves the destination a shorter
        // archive, never one with a hole, and `last` in the progress is a true "shipped up to here".
        let mut prepared = futures::stream::iter(missing)
            .map(|o| async move {
                match prepare(src, dst, &o.timeline, &o.name, o.size).await {
                    Ok(r) => Ok::<_, CopyError>((o, Ok(r))),
                    Err(CopyError::SourceDamaged { key, reason, .. }) if skip_damaged => {
                        Ok((o, Err(DamagedLog { key, reason })))
                    }
                    Err(e) => Err(e),
                }
            })
            .buffered(opts.log_parallelism.max(1));
        while let Some((o, r)) = prepared.try_next().await? {
            let r = match r {
                Ok(prepared) => store(src, dst, &o.timeline, &o.name, prepared).await?,
                Err(d) => {
                    damaged.push(d);
                    continue;
                }
            };
            match r.put {
                LogPut::Stored => p.logs_copied += 1,
                LogPut::AlreadyPresent => already += 1,
            }
            p.bytes_transferred += r.bytes_transferred;
            p.last = Some(format!("{}/{}", o.timeline, o.name));
            p.last_source_time = Some(o.last_modified);
            progress(&p);
            present.insert((o.timeline, o.name));
        }
    }
    let outcome = LogCopyOutcome {
        logs_total,
        logs_copied: p.logs_copied,
        logs_already_present: already,
        bytes_transferred: p.bytes_transferred,
        watermarks: watermarks(present, seq),
        newest_source_time,
        duration: started.elapsed(),
    };
    Ok((outcome, damaged))
}
