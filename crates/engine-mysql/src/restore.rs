//! Restore of a backup into a new data directory: the xbstream is read back chunk by chunk (each one
//! authenticated and hash-checked) into `mbstream -x`, `mariadb-backup --prepare` makes the files
//! consistent, and with `start` a `mariadbd` runs on them.
//!
//! This slice restores a backup's consistent point only ([`Target::Latest`] = the newest sound
//! backup, or the backup named). Binlog replay to a time, position or GTID is not built yet, so such
//! targets are refused rather than silently restored to another point.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use btar_engine::{
    AgentSettings, DamagedBackup, EngineError, Progress, Reached, RestoreOutcome, RestoreRequest,
    Target, Window,
};
use btar_format::{FileReader, FormatError, Location, Manifest};
use tokio::process::Command;

use crate::MysqlSettings;
use crate::backup::MysqlMeta;
use crate::tools::{hand_over, program, query, server_user};

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

/// Every sound backup of the location (oldest first), the damaged ones apart. The window runs from
/// the oldest backup's end to the newest backup's end: without binlog replay, that is what a
/// restore can reach.
pub async fn window(loc: &Location) -> Result<(Window, Vec<(Manifest, MysqlMeta)>), EngineError> {
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
    let w = Window {
        region: loc.region().name().into(),
        earliest: backups.first().map(|(_, m)| m.backup_stop_time),
        latest: backups.last().map(|(_, m)| m.backup_stop_time),
        backups: backups.iter().map(|(m, _)| m.backup_name.clone()).collect(),
        damaged,
    };
    Ok((w, backups))
}

fn choose(
    loc: &Location,
    window: &Window,
    backups: &[(Manifest, MysqlMeta)],
    req: &RestoreRequest,
) -> Result<(Manifest, MysqlMeta), EngineError> {
    if !matches!(req.target, Target::Latest) {
        return Err(EngineError::Invalid(format!(
            "MySQL/MariaDB restores to a backup's consistent point only (latest, or --backup NAME); \
             restoring to {:?} needs binlog replay, which btar does not do yet. Recoverable window in region `{}`: {window}",
            req.target, window.region
        )));
    }
    if let Some(name) = &req.backup {
        if let Some(d) = window.damaged.iter().find(|d| &d.backup_name == name) {
            return Err(EngineError::Damaged(format!(
                "backup `{name}` in region `{}` is damaged and cannot be restored: {}",
                window.region, d.reason
            )));
        }
        return backups
            .iter()
            .find(|(m, _)| &m.backup_name == name)
            .cloned()
            .ok_or_else(|| {
                FormatError::BackupNotFound {
                    region: window.region.clone(),
                    service: loc.service().into(),
                    backup: name.clone(),
                }
                .into()
            });
    }
    backups
        .last()
        .cloned()
        .ok_or_else(|| match window.damaged.last() {
            Some(d) => EngineError::Damaged(format!(
                "the only backups in region `{}` are damaged; newest `{}`: {}",
                window.region, d.backup_name, d.reason
            )),
            None => EngineError::Invalid(format!(
                "region `{}` holds no backup of service `{}`",
                window.region,
                loc.service()
            )),
        })
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
                    "restore directory {} exists and is not empty",
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
    let entry = m
        .files
        .iter()
        .find(|f| f.path == meta.stream_file)
        .ok_or_else(|| {
            EngineError::Damaged(format!(
                "backup `{}` lists no file `{}`",
                m.backup_name, meta.stream_file
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
) -> Result<MysqlSettings, EngineError> {
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
        user: Some("root".into()),
        datadir: Some(dir.display().to_string()),
        bin_dir: bin.and_then(|b| b.bin_dir.clone()),
        ..Default::default()
    };
    let deadline = Instant::now() + req.promote_timeout.max(Duration::from_secs(5));
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            return Err(EngineError::Failed(format!(
                "restored mariadbd exited ({status}); {}:\n{}",
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )));
        }
        match query(&agent, "SELECT 1").await {
            Ok(_) => return Ok(agent),
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
    let (window, backups) = window(loc).await?;
    let (m, meta) = choose(loc, &window, &backups, req)?;
    let dir = &req.data_dir;
    ensure_empty_dir(dir).await?;
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
            .filter(|d| req.backup.is_none() && d.backup_name > m.backup_name)
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
        let agent = match start(dir, port, req, bin).await {
            Ok(a) => a,
            Err(e) => {
                let cleanup = clear(dir).await;
                return Err(EngineError::Failed(format!("{e}; {cleanup}")));
            }
        };
        outcome.reached = Some(Reached {
            timeline: 0,
            lsn: meta.binlog.to_string(),
            last_commit_time: None,
        });
        outcome.conninfo = Some(agent.describe());
        outcome.agent = AgentSettings::from_typed(&agent).ok();
    }
    Ok(outcome)
}
