use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::operator::OperatorConfig;

/// Configuration of the topology; serde with defaults, unknown fields rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopologyConfig {
    pub operators: OperatorConfig,
    /// Records read per partition per round.
    pub fetch_max_records: usize,
    /// Pause after a round that read nothing.
    pub poll_interval_ms: u64,
    /// Wall-clock interval between checkpoints.
    pub checkpoint_interval_ms: u64,
    pub checkpoints_kept: usize,
    /// When every partition has been quiet this long (wall clock), release buffered events without waiting for
    /// newer ones. `None`: never (fully deterministic; used by the golden tests).
    pub idle_flush_ms: Option<u64>,
    /// A partition that has had nothing new for this long (wall clock) no longer holds back the watermark.
    /// 0: as soon as one read finds nothing (deterministic for a bus written in advance, as in the golden tests).
    /// A short delay keeps a partition that is only a moment behind the others (the ingest appends one request's
    /// events partition by partition) from turning its events into late data.
    pub partition_idle_ms: u64,
    /// Consumer group under which offsets are committed on the bus.
    pub consumer_group: String,
    /// How long a periodic checkpoint waits for the live-state store to hold every update before it is deferred.
    pub state_flush_timeout_ms: u64,
    /// The same for the final checkpoint at shutdown.
    pub shutdown_state_flush_timeout_ms: u64,
    /// A record whose event time is more than this far after its timestamp on the bus (when its producer gave
    /// one) is dead-lettered (`timestamp_in_future`), in milliseconds: as ingest does for what it receives, for
    /// records written to the input topic by other producers. Decided from the record alone, so a replay
    /// decides the same.
    pub max_future_ms: i64,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        TopologyConfig {
            operators: OperatorConfig::default(),
            fetch_max_records: 512,
            poll_interval_ms: 50,
            checkpoint_interval_ms: 10_000,
            checkpoints_kept: 3,
            idle_flush_ms: Some(2_000),
            partition_idle_ms: 500,
            consumer_group: "social-operators".to_owned(),
            state_flush_timeout_ms: 1_000,
            shutdown_state_flush_timeout_ms: 10_000,
            max_future_ms: crate::ingest::DEFAULT_MAX_FUTURE_MS,
        }
    }
}

impl TopologyConfig {
    pub(crate) fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(1))
    }

    pub(crate) fn state_flush(&self) -> Duration {
        Duration::from_millis(self.state_flush_timeout_ms)
    }

    pub(crate) fn shutdown_state_flush(&self) -> Duration {
        Duration::from_millis(self.shutdown_state_flush_timeout_ms)
    }
}
