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
