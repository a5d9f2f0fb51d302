//! Configuration of the live-state writer (serde, every field defaulted, unknown fields rejected).

use std::time::Duration;

use serde::Deserialize;

use crate::{StateError, keys};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisStateConfig {
    /// `redis://[user:password@]host:port[/db]` (no TLS).
    pub url: String,
    /// Prepended to every key; no braces.
    pub key_prefix: String,
    /// Longest time an update waits before it is written, in milliseconds (coalescing window).
    pub flush_interval_ms: u64,
    /// Distinct `(topic, part)` keys held before `apply` waits (a soft bound: one batch may overshoot it).
    pub max_buffered_keys: usize,
    /// Topic writes per pipeline (one round trip each).
    pub max_topics_per_pipeline: usize,
    /// How long one command may take before it fails as unavailable, in milliseconds.
    pub response_timeout_ms: u64,
    /// How long one connection attempt may take, in milliseconds.
    pub connect_timeout_ms: u64,
    /// First wait after a failed attempt, in milliseconds; doubled per consecutive failure.
    pub retry_initial_delay_ms: u64,
    /// Longest wait between two attempts, in milliseconds.
    pub retry_max_delay_ms: u64,
    /// Consecutive failed attempts that open the circuit breaker (readiness false).
    pub breaker_failure_threshold: u32,
    /// Interval of the `PING` that checks Redis while there is nothing to write, in milliseconds.
    pub health_check_interval_ms: u64,
    /// How long the writer keeps trying to write what is buffered after shutdown, in milliseconds.
    pub shutdown_flush_timeout_ms: u64,
}

impl Default for RedisStateConfig {
    fn default() -> Self {
        RedisStateConfig {
            url: "redis://127.0.0.1:6379".to_owned(),
            key_prefix: keys::DEFAULT_PREFIX.to_owned(),
            flush_interval_ms: 50,
            max_buffered_keys: 200_000,
            max_topics_per_pipeline: 512,
            response_timeout_ms: 2_000,
            connect_timeout_ms: 1_000,
            retry_initial_delay_ms: 50,
            retry_max_delay_ms: 2_000,
            breaker_failure_threshold: 3,
            health_check_interval_ms: 1_000,
            shutdown_flush_timeout_ms: 5_000,
        }
    }
}

impl RedisStateConfig {
    /// The defaults for `url` and `key_prefix`.
    pub fn new(url: &str, key_prefix: &str) -> RedisStateConfig {
        RedisStateConfig {
            url: url.to_owned(),
            key_prefix: key_prefix.to_owned(),
            ..RedisStateConfig::default()
        }
    }

    pub(crate) fn validate(&self) -> Result<(), StateError> {
        if self.max_buffered_keys == 0 || self.max_topics_per_pipeline == 0 {
            return Err(StateError::Config(
                "max_buffered_keys and max_topics_per_pipeline must be positive".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }

    pub(crate) fn health_check_interval(&self) -> Duration {
        Duration::from_millis(self.health_check_interval_ms.max(10))
    }
}
