//! Feeds ClickHouse: a consumer of the input and dead-letter topics (group `analytics`) that writes every accepted
//! event and the dead-letter counts through the analytics sink, and commits its offsets only after the sink has
//! flushed. The sink's writes are idempotent (deterministic keys), so what is replayed after a crash is not counted
//! twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use social_analytics::ClickHouseSink;
use social_pipeline::bus::{Bus, BusError, DEAD_LETTER_TOPIC, INPUT_TOPIC, Offset};
use social_schemas::{Limits, parse_event};
use tokio_util::sync::CancellationToken;

const GROUP: &str = "analytics";
const COMMIT_EVERY: Duration = Duration::from_secs(1);

/// Applies the migrations (retrying while ClickHouse is unreachable), then feeds it until `shutdown`, then flushes
/// the sink and commits what it covers. `healthy` follows the sink's health for `/readyz`.
pub async fn feed_clickhouse(
    bus: Arc<dyn Bus>,
    sink: Arc<ClickHouseSink>,
    healthy: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match sink.migrate().await {
            Ok(_) => break,
            Err(error) => {
                healthy.store(false, Ordering::SeqCst);
                tracing::warn!(%error, "ClickHouse migrations failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    healthy.store(true, Ordering::SeqCst);
    let probe = tokio::spawn(probe_health(sink.clone(), healthy.clone(), shutdown.clone()));
    feed(bus, sink.clone(), shutdown).await;
    let _ = probe.await;
    if let Err(error) = sink.shutdown(Duration::from_secs(10)).await {
        tracing::error!(%error, "ClickHouse sink stopped with rows unwritten; they are replayed from the bus");
    }
}

async fn probe_health(sink: Arc<ClickHouseSink>, healthy: Arc<AtomicBool>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        healthy.store(sink.health().await.is_ok(), Ordering::SeqCst);
    }
}

async fn feed(bus: Arc<dyn Bus>, sink: Arc<ClickHouseSink>, shutdown: CancellationToken) {
    let mut cursors = match Cursors::open(bus.as_ref()).await {
        Ok(cursors) => cursors,
        Err(error) => {
            tracing::error!(%error, "analytics feed could not start");
            return;
        }
    };
    let limits = Limits::default();
    let mut last_commit = Instant::now();
    while !shutdown.is_cancelled() {
        let mut progressed = false;
        for index in 0..cursors.positions.len() {
            let (topic, partition, from) = cursors.positions[index];
            let records = match bus.fetch(topic, partition, from, 5000, Duration::ZERO).await {
                Ok(records) => records,
                Err(BusError::OffsetOutOfRange { earliest, .. }) => {
                    tracing::warn!(
                        topic,
                        partition,
                        earliest,
                        "analytics fell behind retention; skipping ahead"
                    );
                    cursors.positions[index].2 = earliest;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "analytics feed could not read the bus");
                    continue;
                }
            };
            let Some(last) = records.last() else { continue };
            let next = last.offset + 1;
            if topic == INPUT_TOPIC {
                let events: Vec<_> = records
                    .iter()
                    .filter_map(|record| parse_event(&record.value, &limits).ok())
                    .collect();
                let unparseable = records.len() - events.len();
                if unparseable > 0 {
                    // Only producers writing to the topic directly (not through ingest) can cause this.
                    metrics::counter!("analytics_unparseable_records_total").increment(unparseable as u64);
                }
                if let Err(error) = sink.write_events(&events).await {
                    tracing::warn!(%error, "analytics sink refused events; retrying from the same offset");
                    continue;
                }
            } else {
                for record in &records {
                    let (code, at) = dead_letter_reason(&record.value, record.timestamp_ms);
                    sink.record_dead_letters(&code, at, 1);
                }
            }
            cursors.positions[index].2 = next;
            progressed = true;
        }
        if last_commit.elapsed() >= COMMIT_EVERY {
            cursors.commit(bus.as_ref(), &sink).await;
            last_commit = Instant::now();
        }
        if !progressed {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }
    cursors.commit(bus.as_ref(), &sink).await;
}

fn dead_letter_reason(value: &[u8], timestamp_ms: i64) -> (String, DateTime<Utc>) {
    let code = serde_json::from_slice::<serde_json::Value>(value)
        .ok()
        .and_then(|letter| letter["reason"]["code"].as_str().map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string());
    (
        code,
        DateTime::from_timestamp_millis(timestamp_ms).unwrap_or_default(),
    )
}

/// Next offset to read per (topic, partition), starting from the group's committed offsets.
struct Cursors {
    positions: Vec<(&'static str, u32, Offset)>,
    committed: Vec<Offset>,
}

impl Cursors {
    async fn open(bus: &dyn Bus) -> Result<Self, BusError> {
        let mut positions = Vec::new();
        for topic in [INPUT_TOPIC, DEAD_LETTER_TOPIC] {
            for partition in 0..bus.partitions(topic)? {
                let start = bus.start_offset(topic, partition).await?;
                let committed = bus
                    .committed(GROUP, topic, partition)
                    .await?
                    .unwrap_or(start)
                    .max(start);
                positions.push((topic, partition, committed));
            }
        }
        let committed = positions.iter().map(|(_, _, offset)| *offset).collect();
        Ok(Self { positions, committed })
    }

    /// Commits the current positions once the sink has written everything before them.
    async fn commit(&mut self, bus: &dyn Bus, sink: &ClickHouseSink) {
        if self
            .positions
            .iter()
            .zip(&self.committed)
            .all(|((_, _, next), done)| next == done)
        {
            return;
        }
        if let Err(error) = sink.flush().await {
            tracing::warn!(%error, "analytics flush failed; offsets not committed");
            return;
        }
        for ((topic, partition, next), done) in self.positions.iter().zip(self.committed.iter_mut()) {
            if next != done {
                match bus.commit(GROUP, topic, *partition, *next).await {
                    Ok(()) => *done = *next,
                    Err(error) => tracing::warn!(%error, "analytics offset commit failed"),
                }
            }
        }
    }
}
