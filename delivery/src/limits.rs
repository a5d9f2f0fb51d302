//! Connection limits: streams held by this process, concurrent streams per user and new streams per user per
//! minute (a fixed one-minute window), and tickets per user per minute (a ticket stands for a stream about to be
//! opened: at most as many per minute as new streams, so one user cannot fill the ticket store). Anonymous callers
//! are bounded by the process limit only. Each refusal is a
//! typed error answered `429` (`503` for the process limit) with `Retry-After`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::{DeliveryError, metrics};

const WINDOW: Duration = Duration::from_secs(60);
/// `Retry-After` for the concurrent-streams limit: a guess at when one of the user's streams ends.
const CONCURRENT_RETRY_AFTER_SECS: u64 = 10;

#[derive(Debug, Clone, Copy)]
pub(crate) struct LimitConfig {
    pub max_connections: usize,
    pub max_streams_per_user: u32,
    pub max_new_per_minute: u32,
}

struct UserUsage {
    active: u32,
    window_start: Instant,
    started_in_window: u32,
    tickets_in_window: u32,
}

impl UserUsage {
    /// The user's usage, its window restarted when a minute has passed.
    fn current<'a>(users: &'a mut HashMap<String, UserUsage>, user: &str, now: Instant) -> &'a mut UserUsage {
        let usage = users.entry(user.to_owned()).or_insert(UserUsage {
            active: 0,
            window_start: now,
            started_in_window: 0,
            tickets_in_window: 0,
        });
        if now.saturating_duration_since(usage.window_start) >= WINDOW {
            usage.window_start = now;
            usage.started_in_window = 0;
            usage.tickets_in_window = 0;
        }
        usage
    }

    /// Seconds until the window restarts (at least 1).
    fn retry_after_secs(&self, now: Instant) -> u64 {
        let left = WINDOW.saturating_sub(now.saturating_duration_since(self.window_start));
        (left.as_secs_f64().ceil() as u64).max(1)
    }
}

pub(crate) struct Limiter {
    config: LimitConfig,
    total: AtomicUsize,
    users: Mutex<HashMap<String, UserUsage>>,
}

/// Holds one connection slot (and one of the user's, if any) until dropped.
pub(crate) struct Permit {
    limiter: Arc<Limiter>,
    user: Option<String>,
}

impl Limiter {
    pub(crate) fn new(config: LimitConfig) -> Limiter {
        Limiter {
            config,
            total: AtomicUsize::new(0),
            users: Mutex::new(HashMap::new()),
        }
    }

    /// Admits one more stream for `user` (`None`: anonymous) or says why not.
    pub(crate) fn admit(self: &Arc<Self>, user: Option<&str>) -> Result<Permit, DeliveryError> {
        let result = self.admit_inner(user);
        if let Err(error) = &result {
            metrics::limit_rejected(match error {
                DeliveryError::TooManyStreams { .. } => "concurrent",
                DeliveryError::RateLimited { .. } => "rate",
                _ => "capacity",
            });
        }
        result
    }

    fn admit_inner(self: &Arc<Self>, user: Option<&str>) -> Result<Permit, DeliveryError> {
        let previous = self.total.fetch_add(1, Ordering::AcqRel);
        if previous >= self.config.max_connections {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(DeliveryError::AtCapacity { retry_after_secs: 5 });
        }
        let Some(user) = user else {
            return Ok(Permit {
                limiter: self.clone(),
                user: None,
            });
        };
        let refused = self.admit_user(user);
        if let Err(error) = refused {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(error);
        }
        Ok(Permit {
            limiter: self.clone(),
            user: Some(user.to_owned()),
        })
    }

    /// Runs `f` on `user`'s usage in its current window, under the lock.
    fn with_usage<T>(
        &self,
        user: &str,
        f: impl FnOnce(&mut UserUsage, Instant) -> Result<T, DeliveryError>,
    ) -> Result<T, DeliveryError> {
        let now = Instant::now();
        let mut users = self
            .users
            .lock()
            .map_err(|_| DeliveryError::Backend("limiter lock".into()))?;
        f(UserUsage::current(&mut users, user, now), now)
    }

    fn admit_user(&self, user: &str) -> Result<(), DeliveryError> {
        self.with_usage(user, |usage, now| self.admit_stream(usage, now))
    }

    fn admit_stream(&self, usage: &mut UserUsage, now: Instant) -> Result<(), DeliveryError> {
        if usage.active >= self.config.max_streams_per_user {
            return Err(DeliveryError::TooManyStreams {
                retry_after_secs: CONCURRENT_RETRY_AFTER_SECS,
            });
        }
        if usage.started_in_window >= self.config.max_new_per_minute {
            return Err(DeliveryError::RateLimited {
                retry_after_secs: usage.retry_after_secs(now),
            });
        }
        usage.active += 1;
        usage.started_in_window += 1;
        Ok(())
    }

    /// Counts one ticket issued to `user`, or refuses it past `max_new_per_minute` in the current minute.
    pub(crate) fn admit_ticket(&self, user: &str) -> Result<(), DeliveryError> {
        self.with_usage(user, |usage, now| {
            if usage.tickets_in_window >= self.config.max_new_per_minute {
                metrics::limit_rejected("tickets");
                return Err(DeliveryError::TicketRateLimited {
                    retry_after_secs: usage.retry_after_secs(now),
                });
            }
            usage.tickets_in_window += 1;
            Ok(())
        })
    }

    /// Forgets users with no stream whose window has passed (bounded memory); run periodically.
    pub(crate) fn sweep(&self) {
        let now = Instant::now();
        if let Ok(mut users) = self.users.lock() {
            users.retain(|_, usage| {
                usage.active > 0 || now.saturating_duration_since(usage.window_start) < WINDOW
            });
        }
    }

    pub(crate) fn active(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.total.fetch_sub(1, Ordering::AcqRel);
        let Some(user) = &self.user else { return };
        let Ok(mut users) = self.limiter.users.lock() else {
            return;
        };
        if let Some(usage) = users.get_mut(user) {
            usage.active = usage.active.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max_connections: usize, per_user: u32, per_minute: u32) -> Arc<Limiter> {
        Arc::new(Limiter::new(LimitConfig {
            max_connections,
            max_streams_per_user: per_user,
            max_new_per_minute: per_minute,
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_and_rate_limits() {
        let limiter = limiter(100, 2, 3);
        let a = limiter.admit(Some("u1")).unwrap();
        let _b = limiter.admit(Some("u1")).unwrap();
        assert!(matches!(
            limiter.admit(Some("u1")),
            Err(DeliveryError::TooManyStreams { .. })
        ));
        drop(a);
        let _c = limiter.admit(Some("u1")).unwrap();
        drop(_c);
        match limiter.admit(Some("u1")) {
            Err(DeliveryError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 60),
            other => panic!("{:?}", other.err()),
        }
        assert!(limiter.admit(Some("u2")).is_ok());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(limiter.admit(Some("u1")).is_ok());
    }

    #[test]
    fn process_limit_counts_anonymous_callers() {
        let limiter = limiter(2, 10, 10);
        let _a = limiter.admit(None).unwrap();
        let _b = limiter.admit(Some("u")).unwrap();
        assert!(matches!(
            limiter.admit(None),
            Err(DeliveryError::AtCapacity { .. })
        ));
        drop(_a);
        assert_eq!(limiter.active(), 1);
        assert!(limiter.admit(None).is_ok());
    }
}
