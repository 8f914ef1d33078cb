/// Progress of a long engine operation (a backup's read, a restore's write), for a progress bar.
/// Called from worker tasks, so it must be cheap and thread-safe.
pub trait Progress: Send + Sync {
    /// The number of bytes the operation will handle, once known.
    fn total(&self, _bytes: u64) {}
    /// `bytes` more were handled.
    fn advance(&self, _bytes: u64) {}
}

/// For callers without a bar.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Runs `work` (a backup into a writer whose counters are `stats`) and moves `progress` along with
/// the bytes the writer has read, at a human pace.
pub async fn follow_writer<T>(
    stats: std::sync::Arc<btar_format::WriteStats>,
    progress: &dyn Progress,
    work: impl std::future::Future<Output = T>,
) -> T {
    use std::sync::atomic::Ordering;
    tokio::pin!(work);
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    let mut shown = 0;
    loop {
        tokio::select! {
            r = &mut work => return r,
            _ = tick.tick() => {
                let now = stats.logical_bytes.load(Ordering::Relaxed);
                progress.advance(now.saturating_sub(shown));
                shown = shown.max(now);
            }
        }
    }
}
