//! One location's writer: stores each new run of received WAL as a tail piece, as soon as it
//! arrives and the location's least interval has passed; consolidates a segment's pieces; deletes
//! the tail of a segment once the complete segment is archived there.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use btar_engine::StreamTarget;
use btar_format::{Location, TailPiece};
use btar_region::CancellationToken;
use tokio::sync::Notify;

use super::received::{Job, Received};

/// What the receiver and the writers share.
#[derive(Debug)]
pub struct Shared {
    pub state: Mutex<Received>,
    /// New WAL was received.
    pub data: Notify,
    /// The primary location stored a piece: tell the server.
    pub stored: Notify,
}

impl Shared {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Received> {
        // A writer that panicked leaves consistent numbers behind (they are only ever advanced).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How often a writer looks for tails superseded by archived segments.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub async fn run(
    target: StreamTarget,
    shared: Arc<Shared>,
    min_interval: Duration,
    cancel: CancellationToken,
) {
    let region = target.region.clone();
    let loc = target.location;
    let mut last_put: Option<Instant> = None;
    let mut last_sweep: Option<Instant> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        if cancel.is_cancelled() {
            return;
        }
        if last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY) {
            if let Err(e) = loc.sweep_superseded_tails().await {
                tracing::warn!(region = %region, error = %e, "superseded WAL tails not deleted");
            }
            last_sweep = Some(Instant::now());
        }
        let pending = {
            let st = shared.lock();
            st.sinks.get(&region).is_some_and(|s| s.durable < st.end)
        };
        if !pending {
            let notified = shared.data.notified();
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = cancel.cancelled() => return,
            }
            continue;
        }
        // Coalesce: what arrives during the wait goes into the same piece.
        if let Some(t) = last_put {
            let wait = min_interval.saturating_sub(t.elapsed());
            if !wait.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = cancel.cancelled() => return,
                }
            }
        }
        let Some(job) = shared.lock().job_for(&region) else {
            // Nothing to store after all (the location was removed, or caught up meanwhile): do
            // not spin.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = cancel.cancelled() => return,
            }
            continue;
        };
        if let Some((a, b)) = job.skipped {
            tracing::warn!(
                region = %region,
                from = %super::protocol::fmt_lsn(a),
                to = %super::protocol::fmt_lsn(b),
                "this location fell more than a few segments behind the stream; that WAL reaches it through the archive only"
            );
        }
        last_put = Some(Instant::now());
        match store(&loc, &job).await {
            Ok(()) => {
                backoff = Duration::from_secs(1);
                let primary = {
                    let mut st = shared.lock();
                    let Some(s) = st.sinks.get_mut(&region) else {
                        return;
                    };
                    s.durable = s.durable.max(job.end);
                    s.error = None;
                    let n = s.pieces.entry(job.seg_start).or_default();
                    *n = if job.consolidates { 1 } else { *n + 1 };
                    s.pieces.retain(|seg, _| *seg >= job.seg_start);
                    s.primary
                };
                if primary {
                    shared.stored.notify_one();
                }
            }
            Err(e) => {
                tracing::warn!(region = %region, error = %e, retry_in_ms = backoff.as_millis() as u64, "storing streamed WAL failed");
                if let Some(s) = shared.lock().sinks.get_mut(&region) {
                    s.error = Some(e.to_string());
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = cancel.cancelled() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn store(loc: &Location, job: &Job) -> Result<(), btar_format::FormatError> {
    loc.put_tail_piece(
        &job.timeline,
        &job.name,
        job.start - job.seg_start,
        &job.bytes,
        job.seg_size,
    )
    .await?;
    if job.consolidates {
        let (a, b) = (job.start - job.seg_start, job.end - job.seg_start);
        let older: Vec<TailPiece> = loc
            .tail_pieces(&job.timeline, &job.name)
            .await?
            .into_iter()
            .filter(|p| p.end <= b && (p.start, p.end) != (a, b))
            .collect();
        loc.delete_tail_pieces(&older).await?;
    }
    Ok(())
}
