//! Connection limits: streams held by this process, concurrent streams per user and new streams per user per
//! minute (a fixed one-minute window), and tickets per user per minute (a ticket stands for a stream about to be
//! opened: at most as many per minute as new streams, so one user cannot fill the ticket store). Anonymous callers
//! are bounded the same way per client address (see `address.rs`), with limits of their own (0: none), so that
//! one host cannot take every slot of the process. Each refusal is a typed error answered `429` (`503` for the
//! process limit) with `Retry-After`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::address::limit_key;
use crate::stream_limits::{StreamBounds, StreamLease};
use crate::{DeliveryError, metrics};

const WINDOW: Duration = Duration::from_secs(60);
/// `Retry-After` for the concurrent-streams limit: a guess at when one of the user's streams ends.
pub(crate) const CONCURRENT_RETRY_AFTER_SECS: u64 = 10;

#[derive(Debug, Clone, Copy)]
pub(crate) struct LimitConfig {
    pub max_connections: usize,
    pub max_streams_per_user: u32,
    pub max_new_per_minute: u32,
    pub max_anonymous_per_address: u32,
    pub max_new_anonymous_per_address_per_minute: u32,
    /// The per-user and per-address stream counts are kept by a [`StreamLimitStore`](crate::StreamLimitStore)
    /// shared with the other nodes: this limiter counts streams against the process limit only, and the store
    /// counts the tickets too.
    pub counted_elsewhere: bool,
}

/// Who opens a stream, as the limits see it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Caller<'a> {
    /// An authenticated user (`sub`).
    User(&'a str),
    /// No token, from this client address (`None`: unknown, bounded by the process limit only).
    Anonymous(Option<IpAddr>),
}

/// What usage is counted under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum UsageKey {
    User(String),
    Address(IpAddr),
}

impl UsageKey {
    /// The name a [`StreamLimitStore`](crate::StreamLimitStore) counts it under: `user:<sub>` or `addr:<address>`.
    pub(crate) fn store_name(&self) -> String {
        match self {
            UsageKey::User(user) => format!("user:{user}"),
            UsageKey::Address(address) => format!("addr:{address}"),
        }
    }
}

struct Usage {
    active: u32,
    window_start: Instant,
    started_in_window: u32,
    tickets_in_window: u32,
}

impl Usage {
    /// The usage under `key`, its window restarted when a minute has passed.
    fn current(users: &mut HashMap<UsageKey, Usage>, key: UsageKey, now: Instant) -> &mut Usage {
        let usage = users.entry(key).or_insert(Usage {
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
    users: Mutex<HashMap<UsageKey, Usage>>,
}

/// Holds one connection slot (and one of the user's or address's, if any) until dropped.
pub(crate) struct Permit {
    limiter: Arc<Limiter>,
    key: Option<UsageKey>,
    /// The user's slot in the counts shared with other nodes, if they keep them.
    lease: Option<StreamLease>,
}

impl Permit {
    /// Holds `lease` as long as this permit.
    pub(crate) fn hold(&mut self, lease: StreamLease) {
        self.lease = Some(lease);
    }
}

impl Limiter {
    pub(crate) fn new(config: LimitConfig) -> Limiter {
        Limiter {
            config,
            total: AtomicUsize::new(0),
            users: Mutex::new(HashMap::new()),
        }
    }

    /// Admits one more stream for `caller` or says why not.
    pub(crate) fn admit(self: &Arc<Self>, caller: Caller<'_>) -> Result<Permit, DeliveryError> {
        let result = self.admit_inner(caller);
        if let Err(error) = &result {
            count_refusal(error);
        }
        result
    }

    fn admit_inner(self: &Arc<Self>, caller: Caller<'_>) -> Result<Permit, DeliveryError> {
        let previous = self.total.fetch_add(1, Ordering::AcqRel);
        if previous >= self.config.max_connections {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(DeliveryError::AtCapacity { retry_after_secs: 5 });
        }
        let counted = self.counted(caller).filter(|_| !self.config.counted_elsewhere);
        let Some((key, bounds)) = counted else {
            return Ok(self.untracked_permit());
        };
        let refused = self.with_usage(key.clone(), |usage, now| Self::admit_stream(bounds, usage, now));
        if let Err(error) = refused {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return Err(error);
        }
        Ok(Permit {
            limiter: self.clone(),
            key: Some(key),
            lease: None,
        })
    }

    /// What `caller`'s streams count under and the limits they count against; `None` when nothing is to be
    /// counted (an unknown address, or both limits 0: no usage entry either).
    pub(crate) fn counted(&self, caller: Caller<'_>) -> Option<(UsageKey, StreamBounds)> {
        let (key, bounds) = match caller {
            Caller::User(user) => (
                UsageKey::User(user.to_owned()),
                StreamBounds {
                    concurrent: self.config.max_streams_per_user,
                    per_minute: self.config.max_new_per_minute,
                },
            ),
            Caller::Anonymous(Some(address)) => (
                UsageKey::Address(limit_key(address)),
                StreamBounds {
                    concurrent: self.config.max_anonymous_per_address,
                    per_minute: self.config.max_new_anonymous_per_address_per_minute,
                },
            ),
            Caller::Anonymous(None) => return None,
        };
        (bounds.concurrent > 0 || bounds.per_minute > 0).then_some((key, bounds))
    }

    /// A slot of the process limit only.
    fn untracked_permit(self: &Arc<Self>) -> Permit {
        Permit {
            limiter: self.clone(),
            key: None,
            lease: None,
        }
    }

    /// Runs `f` on the usage under `key` in its current window, under the lock.
    fn with_usage<T>(
        &self,
        key: UsageKey,
        f: impl FnOnce(&mut Usage, Instant) -> Result<T, DeliveryError>,
    ) -> Result<T, DeliveryError> {
        let now = Instant::now();
        let mut users = self
            .users
            .lock()
            .map_err(|_| DeliveryError::Backend("limiter lock".into()))?;
        f(Usage::current(&mut users, key, now), now)
    }

    fn admit_stream(bounds: StreamBounds, usage: &mut Usage, now: Instant) -> Result<(), DeliveryError> {
        if bounds.concurrent > 0 && usage.active >= bounds.concurrent {
            return Err(DeliveryError::TooManyStreams {
                retry_after_secs: CONCURRENT_RETRY_AFTER_SECS,
            });
        }
        if bounds.per_minute > 0 && usage.started_in_window >= bounds.per_minute {
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
        self.with_usage(UsageKey::User(user.to_owned()), |usage, now| {
            if self.config.max_new_per_minute > 0 && usage.tickets_in_window >= self.config.max_new_per_minute
            {
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

/// Counts a refused stream in the limit metrics (for the shared counts too).
pub(crate) fn count_refusal(error: &DeliveryError) {
    metrics::limit_rejected(match error {
        DeliveryError::TooManyStreams { .. } => "concurrent",
        DeliveryError::RateLimited { .. } => "rate",
        _ => "capacity",
    });
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.total.fetch_sub(1, Ordering::AcqRel);
        let Some(key) = &self.key else { return };
        let Ok(mut users) = self.limiter.users.lock() else {
            return;
        };
        if let Some(usage) = users.get_mut(key) {
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
            max_anonymous_per_address: per_user,
            max_new_anonymous_per_address_per_minute: per_minute,
            counted_elsewhere: false,
        }))
    }

    fn address(text: &str) -> Caller<'static> {
        Caller::Anonymous(Some(text.parse().unwrap()))
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_and_rate_limits() {
        let limiter = limiter(100, 2, 3);
        let a = limiter.admit(Caller::User("u1")).unwrap();
        let _b = limiter.admit(Caller::User("u1")).unwrap();
        assert!(matches!(
            limiter.admit(Caller::User("u1")),
            Err(DeliveryError::TooManyStreams { .. })
        ));
        drop(a);
        let _c = limiter.admit(Caller::User("u1")).unwrap();
        drop(_c);
        match limiter.admit(Caller::User("u1")) {
            Err(DeliveryError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 60),
            other => panic!("{:?}", other.err()),
        }
        assert!(limiter.admit(Caller::User("u2")).is_ok());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(limiter.admit(Caller::User("u1")).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn anonymous_callers_are_bounded_per_address() {
        let limiter = limiter(100, 2, 3);
        let a = limiter.admit(address("192.0.2.1")).unwrap();
        let _b = limiter.admit(address("192.0.2.1")).unwrap();
        assert!(matches!(
            limiter.admit(address("192.0.2.1")),
            Err(DeliveryError::TooManyStreams { .. })
        ));
        // Another address, and a user with the same budget, are not affected.
        let _c = limiter.admit(address("192.0.2.2")).unwrap();
        let _d = limiter.admit(Caller::User("192.0.2.1")).unwrap();
        drop(a);
        let _e = limiter.admit(address("192.0.2.1")).unwrap();
        drop(_e);
        assert!(matches!(
            limiter.admit(address("192.0.2.1")),
            Err(DeliveryError::RateLimited { .. })
        ));
        // One IPv6 host's /64 is one address.
        let _f = limiter.admit(address("2001:db8::1")).unwrap();
        let _g = limiter.admit(address("2001:db8::2")).unwrap();
        assert!(limiter.admit(address("2001:db8::3")).is_err());
        // An unknown address is bounded by the process limit only.
        let unknown: Vec<Permit> = (0..10)
            .map(|_| limiter.admit(Caller::Anonymous(None)).unwrap())
            .collect();
        assert_eq!(unknown.len(), 10);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(limiter.admit(address("192.0.2.1")).is_ok());
    }

    #[test]
    fn zero_is_no_limit() {
        let limiter = limiter(100, 0, 0);
        let permits: Vec<Permit> = (0..50)
            .map(|_| limiter.admit(address("192.0.2.1")).unwrap())
            .chain((0..50).map(|_| limiter.admit(Caller::User("u")).unwrap()))
            .collect();
        assert_eq!(permits.len(), 100);
        assert!(limiter.admit_ticket("u").is_ok());
    }

    #[test]
    fn process_limit_counts_anonymous_callers() {
        let limiter = limiter(2, 10, 10);
        let _a = limiter.admit(Caller::Anonymous(None)).unwrap();
        let _b = limiter.admit(Caller::User("u")).unwrap();
        assert!(matches!(
            limiter.admit(address("192.0.2.1")),
            Err(DeliveryError::AtCapacity { .. })
        ));
        drop(_a);
        assert_eq!(limiter.active(), 1);
        assert!(limiter.admit(address("192.0.2.1")).is_ok());
    }
}
