//! Bounded retries of transient failures: exponential backoff with jitter, honouring
//! `Retry-After`, limited in attempts and in total delay.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

/// How hard to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// No retry starts after this much waiting in all.
    pub total_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            min_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            total_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// For a dry run: answer fast, a registry that is down only makes the state unknown.
    pub fn quick() -> RetryPolicy {
        RetryPolicy {
            attempts: 2,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(1),
            total_delay: Duration::from_secs(2),
        }
    }
}

/// A failure that may or may not be worth another attempt.
pub trait Transient {
    /// Whether trying again may succeed (connection reset, 429, 5xx, throttling).
    fn is_transient(&self) -> bool;
    /// How long the server asked us to wait.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// Runs `op` until it succeeds, fails for good, or the policy is spent; returns the result and
/// how many attempts were made.
pub async fn retry<T, E, Fut, F>(policy: RetryPolicy, mut op: F) -> (Result<T, E>, usize)
where
    E: Transient,
    Fut: Future<Output = Result<T, E>>,
    F: FnMut() -> Fut,
{
    let attempts = AtomicUsize::new(0);
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.attempts.saturating_sub(1))
        .with_total_delay(Some(policy.total_delay))
        .with_jitter();
    let max_delay = policy.max_delay;
    let result = (|| {
        attempts.fetch_add(1, Ordering::SeqCst);
        op()
    })
    .retry(backoff)
    .sleep(tokio::time::sleep)
    .when(|e: &E| e.is_transient())
    .adjust(move |e: &E, delay| {
        // Never retry sooner than asked; never wait longer than the cap for it.
        delay.map(|d| match e.retry_after() {
            Some(asked) => d.max(asked.min(max_delay * 4)),
            None => d,
        })
    })
    .await;
    (result, attempts.load(Ordering::SeqCst))
}

/// `Retry-After` in seconds (the HTTP-date form is rare from registries and is ignored).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(bool, Option<Duration>);
    impl Transient for E {
        fn is_transient(&self) -> bool {
            self.0
        }
        fn retry_after(&self) -> Option<Duration> {
            self.1
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            total_delay: Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn retries_transient_then_succeeds() {
        let mut n = 0;
        let (r, attempts) = retry(fast(), || {
            n += 1;
            let fail = n < 3;
            async move {
                if fail {
                    Err(E(true, None))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 3);
        assert_eq!(attempts, 3);
    }

    #[tokio::test]
    async fn stops_on_permanent_and_when_spent() {
        let (r, attempts) = retry(fast(), || async { Err::<(), _>(E(false, None)) }).await;
        assert!(r.is_err());
        assert_eq!(attempts, 1);
        let (r, attempts) = retry(fast(), || async { Err::<(), _>(E(true, None)) }).await;
        assert!(r.is_err());
        assert_eq!(attempts, 4);
    }

    #[tokio::test]
    async fn honours_retry_after() {
        let start = std::time::Instant::now();
        let mut n = 0;
        let (r, _) = retry(fast(), || {
            n += 1;
            let fail = n < 2;
            async move {
                if fail {
                    Err(E(true, Some(Duration::from_millis(15))))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        r.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(15));
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
    }
}
