//! History: per topic, the ordered messages still retained, each at a position `{epoch, offset}`.
//!
//! The offset counts messages appended to the topic within one epoch (the first message has offset 1; offset 0
//! means "before anything"). The epoch names one continuous history: whenever history is lost or rebuilt (a restart
//! of the in-memory store, a flushed Redis), the epoch changes, so a client holding a position from another epoch
//! knows that the gap cannot be replayed and gets a `RESET` instead of a silent partial replay.
//!
//! [`History`] is the seam for the Redis backend (a stream per topic: `XADD` with `MAXLEN`/`MINID` for retention, the
//! epoch stored beside it and regenerated when the stream is found missing); [`MemoryHistory`] is the embedded one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use rustc_hash::FxHashMap;

use crate::DeliveryError;

mod cap;

/// A position in the history of one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Position {
    pub epoch: u64,
    pub offset: u64,
}

/// One message as stored and delivered: its wire JSON, serialized once for all subscribers.
#[derive(Debug)]
pub struct Entry {
    pub topic: Arc<str>,
    pub position: Position,
    /// The message JSON (`{"type":"EVENT",...}`), without a trailing newline.
    pub json: Bytes,
    /// When this node accepted the message (for the publish-to-write latency).
    pub published_at: Instant,
}

/// Why history cannot cover a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapReason {
    /// Messages after the position were dropped by retention (age or size).
    Expired,
    /// The position belongs to another epoch (or lies beyond the end of this one): history was lost or rebuilt.
    EpochChanged,
    /// The resume token names the topic more than once (see [`crate::resume_token`]): which position the client
    /// held is unknown.
    PositionUnknown,
}

impl GapReason {
    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::Expired => "history_expired",
            GapReason::EpochChanged => "epoch_changed",
            GapReason::PositionUnknown => "position_unknown",
        }
    }
}

/// The answer to [`History::read_after`].
#[derive(Debug)]
pub enum Replay {
    /// Every retained message after the position, in order (possibly none).
    Messages(Vec<Arc<Entry>>),
    /// History cannot cover the gap.
    Gap(GapReason),
}

/// Ordered, retained, per-topic history. Implementations must assign offsets contiguously per topic and epoch.
#[async_trait]
pub trait History: Send + Sync + 'static {
    /// Appends a message and returns it with its position.
    async fn append(&self, topic: &str, json: Bytes) -> Result<Arc<Entry>, DeliveryError>;
    /// Appends a message of a producer that numbers its output (`sequence` counts across all topics; each topic
    /// gets its messages in increasing order, while messages of different topics may come in any order), unless
    /// this topic already holds one of that producer at `sequence` or later: a producer replaying after a crash
    /// then appends each message once. `None` for such a duplicate.
    async fn append_sequenced(
        &self,
        topic: &str,
        json: Bytes,
        sequence: u64,
    ) -> Result<Option<Arc<Entry>>, DeliveryError>;
    /// Every retained message of `topic` after `after`, oldest first, up to `max` (more is reported as a gap).
    async fn read_after(&self, topic: &str, after: Position, max: usize) -> Result<Replay, DeliveryError>;
    /// [`History::append_sequenced`] for many messages, in order: one result per message. Stores that can send
    /// them in one round trip do. On `Err` some of the messages may be appended: appending the same batch again
    /// appends only the rest (the sequences make it idempotent).
    async fn append_batch_sequenced(
        &self,
        batch: Vec<SequencedAppend>,
    ) -> Result<Vec<Option<Arc<Entry>>>, DeliveryError> {
        let mut out = Vec::with_capacity(batch.len());
        for item in batch {
            out.push(
                self.append_sequenced(&item.topic, item.json, item.sequence)
                    .await?,
            );
        }
        Ok(out)
    }
    /// The last `n` retained messages of `topic`, oldest first.
    async fn last(&self, topic: &str, n: usize) -> Result<Vec<Arc<Entry>>, DeliveryError>;
    /// The position of the last message of `topic` (offset 0 when it has none yet).
    async fn head(&self, topic: &str) -> Result<Position, DeliveryError>;
    /// Drops what retention no longer allows; called periodically.
    async fn expire(&self) -> Result<(), DeliveryError> {
        Ok(())
    }
}

/// One message of a [`History::append_batch_sequenced`].
#[derive(Debug, Clone)]
pub struct SequencedAppend {
    pub topic: String,
    pub json: Bytes,
    pub sequence: u64,
}

/// Retention of a history.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_age: Duration,
    pub max_messages: usize,
    pub max_bytes: usize,
    /// Memory the messages of an in-process history may take across all topics (JSON, topic name and about 120
    /// bytes of bookkeeping each): past it the oldest messages of every topic go first (see [`MemoryHistory`]).
    pub max_total_bytes: usize,
}

struct TopicHistory {
    last_offset: u64,
    /// When the last message was published (or, for a topic created without one, when it was created): a shrink
    /// to the total cap forgets a topic without messages by this age.
    touched: Instant,
    /// The producer sequence of the last message appended with one.
    last_sequence: Option<u64>,
    /// Bytes of the messages' JSON (the per-topic limit).
    bytes: usize,
    /// Memory the entries take, JSON and bookkeeping (the total cap); see [`footprint`].
    footprint: usize,
    entries: VecDeque<Arc<Entry>>,
}

/// What a topic's own record costs besides its name: the record, the name's reference counts and the map slot.
const RECORD_OVERHEAD: usize = std::mem::size_of::<TopicHistory>() + std::mem::size_of::<Arc<str>>() + 16 + 8;

/// The memory a topic's record takes, as counted against [`Retention::max_total_bytes`].
fn record_footprint(topic: &str) -> usize {
    topic.len() + RECORD_OVERHEAD
}

/// What one entry costs besides its JSON and topic name: the entry, its two reference counts, the topic name's
/// counts and the queue slot.
const ENTRY_OVERHEAD: usize = std::mem::size_of::<Entry>() + 2 * 16 + std::mem::size_of::<Arc<Entry>>();

/// The memory one retained entry takes, as counted against [`Retention::max_total_bytes`].
fn footprint(entry: &Entry) -> usize {
    entry.json.len() + entry.topic.len() + ENTRY_OVERHEAD
}

impl TopicHistory {
    fn new(last_offset: u64, now: Instant) -> TopicHistory {
        TopicHistory {
            last_offset,
            touched: now,
            last_sequence: None,
            bytes: 0,
            footprint: 0,
            entries: VecDeque::new(),
        }
    }

    /// Appends the message at `position` (past the last offset), then trims.
    fn push(
        &mut self,
        topic: &str,
        position: Position,
        json: Bytes,
        published_at: Instant,
        retention: &Retention,
        now: Instant,
    ) -> Arc<Entry> {
        let entry = Arc::new(Entry {
            topic: Arc::from(topic),
            position,
            json,
            published_at,
        });
        self.last_offset = position.offset;
        self.touched = self.touched.max(published_at);
        self.bytes += entry.json.len();
        self.footprint += footprint(&entry);
        self.entries.push_back(entry.clone());
        self.trim(retention, now);
        entry
    }

    /// Drops what `retention` no longer allows; returns the number of messages dropped.
    fn trim(&mut self, retention: &Retention, now: Instant) -> usize {
        let before = self.entries.len();
        while let Some(oldest) = self.entries.front() {
            let too_old = now.saturating_duration_since(oldest.published_at) > retention.max_age;
            let too_many = self.entries.len() > retention.max_messages;
            let too_big = self.bytes > retention.max_bytes && self.entries.len() > 1;
            if !(too_old || too_many || too_big) {
                break;
            }
            self.bytes = self.bytes.saturating_sub(oldest.json.len());
            self.footprint = self.footprint.saturating_sub(footprint(oldest));
            self.entries.pop_front();
        }
        before - self.entries.len()
    }

    /// Offset of the oldest retained message, or `last_offset + 1` when none is retained.
    fn first_offset(&self) -> u64 {
        self.entries
            .front()
            .map_or(self.last_offset + 1, |entry| entry.position.offset)
    }
}

const SHARDS: usize = 32;

type Shard = Mutex<FxHashMap<Arc<str>, TopicHistory>>;

/// The embedded history: in memory, lost on restart (hence a fresh random epoch per process).
///
/// Besides each topic's limits, [`Retention::max_total_bytes`] bounds the memory the messages take across all
/// topics (their JSON, topic name and bookkeeping): when an append takes the total past it, every topic drops its
/// messages older than a cutoff age chosen to bring the total back to about nine tenths of the cap, so the oldest
/// messages go first, as the age limit would have dropped them. A client behind them gets `RESET` and `SNAPSHOT`
/// like after any expiry. Each topic's own record (last offset and sequence) counts too: a topic left without
/// messages by the cutoff is forgotten, and the offsets of topics not held then start past its last offset (the
/// offset floor), so no offset is given twice; a client that held a position of it gets `RESET`.
pub struct MemoryHistory {
    epoch: u64,
    retention: Retention,
    shards: Box<[Shard]>,
    /// The last offset of a topic not held (see [`MemoryHistory::set_offset_floor`]); 0 but after a rebuild.
    offset_floor: AtomicU64,
    /// Memory the messages take across all topics (the sum of the topics' `footprint`).
    total_bytes: AtomicUsize,
    /// Set while one caller shrinks the history to the total cap (the others go on).
    shrinking: AtomicBool,
}

impl MemoryHistory {
    pub fn new(retention: Retention) -> MemoryHistory {
        MemoryHistory::with_epoch(retention, new_epoch())
    }

    /// A history with a given epoch (tests).
    pub fn with_epoch(retention: Retention, epoch: u64) -> MemoryHistory {
        let shards = (0..SHARDS).map(|_| Mutex::new(FxHashMap::default())).collect();
        MemoryHistory {
            epoch,
            retention,
            shards,
            offset_floor: AtomicU64::new(0),
            total_bytes: AtomicUsize::new(0),
            shrinking: AtomicBool::new(false),
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn append_if_new(
        &self,
        topic: &str,
        json: Bytes,
        sequence: Option<u64>,
    ) -> Result<Option<Arc<Entry>>, DeliveryError> {
        let now = Instant::now();
        let appended = self.with_state(
            topic,
            |floor| floor,
            now,
            |state| {
                if let (Some(sequence), Some(last)) = (sequence, state.last_sequence)
                    && sequence <= last
                {
                    return None;
                }
                if sequence.is_some() {
                    state.last_sequence = sequence;
                }
                let offset = state.last_offset + 1;
                Some(state.push(
                    topic,
                    Position {
                        epoch: self.epoch,
                        offset,
                    },
                    json,
                    now,
                    &self.retention,
                    now,
                ))
            },
        )?;
        self.enforce_total_cap()?;
        Ok(appended)
    }

    /// Trims every topic to `retention`, adding the number of messages dropped to `dropped`.
    fn trim_all(
        &self,
        retention: &Retention,
        now: Instant,
        dropped: &mut usize,
    ) -> Result<(), DeliveryError> {
        for shard in self.shards.iter() {
            let mut shard = shard.lock().map_err(|_| poisoned())?;
            for state in shard.values_mut() {
                let before = state.footprint;
                *dropped += state.trim(retention, now);
                self.total_bytes
                    .fetch_sub(before - state.footprint, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Runs `f` on the state of `topic`; a missing one is created, touched at `now`, with the last offset
    /// `last_offset` gives for the offset floor.
    fn with_state<R>(
        &self,
        topic: &str,
        last_offset: impl FnOnce(u64) -> u64,
        now: Instant,
        f: impl FnOnce(&mut TopicHistory) -> R,
    ) -> Result<R, DeliveryError> {
        let mut shard = self.shard(topic).lock().map_err(|_| poisoned())?;
        // Read under the shard's lock: a shrink that forgets this topic raises the floor under the same lock, so
        // the topic cannot be created again below the offsets it gave.
        let floor = self.floor();
        let state = match shard.get_mut(topic) {
            Some(state) => state,
            None => {
                self.total_bytes
                    .fetch_add(record_footprint(topic), Ordering::Relaxed);
                shard
                    .entry(Arc::from(topic))
                    .or_insert_with(|| TopicHistory::new(last_offset(floor), now))
            }
        };
        let before = state.footprint;
        let result = f(state);
        self.account(before, state.footprint);
        Ok(result)
    }

    /// Keeps the total in step with a topic whose bytes went from `before` to `after`.
    fn account(&self, before: usize, after: usize) {
        if after >= before {
            self.total_bytes.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.total_bytes.fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    /// The offsets `items` (topic, producer sequence) would get if appended now, in order: `None` for one that
    /// [`History::append_sequenced`] would drop as a duplicate. Nothing changes; a store that must write messages
    /// elsewhere before they are visible plans, writes, then [`MemoryHistory::put`]s them, appending nothing else
    /// in between.
    pub fn plan(&self, items: &[(&str, Option<u64>)]) -> Result<Vec<Option<u64>>, DeliveryError> {
        let mut heads: FxHashMap<&str, (u64, Option<u64>)> = FxHashMap::default();
        let mut planned = Vec::with_capacity(items.len());
        for &(topic, sequence) in items {
            let (last_offset, last_sequence) = match heads.get_mut(topic) {
                Some(head) => head,
                None => {
                    let head = self.with_topic(topic, |state| match state {
                        Some(state) => (state.last_offset, state.last_sequence),
                        None => (self.floor(), None),
                    })?;
                    heads.entry(topic).or_insert(head)
                }
            };
            if let (Some(sequence), Some(last)) = (sequence, *last_sequence)
                && sequence <= last
            {
                planned.push(None);
                continue;
            }
            if sequence.is_some() {
                *last_sequence = sequence;
            }
            *last_offset += 1;
            planned.push(Some(*last_offset));
        }
        Ok(planned)
    }

    /// Stores a message at a given offset, `age` after it was appended (for the age limit), with its producer
    /// sequence: a planned append (see [`MemoryHistory::plan`]), or a message this history held before a
    /// restart. Messages must come in the order they were appended; one at or below the topic's last offset is
    /// ignored (`None`). After a gap (messages lost from a log) the older entries are dropped: positions before
    /// the new one are then expired, as after trimming. A message already past the age limit only moves the
    /// topic's last offset and sequence. Does not apply the total cap, which would forget topics between a
    /// batch's plan and its puts: call [`MemoryHistory::enforce_total_cap`] once the batch is stored.
    pub fn put(
        &self,
        topic: &str,
        offset: u64,
        sequence: Option<u64>,
        json: Bytes,
        age: Duration,
    ) -> Result<Option<Arc<Entry>>, DeliveryError> {
        let now = Instant::now();
        // Within the age limit, and the monotonic clock has run at least that long (if not, the host restarted:
        // the message counts as new).
        let published_at = now.checked_sub(age).unwrap_or(now);
        let stored = self.with_state(
            topic,
            |floor| floor,
            published_at,
            |state| {
                if offset <= state.last_offset {
                    return None;
                }
                if offset != state.last_offset + 1 || age > self.retention.max_age {
                    // A gap, or nothing left to keep: what came before is expired.
                    state.entries.clear();
                    state.bytes = 0;
                    state.footprint = 0;
                }
                if sequence.is_some() {
                    state.last_sequence = sequence;
                }
                if age > self.retention.max_age {
                    state.last_offset = offset;
                    state.touched = state.touched.max(published_at);
                    return None;
                }
                let position = Position {
                    epoch: self.epoch,
                    offset,
                };
                Some(state.push(topic, position, json, published_at, &self.retention, now))
            },
        )?;
        Ok(stored)
    }

    /// Makes `floor` the last offset of every topic this history holds nothing of: a history rebuilt from a log
    /// that lost old records sets it to the number of messages ever logged, so that a topic whose records all
    /// went never gives an offset a client may already hold to another message.
    pub fn set_offset_floor(&self, floor: u64) {
        self.offset_floor.fetch_max(floor, Ordering::SeqCst);
    }

    fn floor(&self) -> u64 {
        self.offset_floor.load(Ordering::SeqCst)
    }

    fn shard(&self, topic: &str) -> &Shard {
        &self.shards[shard_index(topic, SHARDS)]
    }

    fn with_topic<R>(
        &self,
        topic: &str,
        f: impl FnOnce(Option<&mut TopicHistory>) -> R,
    ) -> Result<R, DeliveryError> {
        let mut shard = self.shard(topic).lock().map_err(|_| poisoned())?;
        let mut state = shard.get_mut(topic);
        let before = state.as_ref().map_or(0, |s| s.footprint);
        let result = f(state.as_deref_mut());
        self.account(before, state.map_or(0, |s| s.footprint));
        Ok(result)
    }
}

/// A fresh epoch: random, never 0.
pub fn new_epoch() -> u64 {
    rand::random::<u64>().max(1)
}

pub(crate) fn shard_index(key: &str, shards: usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = rustc_hash::FxBuildHasher.build_hasher();
    hasher.write(key.as_bytes());
    (hasher.finish() as usize) % shards
}

fn poisoned() -> DeliveryError {
    DeliveryError::Backend("history lock poisoned".into())
}

#[async_trait]
impl History for MemoryHistory {
    async fn append(&self, topic: &str, json: Bytes) -> Result<Arc<Entry>, DeliveryError> {
        self.append_if_new(topic, json, None)?
            .ok_or_else(|| DeliveryError::Backend("unsequenced append refused".into()))
    }

    async fn append_sequenced(
        &self,
        topic: &str,
        json: Bytes,
        sequence: u64,
    ) -> Result<Option<Arc<Entry>>, DeliveryError> {
        self.append_if_new(topic, json, Some(sequence))
    }

    async fn read_after(&self, topic: &str, after: Position, max: usize) -> Result<Replay, DeliveryError> {
        let now = Instant::now();
        let retention = self.retention;
        let epoch = self.epoch;
        self.with_topic(topic, |state| {
            if after.epoch != epoch {
                return Replay::Gap(GapReason::EpochChanged);
            }
            let Some(state) = state else {
                // Under the topic's lock, as every read of the floor for a topic (see `with_state`).
                return match after.offset.cmp(&self.floor()) {
                    std::cmp::Ordering::Equal => Replay::Messages(Vec::new()),
                    std::cmp::Ordering::Less => Replay::Gap(GapReason::Expired),
                    std::cmp::Ordering::Greater => Replay::Gap(GapReason::EpochChanged),
                };
            };
            state.trim(&retention, now);
            if after.offset > state.last_offset {
                return Replay::Gap(GapReason::EpochChanged);
            }
            if after.offset + 1 < state.first_offset() {
                return Replay::Gap(GapReason::Expired);
            }
            let skip = usize::try_from(after.offset + 1 - state.first_offset()).unwrap_or(usize::MAX);
            let wanted = state.entries.len().saturating_sub(skip);
            if wanted > max {
                return Replay::Gap(GapReason::Expired);
            }
            Replay::Messages(state.entries.iter().skip(skip).cloned().collect())
        })
    }

    async fn last(&self, topic: &str, n: usize) -> Result<Vec<Arc<Entry>>, DeliveryError> {
        let now = Instant::now();
        let retention = self.retention;
        self.with_topic(topic, |state| match state {
            None => Vec::new(),
            Some(state) => {
                state.trim(&retention, now);
                let skip = state.entries.len().saturating_sub(n);
                state.entries.iter().skip(skip).cloned().collect()
            }
        })
    }

    async fn head(&self, topic: &str) -> Result<Position, DeliveryError> {
        let epoch = self.epoch;
        self.with_topic(topic, |state| Position {
            epoch,
            offset: state.map_or_else(|| self.floor(), |s| s.last_offset),
        })
    }

    async fn expire(&self) -> Result<(), DeliveryError> {
        let now = Instant::now();
        self.trim_all(&self.retention, now, &mut 0)
    }
}

#[cfg(test)]
mod tests;
