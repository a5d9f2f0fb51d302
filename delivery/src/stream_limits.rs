//! Per-user stream limits counted across every node that shares a store.
//!
//! [`Limiter`](crate::limits) counts what one process holds. With several delivery nodes behind one address, a
//! user's streams spread over the nodes, so a per-node count would let a user hold `nodes x` the configured number
//! of concurrent streams and open that many more per minute. A [`StreamLimitStore`] counts them where every node
//! sees them (Redis: [`RedisStreamLimits`](crate::redis::RedisStreamLimits)); with one, the nodes leave the per-user
//! counts to it and keep only their process-wide limit and the per-address limits of anonymous streams.

use async_trait::async_trait;

use crate::DeliveryError;

/// One user's limits; 0 is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserBounds {
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

/// Where the per-user counts of every node are kept.
#[async_trait]
pub trait StreamLimitStore: Send + Sync {
    /// Counts one more stream of `user`, or refuses it with `TooManyStreams` or `RateLimited` (both with
    /// `Retry-After`), or fails with `Backend` when the store cannot be reached.
    async fn acquire(&self, user: &str, bounds: UserBounds) -> Result<StreamLease, DeliveryError>;
}
