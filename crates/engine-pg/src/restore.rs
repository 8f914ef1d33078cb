//! Restore into a new data directory, to the latest point or a target time / LSN / restore point:
//! pick the base backup, write its files, configure recovery (restore_command = btar wal-fetch), start
//! PostgreSQL, wait for promotion and report the point reached.

use std::path::{Path, PathBuf};
use std::time::Duration;

use btar_engine::Progress;
pub use btar_engine::{DamagedBackup, Reached, RestoreOutcome, Target, Window};
use btar_format::{FileReader, Location, Manifest};

use crate::archive::ArchiveIndex;
use crate::backup::PgMeta;
use crate::error::PgError;
use crate::partial::{self, Partial, Phase};
use crate::server::Server;
use crate::{cluster, wal};

/// Whether a manifest read failed because of the object itself (so the backup is damaged) rather
/// than the store (an outage must fail the whole read: it says nothing about the backup).
fn is_damage(e: &btar_format::FormatError) -> bool {
    use btar_format::FormatError as F;
    matches!(
        e,
        F::Damaged { .. } | F::WrongKeyOrTampered { .. } | F::UnsupportedVersion { .. }
    )
}

pub fn parse_lsn(lsn: &str) -> Option<u64> {
    let (hi, lo) = lsn.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// Reads every manifest of the location (oldest first) and indexes its WAL archive. The window ends
/// at the newest archived segment reachable from the newest backup without crossing a gap. A damaged
/// manifest is listed in `Window::damaged` and left out; a store error fails the whole read.
pub async fn window(
    loc: &Location,
) -> Result<(Window, Vec<(Manifest, PgMeta)>, ArchiveIndex), PgError> {
    let mut backups = Vec::new();
    let mut damaged = Vec::new();
    for name in loc.list_backups().await? {
        let m = match loc.read_manifest(&name).await {
            Ok(m) => m,
            // Expired by retention between the listing and the read.
            Err(btar_format::FormatError::BackupNotFound { .. }) => continue,
            Err(e) if is_damage(&e) => {
                tracing::warn!(backup = %name, error = %e, "damaged backup skipped");
                damaged.push(DamagedBackup {
                    backup_name: name,
                    reason: e.to_string(),
                });
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match PgMeta::of(&m) {
            Some(meta) => backups.push((m, meta)),
            None => damaged.push(DamagedBackup {
                backup_name: name,
                reason: "manifest has no PostgreSQL backup facts (engine_meta)".into(),
            }),
        }
    }
    let seg_size = backups
        .last()
        .map(|(_, m)| m.wal_segment_size)
        .unwrap_or(wal::DEFAULT_SEGMENT_SIZE);
    let index = ArchiveIndex::load(loc, seg_size).await?;
    let earliest = backups.first().map(|(_, m)| m.backup_stop_time);
    let newest_backup = backups.last().map(|(_, m)| m.backup_stop_time);
    let archive_end = match backups
        .last()
        .and_then(|(_, m)| index.first_gap(&m.start_wal))
    {
        Some(gap) => gap.reachable_until,
        None => index.newest(),
    };
    let w = Window {
        region: loc.region().name().into(),
        earliest,
        latest: newest_backup
            .max(archive_end)
            .filter(|_| earliest.is_some()),
        backups: backups.iter().map(|(m, _)| m.backup_name.clone()).collect(),
        damaged,
    };
    Ok((w, backups, index))
}

/// Refuses a target that recovery from `meta`'s backup could only reach by crossing a WAL gap.
fn check_reachable(
    index: &ArchiveIndex,
    meta: &PgMeta,
    target: &Target,
    region: &str,
) -> Result<(), PgError> {
    let Some(gap) = index.first_gap(&meta.start_wal) else {
        return Ok(());
    };
    let blocked = match target {
        Target::Latest | Target::Name(_) => true,
        Target::Time(t) => gap.reachable_until.is_none_or(|r| *t > r),
        Target::Position(l) => {
            let gap_start = wal::segment_number(&gap.segment, meta.wal_segment_size)
                .map(|n| n * meta.wal_segment_size);
            match (parse_lsn(l), gap_start) {
                (Some(want), Some(g)) => want >= g,
                _ => true,
            }
        }
    };
    if blocked {
        return Err(PgError::WalGap {
            region: region.into(),
            segment: gap.segment,
            reachable_until: gap
                .reachable_until
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "the backup's end (none reachable)".into()),
        });
    }
    Ok(())
}

/// Whether a damaged backup might have served `target` (by its name's time; an unparsable name
/// might have).
fn could_serve(d: &DamagedBackup, target: &Target) -> bool {
    match (target, btar_format::time_of_backup_name(&d.backup_name)) {
        (Target::Time(t), Some(at)) => at <= *t,
        _ => true,
    }
}

/// Chooses the base backup for a target, refusing targets the location cannot serve. Damaged
/// backups are never chosen: naming one, or a target only a damaged one could serve, is an error
/// that says so; otherwise [`skipped_damaged`] lists those passed over.
pub fn choose(
    window: &Window,
    backups: &[(Manifest, PgMeta)],
    target: &Target,
    backup: Option<&str>,
    service: &str,
) -> Result<(Manifest, PgMeta), PgError> {
    let damaged_error = |d: &DamagedBackup| PgError::BackupDamaged {
        region: window.region.clone(),
        backup: d.backup_name.clone(),
        reason: d.reason.clone(),
    };
    if let Some(name) = backup
        && let Some(d) = window.damaged.iter().find(|d| d.backup_name == name)
    {
        return Err(damaged_error(d));
    }
    // Damaged backups older than every sound one (or no sound one at all).
    let oldest_sound = backups.first().map(|(m, _)| m.backup_name.as_str());
    let older_damaged = window
        .damaged
        .iter()
        .filter(|d| oldest_sound.is_none_or(|o| d.backup_name.as_str() < o))
        .rfind(|d| could_serve(d, target));
    if backups.is_empty() {
        return Err(match older_damaged {
            Some(d) => damaged_error(d),
            None => PgError::NoBackups {
                region: window.region.clone(),
                service: service.into(),
            },
        });
    }
    let out_of_window = || PgError::TargetOutOfWindow {
        region: window.region.clone(),
        window: window.to_string(),
    };
    if let Some(name) = backup {
        return backups
            .iter()
            .find(|(m, _)| m.backup_name == name)
            .cloned()
            .ok_or_else(|| {
                PgError::Format(btar_format::FormatError::BackupNotFound {
                    region: window.region.clone(),
                    service: service.into(),
                    backup: name.into(),
                })
            });
    }
    let pick = match target {
        Target::Latest | Target::Name(_) => backups.last(),
        Target::Time(t) => {
            if window.latest.is_some_and(|l| *t > l) {
                return Err(out_of_window());
            }
            backups.iter().rev().find(|(_, m)| m.backup_stop_time <= *t)
        }
        Target::Position(l) => {
            let want = parse_lsn(l).ok_or_else(|| PgError::BadTarget(l.clone()))?;
            backups
                .iter()
                .rev()
                .find(|(_, m)| parse_lsn(&m.stop_lsn).is_some_and(|s| s <= want))
        }
    };
    match (pick, older_damaged) {
        (Some(p), _) => Ok(p.clone()),
        // Only a damaged backup is old enough for this target.
        (None, Some(d)) => Err(damaged_error(d)),
        (None, None) => Err(out_of_window()),
    }
}

/// The damaged backups newer than `chosen` that would have been preferred for `target`: a restore
/// reports them, since it restores from an older backup (and replays more WAL) because of them.
pub fn skipped_damaged(window: &Window, chosen: &str, target: &Target) -> Vec<DamagedBackup> {
    window
        .damaged
        .iter()
        .filter(|d| d.backup_name.as_str() > chosen && could_serve(d, target))
        .cloned()
        .collect()
}

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub target: Target,
    pub backup: Option<String>,
    pub data_dir: PathBuf,
    /// `restore_command` for the restored server, with `%f` and `%p`.
    pub restore_command: String,
    /// `archive_command` for the restored server; without one its archiving is off, so a restore never
    /// writes into the archive it came from.
    pub archive_command: Option<String>,
    /// Extra settings for the restored server (port, listen_addresses …).
    pub settings: Vec<(String, String)>,
    pub start: bool,
    pub bin_dir: Option<String>,
    pub parallel: usize,
    pub promote_timeout: Duration,
}

fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

fn recovery_settings(opts: &RestoreOptions) -> Vec<(String, String)> {
    let mut s = vec![
        ("restore_command".to_string(), opts.restore_command.clone()),
        ("recovery_target_timeline".into(), "latest".into()),
    ];
    match &opts.target {
        Target::Latest => {}
        Target::Time(t) => s.push((
            "recovery_target_time".into(),
            t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
        )),
        Target::Position(l) => s.push(("recovery_target_lsn".into(), l.clone())),
        Target::Name(n) => s.push(("recovery_target_name".into(), n.clone())),
    }
    if opts.target != Target::Latest {
        s.push(("recovery_target_action".into(), "promote".into()));
    }
    match &opts.archive_command {
        Some(c) => {
            s.push(("archive_mode".into(), "on".into()));
            s.push(("archive_command".into(), c.clone()));
        }
        None => s.push(("archive_mode".into(), "off".into())),
    }
    let sock = opts.data_dir.display().to_string();
    if !opts
        .settings
        .iter()
        .any(|(k, _)| k == "unix_socket_directories")
    {
        s.push(("unix_socket_directories".into(), sock));
    }
    s.extend(opts.settings.iter().cloned());
    s
}

/// The server log a restore leaves in its data directory. A failed restore keeps only this file, and
/// a directory holding only it counts as empty, so the same command can simply be run again.
pub const RESTORE_LOG: &str = "btar-restore.log";

/// Accepts `dir` for a restore (missing, empty but for the server log, or the leftover of a restore
/// killed before it started a server) and claims it with the marker of a restore in progress.
async fn prepare_dir(dir: &Path) -> Result<Partial, PgError> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::read_dir(dir) {
        Ok(it) => {
            let names: Vec<_> = it
                .flatten()
                .map(|e| e.file_name())
                .filter(|n| n != RESTORE_LOG)
                .collect();
            if names.iter().any(|n| n == partial::MARKER) {
                return resume_interrupted(dir);
            }
            if !names.is_empty() {
                return Err(PgError::DirNotEmpty(dir.display().to_string()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| PgError::io("creating", dir.display(), e))?;
        }
        Err(e) => return Err(PgError::io("reading", dir.display(), e)),
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| PgError::io("chmod", dir.display(), e))?;
    let mut claimed = Partial::claim(dir)?;
    claimed.set(Phase::Filling, dir)?;
    Ok(claimed)
}

/// A directory holding the marker of a restore that is no longer running. Before its server
/// started, everything in it is btar's own unfinished output, so it is removed and the restore
/// starts over; after, clients may have written to that server, so the operator decides.
fn resume_interrupted(dir: &Path) -> Result<Partial, PgError> {
    let mut claimed = Partial::claim(dir)?;
    if claimed.phase() == Phase::Started || dir.join("postmaster.pid").exists() {
        return Err(PgError::InterruptedRestore(dir.display().to_string()));
    }
    tracing::warn!(dir = %dir.display(),
        "removing the files of a restore that was interrupted before it started PostgreSQL");
    remove_all_but(dir, &[RESTORE_LOG, partial::MARKER])?;
    claimed.set(Phase::Filling, dir)?;
    Ok(claimed)
}

/// Removes everything in `dir` but the entries named `keep`.
fn remove_all_but(dir: &Path, keep: &[&str]) -> Result<(), PgError> {
    let entries = std::fs::read_dir(dir).map_err(|e| PgError::io("reading", dir.display(), e))?;
    for entry in entries.flatten() {
        if keep.iter().any(|k| entry.file_name() == *k) {
            continue;
        }
        let path = entry.path();
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|e| PgError::io("removing", path.display(), e))?;
    }
    Ok(())
}

/// Undoes a failed restore: stops a server it may have left running, then removes everything it
/// wrote except the server log. Only called after `prepare_dir` accepted the directory (created by
/// btar, empty, or btar's own leftover), so nothing of the user's is touched. The marker goes last,
/// so a cleanup that fails half way still leaves a directory the next restore recognises.
fn clean_failed(opts: &RestoreOptions, claimed: Partial) -> Result<(), String> {
    let dir = &opts.data_dir;
    if dir.join("postmaster.pid").exists()
        && let Ok(bin) = cluster::bin_dir(opts.bin_dir.as_deref())
    {
        let _ = cluster::stop(&bin, dir, "immediate");
    }
    remove_all_but(dir, &[RESTORE_LOG, partial::MARKER]).map_err(|e| e.to_string())?;
    claimed.finish(dir).map_err(|e| e.to_string())
}

/// Restores a backup into `opts.data_dir` and, with `opts.start`, recovers it to the target. On
/// failure the directory is left empty but for the server log (see [`RESTORE_LOG`]).
pub async fn run(
    loc: &Location,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreOutcome, PgError> {
    let (window, backups, index) = window(loc).await?;
    let (manifest, meta) = choose(
        &window,
        &backups,
        &opts.target,
        opts.backup.as_deref(),
        loc.service(),
    )?;
    check_reachable(&index, &meta, &opts.target, loc.region().name())?;
    let skipped = match &opts.backup {
        Some(_) => vec![],
        None => skipped_damaged(&window, &manifest.backup_name, &opts.target),
    };
    for d in &skipped {
        tracing::warn!(damaged = %d.backup_name, reason = %d.reason, using = %manifest.backup_name,
            "restoring from an older backup: a newer one is damaged");
    }
    let mut claimed = prepare_dir(&opts.data_dir).await?;
    let e = match fill_and_start(loc, opts, &manifest, skipped, progress, &mut claimed).await {
        Ok(outcome) => {
            claimed.finish(&opts.data_dir)?;
            return Ok(outcome);
        }
        Err(e) => e,
    };
    let dir = opts.data_dir.display();
    let cleanup = match clean_failed(opts, claimed) {
        Ok(()) => format!(
            "removed the restored files from {dir} (kept {RESTORE_LOG}); the same command can be run again"
        ),
        Err(why) => format!("could not clean {dir} ({why}); remove it before retrying"),
    };
    Err(PgError::RestoreFailed {
        failure: Box::new(e),
        cleanup,
    })
}

async fn fill_and_start(
    loc: &Location,
    opts: &RestoreOptions,
    manifest: &Manifest,
    skipped: Vec<DamagedBackup>,
    progress: &dyn Progress,
    claimed: &mut Partial,
) -> Result<RestoreOutcome, PgError> {
    progress.total(manifest.stats.logical_bytes);
    let reader = FileReader::new(loc.clone(), 16);
    let bytes = reader
        .restore_tree(manifest, &opts.data_dir, opts.parallel, &|n| {
            progress.advance(n)
        })
        .await?;

    let mut conf = String::from("\n# --- added by btar restore ---\n");
    for (k, v) in recovery_settings(opts) {
        conf.push_str(&format!("{k} = {}\n", quote(&v)));
    }
    let auto = opts.data_dir.join("postgresql.auto.conf");
    let mut existing = std::fs::read_to_string(&auto).unwrap_or_default();
    existing.push_str(&conf);
    std::fs::write(&auto, existing).map_err(|e| PgError::io("writing", auto.display(), e))?;
    let signal = opts.data_dir.join("recovery.signal");
    std::fs::write(&signal, b"").map_err(|e| PgError::io("writing", signal.display(), e))?;
    for d in ["pg_wal", "pg_wal/archive_status"] {
        let p = opts.data_dir.join(d);
        std::fs::create_dir_all(&p).map_err(|e| PgError::io("creating", p.display(), e))?;
    }
    cluster::hand_over(&opts.data_dir)?;

    let mut outcome = RestoreOutcome {
        region: loc.region().name().into(),
        backup: manifest.backup_name.clone(),
        data_dir: opts.data_dir.display().to_string(),
        bytes,
        reached: None,
        skipped_damaged: skipped,
        agent: None,
        conninfo: None,
    };
    if opts.start {
        claimed.set(Phase::Started, &opts.data_dir)?;
        outcome.reached = Some(start_and_promote(opts).await?);
    }
    Ok(outcome)
}

async fn start_and_promote(opts: &RestoreOptions) -> Result<Reached, PgError> {
    let bin = cluster::bin_dir(opts.bin_dir.as_deref())?;
    let log = opts.data_dir.join(RESTORE_LOG);
    let (bin2, dir2, log2) = (bin.clone(), opts.data_dir.clone(), log.clone());
    tokio::task::spawn_blocking(move || cluster::start(&bin2, &dir2, &log2))
        .await
        .map_err(|e| PgError::Recovery(e.to_string()))?
        .map_err(|e| {
            let e = match e {
                PgError::Recovery(m) => m,
                other => other.to_string(),
            };
            PgError::Recovery(format!("{e}; server log: {}", cluster::log_excerpt(&log)))
        })?;
    let port = opts
        .settings
        .iter()
        .find(|(k, _)| k == "port")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "5432".into());
    let sock = opts
        .settings
        .iter()
        .find(|(k, _)| k == "unix_socket_directories")
        .map(|(_, v)| v.split(',').next().unwrap_or_default().trim().to_string())
        .unwrap_or_else(|| opts.data_dir.display().to_string());
    let user = cluster::db_user()
        .map(|u| u.0)
        .unwrap_or_else(|| std::env::var("USER").unwrap_or_else(|_| "postgres".into()));
    let conninfo = format!("host='{sock}' port={port} user={user} dbname=postgres");
    let deadline = tokio::time::Instant::now() + opts.promote_timeout;
    loop {
        let attempt = async {
            let mut s = Server::connect(&conninfo).await?;
            if s.is_in_recovery().await? {
                Ok(None)
            } else {
                s.reached_point().await.map(Some)
            }
        }
        .await;
        match attempt {
            Ok(Some((timeline, lsn, last_commit_time))) => {
                return Ok(Reached {
                    timeline,
                    lsn,
                    last_commit_time,
                });
            }
            Ok(None) => {}
            Err(e) => {
                let pid = opts.data_dir.join("postmaster.pid");
                if !pid.exists() {
                    return Err(PgError::Recovery(format!(
                        "server stopped during recovery: {}",
                        cluster::log_excerpt(&log)
                    )));
                }
                tracing::debug!(error = %e, "waiting for restored server");
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(PgError::Recovery(format!(
                "not promoted after {:?}: {}",
                opts.promote_timeout,
                cluster::log_excerpt(&log)
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
