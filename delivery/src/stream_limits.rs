//! Stream limits counted across every node that shares a store.
//!
//! [`Limiter`](crate::limits) counts what one process holds. With several delivery nodes behind one address, the
//! streams of a user (or of an anonymous client address) spread over the nodes, so per-node counts would let them
//! hold `nodes x` the configured number of concurrent streams and open that many more per minute. A
//! [`StreamLimitStore`] counts them where every node sees them (Redis:
//! [`RedisStreamLimits`](crate::redis::RedisStreamLimits)); with one, the nodes leave the per-user and per-address
//! counts to it and keep only their process-wide limit. The tickets a user gets per minute are counted there too.

use async_trait::async_trait;

use crate::DeliveryError;

/// The limits of one user or client address; 0 is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamBounds {
    /// Streams (and long polls) open at once.
    pub concurrent: u32,
    /// Streams (and polls) opened per minute.
    pub per_minute: u32,
}

/// A counted stream: its slot is given back when the lease is dropped.
pub struct StreamLease {
    _release: Option<Box<dyn Send + Sync>>,
}

impl StreamLease {
    /// A lease that gives its slot back when `release` is dropped.
    pub fn new(release: impl Send + Sync + 'static) -> StreamLease {
        StreamLease {
            _release: Some(Box::new(release)),
        }
    }

    /// A lease with nothing to give back (no concurrency limit).
    pub fn none() -> StreamLease {
        StreamLease { _release: None }
    }
}

/// Where the counts of every node are kept.
#[async_trait]
pub trait StreamLimitStore: Send + Sync {
    /// Counts one more stream of `counted` (`user:<id>`, or `addr:<address>` for an anonymous client, IPv6 by
    /// its /64), or refuses it with `TooManyStreams` or `RateLimited` (both with `Retry-After`), or fails
    /// with `Backend` when the store cannot be reached.
    async fn acquire(&self, counted: &str, bounds: StreamBounds) -> Result<StreamLease, DeliveryError>;

    /// Counts one more ticket issued to `user` this minute, or refuses it with `TicketRateLimited` (with
    /// `Retry-After`) past `per_minute` (0: no limit), or fails with `Backend`.
    async fn admit_ticket(&self, user: &str, per_minute: u32) -> Result<(), DeliveryError>;
}
