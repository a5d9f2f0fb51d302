//! Small pieces both embedded buses share: poison-tolerant locking and the long-poll loop of `fetch`.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::BusError;

/// Locks `mutex`, ignoring poisoning: the critical sections of the bus only move plain data and cannot leave it
/// half-updated, so the data behind a poisoned lock is still consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Calls `probe` until it yields something, waking on `notify` after each miss, for at most `max_wait`.
/// Returns `None` when the time ran out. Errors from `probe` end the wait at once.
///
/// The `Notified` future is armed *before* `probe` looks at the partition, so an append that lands between the
/// probe and the wait still wakes us (`notify_waiters` only reaches futures that are already enabled).
pub(crate) async fn poll_until<T>(
    notify: &Notify,
    max_wait: Duration,
    mut probe: impl FnMut() -> Result<Option<T>, BusError>,
) -> Result<Option<T>, BusError> {
    if max_wait.is_zero() {
        // No timer needed (a runtime built without timers would refuse one).
        return probe();
    }
    // `None` means "wait forever": a `max_wait` too large to add to now.
    let deadline = Instant::now().checked_add(max_wait);
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(found) = probe()? {
            return Ok(Some(found));
        }
        match deadline {
            Some(deadline) => {
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    return Ok(None);
                }
            }
            None => notified.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn times_out_without_notification() {
        let notify = Notify::new();
        let started = Instant::now();
        let found: Option<()> = poll_until(&notify, Duration::from_millis(50), || Ok(None))
            .await
            .unwrap();
        assert!(found.is_none());
        assert!(started.elapsed() >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn huge_wait_does_not_overflow() {
        let notify = Notify::new();
        let found = poll_until(&notify, Duration::MAX, || Ok(Some(7))).await.unwrap();
        assert_eq!(found, Some(7));
    }
}
