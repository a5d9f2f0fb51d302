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

/// Messages dropped because the history held more than [`Retention::max_total_bytes`].
const EVICTED_FOR_TOTAL: &str = "delivery_history_total_cap_evictions_total";

/// Age buckets of a shrink to the total cap (see [`MemoryHistory::shrink_to`]).
const AGE_BUCKETS: usize = 1024;

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

    /// Shrinks the history when it holds more than [`Retention::max_total_bytes`] (see [`MemoryHistory`]).
    fn enforce_total_cap(&self) -> Result<(), DeliveryError> {
        let cap = self.retention.max_total_bytes;
        if self.total_bytes.load(Ordering::Relaxed) <= cap || self.shrinking.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let result = self.shrink_to(cap / 10 * 9);
        self.shrinking.store(false, Ordering::Release);
        result
    }

    /// Drops the oldest messages of every topic until about `target` bytes are held: one pass counts the bytes
    /// by age ([`AGE_BUCKETS`] buckets over the age limit), a second drops every message older than the youngest
    /// bucket boundary that frees enough (so messages of about the same age go together).
    fn shrink_to(&self, target: usize) -> Result<(), DeliveryError> {
        let now = Instant::now();
        let bucket = (self.retention.max_age / AGE_BUCKETS as u32).max(Duration::from_nanos(1));
        // The last bucket holds everything older than the age limit (not yet expired).
        let mut by_age = vec![0usize; AGE_BUCKETS + 1];
        for shard in self.shards.iter() {
            let shard = shard.lock().map_err(|_| poisoned())?;
            let age_index = |at: Instant| {
                let age = now.saturating_duration_since(at);
                usize::try_from(age.as_nanos() / bucket.as_nanos())
                    .unwrap_or(AGE_BUCKETS)
                    .min(AGE_BUCKETS)
            };
            for (topic, state) in shard.iter() {
                // A record goes with its topic's last message (nothing in it is newer than `touched`).
                by_age[age_index(state.touched)] += record_footprint(topic);
                for entry in &state.entries {
                    by_age[age_index(entry.published_at)] += footprint(entry);
                }
            }
        }
        // Measured by the same pass, not from the running total: messages dropped meanwhile (expiry, the topics'
        // own limits) must not make the cutoff drop more than is now needed.
        let excess = by_age.iter().sum::<usize>().saturating_sub(target);
        if excess == 0 {
            return Ok(());
        }
        let mut freed = 0;
        let mut kept_buckets = 0;
        for (index, bytes) in by_age.iter().enumerate().rev() {
            freed += bytes;
            if freed >= excess {
                kept_buckets = index;
                break;
            }
        }
        let retention = Retention {
            max_age: bucket * kept_buckets as u32,
            ..self.retention
        };
        let mut dropped = 0;
        self.trim_all(&retention, now, &mut dropped)?;
        let forgotten = self.forget_idle(retention.max_age, now)?;
        metrics::counter!(EVICTED_FOR_TOTAL).increment(dropped as u64);
        tracing::warn!(
            cap_bytes = self.retention.max_total_bytes,
            kept_age_ms = retention.max_age.as_millis() as u64,
            dropped,
            forgotten_topics = forgotten,
            "history reached its total byte cap; dropped the oldest messages of every topic"
        );
        Ok(())
    }

    /// Forgets every topic without messages whose last one was published more than `max_age` ago, raising the
    /// offset floor past its last offset (a topic created again continues from there, so no offset is reused);
    /// returns how many were forgotten.
    fn forget_idle(&self, max_age: Duration, now: Instant) -> Result<usize, DeliveryError> {
        let mut forgotten = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock().map_err(|_| poisoned())?;
            shard.retain(|topic, state| {
                let idle = state.entries.is_empty() && now.saturating_duration_since(state.touched) > max_age;
                if idle {
                    self.offset_floor.fetch_max(state.last_offset, Ordering::SeqCst);
                    self.total_bytes
                        .fetch_sub(record_footprint(topic) + state.footprint, Ordering::Relaxed);
                    forgotten += 1;
                }
                !idle
            });
        }
        Ok(forgotten)
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
        let floor = self.floor();
        let mut shard = self.shard(topic).lock().map_err(|_| poisoned())?;
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
    /// topic's last offset and sequence.
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
        // A topic not held continues right before the message: the offset was planned while the topic was held
        // (a shrink may have forgotten it since) or read from a log that holds the topic's messages in order.
        let stored = self.with_state(
            topic,
            |_| offset.saturating_sub(1),
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
        self.enforce_total_cap()?;
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
        let floor = self.floor();
        self.with_topic(topic, |state| {
            if after.epoch != epoch {
                return Replay::Gap(GapReason::EpochChanged);
            }
            let Some(state) = state else {
                return match after.offset.cmp(&floor) {
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
        let floor = self.floor();
        self.with_topic(topic, |state| Position {
            epoch,
            offset: state.map_or(floor, |s| s.last_offset),
        })
    }

    async fn expire(&self) -> Result<(), DeliveryError> {
        let now = Instant::now();
        self.trim_all(&self.retention, now, &mut 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(max_messages: usize) -> MemoryHistory {
        let retention = Retention {
            max_age: Duration::from_secs(3600),
            max_messages,
            max_bytes: usize::MAX,
            max_total_bytes: usize::MAX,
        };
        MemoryHistory::with_epoch(retention, 7)
    }

    fn offsets(replay: Replay) -> Vec<u64> {
        match replay {
            Replay::Messages(entries) => entries.iter().map(|e| e.position.offset).collect(),
            Replay::Gap(reason) => panic!("gap: {reason:?}"),
        }
    }

    #[tokio::test]
    async fn restored_messages_keep_their_positions_sequences_and_age() {
        let h = history(100);
        let at = |offset| Position { epoch: 7, offset };
        let put = |topic: &str, offset, sequence, age| {
            h.put(topic, offset, sequence, Bytes::from_static(b"x"), age)
                .unwrap()
        };
        // The log lost the topic's first messages: it starts at 3.
        for (offset, sequence) in [(3, 30), (4, 40), (5, 41)] {
            assert!(put("t", offset, Some(sequence), Duration::ZERO).is_some());
        }
        // An offset already held is ignored; one older than the retention only moves the topic on.
        assert!(put("t", 4, Some(40), Duration::ZERO).is_none());
        assert!(put("old", 1, None, Duration::from_secs(7200)).is_none());
        assert_eq!(h.head("t").await.unwrap(), at(5));
        assert_eq!(offsets(h.read_after("t", at(3), 10).await.unwrap()), [4, 5]);
        assert!(matches!(
            h.read_after("t", at(1), 10).await.unwrap(),
            Replay::Gap(GapReason::Expired)
        ));
        assert!(h.last("old", 10).await.unwrap().is_empty());
        assert_eq!(h.head("old").await.unwrap(), at(1));
        // A gap (a record lost from the log) expires what came before it.
        assert!(put("t", 7, Some(43), Duration::ZERO).is_some());
        assert!(matches!(
            h.read_after("t", at(5), 10).await.unwrap(),
            Replay::Gap(GapReason::Expired)
        ));
        assert_eq!(offsets(h.read_after("t", at(6), 10).await.unwrap()), [7]);
        // A producer replaying after the restart appends only what is new: planned, then put.
        assert_eq!(
            h.plan(&[("t", Some(43)), ("t", Some(44)), ("t", Some(45)), ("u", None)])
                .unwrap(),
            [None, Some(8), Some(9), Some(1)]
        );
        assert!(
            h.append_sequenced("t", Bytes::from_static(b"x"), 43)
                .await
                .unwrap()
                .is_none()
        );
        let next = h
            .append_sequenced("t", Bytes::from_static(b"z"), 44)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.position, at(8));
    }

    #[tokio::test]
    async fn topics_not_held_start_at_the_offset_floor() {
        let h = history(100);
        let at = |offset| Position { epoch: 7, offset };
        h.set_offset_floor(50);
        // A client that saw offsets of the topic before its records were lost gets a gap, never new messages at
        // the offsets it saw.
        assert_eq!(h.head("quiet").await.unwrap(), at(50));
        assert!(matches!(
            h.read_after("quiet", at(3), 10).await.unwrap(),
            Replay::Gap(GapReason::Expired)
        ));
        assert!(
            matches!(h.read_after("quiet", at(50), 10).await.unwrap(), Replay::Messages(m) if m.is_empty())
        );
        let first = h.append("quiet", Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(first.position, at(51));
        assert_eq!(offsets(h.read_after("quiet", at(50), 10).await.unwrap()), [51]);
        assert!(matches!(
            h.read_after("quiet", at(3), 10).await.unwrap(),
            Replay::Gap(GapReason::Expired)
        ));
    }

    #[tokio::test]
    async fn appends_in_order_and_reads_after_a_position() {
        let history = history(10);
        for i in 1..=5u64 {
            let entry = history
                .append("trending.1h", Bytes::from(format!("{i}")))
                .await
                .unwrap();
            assert_eq!(entry.position, Position { epoch: 7, offset: i });
        }
        let head = history.head("trending.1h").await.unwrap();
        assert_eq!(head, Position { epoch: 7, offset: 5 });
        let replay = history
            .read_after("trending.1h", Position { epoch: 7, offset: 2 }, 100)
            .await
            .unwrap();
        assert_eq!(offsets(replay), [3, 4, 5]);
        let none = history.read_after("trending.1h", head, 100).await.unwrap();
        assert!(offsets(none).is_empty());
        let last = history.last("trending.1h", 2).await.unwrap();
        assert_eq!(last.iter().map(|e| e.position.offset).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(
            history.head("trending.24h").await.unwrap(),
            Position { epoch: 7, offset: 0 }
        );
    }

    #[tokio::test]
    async fn gaps_are_reported_never_skipped() {
        let history = history(3);
        for i in 0..6 {
            history.append("t", Bytes::from(format!("{i}"))).await.unwrap();
        }
        // Retained: 4, 5, 6. After 3 is still covered; after 2 is not.
        let covered = history
            .read_after("t", Position { epoch: 7, offset: 3 }, 100)
            .await
            .unwrap();
        assert_eq!(offsets(covered), [4, 5, 6]);
        let expired = history
            .read_after("t", Position { epoch: 7, offset: 2 }, 100)
            .await
            .unwrap();
        assert!(matches!(expired, Replay::Gap(GapReason::Expired)));
        let other_epoch = history
            .read_after("t", Position { epoch: 8, offset: 6 }, 100)
            .await
            .unwrap();
        assert!(matches!(other_epoch, Replay::Gap(GapReason::EpochChanged)));
        let beyond = history
            .read_after("t", Position { epoch: 7, offset: 9 }, 100)
            .await
            .unwrap();
        assert!(matches!(beyond, Replay::Gap(GapReason::EpochChanged)));
        let too_many = history
            .read_after("t", Position { epoch: 7, offset: 3 }, 2)
            .await
            .unwrap();
        assert!(matches!(too_many, Replay::Gap(GapReason::Expired)));
    }

    #[tokio::test(start_paused = true)]
    async fn age_retention_expires_messages() {
        let retention = Retention {
            max_age: Duration::from_millis(30),
            max_messages: 100,
            max_bytes: usize::MAX,
            max_total_bytes: usize::MAX,
        };
        let history = MemoryHistory::with_epoch(retention, 1);
        history.append("t", Bytes::from_static(b"a")).await.unwrap();
        tokio::time::advance(Duration::from_millis(50)).await;
        history.expire().await.unwrap();
        assert!(history.last("t", 10).await.unwrap().is_empty());
        let replay = history
            .read_after("t", Position { epoch: 1, offset: 0 }, 10)
            .await
            .unwrap();
        assert!(matches!(replay, Replay::Gap(GapReason::Expired)));
        assert_eq!(history.head("t").await.unwrap().offset, 1);
    }

    #[tokio::test]
    async fn byte_cap_keeps_at_least_the_newest() {
        let retention = Retention {
            max_age: Duration::from_secs(60),
            max_messages: 100,
            max_bytes: 4,
            max_total_bytes: usize::MAX,
        };
        let history = MemoryHistory::with_epoch(retention, 1);
        history.append("t", Bytes::from_static(b"abc")).await.unwrap();
        history.append("t", Bytes::from_static(b"defgh")).await.unwrap();
        let last = history.last("t", 10).await.unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].position.offset, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn total_cap_drops_the_oldest_messages_of_every_topic_first() {
        // Every message below takes the same memory: 10 bytes of JSON on a one-letter topic; so does every
        // topic's record.
        let unit = 10 + 1 + ENTRY_OVERHEAD;
        let record = record_footprint("a");
        let retention = Retention {
            max_age: Duration::from_secs(3600),
            max_messages: 100,
            max_bytes: usize::MAX,
            max_total_bytes: 10 * unit + 3 * record,
        };
        let history = MemoryHistory::with_epoch(retention, 1);
        let message = || Bytes::from(vec![b'x'; 10]);
        // Ten messages a second apart, alternating between two topics: exactly at the cap.
        for n in 0..10 {
            let topic = if n % 2 == 0 { "a" } else { "b" };
            history.append(topic, message()).await.unwrap();
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        let held = |history: &MemoryHistory| history.total_bytes.load(Ordering::Relaxed);
        assert_eq!(held(&history), 10 * unit + 2 * record);
        // One more, on a third topic: down to at most nine tenths: the three oldest (a1 at 0 s, b1 at 1 s, a2 at
        // 2 s, in the same age bucket of 3.5 s) go, whatever their topic; the topics, which have messages left, stay.
        history.append("c", message()).await.unwrap();
        assert_eq!(held(&history), 8 * unit + 3 * record);
        let first = |entries: Vec<Arc<Entry>>| entries.first().map(|e| e.position.offset);
        assert_eq!(first(history.last("a", 10).await.unwrap()), Some(3));
        assert_eq!(first(history.last("b", 10).await.unwrap()), Some(2));
        assert_eq!(first(history.last("c", 10).await.unwrap()), Some(1));
        let behind = history
            .read_after("a", Position { epoch: 1, offset: 1 }, 10)
            .await
            .unwrap();
        assert!(matches!(behind, Replay::Gap(GapReason::Expired)));
        let after_the_gap = history
            .read_after("a", Position { epoch: 1, offset: 2 }, 10)
            .await
            .unwrap();
        assert_eq!(offsets(after_the_gap), vec![3, 4, 5]);
    }

    #[tokio::test(start_paused = true)]
    async fn total_cap_forgets_topics_without_messages_and_never_reuses_their_offsets() {
        let unit = 10 + 4 + ENTRY_OVERHEAD;
        let record = record_footprint("t000");
        let retention = Retention {
            max_age: Duration::from_secs(3600),
            max_messages: 1,
            max_bytes: usize::MAX,
            max_total_bytes: 20 * (unit + record),
        };
        let history = MemoryHistory::with_epoch(retention, 1);
        let message = || Bytes::from(vec![b'x'; 10]);
        // t000 gets three messages (it keeps one), then 19 more topics one message each, a second apart.
        for _ in 0..3 {
            history.append("t000", message()).await.unwrap();
        }
        for n in 1..20 {
            tokio::time::advance(Duration::from_secs(1)).await;
            history.append(&format!("t{n:03}"), message()).await.unwrap();
        }
        let held = |history: &MemoryHistory| history.total_bytes.load(Ordering::Relaxed);
        assert_eq!(held(&history), 20 * (unit + record));
        // A flood of new topics: the oldest topics go, messages and records, so memory stays under the cap.
        for n in 20..60 {
            tokio::time::advance(Duration::from_secs(1)).await;
            history.append(&format!("t{n:03}"), message()).await.unwrap();
            assert!(held(&history) <= 20 * (unit + record), "{} held", held(&history));
        }
        let topics: usize = history.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(topics < 20, "{topics} topics held");
        assert!(history.last("t000", 1).await.unwrap().is_empty());
        // Its last offset was 3: a client there gets RESET, never a message of another incarnation.
        let behind = history
            .read_after("t000", Position { epoch: 1, offset: 3 }, 10)
            .await
            .unwrap();
        assert!(matches!(behind, Replay::Gap(GapReason::Expired)));
        // Created again, it continues past every offset it gave.
        let again = history.append("t000", message()).await.unwrap();
        assert!(again.position.offset > 3);
        // The newest topics are still there, with their message.
        assert_eq!(history.last("t059", 1).await.unwrap().len(), 1);
        // A message planned while its topic was held, stored after a shrink forgot the topic and raised the floor
        // past that offset (a busier topic went further): it is stored at its planned offset, not dropped.
        let planned = history.plan(&[("t059", None)]).unwrap()[0].unwrap();
        for _ in 0..planned + 5 {
            history.append("t000", message()).await.unwrap();
        }
        tokio::time::advance(Duration::from_secs(7200)).await;
        history.expire().await.unwrap();
        assert!(history.forget_idle(Duration::ZERO, Instant::now()).unwrap() > 0);
        assert!(history.floor() > planned);
        let stored = history
            .put("t059", planned, None, message(), Duration::ZERO)
            .unwrap()
            .expect("stored");
        assert_eq!(stored.position.offset, planned);
    }
}
