//! The binlog streamer (DESIGN.md, "Roles": the streamer): the binlog file the server is writing,
//! stored in every location within about a second as a tail of sealed pieces, so that a restore
//! or a fork from any location replays every transaction the server committed up to a second or
//! so before a disaster — not only those of files the server has closed (the follower archives
//! those).
//!
//! A receiver of its own (`mariadb-binlog --raw --stop-never`, registered as the service's
//! streamer) brings the binlog into a private spool from the first file the primary location has
//! not archived (the server's newest file when nothing is archived). Each spooled file is walked as
//! it grows, and cut after its last whole transaction (`cut`); one writer task per location stores
//! what lies before the cut (`writer`), so a slow or failing location does not hold up the others.
//! A spooled file the primary location has archived is removed: from then on the archive and the
//! replicator carry it.

mod cut;
mod writer;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use btar_engine::log::NumberedFiles;
use btar_engine::{
    AgentSettings, EngineError, LogSequence, LogStreamer, StreamEvent, StreamOptions,
    StreamPosition, StreamTarget,
};
use btar_region::CancellationToken;

use crate::MysqlSettings;
use crate::binlog;
use crate::follow::{archived_resume, open_spool, remove, server_binlogs, spooled, start_at};
use crate::receiver::{Receiver, Role};
use crate::tools::program;
use cut::Cutter;

/// How often the spool is walked for new events.
const POLL: Duration = Duration::from_millis(50);
/// How often positions are reported.
const REPORT: Duration = Duration::from_secs(1);
/// How often spooled files the primary location has archived are looked for.
const CLEANUP: Duration = Duration::from_secs(10);
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// A session this long counts as healthy: the next restart waits [`FIRST_DELAY`].
const STEADY: Duration = Duration::from_secs(30);
/// Arrival times kept per file for the seconds-behind figure.
const ARRIVALS: usize = 256;

/// Streams a MariaDB server's binlog into a service's locations.
#[derive(Debug, Clone, Copy, Default)]
pub struct BinlogStreamer;

/// A binlog file in the spool.
#[derive(Debug, Clone)]
struct Received {
    name: String,
    path: PathBuf,
    /// Where it may be cut: the end of its last whole transaction.
    safe: u64,
    /// Bytes received.
    len: u64,
    /// When each cut was first seen (oldest first), for how long a location has lacked it.
    arrivals: VecDeque<(u64, Instant)>,
}

/// What one location holds of the spooled files.
#[derive(Debug, Default)]
struct Held {
    primary: bool,
    /// Bytes stored, by file number; `u64::MAX` for a file the location no longer needs (it
    /// archived it, or the spool dropped it).
    stored: BTreeMap<u64, u64>,
    error: Option<String>,
}

/// The spool and every location's progress, shared by the session and its writers.
#[derive(Debug, Default)]
struct Shared {
    files: BTreeMap<u64, Received>,
    held: BTreeMap<String, Held>,
}

type SharedState = Arc<Mutex<Shared>>;

fn lock(s: &SharedState) -> std::sync::MutexGuard<'_, Shared> {
    // A writer that panicked leaves numbers that are still numbers: go on with them.
    s.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait::async_trait]
impl LogStreamer for BinlogStreamer {
    async fn stream(
        &self,
        settings: &AgentSettings,
        opts: &StreamOptions,
        on_event: &(dyn Fn(StreamEvent) + Send + Sync),
    ) -> Result<(), EngineError> {
        let s = crate::engine::settings(settings)?;
        if opts.synchronous {
            return Err(EngineError::Invalid(
                "--synchronous makes PostgreSQL wait for the streamer at commit; a MariaDB server has no such wait for a binlog reader (semi-sync needs a replica that acknowledges): stream without it".into(),
            ));
        }
        let _lock = open_spool(&opts.spool_dir)?;
        let tool = program(Some(&s), "mariadb-binlog")?;
        let mut delay = FIRST_DELAY;
        loop {
            if opts.cancel.is_cancelled() {
                return Ok(());
            }
            let started = Instant::now();
            let reason = match session(&s, &tool, opts, on_event).await {
                Ok(None) => return Ok(()),
                Ok(Some(reason)) => reason,
                Err(_) if opts.cancel.is_cancelled() => return Ok(()),
                Err(e) if e.is_retryable() => e.to_string(),
                Err(e) => return Err(e),
            };
            if started.elapsed() >= STEADY {
                delay = FIRST_DELAY;
            }
            on_event(StreamEvent::Interrupted {
                reason,
                retry_in: delay,
            });
            tokio::select! {
                _ = opts.cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(MAX_DELAY);
        }
    }
}

/// One receiver's run: `None` when cancelled, else why the receiver ended.
async fn session(
    s: &MysqlSettings,
    tool: &std::path::Path,
    opts: &StreamOptions,
    on_event: &(dyn Fn(StreamEvent) + Send + Sync),
) -> Result<Option<String>, EngineError> {
    let primary = opts
        .targets
        .borrow()
        .iter()
        .find(|t| t.primary)
        .cloned()
        .ok_or_else(|| EngineError::Invalid("no primary location to stream into".into()))?;
    let server = server_binlogs(s).await?;
    let family = binlog::family(server.first().map_or("", String::as_str))?;
    // The files the primary has not archived; the follower reports a hole in the archive.
    let from = match archived_resume(&primary.location, &family).await? {
        None => server.last().cloned().unwrap_or_default(),
        Some(r) => start_at(&server, Some(&r))?.from,
    };
    let first = NumberedFiles
        .position(&from)
        .map(|p| p.number)
        .unwrap_or_default();
    // The spool is only a cache of the server's binlog: received again from `from`.
    for (_, path) in spooled(&opts.spool_dir)? {
        remove(&path)?;
    }
    let service = primary.location.service().to_string();
    let mut rx = Receiver::spawn(s, tool, &opts.spool_dir, &from, &service, Role::Streamer)?;
    tracing::info!(service = %service, from = %from, server = %s.describe(), "streaming the binlog");
    on_event(StreamEvent::Started {
        timeline: 0,
        from: from.clone(),
        slot_created: false,
    });
    let shared: SharedState = Arc::new(Mutex::new(Shared::default()));
    let (grew, _) = tokio::sync::watch::channel(0u64);
    let stop = opts.cancel.child_token();
    let mut session = Session {
        shared,
        grew,
        stop: stop.clone(),
        opts,
        writers: BTreeMap::new(),
        cutters: BTreeMap::new(),
        primary,
        family,
        first,
    };
    let ended = session.run(&mut rx, on_event).await;
    stop.cancel();
    for (_, w) in std::mem::take(&mut session.writers) {
        let _ = w.await;
    }
    rx.stop().await;
    ended
}

struct Session<'a> {
    shared: SharedState,
    /// Bumped whenever a file's cut moves: wakes the writers.
    grew: tokio::sync::watch::Sender<u64>,
    stop: CancellationToken,
    opts: &'a StreamOptions,
    writers: BTreeMap<String, tokio::task::JoinHandle<()>>,
    cutters: BTreeMap<u64, Cutter>,
    primary: StreamTarget,
    family: String,
    /// The number of the first file received.
    first: u64,
}

impl Session<'_> {
    async fn run(
        &mut self,
        rx: &mut Receiver,
        on_event: &(dyn Fn(StreamEvent) + Send + Sync),
    ) -> Result<Option<String>, EngineError> {
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut reported, mut cleaned) = (Instant::now(), Instant::now());
        self.sync_writers();
        loop {
            tokio::select! {
                _ = self.opts.cancel.cancelled() => return Ok(None),
                reason = rx.ended() => return reason.map(Some),
                _ = poll.tick() => {}
            }
            self.walk()?;
            if reported.elapsed() >= REPORT {
                reported = Instant::now();
                self.sync_writers();
                on_event(StreamEvent::Progress {
                    positions: positions(&lock(&self.shared), Instant::now()),
                    slot_retained_bytes: None,
                });
            }
            if cleaned.elapsed() >= CLEANUP {
                cleaned = Instant::now();
                self.drop_archived().await?;
            }
        }
    }

    /// Walks the spooled files' new events; wakes the writers when a cut moved.
    fn walk(&mut self) -> Result<(), EngineError> {
        let now = Instant::now();
        let files: Vec<_> = spooled(&self.opts.spool_dir)?
            .into_iter()
            .filter(|(p, _)| p.family == self.family && p.number >= self.first)
            .collect();
        let mut moved = false;
        for (pos, path) in files {
            let cutter = self.cutters.entry(pos.number).or_default();
            let before = cutter.safe();
            let safe = cutter.advance(&path)?;
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(safe);
            let mut sh = lock(&self.shared);
            let r = sh.files.entry(pos.number).or_insert_with(|| Received {
                name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path: path.clone(),
                safe: 0,
                len: 0,
                arrivals: VecDeque::new(),
            });
            r.len = len;
            if safe > before || r.safe < safe {
                r.safe = safe;
                r.arrivals.push_back((safe, now));
                moved = true;
            }
            // Arrivals every location has stored tell nothing; past the bound, the second oldest
            // goes, so the oldest byte still missing keeps its time however long a location lags.
            let held = sh
                .held
                .values()
                .map(|h| h.stored.get(&pos.number).copied().unwrap_or(0))
                .min()
                .unwrap_or(0);
            let r = sh.files.get_mut(&pos.number).ok_or_else(|| {
                EngineError::Failed("a spooled file vanished from the streamer's state".into())
            })?;
            while r.arrivals.len() > 1 && r.arrivals.front().is_some_and(|(at, _)| *at <= held) {
                r.arrivals.pop_front();
            }
            if r.arrivals.len() > ARRIVALS {
                r.arrivals.remove(1);
            }
        }
        if moved {
            self.grew.send_modify(|g| *g += 1);
        }
        Ok(())
    }

    /// Starts a writer for each location that has none, stops those of locations gone.
    fn sync_writers(&mut self) {
        let targets = self.opts.targets.borrow().clone();
        self.writers.retain(|region, w| {
            let keep = targets.iter().any(|t| &t.region == region) && !w.is_finished();
            if !keep {
                w.abort();
            }
            keep
        });
        let mut sh = lock(&self.shared);
        sh.held
            .retain(|region, _| targets.iter().any(|t| &t.region == region));
        for t in targets {
            if self.writers.contains_key(&t.region) {
                continue;
            }
            sh.held.entry(t.region.clone()).or_default().primary = t.primary;
            let w = writer::Writer {
                target: t.clone(),
                family: self.family.clone(),
                shared: self.shared.clone(),
                grew: self.grew.subscribe(),
                min_interval: if self.opts.synchronous && t.primary {
                    Duration::ZERO
                } else {
                    self.opts.min_interval
                },
                stop: self.stop.clone(),
            };
            self.writers.insert(t.region.clone(), tokio::spawn(w.run()));
        }
    }

    /// Removes the spooled files the primary location has archived (all but the newest) once every
    /// location holds all of them (as a tail, or archived): a location that lacks part of one keeps
    /// it here, since a tail that ends inside a file ends what a restore there can replay.
    async fn drop_archived(&mut self) -> Result<(), EngineError> {
        let closed: Vec<(u64, String, PathBuf)> = {
            let sh = lock(&self.shared);
            let newest = sh.files.keys().next_back().copied();
            sh.files
                .iter()
                .filter(|(n, _)| Some(**n) != newest)
                .filter(|(n, r)| {
                    sh.held
                        .values()
                        .all(|h| h.stored.get(*n).is_some_and(|s| *s >= r.len))
                })
                .map(|(n, r)| (*n, r.name.clone(), r.path.clone()))
                .collect()
        };
        let loc = &self.primary.location;
        for (n, name, path) in closed {
            let archived = match loc.region().head(&loc.log_key(&self.family, &name)).await {
                Ok(h) => h.is_some(),
                // Looked at again at the next cleanup.
                Err(e) => {
                    tracing::warn!(file = %name, error = %e, "cannot tell whether the primary archived a spooled file");
                    break;
                }
            };
            if !archived {
                break;
            }
            remove(&path)?;
            self.cutters.remove(&n);
            let mut sh = lock(&self.shared);
            sh.files.remove(&n);
            for h in sh.held.values_mut() {
                h.stored.remove(&n);
            }
        }
        Ok(())
    }
}

/// Each location's position: the first file it lacks part of (or the newest), and how far behind
/// the received binlog it is.
fn positions(sh: &Shared, now: Instant) -> Vec<StreamPosition> {
    let newest = sh.files.values().next_back();
    let server_position = newest
        .map(|r| format!("{}:{}", r.name, r.len))
        .unwrap_or_default();
    sh.held
        .iter()
        .map(|(region, h)| {
            let stored = |n: &u64| h.stored.get(n).copied().unwrap_or(0);
            let lagging = sh.files.iter().find(|(n, r)| stored(n) < r.safe);
            let position = match lagging.or(sh.files.iter().next_back()) {
                Some((n, r)) => format!("{}:{}", r.name, stored(n).min(r.len)),
                None => String::new(),
            };
            let bytes_behind = sh
                .files
                .iter()
                .map(|(n, r)| r.len.saturating_sub(stored(n)))
                .sum();
            let seconds_behind = lagging
                .and_then(|(n, r)| r.arrivals.iter().find(|(at, _)| *at > stored(n)))
                .map_or(0.0, |(_, t)| {
                    now.saturating_duration_since(*t).as_secs_f64()
                });
            StreamPosition {
                region: region.clone(),
                primary: h.primary,
                position,
                server_position: server_position.clone(),
                bytes_behind,
                seconds_behind,
                error: h.error.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(name: &str, safe: u64, len: u64, arrivals: &[(u64, Instant)]) -> Received {
        Received {
            name: name.into(),
            path: PathBuf::from(name),
            safe,
            len,
            arrivals: arrivals.iter().copied().collect(),
        }
    }

    #[test]
    fn a_location_is_as_far_as_its_first_incomplete_file() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(5);
        let mut sh = Shared::default();
        sh.files.insert(7, received("binlog.000007", 900, 900, &[]));
        sh.files.insert(
            8,
            received(
                "binlog.000008",
                500,
                520,
                &[(300, t0), (500, t0 + Duration::from_secs(3))],
            ),
        );
        let held = |v: &[(u64, u64)], error: Option<&str>| Held {
            primary: false,
            stored: v.iter().copied().collect(),
            error: error.map(str::to_string),
        };
        sh.held
            .insert("home".into(), held(&[(7, u64::MAX), (8, 500)], None));
        sh.held
            .insert("away".into(), held(&[(7, 900), (8, 100)], Some("down")));
        let p = positions(&sh, now);
        let by = |r: &str| p.iter().find(|x| x.region == r).cloned();
        let home = by("home").unwrap_or_else(|| panic!("home"));
        assert_eq!(
            (
                home.position.as_str(),
                home.bytes_behind,
                home.seconds_behind
            ),
            ("binlog.000008:500", 20, 0.0)
        );
        assert_eq!(home.server_position, "binlog.000008:520");
        let away = by("away").unwrap_or_else(|| panic!("away"));
        assert_eq!(
            (
                away.position.as_str(),
                away.bytes_behind,
                away.seconds_behind
            ),
            ("binlog.000008:100", 420, 5.0)
        );
        assert_eq!(away.error.as_deref(), Some("down"));
    }
}
