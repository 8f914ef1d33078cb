//! Non-exclusive base backup: `pg_backup_start`, read the data directory (and tablespaces) in parallel
//! through the format's writer, `pg_backup_stop`, check that the archive holds every WAL segment from
//! start to stop, then commit the manifest. A failure anywhere leaves no manifest.

use std::path::{Path, PathBuf};
use std::time::Duration;

use btar_format::{BackupWriter, FileEntry, FileKind, Manifest, backup_name_at};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::error::PgError;
use crate::server::Server;
use crate::wal;
use crate::{PgSettings, conninfo};

/// PostgreSQL facts recorded in a manifest's `engine_meta`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PgMeta {
    pub pg_version: i32,
    pub system_identifier: String,
    pub timeline: u32,
    pub start_lsn: String,
    pub stop_lsn: String,
    pub start_wal: String,
    pub stop_wal: String,
    pub wal_segment_size: u64,
    pub backup_start_time: DateTime<Utc>,
    pub backup_stop_time: DateTime<Utc>,
    #[serde(default)]
    pub tablespace_map: Option<String>,
}

impl PgMeta {
    pub fn of(m: &Manifest) -> Option<PgMeta> {
        serde_json::from_value(m.engine_meta.clone()).ok()
    }
}

pub use btar_engine::BackupOptions;

/// Contents skipped but directory kept (as pg_basebackup does).
const EMPTY_DIRS: &[&str] = &[
    "pg_wal",
    "pg_replslot",
    "pg_stat_tmp",
    "pg_dynshmem",
    "pg_notify",
    "pg_serial",
    "pg_snapshots",
    "pg_subtrans",
];

const SKIP_FILES: &[&str] = &[
    "postmaster.pid",
    "postmaster.opts",
    "backup_label",
    "backup_label.old",
    "tablespace_map",
    "tablespace_map.old",
    "recovery.signal",
    "standby.signal",
    "postgresql.auto.conf.tmp",
];

#[derive(Debug)]
struct Found {
    rel: String,
    abs: PathBuf,
    kind: FileKind,
    mode: u32,
    size: u64,
    target: Option<String>,
}

fn skip(rel: &str) -> bool {
    // Temporary files and directories are named pgsql_tmp* at any depth (base/pgsql_tmp/…).
    let base = rel.rsplit('/').next().unwrap_or(rel);
    if base == "pg_internal.init" || rel.split('/').any(|c| c.starts_with("pgsql_tmp")) {
        return true;
    }
    if SKIP_FILES.contains(&rel) {
        return true;
    }
    EMPTY_DIRS
        .iter()
        .any(|d| rel.len() > d.len() && rel.starts_with(d) && rel.as_bytes()[d.len()] == b'/')
}

/// Lists what to back up; tablespace links under pg_tblspc are followed and stored in place.
fn walk(data_dir: &Path) -> Result<Vec<Found>, PgError> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut roots: Vec<(PathBuf, String)> = vec![(data_dir.to_path_buf(), String::new())];
    while let Some((root, prefix)) = roots.pop() {
        let it = walkdir::WalkDir::new(&root)
            .min_depth(1)
            .sort_by_file_name()
            .into_iter();
        let it = it.filter_entry(|e| {
            let rel = e
                .path()
                .strip_prefix(&root)
                .map(|p| p.to_string_lossy().to_string())
                .unwrap_or_default();
            !skip(&format!("{prefix}{rel}"))
        });
        for entry in it {
            let entry = match entry {
                Ok(e) => e,
                // A file removed while we walk (dropped table, finished temp file) is fine: WAL replay covers it.
                Err(e)
                    if e.io_error()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound) =>
                {
                    continue;
                }
                Err(e) => {
                    return Err(PgError::io(
                        "walking data directory",
                        root.display(),
                        e.into(),
                    ));
                }
            };
            let rel = format!(
                "{prefix}{}",
                entry
                    .path()
                    .strip_prefix(&root)
                    .map(|p| p.to_string_lossy().to_string())
                    .unwrap_or_default()
            );
            let meta = match entry.path().symlink_metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(PgError::io("stat", entry.path().display(), e)),
            };
            let mode = meta.permissions().mode() & 0o7777;
            let ft = meta.file_type();
            if ft.is_symlink() {
                let is_tablespace = prefix.is_empty()
                    && rel.starts_with("pg_tblspc/")
                    && rel.matches('/').count() == 1;
                if is_tablespace || rel == "pg_wal" {
                    out.push(Found {
                        rel: rel.clone(),
                        abs: entry.path().into(),
                        kind: FileKind::Dir,
                        mode: 0o700,
                        size: 0,
                        target: None,
                    });
                    if is_tablespace {
                        let target = std::fs::canonicalize(entry.path()).map_err(|e| {
                            PgError::io("resolving tablespace", entry.path().display(), e)
                        })?;
                        roots.push((target, format!("{rel}/")));
                    }
                    continue;
                }
                let target = std::fs::read_link(entry.path())
                    .map_err(|e| PgError::io("readlink", entry.path().display(), e))?;
                out.push(Found {
                    rel,
                    abs: entry.path().into(),
                    kind: FileKind::Symlink,
                    mode,
                    size: 0,
                    target: Some(target.to_string_lossy().into()),
                });
            } else if ft.is_dir() {
                out.push(Found {
                    rel,
                    abs: entry.path().into(),
                    kind: FileKind::Dir,
                    mode,
                    size: 0,
                    target: None,
                });
            } else if ft.is_file() {
                out.push(Found {
                    rel,
                    abs: entry.path().into(),
                    kind: FileKind::File,
                    mode,
                    size: meta.len(),
                    target: None,
                });
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// Takes a base backup of the server at `settings.conninfo` into the writer's location.
/// `on_total` is told the number of bytes to read once the data directory is listed.
pub async fn run(
    writer: &BackupWriter,
    settings: &PgSettings,
    opts: BackupOptions,
    on_total: &(dyn Fn(u64) + Send + Sync),
) -> Result<Manifest, PgError> {
    let loc = writer.location();
    let mut server = Server::connect(&settings.conninfo).await?;
    server.preflight().await?;
    let system_id = server.system_identifier().await?;
    let seg_size = server.wal_segment_size().await?;
    let data_dir = match &settings.data_dir {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(server.setting("data_directory").await?),
    };
    let mut loc = loc.clone();
    loc.bind_system_identifier(&system_id).await?;

    let started_at = Utc::now();
    let name = backup_name_at(started_at);
    tracing::info!(service = loc.service(), backup = %name, server = %conninfo::describe(&settings.conninfo), "base backup starting");
    let (start_lsn, start_wal, timeline) = server.backup_start(&format!("btar {name}")).await?;

    let files = match copy_files(writer, &data_dir, opts.parallel_files, on_total).await {
        Ok(f) => f,
        Err(e) => {
            // Leave the server clean; the error that matters is the copy's.
            let _ = tokio::time::timeout(Duration::from_secs(30), server.backup_stop()).await;
            return Err(e);
        }
    };
    let stop = tokio::time::timeout(opts.archive_wait, server.backup_stop())
        .await
        .map_err(|_| PgError::Recovery(format!(
            "pg_backup_stop waited {:?} for WAL archiving; check archive_command and pg_stat_archiver",
            opts.archive_wait
        )))??;
    let stop_wal = server.walfile_name(&stop.lsn).await?;
    let backup_stop_time = Utc::now();
    check_wal_range(&loc, &start_wal, &stop_wal, seg_size).await?;

    let mut files = files;
    files.push(
        writer
            .write_file("backup_label", 0o600, stop.label.as_bytes())
            .await?,
    );
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let meta = PgMeta {
        pg_version: server.version_num,
        system_identifier: system_id,
        timeline,
        start_lsn,
        stop_lsn: stop.lsn,
        start_wal,
        stop_wal,
        wal_segment_size: seg_size,
        backup_start_time: started_at,
        backup_stop_time,
        tablespace_map: stop.tablespace_map,
    };
    let meta = serde_json::to_value(&meta).map_err(|e| PgError::Recovery(e.to_string()))?;
    let manifest = writer.finish(&name, started_at, files, meta).await?;
    loc.commit_manifest(&manifest).await?;
    tracing::info!(service = loc.service(), backup = %name, bytes = manifest.stats.logical_bytes, "base backup committed");
    Ok(manifest)
}

async fn copy_files(
    writer: &BackupWriter,
    data_dir: &Path,
    parallel: usize,
    on_total: &(dyn Fn(u64) + Send + Sync),
) -> Result<Vec<FileEntry>, PgError> {
    let dir = data_dir.to_path_buf();
    let found = tokio::task::spawn_blocking(move || walk(&dir))
        .await
        .map_err(|e| PgError::Recovery(e.to_string()))??;
    on_total(found.iter().map(|f| f.size).sum());
    let entries: Vec<Option<FileEntry>> = futures::stream::iter(found)
        .map(|f| async move {
            match f.kind {
                FileKind::File => {
                    let file = match tokio::fs::File::open(&f.abs).await {
                        Ok(file) => file,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                        Err(e) => return Err(PgError::io("opening", f.abs.display(), e)),
                    };
                    Ok(Some(writer.write_file(&f.rel, f.mode, file).await?))
                }
                kind => Ok(Some(FileEntry {
                    path: f.rel,
                    kind,
                    size: 0,
                    mode: f.mode,
                    target: f.target,
                    chunks: vec![],
                    extents: vec![],
                })),
            }
        })
        .buffer_unordered(parallel.max(1))
        .try_collect()
        .await?;
    Ok(entries.into_iter().flatten().collect())
}

/// Every segment from `start` to `stop` must be in the archive before the backup may be committed.
/// (If the server switched timeline during the backup, a segment may sit on either timeline.)
async fn check_wal_range(
    loc: &btar_format::Location,
    start: &str,
    stop: &str,
    seg_size: u64,
) -> Result<(), PgError> {
    let (Some(a), Some(b)) = (
        wal::segment_number(start, seg_size),
        wal::segment_number(stop, seg_size),
    ) else {
        return Err(PgError::BadWalName(format!("{start}..{stop}")));
    };
    let mut timelines = vec![&stop[..8]];
    if start[..8] != stop[..8] {
        timelines.push(&start[..8]);
    }
    for n in a..=b {
        let mut present = false;
        for tli in &timelines {
            let seg = wal::segment_name(tli, n, seg_size);
            if loc.region().head(&loc.log_key(tli, &seg)).await?.is_some() {
                present = true;
                break;
            }
        }
        if !present {
            return Err(PgError::MissingWal {
                region: loc.region().name().into(),
                timeline: stop[..8].into(),
                segment: wal::segment_name(&stop[..8], n, seg_size),
                first: start.into(),
                last: stop.into(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_what_pg_basebackup_skips() {
        for s in [
            "pg_wal/000000010000000000000001",
            "postmaster.pid",
            "base/1/pg_internal.init",
            "base/pgsql_tmp/x",
            "pg_replslot/s/state",
        ] {
            assert!(skip(s), "{s}");
        }
        for k in [
            "pg_wal",
            "base/1/1259",
            "global/pg_control",
            "postgresql.auto.conf",
            "pg_walx",
        ] {
            assert!(!skip(k), "{k}");
        }
    }
}
