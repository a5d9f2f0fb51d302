//! The [`Bus`] on a Fluvio cluster (feature `fluvio`), with the `fluvio` client crate 0.50.
//!
//! A thin adapter: one Fluvio topic per bus topic, one Fluvio partition per bus partition, record keys as
//! keys. What it adds to the client, and why:
//!
//! - `fetch` does not trust the 0.50 consumer stream to be gapless (see the project's dependency facts: when
//!   a partition's unread backlog exceeds the fetch limit the SPU cuts a batch short, the client acknowledges
//!   its end anyway and the cut records are never resent). `reader` tracks the next expected offset of each
//!   partition, and re-opens the stream from there on a gap (an offset jump) or a stall (no record while the
//!   leader's end offset is ahead).
//! - Start and end offsets come from the partition leader itself (`leader`), not from the controller's
//!   partition status, which lags.
//! - Consumer-group offsets are kept by the bus in a one-partition topic (`groups`): the client's own
//!   consumer offsets are tied to a live stream session and cannot be written for an arbitrary offset. The
//!   pipeline also keeps its input offsets in its checkpoints; this topic only serves `commit`/`committed`.
//! - Each append goes to one partition through a producer pinned to it, and the records of one append are
//!   handed to the producer under a per-partition lock, so they get contiguous offsets.
//!
//! Record timestamps are the producer's batch timestamps (when the client accepted the record); the
//! `timestamp_ms` of an appended [`Record`] is not sent. Topics are created with the configured replication
//! and retention when missing; after a delete the bus waits [`RECREATE_DELAY`] before it creates any topic (a
//! partition created sooner, of the same name or another, can stay offline for good) and before it looks up
//! the deleted name again. Every name the bus is configured with (`offsets_topic`, `topic_retention_secs`)
//! is a bus name: the Fluvio name adds `topic_prefix`.

mod groups;
mod leader;
mod reader;

/// The Fluvio client crate this bus is built on, for tools and tests that talk to the cluster directly.
pub use fluvio as client;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use fluvio::TopicProducerPool;
use fluvio::metadata::partition::PartitionSpec;
use fluvio::metadata::topic::{
    CleanupPolicy, SegmentBasedPolicy, TopicResolution, TopicSpec as FluvioTopicSpec, TopicStorageConfig,
};
use fluvio::{Fluvio, FluvioAdmin, FluvioClusterConfig, FluvioError, RecordKey, TopicProducerConfigBuilder};
use serde::Deserialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Bus, BusError, Offset, Record, StoredRecord, TopicSpec};

/// How long the bus waits after deleting a topic before it creates one.
pub const RECREATE_DELAY: Duration = Duration::from_millis(1_100);

/// Settings of [`FluvioBus`]. Durations are in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FluvioBusConfig {
    /// Public address of the streaming controller (SC), `host:port` (9003 by convention).
    pub endpoint: String,
    /// Prepended to every bus topic's name to make its Fluvio name, so that several deployments (or test
    /// runs) can share one cluster: `staging-` gives `staging-social-events`. Empty by default.
    pub topic_prefix: String,
    /// Replication factor of the topics the bus creates.
    pub replication: u32,
    /// Time retention of the topics the bus creates, in seconds.
    pub retention_secs: u32,
    /// Per-topic retention overrides, in seconds.
    pub topic_retention_secs: HashMap<String, u32>,
    /// Segment size of created topics, in bytes (the server's default when `None`).
    pub segment_bytes: Option<u32>,
    /// Size limit of each partition of created topics, in bytes (the server's default when `None`).
    pub max_partition_bytes: Option<u64>,
    /// Topic holding the consumer-group offsets of `commit` (one partition, created on first use); its Fluvio
    /// name, like every topic's, starts with `topic_prefix`.
    pub offsets_topic: String,
    /// Retention of the offsets topic, in seconds: a group that commits nothing for longer loses its offsets.
    pub offsets_retention_secs: u32,
    /// Fetch limit of the consumer stream (`max_bytes`); `None` keeps the client's default (about 1 MiB).
    pub fetch_max_bytes: Option<i32>,
    /// A partition whose end offset is ahead of the reader and that delivered nothing for this long is
    /// re-opened.
    pub stall_timeout_ms: u64,
    /// How long a fetch keeps trying (re-opening on stalls) to deliver records the leader says exist.
    pub catch_up_timeout_ms: u64,
    /// Producer batch size, in bytes.
    pub producer_batch_bytes: usize,
    /// Producer linger: how long a partial batch waits for more records before it is sent. Every append
    /// flushes at its end, so this never delays an append; it lets the records of one append share batches
    /// (with 0 the client sends smaller batches: in the system benchmark the ingest over Fluvio took 21,000
    /// events/s instead of 28,000).
    pub producer_linger_ms: u64,
    /// Time limit of one request to the cluster (admin calls, offset queries, producer acknowledgements).
    pub request_timeout_ms: u64,
    /// How long `ensure_topic` waits for a new topic's partitions to come online.
    pub topic_ready_timeout_ms: u64,
}

impl Default for FluvioBusConfig {
    fn default() -> Self {
        Self {
            endpoint: "127.0.0.1:9003".into(),
            topic_prefix: String::new(),
            replication: 1,
            retention_secs: 7 * 24 * 3600,
            topic_retention_secs: HashMap::new(),
            segment_bytes: None,
            max_partition_bytes: None,
            offsets_topic: "social-bus-offsets".into(),
            offsets_retention_secs: 30 * 24 * 3600,
            fetch_max_bytes: None,
            stall_timeout_ms: 500,
            catch_up_timeout_ms: 30_000,
            producer_batch_bytes: 256 * 1024,
            producer_linger_ms: 250,
            request_timeout_ms: 10_000,
            topic_ready_timeout_ms: 30_000,
        }
    }
}

impl FluvioBusConfig {
    /// The defaults, with the controller at `endpoint`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            ..Self::default()
        }
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The Fluvio name of a bus topic.
    pub fn cluster_topic(&self, topic: &str) -> String {
        format!("{}{topic}", self.topic_prefix)
    }
}

/// A producer pinned to one partition; `order` serializes the hand-over of one append's records.
struct PartitionProducer {
    producer: TopicProducerPool,
    order: tokio::sync::Mutex<()>,
}

/// Counts of stream re-opens since the bus was created, by reason (also exported as the metric
/// `bus_fluvio_reopens_total{reason}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FluvioBusStats {
    /// The stream skipped offsets (records lost by the client).
    pub gaps: u64,
    /// The stream delivered nothing while the leader had records for it (records lost at the end of a
    /// backlog).
    pub stalls: u64,
    /// The stream ended or failed.
    pub other: u64,
}

#[derive(Default)]
struct ReopenCounters {
    gaps: std::sync::atomic::AtomicU64,
    stalls: std::sync::atomic::AtomicU64,
    other: std::sync::atomic::AtomicU64,
}

type PartitionKey = (String, u32);
type ReaderSlot = Arc<tokio::sync::Mutex<Option<reader::PartitionReader>>>;

/// The [`Bus`] on a Fluvio cluster. Cheap to share behind an `Arc`; every method may be called concurrently.
pub struct FluvioBus {
    config: FluvioBusConfig,
    client: Fluvio,
    admin: FluvioAdmin,
    /// Partition counts of the topics this bus has ensured or looked up (what [`Bus::partitions`] answers
    /// from).
    topics: RwLock<HashMap<String, u32>>,
    producers: tokio::sync::Mutex<HashMap<PartitionKey, Arc<PartitionProducer>>>,
    readers: Mutex<HashMap<PartitionKey, ReaderSlot>>,
    leaders: leader::LeaderOffsets,
    groups: groups::GroupOffsets,
    deleted_at: Mutex<HashMap<String, Instant>>,
    reopens: ReopenCounters,
    closed: CancellationToken,
}

impl std::fmt::Debug for FluvioBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FluvioBus")
            .field("endpoint", &self.config.endpoint)
            .finish_non_exhaustive()
    }
}

impl FluvioBus {
    /// Connects to the controller at `config.endpoint`. Topics are not touched until [`Bus::ensure_topic`].
    pub async fn connect(config: FluvioBusConfig) -> Result<Self, BusError> {
        let cluster = FluvioClusterConfig::new(config.endpoint.clone());
        let client = with_timeout(
            config.request_timeout(),
            "connect",
            Fluvio::connect_with_config(&cluster),
        )
        .await?
        .map_err(|error| backend("connect", &error))?;
        let admin = client.admin().await;
        let platform = client.platform_version().to_string();
        tracing::info!(endpoint = %config.endpoint, platform, "connected to fluvio");
        Ok(Self {
            leaders: leader::LeaderOffsets::default(),
            groups: groups::GroupOffsets::default(),
            config,
            client,
            admin,
            topics: RwLock::new(HashMap::new()),
            producers: tokio::sync::Mutex::new(HashMap::new()),
            readers: Mutex::new(HashMap::new()),
            deleted_at: Mutex::new(HashMap::new()),
            reopens: ReopenCounters::default(),
            closed: CancellationToken::new(),
        })
    }

    pub fn config(&self) -> &FluvioBusConfig {
        &self.config
    }

    /// How often the loss workaround had to re-open a stream.
    pub fn stats(&self) -> FluvioBusStats {
        use std::sync::atomic::Ordering::Relaxed;
        FluvioBusStats {
            gaps: self.reopens.gaps.load(Relaxed),
            stalls: self.reopens.stalls.load(Relaxed),
            other: self.reopens.other.load(Relaxed),
        }
    }

    /// Deletes a topic (tests and tooling; the pipeline never deletes). A later `ensure_topic` that has to
    /// create a topic waits until [`RECREATE_DELAY`] has passed.
    pub async fn delete_topic(&self, name: &str) -> Result<(), BusError> {
        self.check_open()?;
        let result = with_timeout(
            self.config.request_timeout(),
            "delete topic",
            self.admin
                .delete::<FluvioTopicSpec>(self.config.cluster_topic(name)),
        )
        .await?;
        lock(&self.deleted_at).insert(name.to_string(), Instant::now());
        self.forget_topic(name).await;
        result.map_err(|error| backend("delete topic", &error))
    }

    fn check_open(&self) -> Result<(), BusError> {
        if self.closed.is_cancelled() {
            Err(BusError::Closed)
        } else {
            Ok(())
        }
    }

    async fn forget_topic(&self, name: &str) {
        self.topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        self.producers.lock().await.retain(|(topic, _), _| topic != name);
        lock(&self.readers).retain(|(topic, _), _| topic != name);
        self.leaders.forget_topic(name);
    }

    /// The topic's partition count and whether it is being deleted; `None` when the cluster has no such
    /// topic.
    async fn describe_topic(&self, name: &str) -> Result<Option<(u32, bool)>, BusError> {
        let name = self.config.cluster_topic(name);
        let found = with_timeout(
            self.config.request_timeout(),
            "list topics",
            self.admin.list::<FluvioTopicSpec, String>(vec![name.clone()]),
        )
        .await?
        .map_err(|error| backend("list topics", &error))?;
        Ok(found.into_iter().find(|topic| topic.name == name).map(|topic| {
            let deleting = topic.status.resolution == TopicResolution::Deleting;
            (topic.spec.partitions(), deleting)
        }))
    }

    /// The partition count of `topic`, from the cache or the cluster.
    async fn partition_count(&self, topic: &str) -> Result<u32, BusError> {
        if let Some(count) = self.cached_partitions(topic) {
            return Ok(count);
        }
        match self.describe_topic(topic).await? {
            Some((count, false)) => {
                self.topics
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(topic.to_string(), count);
                Ok(count)
            }
            _ => Err(BusError::UnknownTopic(topic.to_string())),
        }
    }

    fn cached_partitions(&self, topic: &str) -> Option<u32> {
        self.topics
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
            .copied()
    }

    async fn check_partition(&self, topic: &str, partition: u32) -> Result<(), BusError> {
        self.check_open()?;
        let count = self.partition_count(topic).await?;
        if partition < count {
            Ok(())
        } else {
            Err(BusError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            })
        }
    }

    /// Waits until [`RECREATE_DELAY`] has passed since this bus last deleted `name`, or any topic when `None`
    /// (before a create: a partition created that close to a delete, seen with a different name 4 ms after one,
    /// can miss its status update on the controller and stay offline for good).
    async fn wait_after_delete(&self, name: Option<&str>) {
        let deleted = {
            let deleted_at = lock(&self.deleted_at);
            match name {
                Some(name) => deleted_at.get(name).copied(),
                None => deleted_at.values().max().copied(),
            }
        };
        if let Some(deleted) = deleted {
            tokio::time::sleep_until(deleted + RECREATE_DELAY).await;
        }
    }

    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), BusError> {
        let retention = self
            .config
            .topic_retention_secs
            .get(&spec.name)
            .copied()
            .unwrap_or(if spec.name == self.config.offsets_topic {
                self.config.offsets_retention_secs
            } else {
                self.config.retention_secs
            });
        let mut topic = FluvioTopicSpec::new_computed(spec.partitions, self.config.replication, None);
        topic.set_cleanup_policy(CleanupPolicy::Segment(SegmentBasedPolicy {
            time_in_seconds: retention,
        }));
        if self.config.segment_bytes.is_some() || self.config.max_partition_bytes.is_some() {
            topic.set_storage(TopicStorageConfig {
                segment_size: self.config.segment_bytes,
                max_partition_size: self.config.max_partition_bytes,
            });
        }
        let (topic_name, partitions) = (self.config.cluster_topic(&spec.name), spec.partitions);
        tracing::info!(topic = %topic_name, partitions, retention_secs = retention, "creating fluvio topic");
        with_timeout(
            self.config.request_timeout(),
            "create topic",
            self.admin.create(topic_name, false, topic),
        )
        .await?
        .map_err(|error| backend("create topic", &error))
    }

    /// Waits until every partition of `topic` is online on a leader that answers offset queries.
    async fn wait_online(&self, topic: &str, partitions: u32, deadline: Instant) -> Result<(), BusError> {
        for partition in 0..partitions {
            let name = format!("{}-{partition}", self.config.cluster_topic(topic));
            loop {
                self.check_open()?;
                let online = with_timeout(
                    self.config.request_timeout(),
                    "list partitions",
                    self.admin.list::<PartitionSpec, String>(vec![name.clone()]),
                )
                .await?
                .map_err(|error| backend("list partitions", &error))?
                .into_iter()
                .any(|found| found.name == name && found.status.is_online());
                if online && self.leaders.offsets(self, topic, partition).await.is_ok() {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(BusError::Backend(format!(
                        "partition {name} did not come online in time"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    async fn producer(&self, topic: &str, partition: u32) -> Result<Arc<PartitionProducer>, BusError> {
        let key = (topic.to_string(), partition);
        let mut producers = self.producers.lock().await;
        if let Some(producer) = producers.get(&key) {
            return Ok(Arc::clone(producer));
        }
        let config = TopicProducerConfigBuilder::default()
            .set_specific_partitioner(partition)
            .batch_size(self.config.producer_batch_bytes)
            .linger(Duration::from_millis(self.config.producer_linger_ms))
            .timeout(self.config.request_timeout())
            .build()
            .map_err(|error| BusError::Backend(format!("producer config: {error}")))?;
        let producer = with_timeout(
            self.config.request_timeout(),
            "create producer",
            self.client
                .topic_producer_with_config(self.config.cluster_topic(topic), config),
        )
        .await?
        .map_err(|error| map_error("create producer", topic, &error))?;
        let producer = Arc::new(PartitionProducer {
            producer,
            order: tokio::sync::Mutex::new(()),
        });
        producers.insert(key, Arc::clone(&producer));
        Ok(producer)
    }

    async fn drop_producer(&self, topic: &str, partition: u32) {
        self.producers
            .lock()
            .await
            .remove(&(topic.to_string(), partition));
    }

    async fn produce(&self, topic: &str, partition: u32, records: Vec<Record>) -> Result<Offset, BusError> {
        let count = records.len();
        let producer = self.producer(topic, partition).await?;
        let mut outputs = Vec::with_capacity(count);
        {
            let _order = producer.order.lock().await;
            for record in records {
                let key = if record.key.is_empty() {
                    RecordKey::NULL
                } else {
                    RecordKey::from(Vec::from(record.key))
                };
                let output = producer
                    .producer
                    .send(key, Vec::from(record.value))
                    .await
                    .map_err(|error| backend("send", &error))?;
                outputs.push(output);
            }
        }
        with_timeout(self.config.request_timeout(), "flush", producer.producer.flush())
            .await?
            .map_err(|error| backend("flush", &error))?;
        let mut first = None;
        let mut contiguous = true;
        for (n, output) in outputs.into_iter().enumerate() {
            let metadata = with_timeout(
                self.config.request_timeout(),
                "produce acknowledgement",
                output.wait(),
            )
            .await?
            .map_err(|error| backend("produce", &error))?;
            let offset = u64::try_from(metadata.offset())
                .map_err(|_| BusError::Backend(format!("negative offset {}", metadata.offset())))?;
            let first = *first.get_or_insert(offset);
            contiguous &= offset == first + n as u64;
        }
        if !contiguous {
            // Only a producer-internal retry can do this; the records are in the log, so report success.
            metrics::counter!("bus_fluvio_noncontiguous_appends_total").increment(1);
            tracing::warn!(
                topic,
                partition,
                count,
                "fluvio append got non-contiguous offsets"
            );
        }
        first.ok_or_else(|| BusError::Backend("append acknowledged no record".into()))
    }

    fn reader_slot(&self, topic: &str, partition: u32) -> ReaderSlot {
        let mut readers = lock(&self.readers);
        Arc::clone(
            readers
                .entry((topic.to_string(), partition))
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(None))),
        )
    }
}

#[async_trait]
impl Bus for FluvioBus {
    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<(), BusError> {
        self.check_open()?;
        spec.check()?;
        // A topic deleted by this bus a moment ago may still be listed as it was.
        self.wait_after_delete(Some(&spec.name)).await;
        let deadline = Instant::now() + Duration::from_millis(self.config.topic_ready_timeout_ms);
        let mut created = false;
        loop {
            self.check_open()?;
            match self.describe_topic(&spec.name).await? {
                Some((_, true)) => {
                    // Being deleted: wait until it is gone, then keep the re-create delay.
                    lock(&self.deleted_at).insert(spec.name.clone(), Instant::now());
                }
                Some((existing, false)) => {
                    if existing != spec.partitions {
                        return Err(BusError::PartitionMismatch {
                            topic: spec.name.clone(),
                            existing,
                            requested: spec.partitions,
                        });
                    }
                    self.wait_online(&spec.name, existing, deadline).await?;
                    self.topics
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(spec.name.clone(), existing);
                    return Ok(());
                }
                // Created but not listed yet: wait below.
                None if created => {}
                None => {
                    self.wait_after_delete(None).await;
                    match self.create_topic(spec).await {
                        Ok(()) => {
                            created = true;
                            continue;
                        }
                        // Someone else created it in between: look again.
                        Err(error) if error.to_string().contains("exists") => {
                            created = true;
                            continue;
                        }
                        Err(error) => return Err(error),
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(BusError::Backend(format!(
                    "topic {:?} is still being deleted or not listed yet",
                    spec.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn partitions(&self, topic: &str) -> Result<u32, BusError> {
        self.check_open()?;
        self.cached_partitions(topic)
            .ok_or_else(|| BusError::UnknownTopic(topic.to_string()))
    }

    async fn append(&self, topic: &str, partition: u32, records: Vec<Record>) -> Result<Offset, BusError> {
        self.check_partition(topic, partition).await?;
        if records.is_empty() {
            return self.end_offset(topic, partition).await;
        }
        let result = tokio::select! {
            result = self.produce(topic, partition, records) => result,
            () = self.closed.cancelled() => Err(BusError::Closed),
        };
        if result.is_err() {
            // A failed producer refuses further records until its errors are cleared: start afresh.
            self.drop_producer(topic, partition).await;
        }
        result
    }

    async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        from: Offset,
        max_records: usize,
        max_wait: Duration,
    ) -> Result<Vec<StoredRecord>, BusError> {
        self.check_partition(topic, partition).await?;
        if max_records == 0 {
            return Ok(Vec::new());
        }
        let slot = self.reader_slot(topic, partition);
        let mut reader = slot.lock().await;
        let fetch = reader::fetch(self, &mut reader, topic, partition, from, max_records, max_wait);
        tokio::select! {
            result = fetch => result,
            () = self.closed.cancelled() => Err(BusError::Closed),
        }
    }

    async fn start_offset(&self, topic: &str, partition: u32) -> Result<Offset, BusError> {
        self.check_partition(topic, partition).await?;
        Ok(self.leaders.offsets(self, topic, partition).await?.start)
    }

    async fn end_offset(&self, topic: &str, partition: u32) -> Result<Offset, BusError> {
        self.check_partition(topic, partition).await?;
        Ok(self.leaders.offsets(self, topic, partition).await?.end)
    }

    async fn commit(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        next_offset: Offset,
    ) -> Result<(), BusError> {
        self.check_partition(topic, partition).await?;
        self.groups
            .commit(self, group, topic, partition, next_offset)
            .await
    }

    async fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<Offset>, BusError> {
        self.check_partition(topic, partition).await?;
        self.groups.committed(self, group, topic, partition).await
    }

    async fn close(&self) -> Result<(), BusError> {
        if self.closed.is_cancelled() {
            return Ok(());
        }
        self.closed.cancel();
        let producers: Vec<_> = self
            .producers
            .lock()
            .await
            .drain()
            .map(|(_, producer)| producer)
            .collect();
        let mut result = Ok(());
        for producer in producers {
            if let Err(error) =
                with_timeout(self.config.request_timeout(), "flush", producer.producer.flush()).await?
            {
                result = Err(backend("flush on close", &error));
            }
        }
        lock(&self.readers).clear();
        result
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn with_timeout<T>(
    limit: Duration,
    what: &str,
    future: impl std::future::Future<Output = T>,
) -> Result<T, BusError> {
    tokio::time::timeout(limit, future)
        .await
        .map_err(|_| BusError::Backend(format!("fluvio {what}: timed out after {limit:?}")))
}

fn backend(what: &str, error: &dyn std::fmt::Display) -> BusError {
    BusError::Backend(format!("fluvio {what}: {error:#}"))
}

/// Maps the client's "no such topic" to [`BusError::UnknownTopic`], anything else to a retryable backend
/// error. (The client returns `anyhow::Error`, which dereferences to `dyn Error`.)
fn map_error<E>(what: &str, topic: &str, error: &E) -> BusError
where
    E: std::ops::Deref<Target = dyn std::error::Error + Send + Sync + 'static> + std::fmt::Display,
{
    let inner: &(dyn std::error::Error + 'static) = &**error;
    if let Some(FluvioError::TopicNotFound(_)) = inner.downcast_ref::<FluvioError>() {
        return BusError::UnknownTopic(topic.to_string());
    }
    backend(what, error)
}
