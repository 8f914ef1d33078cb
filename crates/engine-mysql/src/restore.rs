//! Restore of a backup into a new data directory: the xbstream is read back chunk by chunk (each one
//! authenticated and hash-checked) into `mbstream -x`, `mariadb-backup --prepare` makes the files
//! consistent, and with `start` a `mariadbd` runs on them.
//!
//! Point-in-time: the newest backup ending before the target (or the newest for
//! [`Target::Latest`], or the backup named) is restored, the archived binlogs from its consistent
//! point are fetched from the same location and, once the server runs, replayed up to the target
//! (see [`crate::replay`]). A binlog position or GTID target (`--target-lsn`, see
//! [`crate::target`]) restores the newest backup whose consistent point is at or before it. Named
//! targets are refused.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use btar_engine::log::NumberedFiles;
use btar_engine::{
    AgentSettings, DamagedBackup, EngineError, LogSequence, Progress, Reached, RestoreOutcome,
    RestoreRequest, Target, Window,
};
use btar_format::{FileReader, FormatError, Location, Manifest, time_of_backup_name};
use chrono::{DateTime, Utc};
use tokio::process::Command;

use crate::backup::MysqlMeta;
use crate::target::{self, BinlogTarget};
use crate::tools::{hand_over, program, query, server_user};
use crate::{MysqlSettings, binlog, replay};

/// The restored server's error log, in its data directory.
const SERVER_LOG: &str = "btar-restore.err";

fn is_damage(e: &FormatError) -> bool {
    matches!(
        e,
        FormatError::Damaged { .. }
            | FormatError::WrongKeyOrTampered { .. }
            | FormatError::UnsupportedVersion { .. }
    )
}

/// A location's sound backups (oldest first), its recoverable window, and the first file missing
/// from the binlog run after the newest backup, if the archive has a gap there.
#[derive(Debug)]
pub struct Survey {
    pub window: Window,
    pub backups: Vec<(Manifest, MysqlMeta)>,
    pub gap: Option<String>,
}

/// Every sound backup of the location (oldest first), the damaged ones apart. The window runs from
/// the oldest backup's end to the end of the binlog archive reachable from the newest backup without
/// crossing a gap, and on through the streamed tails of the files after it: the time of the last event of the last file of that run (its header read after
/// fetching it, when it is at most [`EXACT_END_BYTES`]; else that file's archive time, an upper
/// bound a restore then checks against the events), or the newest backup's end when none is
/// archived.
pub async fn window(loc: &Location) -> Result<Survey, EngineError> {
    let mut backups = vec![];
    let mut damaged = vec![];
    for name in loc.list_backups().await? {
        let m = match loc.read_manifest(&name).await {
            Ok(m) => m,
            Err(FormatError::BackupNotFound { .. }) => continue,
            Err(e) if is_damage(&e) => {
                damaged.push(DamagedBackup {
                    backup_name: name,
                    reason: e.to_string(),
                });
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        match MysqlMeta::of(&m) {
            Some(meta) => backups.push((m, meta)),
            None => damaged.push(DamagedBackup {
                backup_name: name,
                reason: "manifest has no MySQL/MariaDB backup facts (engine_meta)".into(),
            }),
        }
    }
    let newest = backups.last().map(|(_, m)| m.backup_stop_time);
    let (mut archive_end, mut gap) = (None, None);
    if let Some((_, meta)) = backups.last() {
        let run = binlog::run_from(loc, &meta.binlog.file).await?;
        archive_end = run.last().map(|o| o.last_modified);
        if let Some(o) = run.last()
            && o.size <= EXACT_END_BYTES
            && let Some(t) = last_event_time(loc, &o.name).await?
        {
            archive_end = Some(t);
        }
        gap = run.gap;
        // Past a gap-free archive: the files whose streamed tails the location holds, up to the
        // first one the server was still writing (a replay stops there too).
        let mut n = run.end;
        while gap.is_none() {
            let name = NumberedFiles.name_of(&meta.binlog.file, n);
            let Some((len, stored_at)) = binlog::tail_extent(loc, &name).await? else {
                break;
            };
            archive_end = Some(stored_at);
            if len > EXACT_END_BYTES {
                break;
            }
            let Some((last, closed)) = last_events(loc, &name).await? else {
                break;
            };
            archive_end = last.or(archive_end);
            if !closed {
                break;
            }
            n += 1;
        }
    }
    let window = Window {
        region: loc.region().name().into(),
        earliest: backups.first().map(|(_, m)| m.backup_stop_time),
        latest: newest.max(archive_end).filter(|_| newest.is_some()),
        backups: backups.iter().map(|(m, _)| m.backup_name.clone()).collect(),
        damaged,
    };
    Ok(Survey {
        window,
        backups,
        gap,
    })
}

/// Archived binlog files up to this size (stored, so sealed and compressed) are fetched to read the
/// time of their last event for the window's end.
pub const EXACT_END_BYTES: u64 = 16 << 20;

/// The time of the last event of a binlog file, archived or streamed; `None` when it is gone or
/// holds none.
async fn last_event_time(loc: &Location, name: &str) -> Result<Option<DateTime<Utc>>, EngineError> {
    Ok(last_events(loc, name).await?.and_then(|(t, _)| t))
}

/// The time of the last event of a binlog file, archived or streamed, and whether the file is
/// closed (see [`replay::closes`]); `None` when it is gone.
async fn last_events(
    loc: &Location,
    name: &str,
) -> Result<Option<(Option<DateTime<Utc>>, bool)>, EngineError> {
    let tmp = tempfile::Builder::new()
        .prefix("btar-binlog-end-")
        .tempdir()
        .map_err(|e| EngineError::Failed(format!("temporary directory: {e}")))?;
    let path = tmp.path().join(name);
    if binlog::fetch_or_tail(loc, name, &path).await?.is_none() {
        return Ok(None);
    }
    let evs = tokio::task::spawn_blocking(move || replay::events(&path, 0))
        .await
        .map_err(|e| EngineError::Failed(format!("reading {name}: {e}")))??;
    let last = evs
        .iter()
        .map(|e| e.when)
        .max()
        .and_then(|t| DateTime::from_timestamp(t, 0));
    Ok(Some((last, replay::closes(&evs))))
}

fn choose(
    loc: &Location,
    survey: &Survey,
    req: &RestoreRequest,
) -> Result<(Manifest, MysqlMeta), EngineError> {
    let (window, backups) = (&survey.window, &survey.backups);
    let (at, in_binlog) = match &req.target {
        Target::Latest => (None, None),
        Target::Time(t) => (Some(*t), None),
        Target::Position(p) => (None, Some(target::parse(p)?)),
        Target::Name(n) => {
            return Err(EngineError::Invalid(format!(
                "MySQL/MariaDB has no named restore points (`{n}`): restore to latest, a time (--target-time), \
                 a binlog position or a GTID (--target-lsn). Recoverable window in region `{}`: {window}",
                window.region
            )));
        }
    };
    if let Some(name) = &req.backup {
        if let Some(d) = window.damaged.iter().find(|d| &d.backup_name == name) {
            return Err(EngineError::Damaged(format!(
                "backup `{name}` in region `{}` is damaged and cannot be restored: {}",
                window.region, d.reason
            )));
        }
        let found = backups
            .iter()
            .find(|(m, _)| &m.backup_name == name)
            .cloned()
            .ok_or_else(|| FormatError::BackupNotFound {
                region: window.region.clone(),
                service: loc.service().into(),
                backup: name.clone(),
            })?;
        if let Some(t) = at
            && t < found.1.backup_stop_time
        {
            return Err(EngineError::Invalid(format!(
                "backup `{name}` ends at {}, after the target {}: choose an older backup or a later target",
                found.1.backup_stop_time.to_rfc3339(),
                t.to_rfc3339()
            )));
        }
        return Ok(found);
    }
    if backups.is_empty() {
        return Err(match window.damaged.last() {
            Some(d) => EngineError::Damaged(format!(
                "the only backups in region `{}` are damaged; newest `{}`: {}",
                window.region, d.backup_name, d.reason
            )),
            None => EngineError::Invalid(format!(
                "region `{}` holds no backup of service `{}`",
                window.region,
                loc.service()
            )),
        });
    }
    if let Some(b) = &in_binlog {
        if let BinlogTarget::At { file, family, .. } = b
            && let Some((_, meta)) = backups.last()
            && let Some(theirs) = NumberedFiles.position(&meta.binlog.file)
            && &theirs.family != family
        {
            return Err(EngineError::Invalid(format!(
                "{file} is no binlog file of this service: its backups' binlog files in region `{}` are named {}.NNNNNN",
                window.region, theirs.family
            )));
        }
        return backups
            .iter()
            .rfind(|(_, m)| reaches(m, b))
            .cloned()
            .ok_or_else(|| {
                let oldest = backups
                    .first()
                    .map(|(m, meta)| {
                        format!(
                            " (`{}` at {}{})",
                            m.backup_name,
                            meta.binlog,
                            meta.binlog
                                .gtid
                                .as_ref()
                                .map(|g| format!(", GTID {g}"))
                                .unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                EngineError::Invalid(format!(
                    "{b} precedes the consistent point of the oldest backup in region `{}`{oldest}: \
                     it is outside the recoverable window {window}",
                    window.region
                ))
            });
    }
    let Some(t) = at else {
        return backups
            .last()
            .cloned()
            .ok_or_else(|| EngineError::Invalid("no backup".into()));
    };
    let inside = window.earliest.is_some_and(|e| e <= t) && window.latest.is_some_and(|l| t <= l);
    if !inside {
        let gap = survey
            .gap
            .as_ref()
            .map(|g| format!(" (the binlog archive ends early: {g} is missing)"))
            .unwrap_or_default();
        return Err(EngineError::Invalid(format!(
            "target {} is outside the recoverable window of region `{}`: {window}{gap}",
            t.to_rfc3339(),
            window.region
        )));
    }
    backups
        .iter()
        .rfind(|(_, m)| m.backup_stop_time <= t)
        .cloned()
        .ok_or_else(|| EngineError::Invalid(format!("no backup ends before {}", t.to_rfc3339())))
}

/// Whether a backup's consistent point is at or before a binlog target, so that replay from it can
/// reach the target: a position in the same binlog family not before the point, or a GTID list no
/// domain of which the backup's recorded GTID has passed.
fn reaches(meta: &MysqlMeta, t: &BinlogTarget) -> bool {
    match t {
        BinlogTarget::At {
            family,
            number,
            position,
            ..
        } => NumberedFiles.position(&meta.binlog.file).is_some_and(|p| {
            &p.family == family && (p.number, meta.binlog.position) <= (*number, *position)
        }),
        BinlogTarget::Gtids(want) => {
            let state = match meta.binlog.gtid.as_deref().map(target::parse_gtid_list) {
                None => Some(Default::default()),
                Some(Ok(Some(s))) => Some(s),
                Some(_) => None,
            };
            state.is_some_and(|s| target::precedes(&s, want))
        }
    }
}

/// Empties `dir` after a failed restore so the same request can run again; the restored server's
/// error log stays when there is one (it says why the server would not start).
async fn clear(dir: &Path) -> String {
    match tokio::fs::read_dir(dir).await {
        Ok(mut rd) => {
            while let Ok(Some(e)) = rd.next_entry().await {
                let p = e.path();
                if e.file_name() == SERVER_LOG {
                    continue;
                }
                let _ = if p.is_dir() && !p.is_symlink() {
                    tokio::fs::remove_dir_all(&p).await
                } else {
                    tokio::fs::remove_file(&p).await
                };
            }
            format!("{} was emptied", dir.display())
        }
        Err(e) => format!("{} could not be emptied: {e}", dir.display()),
    }
}

async fn ensure_empty_dir(dir: &Path) -> Result<(), EngineError> {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            // A failed attempt's server log is all a retry of the same request finds.
            let others = rd.flatten().any(|e| e.file_name() != SERVER_LOG);
            if others {
                return Err(EngineError::Invalid(format!(
                    "restore directory {} exists and is not empty: a restore writes into a new or empty \
                     directory; choose another --data-dir, or, if it is left over from an earlier restore \
                     (one that was killed), stop a server still running on it (its pid is in \
                     mariadbd.pid there) and remove it",
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| EngineError::Failed(format!("creating {}: {e}", dir.display()))),
        Err(e) => Err(EngineError::Failed(format!("{}: {e}", dir.display()))),
    }
}

/// Streams the backup's xbstream into `mbstream -x -C dir`.
async fn extract(
    loc: &Location,
    m: &Manifest,
    meta: &MysqlMeta,
    dir: &Path,
    bin: Option<&MysqlSettings>,
    req: &RestoreRequest,
    progress: &dyn Progress,
) -> Result<u64, EngineError> {
    let Some(stream_file) = &meta.stream_file else {
        // Each file its own entry: written straight into the directory.
        progress.total(m.files.iter().map(|f| f.size).sum());
        let reader = FileReader::new(loc.clone(), req.parallel.max(2));
        let on = |n| progress.advance(n);
        return Ok(reader
            .restore_tree(m, dir, req.parallel.max(1), &on)
            .await?);
    };
    let entry = m
        .files
        .iter()
        .find(|f| &f.path == stream_file)
        .ok_or_else(|| {
            EngineError::Damaged(format!(
                "backup `{}` lists no file `{stream_file}`",
                m.backup_name
            ))
        })?;
    progress.total(entry.size);
    let mbstream = program(bin, "mbstream")?;
    let mut child = Command::new(&mbstream)
        .arg("-x")
        .arg("-C")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| EngineError::Failed(format!("cannot run {}: {e}", mbstream.display())))?;
    let Some(mut stdin) = child.stdin.take() else {
        return Err(EngineError::Failed("mbstream without stdin".into()));
    };
    let reader = FileReader::new(loc.clone(), req.parallel.max(2));
    let on = |n| progress.advance(n);
    let written = reader.write_to(m, entry, &mut stdin, &on).await;
    drop(stdin);
    let written = match written {
        Ok(n) => n,
        Err(e) => {
            let _ = child.kill().await;
            return Err(e.into());
        }
    };
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| EngineError::Failed(format!("waiting for mbstream: {e}")))?;
    if !out.status.success() {
        return Err(EngineError::Failed(format!(
            "mbstream -x failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(written)
}

async fn prepare(dir: &Path, bin: Option<&MysqlSettings>) -> Result<(), EngineError> {
    let tool = program(bin, "mariadb-backup")?;
    let out = Command::new(&tool)
        .args(["--no-defaults", "--prepare"])
        .arg(format!("--target-dir={}", dir.display()))
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| EngineError::Failed(format!("cannot run {}: {e}", tool.display())))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        return Err(EngineError::Failed(format!(
            "mariadb-backup --prepare failed ({}): {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )));
    }
    Ok(())
}

/// The started server's socket: in its data directory, or /tmp when that path is too long for a
/// socket (or the restore is loopback-only, as a fork btar runs).
fn socket_path(dir: &Path, port: u16, loopback: bool) -> PathBuf {
    let own = dir.join("mariadbd.sock");
    if loopback || own.as_os_str().len() > 100 {
        PathBuf::from(format!("/tmp/btar-mariadbd-{port}.sock"))
    } else {
        own
    }
}

/// Starts `mariadbd` on the restored directory, detached, and waits until it answers.
async fn start(
    dir: &Path,
    port: u16,
    req: &RestoreRequest,
    bin: Option<&MysqlSettings>,
) -> Result<(MysqlSettings, std::process::Child), EngineError> {
    let server = program(bin, "mariadbd")?;
    let socket = socket_path(dir, port, req.loopback_only);
    let log = dir.join(SERVER_LOG);
    let mut cmd = std::process::Command::new(&server);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", dir.display()))
        .arg(format!("--port={port}"))
        .arg(format!("--socket={}", socket.display()))
        .arg(format!("--pid-file={}", dir.join("mariadbd.pid").display()))
        .arg(format!("--log-error={}", log.display()))
        // Its own binlog, so the restored server can be backed up (and archived) in turn.
        .arg(format!("--log-bin={}", dir.join("binlog").display()))
        .args(["--server-id=1", "--binlog-format=ROW"]);
    if req.loopback_only {
        cmd.arg("--bind-address=127.0.0.1");
    }
    if let Some((user, _, _)) = server_user() {
        cmd.arg(format!("--user={user}"));
    }
    for (k, v) in &req.settings {
        cmd.arg(format!("--{k}={v}"));
    }
    if req.archive.is_some() {
        tracing::warn!(
            "the restored MariaDB's binlog is not archived: btar has no binlog follower yet"
        );
    }
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| EngineError::Failed(format!("cannot run {}: {e}", server.display())))?;
    let agent = MysqlSettings {
        host: Some("127.0.0.1".into()),
        port: Some(port),
        // The restored server holds the source's accounts: reach it as btar reached the source.
        user: Some(
            bin.and_then(|b| b.user.clone())
                .unwrap_or_else(|| "root".into()),
        ),
        password: bin.and_then(|b| b.password.clone()),
        password_file: bin.and_then(|b| b.password_file.clone()),
        datadir: Some(dir.display().to_string()),
        bin_dir: bin.and_then(|b| b.bin_dir.clone()),
        ..Default::default()
    };
    let deadline = Instant::now() + req.promote_timeout.max(Duration::from_secs(5));
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(crate::local::exited("restored mariadbd", status, &log));
        }
        match query(&agent, "SELECT 1").await {
            Ok(_) => return Ok((agent, child)),
            Err(e) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(EngineError::Failed(format!(
                    "restored mariadbd did not answer within {:?}: {e}",
                    req.promote_timeout
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Where the binlogs to replay are fetched: beside the restore directory (on its file system, not
/// a possibly small /tmp), else the system's temporary directory. Removed when dropped.
fn staging_dir(dir: &Path) -> Result<tempfile::TempDir, EngineError> {
    let beside = dir.parent().and_then(|p| {
        tempfile::Builder::new()
            .prefix(".btar-binlogs-")
            .tempdir_in(p)
            .ok()
    });
    match beside {
        Some(t) => Ok(t),
        None => tempfile::Builder::new()
            .prefix("btar-binlogs-")
            .tempdir()
            .map_err(|e| EngineError::Failed(format!("temporary directory for binlogs: {e}"))),
    }
}

fn free_port() -> Result<u16, EngineError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| EngineError::Failed(format!("no free port on loopback: {e}")))
}

pub async fn run(
    loc: &Location,
    req: &RestoreRequest,
    progress: &dyn Progress,
) -> Result<RestoreOutcome, EngineError> {
    let bin = req
        .agent
        .as_ref()
        .map(|a| {
            a.parse::<MysqlSettings>()
                .map_err(|e| EngineError::Invalid(format!("invalid MySQL settings: {e}")))
        })
        .transpose()?;
    let bin = bin.as_ref();
    let survey = window(loc).await?;
    let (m, meta) = choose(loc, &survey, req)?;
    let window = survey.window;
    let dir = &req.data_dir;
    ensure_empty_dir(dir).await?;
    // The binlogs first, from this same location: a gap is refused before anything is written.
    let staging = staging_dir(dir)?;
    let plan = replay::plan(
        loc,
        &meta.binlog,
        meta.backup_stop_time,
        &req.target,
        staging.path(),
    )
    .await?;
    if plan.last_change.is_some() && !req.start {
        return Err(EngineError::Invalid(format!(
            "restoring backup `{}` to {} replays {} archived binlog file(s) into the restored server: add --start",
            m.backup_name,
            match &req.target {
                Target::Latest => "latest".to_string(),
                Target::Time(t) => t.to_rfc3339(),
                Target::Position(p) | Target::Name(p) => p.clone(),
            },
            plan.files.len()
        )));
    }
    tracing::info!(region = loc.region().name(), backup = %m.backup_name, dir = %dir.display(), "restoring MariaDB backup");
    let files = async {
        let bytes = extract(loc, &m, &meta, dir, bin, req, progress).await?;
        prepare(dir, bin).await?;
        hand_over(dir)?;
        Ok::<_, EngineError>(bytes)
    }
    .await;
    let bytes = match files {
        Ok(b) => b,
        Err(e) => {
            let cleanup = clear(dir).await;
            return Err(match e {
                EngineError::Format(f) if is_damage(&f) => EngineError::Damaged(format!(
                    "backup `{}` in region `{}` is damaged: {f}; {cleanup}",
                    m.backup_name,
                    loc.region().name()
                )),
                EngineError::Format(f) => EngineError::Format(f),
                EngineError::Failed(s) => EngineError::Failed(format!("{s}; {cleanup}")),
                other => other,
            });
        }
    };
    let mut outcome = RestoreOutcome {
        region: loc.region().name().into(),
        backup: m.backup_name.clone(),
        data_dir: dir.display().to_string(),
        bytes,
        reached: None,
        skipped_damaged: window
            .damaged
            .iter()
            .filter(|d| {
                let before_target = match (&req.target, time_of_backup_name(&d.backup_name)) {
                    (Target::Time(t), Some(at)) => at <= *t,
                    _ => true,
                };
                req.backup.is_none() && d.backup_name > m.backup_name && before_target
            })
            .cloned()
            .collect(),
        agent: None,
        conninfo: None,
    };
    if req.start {
        // Never the default 3306 unasked: that is usually the running source's.
        let port = match req.port {
            Some(p) => p,
            None => free_port()?,
        };
        let (agent, mut server) = match start(dir, port, req, bin).await {
            Ok(a) => a,
            Err(e) => {
                let cleanup = clear(dir).await;
                return Err(EngineError::Failed(format!("{e}; {cleanup}")));
            }
        };
        tracing::info!(
            files = plan.files.len(),
            streamed = plan.streamed.as_deref().unwrap_or(""),
            from = %meta.binlog,
            to = %plan.reached,
            gtid = plan.reached.gtid.as_deref().unwrap_or(""),
            "replaying archived binlogs"
        );
        if let Err(e) = replay::replay(&plan, &agent).await {
            // A half-replayed server is no restore: stop it and empty the directory for a retry.
            let _ = server.kill();
            let _ = server.wait();
            let cleanup = clear(dir).await;
            return Err(match e {
                EngineError::Failed(s) => EngineError::Failed(format!("{s}; {cleanup}")),
                other => other,
            });
        }
        outcome.reached = Some(Reached {
            timeline: 0,
            lsn: plan.reached.to_string(),
            last_commit_time: plan.last_change,
        });
        outcome.conninfo = Some(agent.describe());
        // What a fork registers is shown by the API, which masks only a `conninfo`: no password.
        let shown = MysqlSettings {
            password: None,
            ..agent
        };
        outcome.agent = AgentSettings::from_typed(&shown).ok();
    }
    Ok(outcome)
}

/// Runs `sql` on a server [`run`] started: its address from the outcome, the account and password
/// from the source's settings (the restored server holds the source's accounts). The first row,
/// tab-separated; `None` when there is none.
pub async fn probe(
    outcome: &RestoreOutcome,
    source: Option<&AgentSettings>,
    sql: &str,
) -> Result<Option<String>, EngineError> {
    let started: MysqlSettings = outcome
        .agent
        .as_ref()
        .ok_or_else(|| EngineError::Invalid("the restored server was not started".into()))?
        .parse()
        .map_err(|e| EngineError::Invalid(format!("restored server settings: {e}")))?;
    let source: Option<MysqlSettings> = source.and_then(|a| a.parse().ok());
    let s = MysqlSettings {
        password: source.as_ref().and_then(|s| s.password.clone()),
        password_file: source.and_then(|s| s.password_file),
        ..started
    };
    let out = query(&s, sql).await?;
    Ok(out
        .lines()
        .next()
        .map(str::to_string)
        .filter(|l| !l.is_empty()))
}

/// Stops the server [`run`] started in `dir` (SIGTERM by its pid file, then SIGKILL after 30 s).
pub async fn stop_restored(dir: &Path) -> Result<(), EngineError> {
    if std::fs::read_to_string(dir.join("mariadbd.pid"))
        .is_ok_and(|t| t.trim().parse::<u32>().is_err())
    {
        return Err(EngineError::Failed(format!(
            "{} holds no pid",
            dir.join("mariadbd.pid").display()
        )));
    }
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        crate::local::stop_by_pid_file(&dir, std::time::Duration::from_secs(30))
    })
    .await
    .map_err(|e| EngineError::Failed(format!("stopping the restored server: {e}")))?
}
