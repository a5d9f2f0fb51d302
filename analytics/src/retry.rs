//! Retries with exponential backoff, forever, until the sink is told to stop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::is_transient;
use crate::metrics;
use crate::stats::Stats;

/// The sink's stop signal fired while an operation was still failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stopped;

#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
    pub(crate) attempt_timeout: Duration,
}

/// Runs `attempt` until it succeeds; between failures waits `initial`, `2 * initial`, ... up to `max`.
pub(crate) async fn retry<F, Fut, T>(
    policy: &RetryPolicy,
    stats: &Arc<Stats>,
    stop: &CancellationToken,
    table: &'static str,
    mut attempt: F,
) -> Result<T, Stopped>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = clickhouse::error::Result<T>>,
{
    let mut backoff = policy.initial;
    loop {
        let (transient, message) = match tokio::time::timeout(policy.attempt_timeout, attempt()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => (is_transient(&error), error.to_string()),
            Err(_) => (true, "timed out".to_owned()),
        };
        stats.add_retry();
        metrics::retry(table, transient);
        tracing::warn!(table, transient, error = %message, backoff_ms = backoff.as_millis() as u64,
            "clickhouse write failed, retrying");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stop.cancelled() => return Err(Stopped),
        }
        backoff = (backoff * 2).min(policy.max);
    }
}
