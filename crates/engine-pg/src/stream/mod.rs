//! The WAL streamer (DESIGN.md, "Roles"; issue 14): receives WAL over PostgreSQL's streaming
//! replication protocol from a physical slot and keeps it durable in every location as the tail of
//! the segment being written ([`btar_format::Location::put_tail_piece`]), within about a second —
//! so a fork from a secondary location recovers up to about the last second before a disaster,
//! without `archive_timeout`. `archive_command` stays the durable path for complete segments; a
//! segment's tail is deleted once its archived file is there.
//!
//! The server is told WAL is flushed only once the primary location holds it: the slot keeps
//! everything else on the server across a streamer that is down or killed, and a server listing
//! the streamer in `synchronous_standby_names` returns a commit only when its WAL is durable in the
//! primary location.

pub mod protocol;
mod received;
mod sink;
mod slot;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use btar_engine::{
    AgentSettings, EngineError, LogStreamer, StreamEvent, StreamOptions, StreamPosition,
};
use btar_region::CancellationToken;

use crate::error::PgError;
use crate::server::Server;
use protocol::{ReplicationConn, Streamed, fmt_lsn};
use received::{Received, Sink};
use sink::Shared;

/// The PostgreSQL engine's streamer.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalStreamer;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the server hears from the streamer when nothing is stored (well inside the default
/// `wal_sender_timeout` of 60 s), and how often the slot's size is read.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// How a streaming session ended.
enum End {
    Cancelled,
    /// Connection or server trouble: start again after a pause.
    Retry(String),
    Fatal(PgError),
}

impl From<PgError> for End {
    fn from(e: PgError) -> Self {
        match e {
            PgError::CannotStream(_) | PgError::Conninfo(_) => End::Fatal(e),
            other => End::Retry(other.to_string()),
        }
    }
}

#[async_trait::async_trait]
impl LogStreamer for WalStreamer {
    async fn stream(
        &self,
        settings_: &AgentSettings,
        opts: &StreamOptions,
        on_event: &(dyn Fn(StreamEvent) + Send + Sync),
    ) -> Result<(), EngineError> {
        let pg = crate::engine::settings(settings_)?;
        let target = crate::conninfo::replication_target(&pg.conninfo, &opts.name)?;
        let mut backoff = Duration::from_secs(1);
        let mut slot_seen = false;
        loop {
            let began = Instant::now();
            let end = session(&pg.conninfo, &target, opts, &mut slot_seen, on_event).await;
            let reason = match end {
                End::Cancelled => return Ok(()),
                End::Fatal(e) => return Err(e.into()),
                End::Retry(r) => r,
            };
            if began.elapsed() > Duration::from_secs(60) {
                backoff = Duration::from_secs(1);
            }
            on_event(StreamEvent::Interrupted {
                reason,
                retry_in: backoff,
            });
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = opts.cancel.cancelled() => return Ok(()),
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

fn replication_error(target: &protocol::Target, e: protocol::ProtocolError) -> End {
    // Authentication and permission failures need an operator; anything else may pass.
    let fatal = matches!(e.code(), Some("28000" | "28P01" | "42501"))
        || matches!(
            e,
            protocol::ProtocolError::UnsupportedAuth(_) | protocol::ProtocolError::NoPassword
        );
    let message = if e.code() == Some("28000") {
        format!("{e} (pg_hba.conf needs a `replication` line admitting this user)")
    } else {
        e.to_string()
    };
    let err = PgError::Replication {
        target: target.addr.to_string(),
        message,
    };
    if fatal {
        End::Fatal(PgError::CannotStream(err.to_string()))
    } else {
        End::Retry(err.to_string())
    }
}

async fn session(
    conninfo: &str,
    target: &protocol::Target,
    opts: &StreamOptions,
    slot_seen: &mut bool,
    on_event: &(dyn Fn(StreamEvent) + Send + Sync),
) -> End {
    match run_session(conninfo, target, opts, slot_seen, on_event).await {
        Ok(()) => End::Cancelled,
        Err(e) => e,
    }
}

/// One connection's worth of streaming. `slot_seen`: an earlier session of this process had the
/// slot, so finding none now means someone dropped it.
async fn run_session(
    conninfo: &str,
    target: &protocol::Target,
    opts: &StreamOptions,
    slot_seen: &mut bool,
    on_event: &(dyn Fn(StreamEvent) + Send + Sync),
) -> Result<(), End> {
    let mut server = Server::connect(conninfo).await?;
    slot::check_server(&mut server).await?;
    let seg_size = server.wal_segment_size().await?;
    let slot = slot::ensure(&mut server, &opts.name).await?;
    if slot.created && *slot_seen && !slot.recreated_after_loss {
        on_event(StreamEvent::Gap {
            reason: format!(
                "replication slot `{}` was dropped while the streamer used it and was made anew; the WAL written meanwhile reaches the locations through the archive only",
                opts.name
            ),
        });
    }
    *slot_seen = true;
    if slot.recreated_after_loss {
        on_event(StreamEvent::Gap {
            reason: format!(
                "the server invalidated replication slot `{}` (it kept more WAL than max_slot_wal_keep_size allows) and it was made anew; the WAL between reaches the locations through the archive only",
                opts.name
            ),
        });
    }
    let mut conn = ReplicationConn::connect(target, CONNECT_TIMEOUT)
        .await
        .map_err(|e| replication_error(target, e))?;
    let ident = conn
        .query("IDENTIFY_SYSTEM")
        .await
        .map_err(|e| replication_error(target, e))?;
    let row = ident
        .first()
        .ok_or_else(|| End::Retry("IDENTIFY_SYSTEM returned no row".into()))?;
    let timeline: u32 = row
        .get(1)
        .cloned()
        .flatten()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| End::Retry("IDENTIFY_SYSTEM: no timeline".into()))?;
    let server_pos = row
        .get(2)
        .cloned()
        .flatten()
        .and_then(|l| crate::restore::parse_lsn(&l))
        .unwrap_or(0);
    let at = slot.restart_lsn.unwrap_or(server_pos);
    // From the start of the slot's segment: the server keeps that whole segment, and every tail
    // then begins at byte 0.
    let from = at - at % seg_size;
    if let Err(e) = conn.start(Some(&opts.name), from, timeline).await {
        if e.code() == Some("58P01") {
            return Err(End::Retry(format!(
                "the server no longer has WAL from {}: {e}",
                fmt_lsn(from)
            )));
        }
        return Err(replication_error(target, e));
    }
    on_event(StreamEvent::Started {
        timeline,
        from: fmt_lsn(from),
        slot_created: slot.created,
    });

    let shared = Arc::new(Shared {
        state: Mutex::new(Received::new(seg_size, timeline, from)),
        data: tokio::sync::Notify::new(),
        stored: tokio::sync::Notify::new(),
    });
    let writers_cancel = opts.cancel.child_token();
    let mut writers = Writers {
        running: HashMap::new(),
        shared: shared.clone(),
        cancel: writers_cancel.clone(),
        from,
        min_interval: opts.min_interval,
        synchronous: opts.synchronous,
    };
    let mut targets = opts.targets.clone();
    writers.reconcile(&targets.borrow_and_update());
    let result = pump(
        &mut conn,
        &mut server,
        &shared,
        &mut writers,
        &mut targets,
        opts,
        on_event,
    )
    .await;
    writers_cancel.cancel();
    for (_, h) in writers.running.drain() {
        let _ = h.await;
    }
    result
}

/// The writer task of every location, started and stopped as the targets change.
struct Writers {
    running: HashMap<String, tokio::task::JoinHandle<()>>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    /// Where the session started.
    from: u64,
    min_interval: Duration,
    synchronous: bool,
}

impl Writers {
    fn reconcile(&mut self, targets: &[btar_engine::StreamTarget]) {
        let wanted: HashMap<&str, &btar_engine::StreamTarget> =
            targets.iter().map(|t| (t.region.as_str(), t)).collect();
        self.running.retain(|region, h| {
            let keep = wanted.contains_key(region.as_str());
            if !keep {
                h.abort();
            }
            keep
        });
        let mut st = self.shared.lock();
        st.sinks.retain(|r, _| wanted.contains_key(r.as_str()));
        for (region, t) in wanted {
            if self.running.contains_key(region) {
                continue;
            }
            // A location added mid-stream gets the kept segments from their start.
            let durable = st.oldest().max(self.from);
            st.sinks.insert(
                region.to_string(),
                Sink {
                    primary: t.primary,
                    durable,
                    ..Sink::default()
                },
            );
            let interval = if t.primary && self.synchronous {
                Duration::ZERO
            } else {
                self.min_interval
            };
            let h = tokio::spawn(sink::run(
                t.clone(),
                self.shared.clone(),
                interval,
                self.cancel.clone(),
            ));
            self.running.insert(region.to_string(), h);
        }
    }
}

/// Receives WAL and hands it to the writers; tells the server what the primary location holds;
/// reports progress.
async fn pump(
    conn: &mut ReplicationConn,
    server: &mut Server,
    shared: &Arc<Shared>,
    writers: &mut Writers,
    targets: &mut tokio::sync::watch::Receiver<Vec<btar_engine::StreamTarget>>,
    opts: &StreamOptions,
    on_event: &(dyn Fn(StreamEvent) + Send + Sync),
) -> Result<(), End> {
    let mut progress = tokio::time::interval(Duration::from_secs(1));
    let mut status = tokio::time::interval(STATUS_EVERY);
    let mut retained = None;
    loop {
        tokio::select! {
            m = conn.next() => {
                match m.map_err(|e| End::Retry(format!("replication stream: {e}")))? {
                    Streamed::Wal { start, server_end, data } => {
                        let mut st = shared.lock();
                        st.append(start, &data).map_err(End::Retry)?;
                        st.server_end = st.server_end.max(server_end);
                        drop(st);
                        shared.data.notify_waiters();
                    }
                    Streamed::Keepalive { server_end, reply_requested } => {
                        {
                            let mut st = shared.lock();
                            st.server_end = st.server_end.max(server_end);
                        }
                        if reply_requested {
                            report(conn, shared, true).await?;
                        }
                    }
                    Streamed::Done => {
                        return Err(End::Retry("the server ended the stream (its timeline ended)".into()));
                    }
                }
            }
            _ = shared.stored.notified() => {
                report(conn, shared, false).await?;
            }
            _ = status.tick() => {
                report(conn, shared, false).await?;
                retained = slot::retained_bytes(server, &opts.name).await.ok().flatten();
                if retained.is_none() {
                    return Err(End::Retry(format!("replication slot `{}` was dropped", opts.name)));
                }
            }
            _ = progress.tick() => {
                on_event(StreamEvent::Progress { positions: positions(shared), slot_retained_bytes: retained });
            }
            changed = targets.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                writers.reconcile(&targets.borrow_and_update());
            }
            _ = opts.cancel.cancelled() => return Ok(()),
        }
    }
}

/// Tells the server how far WAL was received and how far the primary location holds it.
async fn report(conn: &mut ReplicationConn, shared: &Shared, reply: bool) -> Result<(), End> {
    let (received, flushed) = {
        let st = shared.lock();
        let flushed = st
            .sinks
            .values()
            .filter(|s| s.primary)
            .map(|s| s.durable)
            .min()
            .unwrap_or(0);
        (st.end, flushed)
    };
    conn.report(received, flushed, reply)
        .await
        .map_err(|e| End::Retry(format!("replication stream: {e}")))
}

fn positions(shared: &Shared) -> Vec<StreamPosition> {
    let st = shared.lock();
    let server = st.server_end.max(st.end);
    let mut out: Vec<StreamPosition> = st
        .sinks
        .iter()
        .map(|(region, s)| StreamPosition {
            region: region.clone(),
            primary: s.primary,
            position: fmt_lsn(s.durable),
            server_position: fmt_lsn(server),
            bytes_behind: server.saturating_sub(s.durable),
            seconds_behind: st
                .waiting_since(s.durable)
                .map(|t| t.elapsed().as_secs_f64())
                .unwrap_or(0.0),
            error: s.error.clone(),
        })
        .collect();
    out.sort_by(|a, b| (!a.primary, &a.region).cmp(&(!b.primary, &b.region)));
    out
}
