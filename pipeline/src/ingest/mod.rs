//! Ingest: validated CloudEvents onto the input topic, rejected ones onto the dead-letter topic, nothing dropped.
//!
//! [`Ingestor`] is the transport-free core (the HTTP route and the demo feed both call it); [`http`] maps it onto
//! `POST /v1/events` as CONTRACT section 2 describes.

mod body;
mod dead_letter;
mod dedup;
pub mod http;
mod stats;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use social_schemas::{EventType, Limits, check_not_ahead, parse_event};

use crate::bus::partition::partition_for_key;
use crate::bus::{Bus, BusError, DEAD_LETTER_TOPIC, INPUT_TOPIC, Record, TopicSpec};

pub use body::{BodyError, BodyKind, split_body};
pub use dead_letter::{DeadLetter, DeadLetterReason, InputPosition};
pub use dedup::{Dedup, DedupConfig};
pub use stats::{IngestStats, IngestStatsSnapshot};

/// How far after its arrival an event's time may be, by default: 15 minutes (clocks of producers drift; a time
/// further ahead is a bug, and well within the default allowed lateness of an hour).
pub const DEFAULT_MAX_FUTURE_MS: i64 = 15 * 60 * 1000;

/// How long a request waits for room in the in-flight body budget before `503 ingest_busy`.
pub const INGEST_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Ingest settings. Every field has a default suited to the embedded run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest request body accepted, in bytes (`413` beyond).
    pub max_body_bytes: usize,
    /// Bytes of request bodies being read, validated or appended at once, over all requests (at least
    /// `max_body_bytes`): a request takes room for its declared length when its first bytes arrive (for a body
    /// without one, `max_body_bytes`) and keeps it until its answer; one that finds none within
    /// [`INGEST_BUSY_WAIT`] gets `503 ingest_busy`. Bounds the ingest's memory whatever the number of clients.
    pub max_inflight_body_bytes: usize,
    /// Longest time a request body may take to arrive, whole, in milliseconds (`408` beyond); 0 is no limit.
    /// Without it a client sending one byte now and then would hold its connection and buffer for ever.
    pub body_timeout_ms: u64,
    /// Largest single event, in bytes, and other per-event limits.
    pub max_event_bytes: usize,
    /// Most events in one request (`413 too_many_events` beyond, the whole request refused).
    pub max_events_per_request: usize,
    /// Partitions of the input topic when the ingest creates it.
    pub input_partitions: u32,
    pub dedup: DedupConfig,
    /// An event whose `time` is more than this far after its arrival is rejected (`timestamp_in_future`), in
    /// milliseconds: such a time would carry the watermark with it and make the real events after it too late.
    pub max_future_ms: i64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 8 * 1024 * 1024,
            max_inflight_body_bytes: 256 * 1024 * 1024,
            body_timeout_ms: 30_000,
            max_event_bytes: Limits::default().max_event_bytes,
            max_events_per_request: 10_000,
            input_partitions: 4,
            dedup: DedupConfig::default(),
            max_future_ms: DEFAULT_MAX_FUTURE_MS,
        }
    }
}

/// Why one event of a request was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub index: usize,
    pub code: &'static str,
    pub message: String,
}

/// What happened to the events of one request.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    /// New events now on the input topic.
    pub accepted: usize,
    /// Events already accepted earlier (same `source` and `id`): accepted again with no second effect.
    pub duplicates: usize,
    pub rejected: Vec<Rejection>,
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The bus refused or failed the append; events of this request may be partly on the bus, and a retry is safe
    /// because accepted events are deduplicated.
    #[error("event bus unavailable: {0}")]
    Bus(#[from] BusError),
}

/// The transport-free ingest core.
pub struct Ingestor {
    bus: Arc<dyn Bus>,
    /// One permit per byte of [`IngestConfig::max_inflight_body_bytes`].
    inflight: Arc<tokio::sync::Semaphore>,
    partitions: u32,
    limits: Limits,
    dedup: Dedup,
    stats: IngestStats,
    config: IngestConfig,
}

impl Ingestor {
    /// Creates the input and dead-letter topics when missing and warms deduplication from the input topic's
    /// recent records, so that a restart of a durable bus does not forget what it accepted.
    pub async fn open(bus: Arc<dyn Bus>, config: IngestConfig) -> Result<Self, BusError> {
        bus.ensure_topic(&TopicSpec {
            name: INPUT_TOPIC.to_string(),
            partitions: config.input_partitions,
        })
        .await?;
        bus.ensure_topic(&TopicSpec {
            name: DEAD_LETTER_TOPIC.to_string(),
            partitions: 1,
        })
        .await?;
        // At least one slot per request, so that every accepted event has a partition to be appended to (a topic
        // without partitions refuses the append: an error, never a silent drop).
        let partitions = bus.partitions(INPUT_TOPIC)?.max(1);
        let dedup = Dedup::new(config.dedup.clone());
        dedup.warm_from_bus(bus.as_ref(), INPUT_TOPIC, partitions).await?;
        let limits = Limits {
            max_event_bytes: config.max_event_bytes,
            ..Limits::default()
        };
        let inflight_bytes = config
            .max_inflight_body_bytes
            .max(config.max_body_bytes)
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        Ok(Self {
            bus,
            inflight: Arc::new(tokio::sync::Semaphore::new(inflight_bytes)),
            partitions,
            limits,
            dedup,
            stats: IngestStats::default(),
            config,
        })
    }

    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    /// Reserves room for `bytes` of request body in the in-flight budget, waiting up to [`INGEST_BUSY_WAIT`];
    /// `None` when there is none by then (always for more than the whole budget). The room is given back when the
    /// permit drops.
    pub async fn reserve_body(&self, bytes: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let bytes = u32::try_from(bytes).ok()?;
        let reserve = Arc::clone(&self.inflight).acquire_many_owned(bytes);
        match tokio::time::timeout(INGEST_BUSY_WAIT, reserve).await {
            Ok(Ok(permit)) => Some(permit),
            Ok(Err(_)) | Err(_) => None,
        }
    }

    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    /// Validates `items` (one CloudEvent each), appends the new ones to the input topic and the invalid ones to the
    /// dead-letter topic, and returns only when both appends are done.
    pub async fn ingest(&self, items: &[&[u8]], content_type: &str) -> Result<IngestReport, IngestError> {
        let now_ms = now_unix_ms();
        let mut report = IngestReport::default();
        let mut dead_letters = Vec::new();
        let mut by_partition: Vec<Vec<Record>> = vec![Vec::new(); self.partitions as usize];
        let mut reserved_by_partition: Vec<Vec<u128>> = vec![Vec::new(); self.partitions as usize];
        let mut types_by_partition: Vec<Vec<EventType>> = vec![Vec::new(); self.partitions as usize];
        let mut type_counts = TypeCounts::default();

        let mut valid = Vec::with_capacity(items.len());
        for (index, raw) in items.iter().enumerate() {
            let parsed = parse_event(raw, &self.limits).and_then(|event| {
                check_not_ahead(event.time.timestamp_millis(), now_ms, self.config.max_future_ms)?;
                Ok(event)
            });
            match parsed {
                Ok(event) => valid.push(event),
                Err(error) => {
                    let code = error.code.as_str();
                    report.rejected.push(Rejection {
                        index,
                        code,
                        message: error.message.clone(),
                    });
                    // Serialized at once: the letter's text is not held twice.
                    dead_letters.push(
                        DeadLetter::new(
                            DeadLetterReason {
                                code,
                                message: error.message,
                            },
                            Some(index),
                            content_type,
                            raw,
                            self.config.max_event_bytes,
                            now_ms,
                        )
                        .to_record(now_ms),
                    );
                    type_counts.rejected += 1;
                }
            }
        }

        let keys: Vec<u128> = valid
            .iter()
            .map(|event| Dedup::key(&event.source, &event.id))
            .collect();
        let fresh = self.dedup.reserve(&keys, now_ms);
        for ((event, key), is_fresh) in valid.iter().zip(keys).zip(fresh) {
            let event_type = event.event_type();
            if !is_fresh {
                report.duplicates += 1;
                type_counts.add(event_type, Outcome::Duplicate);
                continue;
            }
            let partition_key = event.partition_key();
            let partition = partition_for_key(partition_key.as_bytes(), self.partitions) as usize;
            if let (Some(records), Some(reserved), Some(types)) = (
                by_partition.get_mut(partition),
                reserved_by_partition.get_mut(partition),
                types_by_partition.get_mut(partition),
            ) {
                records.push(Record {
                    key: Bytes::copy_from_slice(partition_key.as_bytes()),
                    value: Bytes::from(event.to_json()),
                    timestamp_ms: now_ms,
                });
                reserved.push(key);
                types.push(event_type);
            }
            report.accepted += 1;
        }

        let appends = by_partition
            .into_iter()
            .enumerate()
            .filter(|(_, records)| !records.is_empty())
            .map(|(partition, records)| async move {
                (
                    partition,
                    self.bus.append(INPUT_TOPIC, partition as u32, records).await,
                )
            });
        let results = futures::future::join_all(appends).await;
        let mut first_error = None;
        for (partition, result) in results {
            let Some(reserved) = reserved_by_partition.get(partition) else {
                continue;
            };
            match result {
                Ok(_) => {
                    self.dedup.confirm(reserved);
                    // Counted as accepted once on the bus, also when another partition fails: the client's retry
                    // finds them as duplicates.
                    for event_type in types_by_partition.get(partition).into_iter().flatten() {
                        type_counts.add(*event_type, Outcome::Accepted);
                    }
                }
                Err(error) => {
                    // Those events are not on the bus: forget them so that the client's retry is not taken for
                    // a duplicate.
                    self.dedup.release(reserved);
                    first_error.get_or_insert(error);
                }
            }
        }

        if let Some(error) = first_error {
            // The client retries the whole request (`503`): its dead letters are written then, once.
            type_counts.publish_accepted(&self.stats);
            return Err(IngestError::Bus(error));
        }
        if !dead_letters.is_empty() {
            let letters = dead_letters.len() as u64;
            if let Err(error) = self.bus.append(DEAD_LETTER_TOPIC, 0, dead_letters).await {
                type_counts.publish_accepted(&self.stats);
                return Err(error.into());
            }
            metrics::counter!("ingest_dead_letters_total").increment(letters);
        }
        // Counted with the request's other tallies, once it is answered: a `503` and its retry count once.
        for rejection in &report.rejected {
            metrics::counter!("ingest_rejections_total", "code" => rejection.code).increment(1);
        }
        type_counts.publish(&self.stats);
        Ok(report)
    }

    /// Records a whole body that could not be split into events (malformed array, oversized body) on the
    /// dead-letter topic, so that it is not lost silently.
    pub async fn dead_letter_body(
        &self,
        reason: DeadLetterReason,
        content_type: &str,
        body: &[u8],
    ) -> Result<(), IngestError> {
        let now_ms = now_unix_ms();
        let letter = DeadLetter::new(
            reason,
            None,
            content_type,
            body,
            self.config.max_event_bytes,
            now_ms,
        );
        self.append_dead_letter(&letter, now_ms).await
    }

    /// [`Ingestor::dead_letter_body`] for a body over the size limit, of which only `first_bytes` were read:
    /// the letter says `size` and is marked truncated.
    pub async fn dead_letter_oversized_body(
        &self,
        reason: DeadLetterReason,
        content_type: &str,
        first_bytes: &[u8],
        size: usize,
    ) -> Result<(), IngestError> {
        let now_ms = now_unix_ms();
        let mut letter = DeadLetter::new(
            reason,
            None,
            content_type,
            first_bytes,
            self.config.max_event_bytes,
            now_ms,
        );
        letter.bytes = size.max(first_bytes.len());
        letter.truncated = true;
        self.append_dead_letter(&letter, now_ms).await
    }

    async fn append_dead_letter(&self, letter: &DeadLetter, now_ms: i64) -> Result<(), IngestError> {
        self.bus
            .append(DEAD_LETTER_TOPIC, 0, vec![letter.to_record(now_ms)])
            .await?;
        metrics::counter!("ingest_dead_letters_total").increment(1);
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Outcome {
    Accepted,
    Duplicate,
}

/// Per-request tallies, published to metrics once per request rather than once per event.
#[derive(Default)]
struct TypeCounts {
    accepted: [u64; EventType::ALL.len()],
    duplicate: [u64; EventType::ALL.len()],
    rejected: u64,
}

impl TypeCounts {
    fn add(&mut self, event_type: EventType, outcome: Outcome) {
        let slot = type_slot(event_type);
        let counts = match outcome {
            Outcome::Accepted => &mut self.accepted,
            Outcome::Duplicate => &mut self.duplicate,
        };
        if let Some(count) = counts.get_mut(slot) {
            *count += 1;
        }
    }

    /// Only the accepted events, for a request answered with an error (the rest is counted on its retry).
    fn publish_accepted(&self, stats: &IngestStats) {
        TypeCounts {
            accepted: self.accepted,
            ..TypeCounts::default()
        }
        .publish(stats);
    }

    fn publish(&self, stats: &IngestStats) {
        for (slot, event_type) in EventType::ALL.into_iter().enumerate() {
            let accepted = self.accepted.get(slot).copied().unwrap_or(0);
            let duplicate = self.duplicate.get(slot).copied().unwrap_or(0);
            if accepted > 0 {
                metrics::counter!("ingest_events_total", "event_type" => event_type.as_str(), "outcome" => "accepted")
                    .increment(accepted);
                stats.add_accepted(event_type, accepted);
            }
            if duplicate > 0 {
                metrics::counter!("ingest_events_total", "event_type" => event_type.as_str(), "outcome" => "duplicate")
                    .increment(duplicate);
                stats.add_duplicates(duplicate);
            }
        }
        if self.rejected > 0 {
            metrics::counter!("ingest_events_total", "event_type" => "unknown", "outcome" => "rejected")
                .increment(self.rejected);
            stats.add_rejected(self.rejected);
        }
    }
}

/// Index of `event_type` in [`EventType::ALL`].
pub(crate) fn type_slot(event_type: EventType) -> usize {
    EventType::ALL
        .iter()
        .position(|candidate| *candidate == event_type)
        .unwrap_or(0)
}

pub(crate) fn now_unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
