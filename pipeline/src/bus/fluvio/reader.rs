//! Reading one partition, with the workaround for the 0.50 consumer's lost records.
//!
//! A [`PartitionReader`] is an open consumer stream plus the offset it must deliver next. The stream stays
//! open between fetches that continue where the last one ended, so a sequential reader pays for one stream
//! request, not one per fetch; a fetch from any other offset re-opens it.
//!
//! The client can skip records (DEPENDENCY-FACTS, Fluvio): the SPU cuts a batch short when the unread backlog
//! exceeds the fetch limit, the client acknowledges the batch's end anyway, and the cut records never come.
//! The two symptoms, and what this module does about them:
//! - a gap: the stream hands over an offset beyond the next expected one. The record is dropped and the
//!   stream re-opened from the next expected offset.
//! - a stall: nothing arrives for `stall_timeout_ms` while the leader's end offset is ahead of the reader
//!   (the SPU believes the reader is at the end). The stream is re-opened from the next expected offset.
//!
//! Records below the next expected offset (a re-opened stream may start inside an already delivered batch)
//! are skipped. A fetch gives up after `catch_up_timeout_ms` of re-opens without a record while records are
//! known to exist (a retryable [`BusError::Backend`]); it never skips past a missing offset.
//!
//! Memory: the stream holds at most one fetch response (`max_bytes`, about 1 MiB by default) per partition,
//! and the SPU sends the next only after the client acknowledged the previous; this module holds no copy of
//! its own beyond the records it returns.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use fluvio::consumer::{ConsumerConfig, Record as ConsumerRecord};
use fluvio::dataplane::link::ErrorCode;
use futures::{FutureExt, Stream, StreamExt};
use tokio::time::Instant;

use super::{FluvioBus, backend, map_error, with_timeout};
use crate::bus::{BusError, Offset, StoredRecord};

type RecordStream = Pin<Box<dyn Stream<Item = Result<ConsumerRecord, ErrorCode>> + Send>>;

/// Consecutive stream errors (without a record in between) after which a fetch reports the error.
const MAX_STREAM_ERRORS: u32 = 3;

/// Pause before re-opening a stream that ended or failed (gaps and stalls re-open at once).
const REOPEN_BACKOFF: Duration = Duration::from_millis(50);

pub(super) struct PartitionReader {
    stream: RecordStream,
    /// The offset the next delivered record must have.
    next: Offset,
}

/// Why a stream is re-opened; a metric label.
#[derive(Debug, Clone, Copy)]
enum Reopen {
    Gap,
    Stall,
    Ended,
    Error,
}

impl Reopen {
    fn label(self) -> &'static str {
        match self {
            Reopen::Gap => "gap",
            Reopen::Stall => "stall",
            Reopen::Ended => "ended",
            Reopen::Error => "error",
        }
    }
}

/// What one item of the stream meant.
enum Step {
    Delivered,
    Skipped,
    Gap { got: Offset },
    Ended,
    Failed(ErrorCode),
}

async fn open(
    bus: &FluvioBus,
    topic: &str,
    partition: u32,
    from: Offset,
) -> Result<PartitionReader, BusError> {
    let start = i64::try_from(from)
        .ok()
        .and_then(|offset| fluvio::Offset::absolute(offset).ok())
        .ok_or_else(|| BusError::Backend(format!("offset {from} is out of fluvio's range")))?;
    let mut config = ConsumerConfig::builder();
    if let Some(max_bytes) = bus.config.fetch_max_bytes {
        config.max_bytes(max_bytes);
    }
    let config = config
        .build()
        .map_err(|error| backend("consumer config", &error))?;
    // `Fluvio::consumer_with_config` wraps the stream in a retrying stream that reconnects with a new client
    // and resumes from what it saw; this module re-opens by itself, from what it delivered, so it uses the
    // plain one.
    #[allow(deprecated)]
    let consumer = with_timeout(
        bus.config.request_timeout(),
        "create consumer",
        bus.client
            .partition_consumer(bus.config.cluster_topic(topic), partition),
    )
    .await?
    .map_err(|error| map_error("create consumer", topic, &error))?;
    #[allow(deprecated)]
    let stream = with_timeout(
        bus.config.request_timeout(),
        "open stream",
        consumer.stream_with_config(start, config),
    )
    .await?
    .map_err(|error| map_error("open stream", topic, &error))?;
    Ok(PartitionReader {
        stream: Box::pin(stream),
        next: from,
    })
}

fn step(
    reader: &mut PartitionReader,
    item: Option<Result<ConsumerRecord, ErrorCode>>,
    out: &mut Vec<StoredRecord>,
) -> Step {
    let record = match item {
        None => return Step::Ended,
        Some(Err(code)) => return Step::Failed(code),
        Some(Ok(record)) => record,
    };
    let Ok(offset) = Offset::try_from(record.offset()) else {
        return Step::Skipped;
    };
    if offset < reader.next {
        return Step::Skipped;
    }
    if offset > reader.next {
        return Step::Gap { got: offset };
    }
    let timestamp_ms = record.timestamp().max(0);
    out.push(StoredRecord {
        offset,
        key: record.key().map(Bytes::copy_from_slice).unwrap_or_default(),
        value: Bytes::copy_from_slice(record.value()),
        timestamp_ms,
    });
    reader.next += 1;
    Step::Delivered
}

fn count_reopen(bus: &FluvioBus, topic: &str, partition: u32, reason: Reopen, expected: Offset) {
    metrics::counter!("bus_fluvio_reopens_total", "reason" => reason.label()).increment(1);
    let counter = match reason {
        Reopen::Gap => &bus.reopens.gaps,
        Reopen::Stall => &bus.reopens.stalls,
        Reopen::Ended | Reopen::Error => &bus.reopens.other,
    };
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match reason {
        Reopen::Gap | Reopen::Stall => {
            tracing::info!(
                topic,
                partition,
                expected,
                reason = reason.label(),
                "re-opening fluvio stream"
            )
        }
        Reopen::Ended | Reopen::Error => {
            tracing::debug!(
                topic,
                partition,
                expected,
                reason = reason.label(),
                "re-opening fluvio stream"
            )
        }
    }
}

/// [`crate::bus::Bus::fetch`] on one partition; `slot` is that partition's reader, kept between calls.
pub(super) async fn fetch(
    bus: &FluvioBus,
    slot: &mut Option<PartitionReader>,
    topic: &str,
    partition: u32,
    from: Offset,
    max_records: usize,
    max_wait: Duration,
) -> Result<Vec<StoredRecord>, BusError> {
    if slot.as_ref().is_some_and(|reader| reader.next != from) {
        *slot = None;
    }
    let started = Instant::now();
    let wait_deadline = started + max_wait;
    let catch_up_deadline = started + max_wait.max(Duration::from_millis(bus.config.catch_up_timeout_ms));
    let stall_timeout = Duration::from_millis(bus.config.stall_timeout_ms);
    let mut out = Vec::new();
    let mut errors = 0;
    loop {
        let reader = match slot {
            Some(reader) => reader,
            None => {
                // (Re-)open at `from`: `out` is empty here, so `from` is also the next expected offset.
                debug_assert!(out.is_empty());
                let offsets = bus.leaders.offsets(bus, topic, partition).await?;
                if from < offsets.start {
                    return Err(BusError::OffsetOutOfRange {
                        requested: from,
                        earliest: offsets.start,
                    });
                }
                if from > offsets.end {
                    return Err(BusError::OffsetBeyondEnd {
                        requested: from,
                        end: offsets.end,
                    });
                }
                slot.insert(open(bus, topic, partition, from).await?)
            }
        };

        // Take what has arrived, without waiting.
        let mut reopen = None;
        while out.len() < max_records {
            let Some(item) = reader.stream.next().now_or_never() else {
                break;
            };
            match step(reader, item, &mut out) {
                Step::Delivered => errors = 0,
                Step::Skipped => {}
                Step::Gap { got } => {
                    tracing::debug!(
                        topic,
                        partition,
                        expected = reader.next,
                        got,
                        "gap in fluvio stream"
                    );
                    reopen = Some(Reopen::Gap);
                    break;
                }
                Step::Ended => {
                    reopen = Some(Reopen::Ended);
                    break;
                }
                Step::Failed(code) => {
                    errors += 1;
                    if errors >= MAX_STREAM_ERRORS && out.is_empty() {
                        *slot = None;
                        return Err(BusError::Backend(format!(
                            "fluvio stream of {topic}-{partition}: {code:?}"
                        )));
                    }
                    reopen = Some(Reopen::Error);
                    break;
                }
            }
        }
        if let Some(reason) = reopen {
            count_reopen(bus, topic, partition, reason, reader.next);
            *slot = None;
            if !out.is_empty() {
                return Ok(out);
            }
            if Instant::now() >= catch_up_deadline {
                return Err(BusError::Backend(format!(
                    "fluvio stream of {topic}-{partition} keeps failing at {from} ({})",
                    reason.label()
                )));
            }
            if matches!(reason, Reopen::Ended | Reopen::Error) {
                // Not the known loss: do not hammer the SPU.
                tokio::time::sleep(REOPEN_BACKOFF).await;
            }
            continue;
        }
        if !out.is_empty() {
            return Ok(out);
        }

        // Nothing has arrived: is there anything to wait for?
        let offsets = bus.leaders.offsets(bus, topic, partition).await?;
        if from < offsets.start || from > offsets.end {
            // Retention passed the reader, or the topic was re-created: the re-open reports which.
            *slot = None;
            continue;
        }
        let behind = offsets.end > from;
        let deadline = if behind { catch_up_deadline } else { wait_deadline };
        let now = Instant::now();
        if now >= deadline {
            if behind {
                *slot = None;
                return Err(BusError::Backend(format!(
                    "fluvio stream of {topic}-{partition} delivers nothing from {from} although the leader's \
                     end is {}",
                    offsets.end
                )));
            }
            return Ok(out);
        }
        let slice = stall_timeout.min(deadline - now);
        let Some(reader) = slot.as_mut() else {
            continue;
        };
        match tokio::time::timeout(slice, reader.stream.next()).await {
            Ok(item) => match step(reader, item, &mut out) {
                Step::Delivered => errors = 0,
                Step::Skipped => {}
                Step::Gap { .. } => {
                    count_reopen(bus, topic, partition, Reopen::Gap, reader.next);
                    *slot = None;
                }
                Step::Ended => {
                    count_reopen(bus, topic, partition, Reopen::Ended, reader.next);
                    *slot = None;
                    tokio::time::sleep(REOPEN_BACKOFF).await;
                }
                Step::Failed(code) => {
                    errors += 1;
                    *slot = None;
                    if errors >= MAX_STREAM_ERRORS {
                        return Err(BusError::Backend(format!(
                            "fluvio stream of {topic}-{partition}: {code:?}"
                        )));
                    }
                    count_reopen(bus, topic, partition, Reopen::Error, from);
                    tokio::time::sleep(REOPEN_BACKOFF).await;
                }
            },
            Err(_) if behind && slice >= stall_timeout => {
                // A whole stall period without a record although the leader has some: the lost-records stall.
                count_reopen(bus, topic, partition, Reopen::Stall, from);
                *slot = None;
            }
            Err(_) => {}
        }
    }
}
