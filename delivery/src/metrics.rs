//! Metrics of the spec's monitoring section, through the `metrics` facade (the binary installs the Prometheus
//! recorder). Every label value comes from a small fixed set: topic kinds, transports, close reasons, replay results,
//! error codes, limit names. Never a user id or a topic name.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `delivery_connections_opened_total` | counter | `transport` (`sse`, `poll`) |
//! | `delivery_connections_closed_total` | counter | `transport`, `reason` (`client`, `expired`, `slow`, `shutdown`, `done`) |
//! | `delivery_connections_active` | gauge | `transport` |
//! | `delivery_subscriptions` | gauge | `kind` (topic kind) |
//! | `delivery_messages_published_total` | counter | `kind` |
//! | `delivery_messages_written_total` | counter | |
//! | `delivery_publish_to_write_latency_seconds` | histogram | |
//! | `delivery_slow_client_disconnects_total` | counter | |
//! | `delivery_replay_total` | counter | `result` (`hit`, `miss`, `reset`) |
//! | `delivery_auth_rejections_total` | counter | `reason` (an error code) |
//! | `delivery_limit_rejections_total` | counter | `limit` (`topics`, `concurrent`, `rate`, `capacity`) |
//! | `delivery_history_total_cap_evictions_total` | counter | |
//!
//! The publish-to-write latency also goes to the process's [`LatencyObserver`], when one is installed with
//! [`observe_write_latency`] (the binary feeds ClickHouse's `delivery_latency` with it).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::topics::TopicKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Sse,
    Poll,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::Poll => "poll",
        }
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The client went away.
    Client,
    /// The token expired.
    Expired,
    /// Cut off as too slow.
    Slow,
    /// The server shuts down.
    Shutdown,
    /// A poll answered.
    Done,
}

impl CloseReason {
    fn as_str(self) -> &'static str {
        match self {
            CloseReason::Client => "client",
            CloseReason::Expired => "expired",
            CloseReason::Slow => "slow",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Done => "done",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayResult {
    /// History covered the gap since the client's position.
    Hit,
    /// The resume token had no position for the topic (it starts live).
    Miss,
    /// History could not cover the gap: `RESET` sent.
    Reset,
}

pub(crate) fn connection_opened(transport: Transport) {
    metrics::counter!("delivery_connections_opened_total", "transport" => transport.as_str()).increment(1);
    metrics::gauge!("delivery_connections_active", "transport" => transport.as_str()).increment(1.0);
}

pub(crate) fn connection_closed(transport: Transport, reason: CloseReason) {
    metrics::counter!(
        "delivery_connections_closed_total",
        "transport" => transport.as_str(),
        "reason" => reason.as_str()
    )
    .increment(1);
    metrics::gauge!("delivery_connections_active", "transport" => transport.as_str()).decrement(1.0);
}

pub(crate) fn subscription_added(kind: TopicKind) {
    metrics::gauge!("delivery_subscriptions", "kind" => kind.as_str()).increment(1.0);
}

pub(crate) fn subscription_removed(kind: TopicKind) {
    metrics::gauge!("delivery_subscriptions", "kind" => kind.as_str()).decrement(1.0);
}

pub(crate) fn published(kind: TopicKind) {
    metrics::counter!("delivery_messages_published_total", "kind" => kind.as_str()).increment(1);
}

/// A replayed message a sequenced producer published again, dropped by history.
pub(crate) fn duplicate_publish() {
    ::metrics::counter!("delivery_duplicate_publishes_total").increment(1);
}

/// Called with the topic class ([`TopicKind::as_str`]) and the publish-to-write latency of every message written to an SSE stream, on the
/// stream's task: it must be cheap and must not block (count into atomics, aggregate elsewhere).
pub type LatencyObserver = Arc<dyn Fn(&'static str, Duration) + Send + Sync>;

static LATENCY_OBSERVER: OnceLock<LatencyObserver> = OnceLock::new();

/// Installs the process-wide observer of the publish-to-write latency (every [`Delivery`](crate::Delivery) of the
/// process reports to it). Only the first call installs one: a later call gets its observer back as `Err`.
pub fn observe_write_latency(observer: LatencyObserver) -> Result<(), LatencyObserver> {
    LATENCY_OBSERVER.set(observer)
}

pub(crate) fn written(count: u64, latency: Option<(TopicKind, Duration)>) {
    metrics::counter!("delivery_messages_written_total").increment(count);
    if let Some((kind, latency)) = latency {
        metrics::histogram!("delivery_publish_to_write_latency_seconds").record(latency.as_secs_f64());
        if let Some(observer) = LATENCY_OBSERVER.get() {
            observer(kind.as_str(), latency);
        }
    }
}

pub(crate) fn slow_clients_cut_off(count: u64) {
    metrics::counter!("delivery_slow_client_disconnects_total").increment(count);
}

pub(crate) fn replay(result: ReplayResult) {
    let result = match result {
        ReplayResult::Hit => "hit",
        ReplayResult::Miss => "miss",
        ReplayResult::Reset => "reset",
    };
    metrics::counter!("delivery_replay_total", "result" => result).increment(1);
}

pub(crate) fn auth_rejected(code: &'static str) {
    metrics::counter!("delivery_auth_rejections_total", "reason" => code).increment(1);
}

pub(crate) fn limit_rejected(limit: &'static str) {
    metrics::counter!("delivery_limit_rejections_total", "limit" => limit).increment(1);
}
