//! Retry backoff and circuit breaker of the writer (one writer per sink, so one breaker).
//!
//! Every failed attempt doubles the wait before the next one (from `initial_delay` up to `max_delay`).
//! `threshold` consecutive failures open the breaker: the sink reports unhealthy (readiness false) and attempts
//! only when the backoff expires (half-open: one probe). The first success closes it.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    /// Open, and the backoff has expired: the next attempt is a probe.
    HalfOpen,
    Open,
}

impl BreakerState {
    /// The value of the `state_breaker_state` gauge.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    failures: u32,
    retry_at: Option<Instant>,
    threshold: u32,
    initial_delay: Duration,
    max_delay: Duration,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, initial_delay: Duration, max_delay: Duration) -> Breaker {
        Breaker {
            failures: 0,
            retry_at: None,
            threshold: threshold.max(1),
            initial_delay: initial_delay.max(Duration::from_millis(1)),
            max_delay: max_delay.max(initial_delay),
        }
    }

    /// Records a failure at `now`; returns the wait before the next attempt.
    pub(crate) fn failure(&mut self, now: Instant) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let exponent = self.failures.saturating_sub(1).min(20);
        let delay = self
            .initial_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        self.retry_at = Some(now + delay);
        delay
    }

    pub(crate) fn success(&mut self) {
        self.failures = 0;
        self.retry_at = None;
    }

    /// Consecutive failures so far.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// When the next attempt may start (`None`: any time).
    pub(crate) fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    pub(crate) fn may_attempt(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|at| at <= now)
    }

    pub(crate) fn state(&self, now: Instant) -> BreakerState {
        if self.failures < self.threshold {
            BreakerState::Closed
        } else if self.may_attempt(now) {
            BreakerState::HalfOpen
        } else {
            BreakerState::Open
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.failures < self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn backs_off_exponentially_and_opens_after_the_threshold() {
        let mut breaker = Breaker::new(3, Duration::from_millis(50), Duration::from_millis(300));
        let start = Instant::now();
        assert_eq!(breaker.state(start), BreakerState::Closed);
        assert_eq!(breaker.failure(start), Duration::from_millis(50));
        assert_eq!(breaker.failure(start), Duration::from_millis(100));
        assert!(breaker.is_closed());
        assert_eq!(breaker.failure(start), Duration::from_millis(200));
        assert_eq!(breaker.state(start), BreakerState::Open);
        assert!(!breaker.may_attempt(start));
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(breaker.state(Instant::now()), BreakerState::HalfOpen);
        assert_eq!(
            breaker.failure(Instant::now()),
            Duration::from_millis(300),
            "capped"
        );
        breaker.success();
        assert_eq!(breaker.state(Instant::now()), BreakerState::Closed);
        assert!(breaker.may_attempt(Instant::now()));
    }
}
