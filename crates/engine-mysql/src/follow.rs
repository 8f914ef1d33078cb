//! The continuous binlog archive: `mariadb-binlog --read-from-remote-server --raw --stop-never`
//! receives the server's binlog into a private local spool directory, and each file the server has
//! moved past (a later file exists) is pushed into the primary location, announced, and removed.
//!
//! Where it starts: after the newest binlog file the location holds without a gap; with nothing
//! archived, at the oldest file the server still has. A file the archive needs that the server has
//! purged is reported as a gap (the archive will have a hole there) and following starts at the
//! server's oldest file. When `mariadb-binlog` ends (a server restart, the network), it is started
//! again after 1 s, doubling to 30 s, from the first file not yet archived; the file it was
//! receiving is received again from its start. The newest, open file is never pushed: it becomes
//! recoverable when the server rotates (`FLUSH BINARY LOGS`, `max_binlog_size`).
//!
//! A killed btar leaves its spool behind: the next start archives the complete files in it and
//! receives the rest again from the archive's watermark, so no file is skipped. `mariadb-binlog` is
//! started under `setpriv --pdeathsig KILL` (when util-linux has it) so that it dies with btar, and
//! with a replica server id derived from the service, so that the server drops a previous
//! connection of the same service when the next one registers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use btar_engine::log::NumberedFiles;
use btar_engine::{
    AgentSettings, EngineError, FollowEvent, FollowOptions, LogFollower, LogSequence, PushedLog,
    watermarks,
};
use btar_format::Location;
use futures::TryStreamExt;

use crate::MysqlSettings;
use crate::binlog;
use crate::receiver::{Receiver, Role};
use crate::tools::{program, query};

/// The first wait before `mariadb-binlog` is started again; doubled up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// A run of `mariadb-binlog` this long counts as healthy: the next restart waits [`FIRST_DELAY`].
const STEADY: Duration = Duration::from_secs(30);
/// How often the spool is looked at for complete files.
const POLL: Duration = Duration::from_millis(250);
/// Held by the one follower using a spool directory.
const LOCK: &str = "follow.lock";

/// Follows a MariaDB server's binlog into a location.
#[derive(Debug, Clone, Copy, Default)]
pub struct BinlogFollower;

#[async_trait::async_trait]
impl LogFollower for BinlogFollower {
    async fn follow(
        &self,
        loc: &Location,
        settings: &AgentSettings,
        opts: &FollowOptions,
        on_event: &(dyn Fn(FollowEvent) + Send + Sync),
    ) -> Result<(), EngineError> {
        let s = crate::engine::settings(settings)?;
        let run = Follower {
            loc,
            s,
            dir: opts.spool_dir.clone(),
            cancel: &opts.cancel,
            on_event,
        }
        .run()
        .await;
        match run {
            // A push cut short by the cancellation is not a failure: it is done again next time.
            Err(_) if opts.cancel.is_cancelled() => Ok(()),
            r => r,
        }
    }
}

struct Follower<'a> {
    loc: &'a Location,
    s: MysqlSettings,
    dir: PathBuf,
    cancel: &'a btar_region::CancellationToken,
    on_event: &'a (dyn Fn(FollowEvent) + Send + Sync),
}

impl Follower<'_> {
    async fn run(self) -> Result<(), EngineError> {
        let _lock = open_spool(&self.dir)?;
        let tool = program(Some(&self.s), "mariadb-binlog")?;
        // What a killed run left: its complete files are archived now; where to start is the
        // archive's watermark, not this spool.
        let mut resume = None;
        self.drain(&mut resume).await?;
        let mut resume = None;
        let mut delay = FIRST_DELAY;
        loop {
            if self.cancel.is_cancelled() {
                return Ok(());
            }
            let reason = match self.start(&tool, resume.as_deref()).await {
                Ok(mut rx) => {
                    let started = Instant::now();
                    let ended = self.watch(&mut rx, &mut resume).await;
                    rx.stop().await;
                    if started.elapsed() >= STEADY {
                        delay = FIRST_DELAY;
                    }
                    match ended {
                        Ok(None) => return Ok(()),
                        Ok(Some(reason)) => reason,
                        Err(e) if e.is_retryable() => e.to_string(),
                        Err(e) => return Err(e),
                    }
                }
                Err(e) if e.is_retryable() => e.to_string(),
                Err(e) => return Err(e),
            };
            // Whatever it finished before it ended.
            self.drain(&mut resume).await?;
            (self.on_event)(FollowEvent::Interrupted {
                reason,
                retry_in: delay,
            });
            tokio::select! {
                _ = self.cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(MAX_DELAY);
        }
    }

    /// Starts `mariadb-binlog` at the first file not archived: `resume` (known by this run) or
    /// after the archive's watermark.
    async fn start(&self, tool: &Path, resume: Option<&str>) -> Result<Receiver, EngineError> {
        let server = server_binlogs(&self.s).await?;
        let fam = server
            .first()
            .map(|f| binlog::family(f))
            .transpose()?
            .unwrap_or_default();
        let resume = match resume {
            Some(r) if binlog::family(r).ok().as_deref() == Some(fam.as_str()) => {
                Some(r.to_string())
            }
            _ => archived_resume(self.loc, &fam).await?,
        };
        let start = start_at(&server, resume.as_deref())?;
        if let Some((first, last)) = &start.gap {
            (self.on_event)(FollowEvent::Gap {
                first: first.clone(),
                last: last.clone(),
                resumed_at: start.from.clone(),
            });
        }
        let (from, stale) = receive_from(spooled(&self.dir)?, &fam, &start.from);
        for path in stale {
            remove(&path)?;
        }
        let rx = Receiver::spawn(
            &self.s,
            tool,
            &self.dir,
            &from,
            self.loc.service(),
            Role::Follower,
        )?;
        tracing::info!(service = self.loc.service(), from = %from, server = %self.s.describe(), "following the binlog");
        (self.on_event)(FollowEvent::Started { from });
        Ok(rx)
    }

    /// Archives complete files while the receiver runs. `None` when cancelled; otherwise why the
    /// receiver ended.
    async fn watch(
        &self,
        rx: &mut Receiver,
        resume: &mut Option<String>,
    ) -> Result<Option<String>, EngineError> {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return Ok(None),
                reason = rx.ended() => return reason.map(Some),
                _ = tick.tick() => self.drain(resume).await?,
            }
        }
    }

    /// Pushes every complete spooled file in order, announces it and removes it; `resume` becomes
    /// the file after the last one archived. A store that cannot be reached stops the pass (the
    /// next one tries again); any other failure ends following.
    async fn drain(&self, resume: &mut Option<String>) -> Result<(), EngineError> {
        for path in complete(spooled(&self.dir)?) {
            match binlog::push(self.loc, &path).await {
                Ok((timeline, name, put)) => {
                    remove(&path)?;
                    if let Some(next) = NumberedFiles
                        .position(&name)
                        .and_then(|p| p.number.checked_add(1))
                    {
                        *resume = Some(NumberedFiles.name_of(&name, next));
                    }
                    (self.on_event)(FollowEvent::Archived(PushedLog {
                        timeline,
                        name,
                        put,
                    }));
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot archive yet; trying again");
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Creates the spool directory (0700) and takes its lock.
pub(crate) fn open_spool(dir: &Path) -> Result<std::fs::File, EngineError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |what: &str, e: std::io::Error| {
        EngineError::Failed(format!("binlog spool {}: {what}: {e}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| io("creating", e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| io("making it private", e))?;
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK))
        .map_err(|e| io("lock file", e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(EngineError::Invalid(format!(
            "another btar process receives the binlog into {}: one follower or streamer per spool directory (give each its own --spool-dir)",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(io("locking", e)),
    }
}

/// The binlog files in the spool, in order.
pub(crate) fn spooled(dir: &Path) -> Result<Vec<(btar_engine::LogPosition, PathBuf)>, EngineError> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| EngineError::Failed(format!("listing binlog spool {}: {e}", dir.display())))?;
    let mut files: Vec<_> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            Some((NumberedFiles.position(&name)?, e.path()))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The complete files among spooled ones: all but the newest of each family (the server has
/// rotated past them, so `mariadb-binlog` has closed them).
fn complete(mut files: Vec<(btar_engine::LogPosition, PathBuf)>) -> Vec<PathBuf> {
    files.sort();
    let mut out = vec![];
    for (i, (pos, path)) in files.iter().enumerate() {
        if files
            .get(i + 1)
            .is_some_and(|(next, _)| next.family == pos.family)
        {
            out.push(path.clone());
        }
    }
    out
}

/// Where the receiver starts given the spool (`start`: the first file not archived), and the
/// spooled files to remove first. Complete files still waiting for the store (an outage) stay and
/// the receiver starts at the file after them; the file a previous receiver was in the middle of,
/// and any file it would write again, is removed and received again from its start.
fn receive_from(
    local: Vec<(btar_engine::LogPosition, PathBuf)>,
    fam: &str,
    start: &str,
) -> (String, Vec<PathBuf>) {
    let Some(first) = NumberedFiles.position(start).map(|p| p.number) else {
        return (start.to_string(), vec![]);
    };
    let have: std::collections::BTreeSet<u64> = local
        .iter()
        .filter(|(p, _)| p.family == fam)
        .map(|(p, _)| p.number)
        .collect();
    let mut from = first;
    while let Some(next) = from.checked_add(1)
        && have.contains(&from)
        && have.contains(&next)
    {
        from = next;
    }
    let stale = local
        .into_iter()
        .filter(|(p, _)| {
            p.family == fam
                && (p.number >= from || p.number.checked_add(1).is_none_or(|n| !have.contains(&n)))
        })
        .map(|(_, path)| path)
        .collect();
    (NumberedFiles.name_of(start, from), stale)
}

pub(crate) fn remove(path: &Path) -> Result<(), EngineError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(EngineError::Failed(format!(
            "removing {}: {e}",
            path.display()
        ))),
    }
}

/// The server's binlog files, oldest first (`SHOW BINARY LOGS`).
pub(crate) async fn server_binlogs(s: &MysqlSettings) -> Result<Vec<String>, EngineError> {
    let out = query(s, "SHOW BINARY LOGS").await.map_err(|e| match e {
        EngineError::Failed(m) if m.contains("not using binary logging") => {
            EngineError::Invalid(format!(
                "{m}: the server writes no binlog to follow; set log_bin (e.g. log_bin = binlog) in its config and restart it"
            ))
        }
        e => e,
    })?;
    let files: Vec<String> = out
        .lines()
        .filter_map(|l| l.split('\t').next())
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    if files.is_empty() {
        return Err(EngineError::Invalid(format!(
            "MariaDB ({}) lists no binary logs: set log_bin in its config and restart it",
            s.describe()
        )));
    }
    Ok(files)
}

/// The first file after the archive's gap-free run of family `fam`; `None` when none is archived.
pub(crate) async fn archived_resume(
    loc: &Location,
    fam: &str,
) -> Result<Option<String>, EngineError> {
    let logs: Vec<(String, String)> = loc
        .list_logs()
        .map_ok(|o| (o.timeline, o.name))
        .try_collect()
        .await?;
    Ok(watermarks(logs, &NumberedFiles)
        .into_iter()
        .find(|w| w.timeline == fam)
        .and_then(|w| {
            let n = NumberedFiles.position(&w.watermark)?.number;
            Some(NumberedFiles.name_of(&w.watermark, n.checked_add(1)?))
        }))
}

/// Where a receiver starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Start {
    pub(crate) from: String,
    /// Files the archive needs that the server has purged: first and last.
    pub(crate) gap: Option<(String, String)>,
}

/// Where to start given the server's files (oldest first) and the first file not archived.
pub(crate) fn start_at(server: &[String], resume: Option<&str>) -> Result<Start, EngineError> {
    let (Some(oldest), Some(newest)) = (server.first(), server.last()) else {
        return Err(EngineError::Invalid(
            "the server lists no binary logs".into(),
        ));
    };
    let Some(resume) = resume else {
        return Ok(Start {
            from: oldest.clone(),
            gap: None,
        });
    };
    let num = |n: &str| NumberedFiles.position(n).map(|p| p.number);
    let (Some(r), Some(o), Some(n)) = (num(resume), num(oldest), num(newest)) else {
        return Err(EngineError::Invalid(format!(
            "cannot place {resume} among the server's binlog files {oldest}..{newest}"
        )));
    };
    if r < o {
        return Ok(Start {
            from: oldest.clone(),
            gap: Some((resume.to_string(), NumberedFiles.name_of(oldest, o - 1))),
        });
    }
    if r > n {
        return Err(EngineError::Invalid(format!(
            "the archive already holds the binlog up to before {resume}, past the server's newest file {newest}: \
             is this another server, or was RESET MASTER run? Archive it as a new service"
        )));
    }
    Ok(Start {
        from: resume.to_string(),
        gap: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_start_is_the_first_file_not_archived_or_the_oldest_the_server_has() {
        let server = names(&["binlog.000004", "binlog.000005", "binlog.000006"]);
        let at = |r: Option<&str>| start_at(&server, r);
        assert_eq!(at(None).unwrap().from, "binlog.000004");
        let s = at(Some("binlog.000005")).unwrap();
        assert_eq!((s.from.as_str(), s.gap), ("binlog.000005", None));
        // The open file itself, after a killed receiver.
        assert_eq!(at(Some("binlog.000006")).unwrap().from, "binlog.000006");
        // Purged from the server: a hole, named, and the oldest file the server has.
        let s = at(Some("binlog.000002")).unwrap();
        assert_eq!(s.from, "binlog.000004");
        assert_eq!(
            s.gap,
            Some(("binlog.000002".to_string(), "binlog.000003".to_string()))
        );
        // An archive ahead of the server: another server or RESET MASTER.
        let e = at(Some("binlog.000009")).unwrap_err().to_string();
        assert!(e.contains("RESET MASTER"), "{e}");
        assert!(start_at(&[], None).is_err());
    }

    #[test]
    fn only_files_the_server_rotated_past_are_complete() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "binlog.000003",
            "binlog.000001",
            "binlog.000002",
            "other.000007",
        ] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        std::fs::write(dir.path().join(LOCK), b"").unwrap();
        let done: Vec<String> = complete(spooled(dir.path()).unwrap())
            .iter()
            .filter_map(|p| Some(p.file_name()?.to_str()?.to_string()))
            .collect();
        assert_eq!(done, vec!["binlog.000001", "binlog.000002"]);
    }

    #[test]
    fn complete_spooled_files_are_kept_and_a_partial_one_received_again() {
        let pos = |n: &str| {
            (
                NumberedFiles.position(n).unwrap(),
                PathBuf::from(format!("/s/{n}")),
            )
        };
        let names = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter()
                .filter_map(|p| Some(p.file_name()?.to_str()?.to_string()))
                .collect()
        };
        // Killed in the middle of binlog.000003.
        let (from, stale) = receive_from(vec![pos("binlog.000003")], "binlog", "binlog.000003");
        assert_eq!(
            (from.as_str(), names(stale)),
            ("binlog.000003", vec!["binlog.000003".to_string()])
        );
        // 3 and 4 complete but not yet archived (the store was down): kept; 5 received again.
        let local = vec![
            pos("binlog.000003"),
            pos("binlog.000004"),
            pos("binlog.000005"),
        ];
        let (from, stale) = receive_from(local, "binlog", "binlog.000003");
        assert_eq!(
            (from.as_str(), names(stale)),
            ("binlog.000005", vec!["binlog.000005".to_string()])
        );
        // A partial file below a gap's restart point is not mistaken for a complete one later.
        let local = vec![pos("binlog.000002"), pos("other.000001")];
        let (from, stale) = receive_from(local, "binlog", "binlog.000008");
        assert_eq!(
            (from.as_str(), names(stale)),
            ("binlog.000008", vec!["binlog.000002".to_string()])
        );
        // Nothing spooled.
        let (from, stale) = receive_from(vec![], "binlog", "binlog.000001");
        assert_eq!((from.as_str(), stale.len()), ("binlog.000001", 0));
    }

    #[test]
    fn one_follower_per_spool_and_the_spool_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let held = open_spool(&spool).unwrap();
        let mode = std::fs::metadata(&spool).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let e = open_spool(&spool).unwrap_err().to_string();
        assert!(e.contains("another btar process"), "{e}");
        drop(held);
        assert!(open_spool(&spool).is_ok());
    }
}
