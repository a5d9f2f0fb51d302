//! The delivery history of `run --data-dir` without Redis: the in-process [`MemoryHistory`], with every message it
//! takes first written to a log on disk (a one-partition topic of its own durable bus, under
//! `<data-dir>/delivery-history`), and rebuilt from that log at start with the same epoch and offsets. A client's
//! resume token therefore survives a restart of the process, as it does with Redis: it gets exactly the messages it
//! missed, not a `RESET`.
//!
//! Order: under one lock, the offsets of a batch are planned, the batch is logged (fsynced), and only then is it
//! stored in memory, where readers and subscribers see it. So nothing is visible that the log does not hold, and a
//! failed write changes nothing (the publisher retries; `/readyz` is false until a write succeeds again; after a
//! failed fsync the log refuses every write until the process restarts, see `social_pipeline::bus::wal`). Each
//! append runs in a task of its own, so a caller that stops waiting cannot cut it between log and memory. The
//! first record of a new log holds just the epoch, so that it survives a restart before any message.
//!
//! The log keeps `RETENTION_BYTES`; messages older than the history's own retention are dropped as they are
//! restored. Should the log have lost old records, every topic it holds nothing of starts after the number of
//! records ever logged (an offset no message of this epoch reached), so no offset a client holds is ever reused;
//! such clients get `RESET`.

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
    inner: Arc<Inner>,
}

struct Inner {
    memory: MemoryHistory,
    log: DurableBus,
    /// Serializes plan-log-store, so that the planned offsets hold and the log has each topic in offset order.
    appending: tokio::sync::Mutex<()>,
    /// Whether the last write of the log failed.
    failed: AtomicBool,
}

impl DurableHistory {
    /// Opens the log under `dir` and rebuilds the history from it (an empty log starts a new epoch).
    pub async fn open(dir: &Path, retention: Retention) -> anyhow::Result<DurableHistory> {
        DurableHistory::open_sized(dir, retention, SEGMENT_BYTES, RETENTION_BYTES).await
    }

    /// [`DurableHistory::open`] with a log of `segment_bytes` segments keeping `log_bytes`.
    async fn open_sized(
        dir: &Path,
        retention: Retention,
        segment_bytes: u64,
        log_bytes: u64,
    ) -> anyhow::Result<DurableHistory> {
        let mut config = DurableBusConfig::new(dir);
        config.retention_bytes_per_partition = log_bytes;
        config.segment_bytes = segment_bytes;
        let log = DurableBus::open(config).await?;
        log.ensure_topic(&TopicSpec {
            name: LOG_TOPIC.into(),
            partitions: 1,
        })
        .await?;
        let memory = rebuild(&log, retention).await?;
        if log.end_offset(LOG_TOPIC, 0).await? == 0 {
            let epoch = Record {
                key: Bytes::new(),
                value: header_line(memory.epoch(), 0, None, chrono::Utc::now().timestamp_millis()),
                timestamp_ms: 0,
            };
            log.append(LOG_TOPIC, 0, vec![epoch]).await?;
        }
        Ok(DurableHistory {
            inner: Arc::new(Inner {
                memory,
                log,
                appending: tokio::sync::Mutex::new(()),
                failed: AtomicBool::new(false),
            }),
        })
    }

    pub fn epoch(&self) -> u64 {
        self.inner.memory.epoch()
    }

    /// False while the log cannot be written (for `/readyz`).
    pub fn healthy(&self) -> bool {
        !self.inner.failed.load(Ordering::SeqCst)
    }

    /// [`Inner::append_logged`] in a task of its own: a caller that stops waiting (a cancelled publish) cannot
    /// cut it between the log write and the store in memory, which would leave logged offsets that the memory
    /// does not know and would give out again.
    async fn append_logged(
        &self,
        batch: Vec<(String, Bytes, Option<u64>)>,
    ) -> Result<Vec<Option<Arc<Entry>>>, DeliveryError> {
        let inner = self.inner.clone();
        tokio::spawn(async move { inner.append_logged(batch).await })
            .await
            .map_err(|error| DeliveryError::Backend(format!("history append task: {error}")))?
    }

    /// Flushes the log (at shutdown).
    pub async fn close(&self) {
        if let Err(error) = self.inner.log.close().await {
            tracing::warn!(%error, "closing the delivery history log");
        }
    }
}

impl Inner {
    /// Appends `batch` (topic, message, producer sequence): plans the offsets, logs the new messages, then stores
    /// them. One result per message, `None` for a duplicate.
    async fn append_logged(
        &self,
        batch: Vec<(String, Bytes, Option<u64>)>,
    ) -> Result<Vec<Option<Arc<Entry>>>, DeliveryError> {
        let _appending = self.appending.lock().await;
        let items: Vec<(&str, Option<u64>)> = batch
            .iter()
            .map(|(topic, _, sequence)| (topic.as_str(), *sequence))
            .collect();
        let planned = self.memory.plan(&items)?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let records: Vec<Record> = batch
            .iter()
            .zip(&planned)
            .filter_map(|((topic, json, sequence), offset)| {
                offset.map(|offset| log_record(topic, self.memory.epoch(), offset, *sequence, json, now_ms))
            })
            .collect();
        if !records.is_empty() {
            if let Err(error) = self.log.append(LOG_TOPIC, 0, records).await {
                self.failed.store(true, Ordering::SeqCst);
                tracing::error!(%error, "the delivery history log cannot be written");
                return Err(DeliveryError::Backend(format!("history log: {error}")));
            }
            self.failed.store(false, Ordering::SeqCst);
        }
        let mut out = Vec::with_capacity(batch.len());
        for ((topic, json, sequence), offset) in batch.into_iter().zip(planned) {
            out.push(match offset {
                Some(offset) => self.memory.put(&topic, offset, sequence, json, Duration::ZERO)?,
                None => None,
            });
        }
        // After the whole batch: a shrink between its plan and its puts could forget a topic it planned for.
        self.memory.enforce_total_cap()?;
        Ok(out)
    }
}

/// A header line: epoch, offset, sequence and wall clock, then `\n`.
fn header_line(epoch: u64, offset: u64, sequence: Option<u64>, now_ms: i64) -> Bytes {
    let header = Header {
        e: epoch,
        o: offset,
        s: sequence,
        w: now_ms,
    };
    // A struct of numbers always serializes.
    let mut line = serde_json::to_vec(&header).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn log_record(
    topic: &str,
    epoch: u64,
    offset: u64,
    sequence: Option<u64>,
    json: &Bytes,
    now_ms: i64,
) -> Record {
    let header = header_line(epoch, offset, sequence, now_ms);
    let mut value = BytesMut::with_capacity(header.len() + json.len());
    value.put_slice(&header);
    value.put_slice(json);
    Record {
        key: Bytes::copy_from_slice(topic.as_bytes()),
        value: value.freeze(),
        timestamp_ms: now_ms,
    }
}

/// Reads the whole log into a history with the log's epoch (the newest one, should it hold several).
async fn rebuild(log: &DurableBus, retention: Retention) -> anyhow::Result<MemoryHistory> {
    let mut memory: Option<MemoryHistory> = None;
    let start = log.start_offset(LOG_TOPIC, 0).await?;
    let end = log.end_offset(LOG_TOPIC, 0).await?;
    let mut from = start;
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
                Some((topic, header, &record.value[split + 1..]))
            });
            let Some((topic, header, json)) = parsed else {
                unreadable += 1;
                continue;
            };
            if memory.as_ref().is_none_or(|m| m.epoch() != header.e) {
                // A log holds one epoch; should it hold several, the newest is the live one.
                memory = Some(MemoryHistory::with_epoch(retention, header.e));
            }
            // The epoch record of a new log names no topic.
            if let (Some(memory), false) = (&memory, topic.is_empty()) {
                let age = Duration::from_millis(u64::try_from(now_ms - header.w).unwrap_or(0));
                // A copy: a slice would keep the whole read buffer alive.
                memory.put(topic, header.o, header.s, Bytes::copy_from_slice(json), age)?;
                restored += 1;
            }
        }
    }
    if unreadable > 0 {
        tracing::warn!(unreadable, "skipped unreadable delivery history log records");
    }
    let memory = memory.unwrap_or_else(|| MemoryHistory::new(retention));
    if start > 0 {
        // Old records are gone: topics held nowhere start past every offset this epoch can have given.
        memory.set_offset_floor(end);
    }
    memory.enforce_total_cap()?;
    tracing::info!(
        restored,
        epoch = memory.epoch(),
        "delivery history rebuilt from its log"
    );
    Ok(memory)
}

#[async_trait]
impl History for DurableHistory {
    async fn append(&self, topic: &str, json: Bytes) -> Result<Arc<Entry>, DeliveryError> {
        self.append_logged(vec![(topic.to_owned(), json, None)])
            .await?
            .pop()
            .flatten()
            .ok_or_else(|| DeliveryError::Backend("unsequenced append refused".into()))
    }

    async fn append_sequenced(
        &self,
        topic: &str,
        json: Bytes,
        sequence: u64,
    ) -> Result<Option<Arc<Entry>>, DeliveryError> {
        Ok(self
            .append_logged(vec![(topic.to_owned(), json, Some(sequence))])
            .await?
            .pop()
            .flatten())
    }

    async fn append_batch_sequenced(
        &self,
        batch: Vec<SequencedAppend>,
    ) -> Result<Vec<Option<Arc<Entry>>>, DeliveryError> {
        self.append_logged(
            batch
                .into_iter()
                .map(|item| (item.topic, item.json, Some(item.sequence)))
                .collect(),
        )
        .await
    }

    async fn read_after(&self, topic: &str, after: Position, max: usize) -> Result<Replay, DeliveryError> {
        self.inner.memory.read_after(topic, after, max).await
    }

    async fn last(&self, topic: &str, n: usize) -> Result<Vec<Arc<Entry>>, DeliveryError> {
        self.inner.memory.last(topic, n).await
    }

    async fn head(&self, topic: &str) -> Result<Position, DeliveryError> {
        self.inner.memory.head(topic).await
    }

    async fn expire(&self) -> Result<(), DeliveryError> {
        self.inner.memory.expire().await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn retention() -> Retention {
        Retention {
            max_age: Duration::from_secs(3600),
            max_messages: 1_000,
            max_bytes: 1 << 20,
            max_total_bytes: usize::MAX,
        }
    }

    async fn append(history: &DurableHistory, topic: &str, sequence: u64) -> Position {
        let json = Bytes::from(format!("{{\"n\":{sequence}}}"));
        history
            .append_sequenced(topic, json, sequence)
            .await
            .unwrap()
            .unwrap()
            .position
    }

    #[tokio::test]
    async fn reopened_history_keeps_epoch_offsets_and_sequences() {
        let dir = tempfile::tempdir().unwrap();
        let history = DurableHistory::open(dir.path(), retention()).await.unwrap();
        let epoch = history.epoch();
        history.close().await;
        drop(history);
        // The epoch outlives a restart before any message.
        let history = DurableHistory::open(dir.path(), retention()).await.unwrap();
        assert_eq!(history.epoch(), epoch);
        for sequence in 1..=3 {
            append(&history, "a", sequence).await;
        }
        history.close().await;
        drop(history);
        let history = DurableHistory::open(dir.path(), retention()).await.unwrap();
        assert_eq!(history.head("a").await.unwrap(), Position { epoch, offset: 3 });
        // A replay of sequence 3 is a duplicate; 4 comes next.
        let replayed = history
            .append_sequenced("a", Bytes::from_static(b"{}"), 3)
            .await
            .unwrap();
        assert!(replayed.is_none());
        assert_eq!(append(&history, "a", 4).await, Position { epoch, offset: 4 });
        match history
            .read_after("a", Position { epoch, offset: 1 }, 10)
            .await
            .unwrap()
        {
            Replay::Messages(entries) => {
                let offsets: Vec<u64> = entries.iter().map(|e| e.position.offset).collect();
                assert_eq!(offsets, [2, 3, 4]);
                assert_eq!(&entries[1].json[..], b"{\"n\":3}");
            }
            Replay::Gap(reason) => panic!("gap {reason:?}"),
        }
    }

    #[tokio::test]
    async fn a_topic_whose_records_left_the_log_never_reuses_an_offset() {
        let dir = tempfile::tempdir().unwrap();
        // Segments of 4 KiB, 16 KiB kept: the quiet topic's records go once the busy one has written enough.
        let open = || DurableHistory::open_sized(dir.path(), retention(), 4_096, 16_384);
        let history = open().await.unwrap();
        let epoch = history.epoch();
        let seen = append(&history, "quiet", 1).await;
        for sequence in 2..2_000 {
            append(&history, "busy", sequence).await;
        }
        history.close().await;
        drop(history);
        let history = open().await.unwrap();
        assert_eq!(history.epoch(), epoch);
        assert!(
            history.last("quiet", 10).await.unwrap().is_empty(),
            "the log lost it"
        );
        // The client that saw offset 1 gets a gap, and the next message is not put at an offset it saw.
        let next = append(&history, "quiet", 2_000).await;
        assert!(next.offset > seen.offset + 1, "{next:?}");
        assert!(matches!(
            history.read_after("quiet", seen, 10).await.unwrap(),
            Replay::Gap(_)
        ));
    }
}
