//! [`DurableBus`]: the embedded bus on disk, one [`Wal`] per partition, for `--data-dir`.
//!
//! ```text
//! <dir>/topics/<topic>/topic.meta        "partitions N": written (atomically) last, so it marks a whole topic
//! <dir>/topics/<topic>/<partition>/      that partition's WAL segments
//! <dir>/groups/<group>.offsets           committed offsets of one consumer group
//! ```
//! (`<topic>` and `<group>` are the names made file-name-safe by percent-encoding.)
//!
//! **Group commit.** `append` queues its records on the partition's bounded queue and waits. One writer task per
//! partition takes everything queued, writes it, calls `sync_data` once, publishes the new end to readers, and
//! only then answers every waiting append. So an `Ok` from `append` means fsynced, and a fetch never returns a
//! record that a crash could take back. A write or fsync error fails every append of that group with
//! [`BusError::Io`]. A full queue fails `append` at once with [`BusError::Backpressure`] rather than parking the
//! caller with its records in memory.
//!
//! **Reopen.** [`DurableBus::open`] on the same directory restores every topic, the records (a torn tail left by a
//! crash is cut, see [`super::wal`]) and the committed offsets.
//!
//! **Retention waits for protected consumers.** The consumers named in [`DurableBusConfig::protected`] (the
//! operators on the input topic, the analytics feed on every topic it reads) must see every record: retention
//! never deletes a segment holding records at or after the lowest offset they committed, so a consumer stuck
//! behind an outage (Redis or ClickHouse down) finds its input when it resumes. (The operators commit the offsets
//! of the oldest checkpoint they keep, so a restore that falls back to it finds its input too.) The disk is still bounded: once a partition holds
//! `max_bytes_per_partition`, its appends fail with [`BusError::Backpressure`] (the ingest answers `503`, its
//! clients retry) until the consumers catch up and retention frees space.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::task::TaskTracker;

use super::fsutil::{self, decode_name, encode_name};
pub use super::offsets::ProtectedConsumer;
use super::offsets::{OffsetStore, protected_from};
use super::util::poll_until;
use super::wal::{DEFAULT_RETENTION_BYTES, DEFAULT_SEGMENT_BYTES, Wal, WalConfig, WalReader};
use super::{Bus, BusError, Offset, Record, StoredRecord, TopicSpec};

pub const DEFAULT_MAX_PENDING_APPENDS: usize = 1024;

const TOPIC_META: &str = "topic.meta";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurableBusConfig {
    pub dir: PathBuf,
    /// Size at which a partition starts a new segment file.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// Bytes a partition keeps on disk; whole oldest segments are deleted beyond it.
    #[serde(default = "default_retention_bytes")]
    pub retention_bytes_per_partition: u64,
    /// Appends that may wait per partition (each with its records); one more fails with `Backpressure`.
    #[serde(default = "default_max_pending_appends")]
    pub max_pending_appends: usize,
    /// Consumer groups whose uncommitted records retention keeps, per topic.
    #[serde(default)]
    pub protected: Vec<ProtectedConsumer>,
    /// Beyond this many bytes a partition refuses appends (`Backpressure`): the bound when retention cannot
    /// delete because a protected consumer is behind. Taken as at least the retention plus two segments (below
    /// that, a partition whose records are all consumed could fill up for good).
    #[serde(default = "default_max_bytes")]
    pub max_bytes_per_partition: u64,
}

fn default_segment_bytes() -> u64 {
    DEFAULT_SEGMENT_BYTES
}
fn default_retention_bytes() -> u64 {
    DEFAULT_RETENTION_BYTES
}
fn default_max_pending_appends() -> usize {
    DEFAULT_MAX_PENDING_APPENDS
}
fn default_max_bytes() -> u64 {
    DEFAULT_MAX_BYTES
}

/// Four times the default retention: room for a long outage of a consumer before ingest pushes back.
pub const DEFAULT_MAX_BYTES: u64 = 4 * DEFAULT_RETENTION_BYTES;

impl DurableBusConfig {
    /// The defaults: 64 MiB segments, 1 GiB per partition (4 GiB at most while a protected consumer is behind),
    /// 1024 pending appends per partition, no protected consumer.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DurableBusConfig {
            dir: dir.into(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            retention_bytes_per_partition: DEFAULT_RETENTION_BYTES,
            max_pending_appends: DEFAULT_MAX_PENDING_APPENDS,
            protected: Vec::new(),
            max_bytes_per_partition: DEFAULT_MAX_BYTES,
        }
    }

    /// Adds a consumer whose uncommitted records of `topic` retention keeps.
    pub fn protecting(mut self, group: &str, topic: &str) -> Self {
        self.protected.push(ProtectedConsumer::new(group, topic));
        self
    }

    fn wal(&self) -> WalConfig {
        WalConfig {
            segment_bytes: self.segment_bytes,
            retention_bytes: self.retention_bytes_per_partition,
        }
    }
}

struct AppendRequest {
    records: Vec<Record>,
    reply: oneshot::Sender<Result<Offset, BusError>>,
}

/// The read side of a partition. Fetches hold this, not the queue, so a long poll never keeps a writer alive.
struct PartitionRead {
    reader: WalReader,
    /// Woken after every group commit, and on close.
    appended: Notify,
}

struct Partition {
    queue: mpsc::Sender<AppendRequest>,
    read: Arc<PartitionRead>,
    /// The log's keep-from offset (see [`Wal::keep_from`]), updated on the commits of protected consumers.
    keep_from: Arc<AtomicU64>,
    /// Set when the partition takes no more appends until the bus is reopened: its log failed (a failed fsync)
    /// or its writer stopped.
    failed: Arc<AtomicBool>,
}

pub struct DurableBus {
    config: DurableBusConfig,
    /// Dropping a topic's entry drops its queues' senders, which lets its writers drain and stop.
    topics: RwLock<FxHashMap<String, Arc<[Partition]>>>,
    /// Serialises topic creation (blocking file work) and keeps `close` from racing it.
    creating: tokio::sync::Mutex<()>,
    offsets: OffsetStore,
    closed: AtomicBool,
    writers: TaskTracker,
    /// Exclusive lock on `<dir>/LOCK`, held until `close` (or drop): two processes writing one log would corrupt
    /// it. The kernel releases it when the process dies, even by SIGKILL.
    lock: std::sync::Mutex<Option<std::fs::File>>,
}

impl DurableBus {
    /// The partitions (topic, partition) that take no more appends until the bus is reopened: their log failed
    /// (a failed fsync, see [`super::wal`]) or their writer stopped. For readiness: only a restart helps them.
    pub fn failed_partitions(&self) -> Vec<(String, u32)> {
        let topics = self
            .topics
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut failed: Vec<(String, u32)> = topics
            .iter()
            .flat_map(|(topic, partitions)| {
                (0u32..)
                    .zip(partitions.iter())
                    .filter(|(_, partition)| partition.failed.load(Ordering::Acquire))
                    .map(move |(index, _)| (topic.clone(), index))
            })
            .collect();
        failed.sort();
        failed
    }

    /// Opens (or creates) the bus in `config.dir`, restoring its topics, records and committed offsets, and starts
    /// one writer task per partition. Must run inside a tokio runtime.
    pub async fn open(config: DurableBusConfig) -> Result<Self, BusError> {
        let lock = lock_dir(&config.dir)?;
        let dir = config.dir.clone();
        let wal_config = config.wal();
        let protected = config.protected.clone();
        let (offsets, opened) = tokio::task::spawn_blocking(move || open_files(&dir, wal_config, &protected))
            .await
            .map_err(|join| BusError::Io(io::Error::other(join)))??;
        let bus = DurableBus {
            config,
            topics: RwLock::default(),
            creating: tokio::sync::Mutex::new(()),
            offsets,
            closed: AtomicBool::new(false),
            writers: TaskTracker::new(),
            lock: std::sync::Mutex::new(Some(lock)),
        };
        for (name, wals) in opened {
            bus.start_topic(name, wals);
        }
        Ok(bus)
    }

    fn start_topic(&self, name: String, wals: Vec<Wal>) {
        let queue_len = self.config.max_pending_appends.max(1);
        let room = self
            .config
            .retention_bytes_per_partition
            .saturating_add(self.config.segment_bytes.saturating_mul(2));
        let limits = WriterLimits {
            max_group: queue_len,
            max_bytes: self.config.max_bytes_per_partition.max(room),
        };
        let partitions: Arc<[Partition]> = (0u32..)
            .zip(wals)
            .map(|(index, wal)| {
                let read = Arc::new(PartitionRead {
                    reader: wal.reader(),
                    appended: Notify::new(),
                });
                let keep_from = wal.keep_from();
                keep_from.store(
                    protected_from(&self.offsets, &self.config.protected, &name, index),
                    Ordering::Release,
                );
                let (queue, requests) = mpsc::channel(queue_len);
                let failed = Arc::new(AtomicBool::new(false));
                self.writers.spawn(run_writer(
                    wal,
                    requests,
                    Arc::clone(&read),
                    limits,
                    Arc::clone(&failed),
                ));
                Partition {
                    queue,
                    read,
                    keep_from,
                    failed,
                }
            })
            .collect();
        self.topics
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name, partitions);
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

    fn partition_read(&self, topic: &str, partition: u32) -> Result<Arc<PartitionRead>, BusError> {
        let partitions = self.topic(topic)?;
        let found = partitions
            .get(partition as usize)
            .ok_or_else(|| unknown_partition(topic, partition))?;
        Ok(Arc::clone(&found.read))
    }
}

fn unknown_partition(topic: &str, partition: u32) -> BusError {
    BusError::UnknownPartition {
        topic: topic.to_string(),
        partition,
    }
}

fn join_error(join: tokio::task::JoinError) -> BusError {
    BusError::Io(io::Error::other(join))
}

/// A topic found on disk, with the logs of its partitions in order.
type OpenedTopic = (String, Vec<Wal>);

/// Reads the directory at open: offsets, then each complete topic with its partitions' logs. Blocking.
fn open_files(
    dir: &Path,
    wal_config: WalConfig,
    protected: &[ProtectedConsumer],
) -> Result<(OffsetStore, Vec<OpenedTopic>), BusError> {
    fsutil::create_dir_all_durable(dir)?;
    let topics_dir = dir.join("topics");
    fsutil::create_dir_durable(&topics_dir, dir)?;
    let offsets = OffsetStore::open(&dir.join("groups"), dir)?;
    let mut topics = Vec::new();
    for entry in fs::read_dir(&topics_dir)? {
        let topic_dir = entry?.path();
        let name = topic_dir
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(decode_name);
        let Some(name) = name.filter(|_| topic_dir.is_dir()) else {
            continue;
        };
        let meta = match fs::read_to_string(topic_dir.join(TOPIC_META)) {
            Ok(meta) => meta,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                tracing::warn!(topic = %name, "ignoring topic directory without topic.meta (creation interrupted)");
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let partitions: u32 = meta
            .strip_prefix("partitions ")
            .and_then(|count| count.trim().parse().ok())
            .ok_or_else(|| {
                BusError::Corrupt(format!("unreadable {}", topic_dir.join(TOPIC_META).display()))
            })?;
        let wals = (0..partitions)
            .map(|partition| {
                let keep = protected_from(&offsets, protected, &name, partition);
                Wal::open_keeping(&topic_dir.join(partition.to_string()), wal_config, keep)
            })
            .collect::<Result<Vec<_>, _>>()?;
        topics.push((name, wals));
    }
    Ok((offsets, topics))
}

/// Creates a topic's directories and logs, then its `topic.meta`. Blocking.
fn create_topic_files(dir: &Path, spec: &TopicSpec, wal_config: WalConfig) -> Result<Vec<Wal>, BusError> {
    let topic_dir = dir.join("topics").join(encode_name(&spec.name));
    fsutil::create_dir_durable(&topic_dir, dir)?;
    let mut wals = Vec::new();
    for partition in 0..spec.partitions {
        let partition_dir = topic_dir.join(partition.to_string());
        fsutil::create_dir_durable(&partition_dir, &topic_dir)?;
        wals.push(Wal::open(&partition_dir, wal_config)?);
    }
    fsutil::write_atomic(
        &topic_dir.join(TOPIC_META),
        format!("partitions {}\n", spec.partitions).as_bytes(),
    )?;
    Ok(wals)
}

#[derive(Debug, Clone, Copy)]
struct WriterLimits {
    /// Appends taken into one group commit.
    max_group: usize,
    /// Bytes on disk beyond which appends fail with `Backpressure`.
    max_bytes: u64,
}

/// The writer of one partition: group commit until every queue sender is gone and the queue is empty.
async fn run_writer(
    mut wal: Wal,
    mut requests: mpsc::Receiver<AppendRequest>,
    read: Arc<PartitionRead>,
    limits: WriterLimits,
    failed: Arc<AtomicBool>,
) {
    let mut group = Vec::with_capacity(limits.max_group);
    while requests.recv_many(&mut group, limits.max_group).await > 0 {
        let batch = std::mem::take(&mut group);
        if wal.bytes() >= limits.max_bytes {
            // Retention runs after each write, so a full partition takes none until retention runs here: the
            // protected consumers may have committed since.
            let Ok(returned) = tokio::task::spawn_blocking(move || {
                wal.apply_retention();
                wal
            })
            .await
            else {
                tracing::error!("wal writer task failed; the partition takes no more appends");
                failed.store(true, Ordering::Release);
                return;
            };
            wal = returned;
        }
        // Still full: retention cannot free space while a protected consumer is behind. Refuse rather than grow.
        if wal.bytes() >= limits.max_bytes {
            metrics::counter!("bus_durable_full_refusals_total").increment(batch.len() as u64);
            tracing::warn!(
                bytes = wal.bytes(),
                max_bytes = limits.max_bytes,
                "durable bus partition full: a consumer is behind; appends refused until it catches up"
            );
            for request in batch {
                let _ = request.reply.send(Err(BusError::Backpressure));
            }
            continue;
        }
        let started = std::time::Instant::now();
        // File I/O and fsync block: run them off the async workers, moving the log in and back out.
        let written = tokio::task::spawn_blocking(move || {
            let result = write_group(&mut wal, &batch);
            (wal, batch, result)
        })
        .await;
        let Ok((returned, batch, result)) = written else {
            // Only a panic gets here; the dropped replies fail the waiting appends, the closed queue later ones.
            tracing::error!("wal writer task failed; the partition takes no more appends");
            failed.store(true, Ordering::Release);
            return;
        };
        wal = returned;
        metrics::histogram!("bus_durable_group_commit_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("bus_durable_group_commit_appends").record(batch.len() as f64);
        read.appended.notify_waiters();
        match result {
            Ok(firsts) => {
                let records: usize = batch.iter().map(|request| request.records.len()).sum();
                metrics::counter!("bus_durable_appended_records_total").increment(records as u64);
                for (request, first) in batch.into_iter().zip(firsts) {
                    // An appender that gave up waiting has dropped its receiver: nothing to tell it.
                    let _ = request.reply.send(Ok(first));
                }
            }
            Err(error) => {
                metrics::counter!("bus_durable_write_errors_total").increment(1);
                tracing::warn!(%error, appends = batch.len(), "durable bus group commit failed");
                if wal.is_failed() {
                    failed.store(true, Ordering::Release);
                }
                for request in batch {
                    let _ = request.reply.send(Err(copy_error(&error)));
                }
            }
        }
    }
}

/// Appends every request, then syncs once; the offsets of each request's first record.
fn write_group(wal: &mut Wal, batch: &[AppendRequest]) -> Result<Vec<Offset>, BusError> {
    let firsts = batch
        .iter()
        .map(|request| wal.append(&request.records))
        .collect::<Result<Vec<_>, _>>()?;
    wal.sync()?;
    Ok(firsts)
}

/// One error answers every append of a failed group; `BusError` is not `Clone` (`io::Error` is not).
fn copy_error(error: &BusError) -> BusError {
    match error {
        BusError::Io(io) => BusError::Io(io::Error::new(io.kind(), io.to_string())),
        BusError::Corrupt(reason) => BusError::Corrupt(reason.clone()),
        other => BusError::Backend(other.to_string()),
    }
}

#[async_trait]
impl Bus for DurableBus {
    async fn ensure_topic(&self, spec: &TopicSpec) -> Result<(), BusError> {
        spec.check()?;
        let existing = |bus: &Self| match bus.topic(&spec.name) {
            Ok(partitions) if partitions.len() as u32 == spec.partitions => Ok(true),
            Ok(partitions) => Err(BusError::PartitionMismatch {
                topic: spec.name.clone(),
                existing: partitions.len() as u32,
                requested: spec.partitions,
            }),
            Err(BusError::UnknownTopic(_)) => Ok(false),
            Err(error) => Err(error),
        };
        if existing(self)? {
            return Ok(());
        }
        let _creating = self.creating.lock().await;
        if existing(self)? {
            return Ok(()); // created while we waited for the lock
        }
        let (dir, owned_spec, wal_config) = (self.config.dir.clone(), spec.clone(), self.config.wal());
        let wals = tokio::task::spawn_blocking(move || create_topic_files(&dir, &owned_spec, wal_config))
            .await
            .map_err(join_error)??;
        self.start_topic(spec.name.clone(), wals);
        Ok(())
    }

    fn partitions(&self, topic: &str) -> Result<u32, BusError> {
        Ok(self.topic(topic)?.len() as u32)
    }

    async fn append(&self, topic: &str, partition: u32, records: Vec<Record>) -> Result<Offset, BusError> {
        if records.is_empty() {
            return self.end_offset(topic, partition).await;
        }
        let (reply, answer) = oneshot::channel();
        {
            // Scoped: the queue sender must not outlive the hand-off, or `close` would wait for this append.
            let partitions = self.topic(topic)?;
            let target = partitions
                .get(partition as usize)
                .ok_or_else(|| unknown_partition(topic, partition))?;
            match target.queue.try_send(AppendRequest { records, reply }) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => return Err(BusError::Backpressure),
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(writer_gone()),
            }
        }
        answer.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        from: Offset,
        max_records: usize,
        max_wait: Duration,
    ) -> Result<Vec<StoredRecord>, BusError> {
        let read = self.partition_read(topic, partition)?;
        if max_records == 0 {
            return Ok(Vec::new());
        }
        let ready = poll_until(&read.appended, max_wait, || {
            self.check_open()?;
            let (start, end) = read.reader.bounds();
            if from < start {
                return Err(BusError::OffsetOutOfRange {
                    requested: from,
                    earliest: start,
                });
            }
            if from > end {
                return Err(BusError::OffsetBeyondEnd { requested: from, end });
            }
            Ok((from < end).then_some(()))
        })
        .await?;
        if ready.is_none() {
            return Ok(Vec::new());
        }
        let reader = read.reader.clone();
        tokio::task::spawn_blocking(move || reader.read(from, max_records))
            .await
            .map_err(join_error)?
    }

    async fn start_offset(&self, topic: &str, partition: u32) -> Result<Offset, BusError> {
        Ok(self.partition_read(topic, partition)?.reader.bounds().0)
    }

    async fn end_offset(&self, topic: &str, partition: u32) -> Result<Offset, BusError> {
        Ok(self.partition_read(topic, partition)?.reader.bounds().1)
    }

    async fn commit(
        &self,
        group: &str,
        topic: &str,
        partition: u32,
        next_offset: Offset,
    ) -> Result<(), BusError> {
        self.partition_read(topic, partition)?;
        self.offsets.commit(group, topic, partition, next_offset).await?;
        let protects = self
            .config
            .protected
            .iter()
            .any(|consumer| consumer.group == group && consumer.topic == topic);
        if protects
            && let Ok(partitions) = self.topic(topic)
            && let Some(found) = partitions.get(partition as usize)
        {
            let keep = protected_from(&self.offsets, &self.config.protected, topic, partition);
            found.keep_from.store(keep, Ordering::Release);
        }
        Ok(())
    }

    async fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<Offset>, BusError> {
        self.partition_read(topic, partition)?;
        Ok(self.offsets.committed(group, topic, partition))
    }

    /// Refuses new calls, lets every writer finish what is queued (so every append already accepted is answered),
    /// and returns once they have stopped. Calling it again waits the same way and returns `Ok`.
    async fn close(&self) -> Result<(), BusError> {
        self.closed.store(true, Ordering::Release);
        let _creating = self.creating.lock().await;
        let topics = std::mem::take(
            &mut *self
                .topics
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for partition in topics.values().flat_map(|partitions| partitions.iter()) {
            partition.read.appended.notify_waiters();
        }
        drop(topics);
        self.writers.close();
        self.writers.wait().await;
        // Every writer has stopped: another bus may now open the directory.
        drop(
            self.lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
        Ok(())
    }
}

fn writer_gone() -> BusError {
    BusError::Io(io::Error::other("the partition's writer has stopped"))
}

#[cfg(test)]
mod tests;

/// Takes the exclusive lock of the data directory, creating both when missing.
fn lock_dir(dir: &std::path::Path) -> Result<std::fs::File, BusError> {
    fsutil::create_dir_all_durable(dir)?;
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(BusError::Backend(format!(
            "{} is in use by another process (lock {})",
            dir.display(),
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(error)) => Err(BusError::Io(error)),
    }
}
