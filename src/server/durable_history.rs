//! The delivery history of `run --data-dir` without Redis: the in-process [`MemoryHistory`], with every message it
//! takes also written to a log on disk (a one-partition topic of its own durable bus, under
//! `<data-dir>/delivery-history`), and rebuilt from that log at start with the same epoch and offsets. A client's
//! resume token therefore survives a restart of the process, as it does with Redis: it gets exactly the messages it
//! missed, not a `RESET`.
//!
//! Order: a message is appended in memory, then logged (fsynced), and only then handed to subscribers; appends are
//! serialized, so the log holds each topic's messages in offset order. A crash between the two loses only messages
//! no subscriber was sent, which the operators publish again after their restart (their sequences are in the log,
//! so those already logged are not appended twice). If the log cannot be written, the history refuses every later
//! append and readiness goes false, rather than hand out positions it could not keep; a restart rebuilds it.
//!
//! The log keeps `retention_bytes`; messages older than the history's own retention are dropped as they are
//! restored. When the log lost messages the memory still held, their positions are expired, as after trimming.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use social_delivery::history::{Entry, Replay};
use social_delivery::{DeliveryError, History, MemoryHistory, Position, Retention, SequencedAppend};
use social_pipeline::bus::durable::{DurableBus, DurableBusConfig};
use social_pipeline::bus::{Bus, Record, TopicSpec};

const LOG_TOPIC: &str = "delivery-history";
/// Bytes of log kept on disk: far more than the in-process history keeps of its busiest topics at once.
const RETENTION_BYTES: u64 = 256 << 20;
const SEGMENT_BYTES: u64 = 16 << 20;
/// Records read per fetch while rebuilding.
const REBUILD_CHUNK: usize = 4_096;

/// What the log says of one message, before its JSON.
#[derive(Serialize, Deserialize)]
struct Header {
    /// Epoch.
    e: u64,
    /// Offset in its topic.
    o: u64,
    /// The producer's sequence, for messages published with one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    s: Option<u64>,
    /// Wall clock when it was appended, in Unix ms (for the age limit after a restart).
    w: i64,
}

pub struct DurableHistory {
    memory: MemoryHistory,
    log: DurableBus,
    /// Serializes append-then-log, so the log holds each topic in offset order.
    appending: tokio::sync::Mutex<()>,
    failed: AtomicBool,
}

impl DurableHistory {
    /// Opens the log under `dir` and rebuilds the history from it (an empty log starts a new epoch).
    pub async fn open(dir: &Path, retention: Retention) -> anyhow::Result<DurableHistory> {
        let mut config = DurableBusConfig::new(dir);
        config.retention_bytes_per_partition = RETENTION_BYTES;
        config.segment_bytes = SEGMENT_BYTES;
        let log = DurableBus::open(config).await?;
        log.ensure_topic(&TopicSpec {
            name: LOG_TOPIC.into(),
            partitions: 1,
        })
        .await?;
        let memory = rebuild(&log, retention).await?;
        Ok(DurableHistory {
            memory,
            log,
            appending: tokio::sync::Mutex::new(()),
            failed: AtomicBool::new(false),
        })
    }

    pub fn epoch(&self) -> u64 {
        self.memory.epoch()
    }

    /// False once the log could not be written (for `/readyz`).
    pub fn healthy(&self) -> bool {
        !self.failed.load(Ordering::SeqCst)
    }

    /// Logs the entries just appended in memory (`sequences` beside them).
    async fn log_appended(&self, appended: &[(Arc<Entry>, Option<u64>)]) -> Result<(), DeliveryError> {
        if appended.is_empty() {
            return Ok(());
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let records = appended
            .iter()
            .map(|(entry, sequence)| log_record(entry, *sequence, now_ms))
            .collect();
        if let Err(error) = self.log.append(LOG_TOPIC, 0, records).await {
            self.failed.store(true, Ordering::SeqCst);
            tracing::error!(%error, "the delivery history log cannot be written; refusing further appends");
            return Err(DeliveryError::Backend(format!("history log: {error}")));
        }
        Ok(())
    }

    fn check_usable(&self) -> Result<(), DeliveryError> {
        if self.failed.load(Ordering::SeqCst) {
            return Err(DeliveryError::Backend(
                "the history log failed; restart to rebuild the history".into(),
            ));
        }
        Ok(())
    }

    /// Flushes the log (at shutdown).
    pub async fn close(&self) {
        if let Err(error) = self.log.close().await {
            tracing::warn!(%error, "closing the delivery history log");
        }
    }
}

fn log_record(entry: &Entry, sequence: Option<u64>, now_ms: i64) -> Record {
    let header = Header {
        e: entry.position.epoch,
        o: entry.position.offset,
        s: sequence,
        w: now_ms,
    };
    // A struct of numbers always serializes.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let mut value = BytesMut::with_capacity(header.len() + 1 + entry.json.len());
    value.put_slice(&header);
    value.put_u8(b'\n');
    value.put_slice(&entry.json);
    Record {
        key: Bytes::copy_from_slice(entry.topic.as_bytes()),
        value: value.freeze(),
        timestamp_ms: now_ms,
    }
}

/// Reads the whole log into a history with the log's epoch (the newest one, should it hold several).
async fn rebuild(log: &DurableBus, retention: Retention) -> anyhow::Result<MemoryHistory> {
    let mut memory: Option<MemoryHistory> = None;
    let mut from = log.start_offset(LOG_TOPIC, 0).await?;
    let end = log.end_offset(LOG_TOPIC, 0).await?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let (mut restored, mut unreadable) = (0u64, 0u64);
    while from < end {
        let records = log
            .fetch(LOG_TOPIC, 0, from, REBUILD_CHUNK, Duration::ZERO)
            .await?;
        let Some(last) = records.last() else { break };
        from = last.offset + 1;
        for record in records {
            let parsed = std::str::from_utf8(&record.key).ok().and_then(|topic| {
                let split = record.value.iter().position(|b| *b == b'\n')?;
                let header: Header = serde_json::from_slice(&record.value[..split]).ok()?;
                Some((topic.to_owned(), header, record.value.slice(split + 1..)))
            });
            let Some((topic, header, json)) = parsed else {
                unreadable += 1;
                continue;
            };
            if memory.as_ref().is_none_or(|m| m.epoch() != header.e) {
                // A log holds one epoch; should it hold several, the newest is the live one.
                memory = Some(MemoryHistory::with_epoch(retention, header.e));
            }
            let age = Duration::from_millis(u64::try_from(now_ms - header.w).unwrap_or(0));
            if let Some(memory) = &memory {
                memory.restore(&topic, header.o, header.s, json, age)?;
                restored += 1;
            }
        }
    }
    if unreadable > 0 {
        tracing::warn!(unreadable, "skipped unreadable delivery history log records");
    }
    Ok(match memory {
        Some(memory) => {
            tracing::info!(
                restored,
                epoch = memory.epoch(),
                "delivery history rebuilt from its log"
            );
            memory
        }
        None => MemoryHistory::new(retention),
    })
}

#[async_trait]
impl History for DurableHistory {
    async fn append(&self, topic: &str, json: Bytes) -> Result<Arc<Entry>, DeliveryError> {
        let _appending = self.appending.lock().await;
        self.check_usable()?;
        let entry = self.memory.append(topic, json).await?;
        self.log_appended(&[(entry.clone(), None)]).await?;
        Ok(entry)
    }

    async fn append_sequenced(
        &self,
        topic: &str,
        json: Bytes,
        sequence: u64,
    ) -> Result<Option<Arc<Entry>>, DeliveryError> {
        let _appending = self.appending.lock().await;
        self.check_usable()?;
        let entry = self.memory.append_sequenced(topic, json, sequence).await?;
        if let Some(entry) = &entry {
            self.log_appended(&[(entry.clone(), Some(sequence))]).await?;
        }
        Ok(entry)
    }

    async fn append_batch_sequenced(
        &self,
        batch: Vec<SequencedAppend>,
    ) -> Result<Vec<Option<Arc<Entry>>>, DeliveryError> {
        let _appending = self.appending.lock().await;
        self.check_usable()?;
        let sequences: Vec<u64> = batch.iter().map(|item| item.sequence).collect();
        let entries = self.memory.append_batch_sequenced(batch).await?;
        let appended: Vec<(Arc<Entry>, Option<u64>)> = entries
            .iter()
            .zip(sequences)
            .filter_map(|(entry, sequence)| entry.clone().map(|entry| (entry, Some(sequence))))
            .collect();
        self.log_appended(&appended).await?;
        Ok(entries)
    }

    async fn read_after(&self, topic: &str, after: Position, max: usize) -> Result<Replay, DeliveryError> {
        self.memory.read_after(topic, after, max).await
    }

    async fn last(&self, topic: &str, n: usize) -> Result<Vec<Arc<Entry>>, DeliveryError> {
        self.memory.last(topic, n).await
    }

    async fn head(&self, topic: &str) -> Result<Position, DeliveryError> {
        self.memory.head(topic).await
    }

    async fn expire(&self) -> Result<(), DeliveryError> {
        self.memory.expire().await
    }
}
