//! [`MemoryBus`]: the embedded default. Each partition is a `VecDeque` of records behind its own mutex, held only
//! to push or to clone a few `Bytes` handles (never across `.await`); memory is bounded by a byte budget per
//! partition, spent oldest-first. Nothing survives the process.
//!
//! As on the durable bus, retention never drops a record a protected consumer ([`MemoryBusConfig::protecting`])
//! has not committed: while one is behind, a partition grows up to `max_bytes_per_partition`, then refuses
//! appends with [`BusError::Backpressure`] (the ingest answers `503`) until it commits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use tokio::sync::Notify;

use super::offsets::{OffsetStore, ProtectedConsumer, protected_from};
use super::util::{lock, poll_until};
use super::{Bus, BusError, Offset, Record, StoredRecord, TopicSpec};

pub const DEFAULT_MEMORY_RETENTION_BYTES: u64 = 256 * 1024 * 1024;

/// Counted per record on top of key and value, so that many tiny records cannot exceed the budget unnoticed.
const RECORD_OVERHEAD_BYTES: u64 = std::mem::size_of::<StoredRecord>() as u64;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryBusConfig {
    /// Bytes of records (key + value + a fixed overhead) a partition keeps; the oldest go first. The newest
    /// record is always kept, even when it alone is larger.
    pub retention_bytes_per_partition: u64,
    /// Consumer groups whose uncommitted records retention keeps, per topic.
    pub protected: Vec<ProtectedConsumer>,
    /// Beyond this many bytes a partition refuses appends (`Backpressure`): the bound when retention cannot drop
    /// records because a protected consumer is behind. Taken as at least the retention.
    pub max_bytes_per_partition: u64,
}

impl Default for MemoryBusConfig {
    fn default() -> Self {
        MemoryBusConfig {
            retention_bytes_per_partition: DEFAULT_MEMORY_RETENTION_BYTES,
            protected: Vec::new(),
            max_bytes_per_partition: DEFAULT_MEMORY_RETENTION_BYTES,
        }
    }
}

impl MemoryBusConfig {
    /// Adds a consumer whose uncommitted records of `topic` retention keeps.
    pub fn protecting(mut self, group: &str, topic: &str) -> Self {
        self.protected.push(ProtectedConsumer::new(group, topic));
        self
    }
}

#[derive(Default)]
struct Log {
    records: VecDeque<StoredRecord>,
    /// Offset of `records[0]`, or of the next record when empty.
    start: Offset,
    bytes: u64,
}

impl Log {
    fn end(&self) -> Offset {
        self.start + self.records.len() as u64
    }

    /// Drops the oldest records while the log holds more than `retention` bytes, keeping the newest record and
    /// every record at or after `keep`.
    fn trim(&mut self, retention: u64, keep: Offset) {
        while self.bytes > retention && self.records.len() > 1 && self.start < keep {
            let Some(oldest) = self.records.pop_front() else {
                break;
            };
            self.bytes -= record_bytes(&oldest);
            self.start += 1;
        }
    }
}

#[derive(Default)]
struct Partition {
    log: Mutex<Log>,
    /// Woken after every append, and on close.
    appended: Notify,
}

pub struct MemoryBus {
    config: MemoryBusConfig,
    topics: RwLock<FxHashMap<String, Arc<[Partition]>>>,
    offsets: OffsetStore,
    closed: AtomicBool,
}

impl MemoryBus {
    pub fn new(config: MemoryBusConfig) -> Self {
        MemoryBus {
            config,
            topics: RwLock::default(),
            offsets: OffsetStore::in_memory(),
            closed: AtomicBool::new(false),
        }
    }

    fn check_open(&self) -> Result<(), BusError> {
        if self.closed.load(Ordering::Acquire) {
            Err(BusError::Closed)
        } else {
            Ok(())
        }
    }

    fn topic(&self, topic: &str) -> Result<Arc<[Partition]>, BusError> {
        self.check_open()?;
        let topics = self
            .topics
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        topics
            .get(topic)
            .cloned()
            .ok_or_else(|| BusError::UnknownTopic(topic.to_string()))
    }

    /// Runs `f` on the log of one partition, under its lock.
    fn with_log<T>(&self, topic: &str, partition: u32, f: impl FnOnce(&mut Log) -> T) -> Result<T, BusError> {
        let partitions = self.topic(topic)?;
        let log = &partitions
            .get(partition as usize)
            .ok_or_else(|| unknown_partition(topic, partition))?
            .log;
        Ok(f(&mut lock(log)))
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        MemoryBus::new(MemoryBusConfig::default())
    }
}

fn unknown_partition(topic: &str, partition: u32) -> BusError {
    BusError::UnknownPartition {
        topic: topic.to_string(),
        partition,
    }
}

fn record_bytes(record: &StoredRecord) -> u64 {
    (record.key.len() + record.value.len()) as u64 + RECORD_OVERHEAD_BYTES
}

/// Up to `max_records` records from `from`; `None` when `from` is the end (nothing yet).
fn read(log: &Log, from: Offset, max_records: usize) -> Result<Option<Vec<StoredRecord>>, BusError> {
    if from < log.start {
        return Err(BusError::OffsetOutOfRange {
            requested: from,
            earliest: log.start,
        });
    }
    let end = log.end();
    if from > end {
        return Err(BusError::OffsetBeyondEnd { requested: from, end });
    }
    if from == end {
        return Ok(None);
    }
    // In bounds: start <= from < end, and end - start is the length.
    let first = (from - log.start) as usize;
    let last = first.saturating_add(max_records).min(log.records.len());
    Ok(Some(log.records.range(first..last).cloned().collect()))
}

#[async_trait]
impl Bus for MemoryBus {
    fn outlives_process(&self) -> bool {
        false
    }

    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<(), BusError> {
        self.check_open()?;
        spec.check()?;
        let mut topics = self
            .topics
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(existing) = topics.get(&spec.name) {
            let existing = existing.len() as u32;
            if existing != spec.partitions {
                return Err(BusError::PartitionMismatch {
                    topic: spec.name.clone(),
                    existing,
                    requested: spec.partitions,
                });
            }
            return Ok(());
        }
        let partitions: Arc<[Partition]> = (0..spec.partitions).map(|_| Partition::default()).collect();
        topics.insert(spec.name.clone(), partitions);
        Ok(())
    }

    fn partitions(&self, topic: &str) -> Result<u32, BusError> {
        Ok(self.topic(topic)?.len() as u32)
    }

    async fn append(&self, topic: &str, partition: u32, records: Vec<Record>) -> Result<Offset, BusError> {
        let partitions = self.topic(topic)?;
        let target = partitions
            .get(partition as usize)
            .ok_or_else(|| unknown_partition(topic, partition))?;
        let retention = self.config.retention_bytes_per_partition;
        let max_bytes = self.config.max_bytes_per_partition.max(retention);
        let keep = protected_from(&self.offsets, &self.config.protected, topic, partition);
        let incoming: u64 = records
            .iter()
            .map(|r| (r.key.len() + r.value.len()) as u64 + RECORD_OVERHEAD_BYTES)
            .sum();
        let first = {
            let mut log = lock(&target.log);
            // Room first: what retention may drop goes. If what is left is more than the cap allows because a
            // protected consumer has not read it, refuse.
            log.trim(retention.saturating_sub(incoming), keep);
            if log.start >= keep && !log.records.is_empty() && log.bytes.saturating_add(incoming) > max_bytes
            {
                return Err(BusError::Backpressure);
            }
            let first = log.end();
            log.records.reserve(records.len());
            for (offset, record) in (first..).zip(records) {
                let stored = StoredRecord {
                    offset,
                    key: record.key,
                    value: record.value,
                    timestamp_ms: record.timestamp_ms,
                };
                log.bytes += record_bytes(&stored);
                log.records.push_back(stored);
            }
            log.trim(retention, keep);
            first
        };
        target.appended.notify_waiters();
        Ok(first)
    }

    async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        from: Offset,
        max_records: usize,
        max_wait: Duration,
    ) -> Result<Vec<StoredRecord>, BusError> {
        let partitions = self.topic(topic)?;
        let target = partitions
            .get(partition as usize)
            .ok_or_else(|| unknown_partition(topic, partition))?;
        if max_records == 0 {
            return Ok(Vec::new());
        }
        let found = poll_until(&target.appended, max_wait, || {
            self.check_open()?;
            read(&lock(&target.log), from, max_records)
        })
        .await?;
        Ok(found.unwrap_or_default())
    }

    async fn start_offset(&self, topic: &str, partition: u32) -> Result<Offset, BusError> {
        self.with_log(topic, partition, |log| log.start)
    }

    async fn end_offset(&self, topic: &str, partition: u32) -> Result<Offset, BusError> {
        self.with_log(topic, partition, |log| log.end())
    }

    async fn commit(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        next_offset: Offset,
    ) -> Result<(), BusError> {
        self.with_log(topic, partition, |_| ())?;
        self.offsets.commit(group, topic, partition, next_offset).await
    }

    async fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<Offset>, BusError> {
        self.with_log(topic, partition, |_| ())?;
        Ok(self.offsets.committed(group, topic, partition))
    }

    async fn close(&self) -> Result<(), BusError> {
        self.closed.store(true, Ordering::Release);
        // Wake long polls so that they return `Closed` now rather than at their deadline.
        let topics = self
            .topics
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for partition in topics.values().flat_map(|partitions| partitions.iter()) {
            partition.appended.notify_waiters();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::bus::conformance;

    fn bus() -> MemoryBus {
        MemoryBus::default()
    }

    #[tokio::test]
    async fn conformance_suite() {
        conformance::run_all(&bus()).await;
    }

    #[tokio::test]
    async fn long_poll_wakes_and_times_out() {
        conformance::long_poll(&bus()).await;
    }

    #[tokio::test]
    async fn close_wakes_waiting_fetch() {
        conformance::close_wakes_fetch(Arc::new(bus())).await;
    }

    #[tokio::test]
    async fn retention_evicts_oldest() {
        let bus = MemoryBus::new(MemoryBusConfig {
            retention_bytes_per_partition: 10 * 1024,
            ..MemoryBusConfig::default()
        });
        conformance::retention(&bus).await;
        // The budget holds: about 10 KiB of 100-byte values plus overhead.
        let kept = bus.end_offset("t", 0).await.unwrap() - bus.start_offset("t", 0).await.unwrap();
        assert!(
            kept > 0 && kept * (100 + RECORD_OVERHEAD_BYTES) <= 10 * 1024,
            "{kept}"
        );
    }

    #[tokio::test]
    async fn keeps_newest_record_even_above_budget() {
        let bus = MemoryBus::new(MemoryBusConfig {
            retention_bytes_per_partition: 1,
            ..MemoryBusConfig::default()
        });
        bus.ensure_topic(&TopicSpec {
            name: "t".into(),
            partitions: 1,
        })
        .await
        .unwrap();
        bus.append("t", 0, conformance::records(0, 3)).await.unwrap();
        assert_eq!(bus.start_offset("t", 0).await.unwrap(), 2);
        let got = bus.fetch("t", 0, 2, 10, Duration::ZERO).await.unwrap();
        assert_eq!(got.len(), 1);
    }

    /// Retention keeps what a protected consumer has not committed; beyond `max_bytes_per_partition` appends are
    /// refused with `Backpressure`, and taken again once it commits. Other groups' commits change nothing.
    #[tokio::test]
    async fn retention_waits_for_protected_consumers_and_appends_push_back_when_full() {
        let config = MemoryBusConfig {
            retention_bytes_per_partition: 2_000,
            max_bytes_per_partition: 8_000,
            ..MemoryBusConfig::default()
        }
        .protecting("operators", "t");
        let bus = MemoryBus::new(config);
        bus.ensure_topic(&TopicSpec {
            name: "t".into(),
            partitions: 1,
        })
        .await
        .unwrap();
        let mut appended = 0;
        let refused = loop {
            match bus.append("t", 0, conformance::records(appended, 1)).await {
                Ok(_) if appended < 1_000 => appended += 1,
                other => break other,
            }
        };
        assert!(matches!(refused, Err(BusError::Backpressure)), "{refused:?}");
        assert!(appended > 20, "{appended}");
        assert_eq!(
            bus.start_offset("t", 0).await.unwrap(),
            0,
            "nothing uncommitted dropped"
        );
        assert_eq!(bus.end_offset("t", 0).await.unwrap(), appended);

        bus.commit("someone-else", "t", 0, appended).await.unwrap();
        assert!(matches!(
            bus.append("t", 0, conformance::records(appended, 1)).await,
            Err(BusError::Backpressure)
        ));
        let half = appended / 2;
        bus.commit("operators", "t", 0, half).await.unwrap();
        bus.append("t", 0, conformance::records(appended, 1))
            .await
            .unwrap();
        let start = bus.start_offset("t", 0).await.unwrap();
        assert!(
            start > 0 && start <= half,
            "dropped up to the commit at most: {start} {half}"
        );
        // Everything committed: back to the plain retention.
        bus.commit("operators", "t", 0, appended + 1).await.unwrap();
        bus.append("t", 0, conformance::records(appended + 1, 1))
            .await
            .unwrap();
        let kept = bus.end_offset("t", 0).await.unwrap() - bus.start_offset("t", 0).await.unwrap();
        assert!(
            kept * RECORD_OVERHEAD_BYTES <= 2_000 + RECORD_OVERHEAD_BYTES,
            "{kept}"
        );
    }

    proptest::proptest! {
        /// Whatever the appends, the partition stays within its budget (or holds just the newest record), keeps
        /// a gapless suffix of what was appended, and reads it back in order.
        #[test]
        fn retention_keeps_a_bounded_suffix(
            batches in proptest::collection::vec(proptest::collection::vec(0usize..500, 0..50), 1..20),
            budget in 1u64..20_000,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let bus = MemoryBus::new(MemoryBusConfig {
                    retention_bytes_per_partition: budget,
                    ..MemoryBusConfig::default()
                });
                bus.ensure_topic(&TopicSpec { name: "t".into(), partitions: 1 }).await.unwrap();
                let mut sizes: Vec<usize> = Vec::new();
                for batch in &batches {
                    let records = batch
                        .iter()
                        .map(|len| Record { key: Bytes::new(), value: Bytes::from(vec![0u8; *len]), timestamp_ms: 0 })
                        .collect();
                    assert_eq!(bus.append("t", 0, records).await.unwrap(), sizes.len() as u64);
                    sizes.extend(batch);
                }
                let start = bus.start_offset("t", 0).await.unwrap();
                assert_eq!(bus.end_offset("t", 0).await.unwrap(), sizes.len() as u64);
                let kept = bus.fetch("t", 0, start, usize::MAX, Duration::ZERO).await.unwrap();
                assert_eq!(kept.len() as u64, sizes.len() as u64 - start);
                for (record, offset) in kept.iter().zip(start..) {
                    assert_eq!(record.offset, offset);
                    assert_eq!(record.value.len(), sizes[offset as usize]);
                }
                let bytes: u64 = kept.iter().map(record_bytes).sum();
                assert!(bytes <= budget || kept.len() == 1, "{bytes} bytes in {} records", kept.len());
                // Evicting one record fewer would have broken the budget: nothing was evicted needlessly.
                if start > 0 {
                    let one_more = bytes + sizes[start as usize - 1] as u64 + RECORD_OVERHEAD_BYTES;
                    assert!(one_more > budget);
                }
            });
        }
    }
}
