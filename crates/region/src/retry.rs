use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Exponential backoff with full jitter. The one retry helper of btar: every store call goes through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    pub fn no_retry() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let cap = exp.min(self.max);
        // Full jitter keeps many replicators from retrying in lockstep against a recovering store.
        cap.mul_f64(rand::random::<f64>().max(0.1))
    }
}

/// Outcome of one attempt: whether a failure is worth retrying.
#[derive(Debug)]
pub enum Attempt<E> {
    Transient(E),
    Permanent(E),
}

/// Runs `op` until it succeeds, fails permanently, runs out of attempts, or `cancel` fires.
/// Returns the last error and the number of attempts made.
pub async fn with_backoff<T, E, F, Fut>(
    policy: RetryPolicy,
    cancel: &CancellationToken,
    mut op: F,
) -> Result<T, RetryError<E>>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt<E>>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(RetryError::Cancelled),
            r = op() => r,
        };
        match result {
            Ok(v) => return Ok(v),
            Err(Attempt::Permanent(e)) => {
                return Err(RetryError::Failed {
                    error: e,
                    attempts: attempt,
                });
            }
            Err(Attempt::Transient(e)) if attempt >= policy.max_attempts => {
                return Err(RetryError::Failed {
                    error: e,
                    attempts: attempt,
                });
            }
            Err(Attempt::Transient(e)) => {
                let wait = policy.delay(attempt);
                tracing::debug!(attempt, ?wait, error = %e, "transient store error, retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return Err(RetryError::Cancelled),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

#[derive(Debug)]
pub enum RetryError<E> {
    Failed { error: E, attempts: u32 },
    Cancelled,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn retries_transient_then_succeeds() {
        let calls = AtomicU32::new(0);
        let r: Result<u32, RetryError<&str>> = with_backoff(
            RetryPolicy::default(),
            &CancellationToken::new(),
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                if n < 3 {
                    Err(Attempt::Transient("down"))
                } else {
                    Ok(n)
                }
            },
        )
        .await;
        assert_eq!(r.unwrap(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_at_max_attempts_and_on_permanent() {
        let policy = RetryPolicy {
            max_attempts: 4,
            ..RetryPolicy::default()
        };
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = with_backoff(policy, &CancellationToken::new(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Attempt::Transient("down"))
        })
        .await;
        assert!(matches!(r, Err(RetryError::Failed { attempts: 4, .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 4);

        let r: Result<(), _> = with_backoff(policy, &CancellationToken::new(), || async {
            Err(Attempt::Permanent("no"))
        })
        .await;
        assert!(matches!(r, Err(RetryError::Failed { attempts: 1, .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn cancellation_interrupts_backoff() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let r: Result<(), RetryError<&str>> =
            with_backoff(RetryPolicy::default(), &cancel, || async {
                Err(Attempt::Transient("down"))
            })
            .await;
        assert!(matches!(r, Err(RetryError::Cancelled)));
    }
}
