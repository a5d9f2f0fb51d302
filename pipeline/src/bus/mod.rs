//! The event bus: named topics split into partitions, each an append-only log addressed by offset.
//!
//! One trait, several implementations: [`memory::MemoryBus`] (the embedded default), [`durable::DurableBus`]
//! (the embedded bus with a write-ahead log under `--data-dir`), and the Fluvio adapter. The trait is shaped after
//! what a Fluvio cluster offers (keyed records, per-partition offsets, consumer offsets stored per group) so that
//! the adapter stays thin: producers append batches and learn the offsets; consumers fetch from an offset in
//! bounded batches and commit what they have fully processed.

pub mod durable;
#[cfg(feature = "fluvio")]
pub mod fluvio;
pub mod memory;
pub mod partition;
pub mod wal;

#[cfg(test)]
mod conformance;
pub(crate) mod fsutil;
mod offsets;
mod util;

pub use offsets::ProtectedConsumer;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

/// Position of a record inside one partition: 0 for the first record ever appended.
pub type Offset = u64;

/// The input topic every producer writes CloudEvents to.
pub const INPUT_TOPIC: &str = "social-events";
/// Where rejected input goes, with the reason.
pub const DEAD_LETTER_TOPIC: &str = "social-events-dead-letter";

/// A record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Partitioning key (the user the event concerns). Empty when the record has none.
    pub key: Bytes,
    pub value: Bytes,
    /// Milliseconds since the Unix epoch at which the bus accepted the record (ingest time, not event time).
    pub timestamp_ms: i64,
}

/// A record read back from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub offset: Offset,
    pub key: Bytes,
    pub value: Bytes,
    pub timestamp_ms: i64,
}

/// How a topic is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
}

impl TopicSpec {
    /// A topic needs at least one partition: with none, nothing appended to it could be kept.
    pub fn check(&self) -> Result<(), BusError> {
        if self.partitions == 0 {
            return Err(BusError::Backend(format!(
                "topic {:?} needs at least one partition",
                self.name
            )));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    #[error("topic {topic:?} has no partition {partition}")]
    UnknownPartition { topic: String, partition: u32 },
    #[error("topic {topic:?} already exists with {existing} partitions, not {requested}")]
    PartitionMismatch {
        topic: String,
        existing: u32,
        requested: u32,
    },
    /// The requested offset is older than what the partition still retains; `earliest` is the first one it has.
    #[error("offset {requested} is no longer retained (earliest is {earliest})")]
    OffsetOutOfRange { requested: Offset, earliest: Offset },
    /// The requested offset was never written: it is past `end`, the offset the next appended record gets. A
    /// consumer that sees this lost track of the log (for example, its topic was recreated) and must seek.
    #[error("offset {requested} is beyond the end of the partition ({end})")]
    OffsetBeyondEnd { requested: Offset, end: Offset },
    /// The bus cannot take more records right now (bounded queues); the caller may retry later.
    #[error("bus is full, retry later")]
    Backpressure,
    #[error("bus is shutting down")]
    Closed,
    #[error("storage error: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt log: {0}")]
    Corrupt(String),
    #[error("backend error: {0}")]
    Backend(String),
}

impl BusError {
    /// Whether retrying the same call later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            BusError::Backpressure | BusError::Io(_) | BusError::Backend(_)
        )
    }
}

/// Appends `records` to `partition` of `topic`, waiting while the bus pushes back ([`BusError::Backpressure`]: a
/// partition full of records a protected consumer has not committed, during an outage of what it writes to). A
/// refused append wrote nothing, so the next attempt writes each record once. Any other error is returned at
/// once, and [`BusError::Closed`] when `shutdown` comes first.
pub async fn append_when_room(
    bus: &dyn Bus,
    topic: &str,
    partition: u32,
    records: Vec<Record>,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<Offset, BusError> {
    let mut backoff = Duration::from_millis(50);
    loop {
        match bus.append(topic, partition, records.clone()).await {
            Err(BusError::Backpressure) => {
                metrics::counter!("pipeline_bus_backpressure_waits_total").increment(1);
                tokio::select! {
                    _ = shutdown.cancelled() => return Err(BusError::Closed),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            appended => return appended,
        }
    }
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Creates the topic when missing. An existing topic with another partition count is an error.
    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<(), BusError>;

    /// Number of partitions of an existing topic.
    fn partitions(&self, topic: &str) -> Result<u32, BusError>;

    /// Appends records to one partition, in order, and returns the offset of the first one. When this returns
    /// `Ok`, the records are as durable as the implementation promises (fsynced for the durable bus).
    async fn append(&self, topic: &str, partition: u32, records: Vec<Record>) -> Result<Offset, BusError>;

    /// Reads up to `max_records` records starting at `from`. Waits up to `max_wait` for at least one record when
    /// `from` is the end of the partition; returns an empty vector when none arrived in time.
    async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        from: Offset,
        max_records: usize,
        max_wait: Duration,
    ) -> Result<Vec<StoredRecord>, BusError>;

    /// First offset still retained in the partition.
    async fn start_offset(&self, topic: &str, partition: u32) -> Result<Offset, BusError>;

    /// Offset the next appended record will get.
    async fn end_offset(&self, topic: &str, partition: u32) -> Result<Offset, BusError>;

    /// Records that consumer group `group` has processed everything before `next_offset`.
    async fn commit(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        next_offset: Offset,
    ) -> Result<(), BusError>;

    /// The last offset committed by `group`, if any.
    async fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<Offset>, BusError>;

    /// Flushes and stops background work; later calls fail with [`BusError::Closed`].
    async fn close(&self) -> Result<(), BusError>;

    /// Whether what this bus holds outlives the process (on disk, or in a cluster): a restarted reader finds its
    /// input, and its own earlier output, again.
    fn outlives_process(&self) -> bool {
        true
    }
}
