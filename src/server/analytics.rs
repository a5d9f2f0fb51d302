//! Feeds ClickHouse. Three sources, written through the analytics sink:
//!
//! - the input and dead-letter topics: every accepted event (`raw_events`, and from them the per-minute
//!   aggregates) and the dead-letter counts (`dead_letters`);
//! - the derived-events topic `social-derived` (see [`super::operators`]): `social.trending.updated` messages
//!   become `trending_snapshots` rows and `referral.leaderboard.updated` messages `leaderboard_snapshots` rows;
//! - the delivery tier's publish-to-write latency (`delivery_latency`), counted by [`DeliveryLatency`]: in this
//!   process for `run` / `pipeline`, and in every `delivery` node given `--clickhouse-url`
//!   ([`feed_delivery_latency`]).
//!
//! The topics are read by one consumer (group `analytics`) that commits its offsets only after the sink has
//! flushed. Every row it writes has a deterministic key, so what is replayed after a crash is not counted twice:
//! raw events by `(source, id)`, snapshot rows by (window or board, the message's event time, rank or position).
//!
//! Snapshot rows (schema in `schemas/clickhouse/README.md`):
//! - trending: one row per ranked item of the message (`rank`, `contentId`, `score`), at `snapshot_time` = the
//!   message's `time` (event time, in seconds). Ranks of an earlier message of the same second beyond the later
//!   one's items, and the first rank of a message without items, get a row with an empty `content_id`: the ranks of
//!   a window's latest `snapshot_time` with a non-empty `content_id` are its current ranking.
//! - leaderboards: `referral.leaderboard.updated` carries only the rows that changed (`changes`, the spec's
//!   payload), so each change is one row and a board's current top N is, per position, its latest row with a
//!   non-empty `user_id` (and per user, their latest position). A message about a board shorter than N (`size`
//!   rows) also writes an empty `user_id` at every position past it, up to N: users hidden by their privacy
//!   settings who held the last positions leave them that way. `board_id` is the board and its period, `{board}.{first day}` (`daily.2026-01-05`,
//!   `weekly.2026-01-05`, `monthly.2026-01-01`; `all-time` as is), the id the operators give corrections of a
//!   closed period, so that a board's rows never mix two periods. `score` is the change's `completed` (the user's
//!   completed referrals in the period: a row changes when its user moves or their count changes), 0 for a
//!   message without it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use social_analytics::deltas::BUCKETS_MS;
use social_analytics::{ClickHouseSink, LeaderboardSnapshotRow, TrendingSnapshotRow};
use social_delivery::topics::TopicKind;
use social_pipeline::bus::{Bus, BusError, DEAD_LETTER_TOPIC, INPUT_TOPIC, Offset, TopicSpec};
use social_pipeline::operator::OperatorConfig;
use social_pipeline::window::assigner::{WindowSpec, utc_date};
use social_schemas::{Limits, parse_event};
use tokio_util::sync::CancellationToken;

use super::operators::DERIVED_TOPIC;

pub(crate) const GROUP: &str = "analytics";
/// The topics the feed reads (one consumer, group [`GROUP`]).
pub(crate) const TOPICS: [&str; 3] = [INPUT_TOPIC, DEAD_LETTER_TOPIC, DERIVED_TOPIC];
/// How often the consumed offsets are committed. Each commit waits for the sink's flush, which recomputes every
/// dirty minute from `raw_events` (the open minute is dirty again within a second): once a second, at 12,000
/// events/s, that re-read most of ClickHouse's CPU. Every 5 s matches the sink's own recomputation interval; a
/// crash replays at most this much more into ClickHouse, where replays change nothing.
const COMMIT_EVERY: Duration = Duration::from_secs(5);
/// How often the latency counts are handed to the sink.
const LATENCY_EVERY: Duration = Duration::from_secs(1);
/// Snapshot rows held before a commit (which writes them) comes sooner than [`COMMIT_EVERY`]: a bound on memory
/// while catching up on a long derived log.
const MAX_PENDING_SNAPSHOT_ROWS: usize = 50_000;
const TRENDING_TYPE: &str = "social.trending.updated";
const LEADERBOARD_TYPE: &str = "referral.leaderboard.updated";

/// Applies the migrations (retrying while ClickHouse is unreachable), then feeds it until `shutdown`, then flushes
/// the sink and commits what it covers. `healthy` follows the sink's health for `/readyz`. `latency`, when given,
/// is this process's delivery latency, handed to the sink every second.
pub async fn feed_clickhouse(
    bus: Arc<dyn Bus>,
    sink: Arc<ClickHouseSink>,
    healthy: Arc<AtomicBool>,
    latency: Option<Arc<DeliveryLatency>>,
    shutdown: CancellationToken,
) {
    if !migrate(&sink, Some(&healthy), &shutdown).await {
        return;
    }
    let Some(cursors) = open_cursors(bus.as_ref(), &healthy, &shutdown).await else {
        return;
    };
    healthy.store(true, Ordering::SeqCst);
    let probe = tokio::spawn(probe_health(sink.clone(), healthy.clone(), shutdown.clone()));
    let latency = latency.map(|latency| tokio::spawn(latency.feed(sink.clone(), shutdown.clone())));
    feed(bus, sink.clone(), cursors, shutdown).await;
    let _ = probe.await;
    if let Some(latency) = latency {
        let _ = latency.await;
    }
    if let Err(error) = sink.shutdown(Duration::from_secs(10)).await {
        tracing::error!(%error, "ClickHouse sink stopped with rows unwritten; they are replayed from the bus");
    }
}

/// A delivery node's part: applies the migrations (retrying), then hands `latency` to `sink` every second until
/// `shutdown`, then flushes and stops the sink.
pub async fn feed_delivery_latency(
    sink: Arc<ClickHouseSink>,
    latency: Arc<DeliveryLatency>,
    shutdown: CancellationToken,
) {
    if !migrate(&sink, None, &shutdown).await {
        return;
    }
    latency.feed(sink.clone(), shutdown).await;
    if let Err(error) = sink.shutdown(Duration::from_secs(10)).await {
        tracing::warn!(%error, "delivery latency counts left unwritten at shutdown");
    }
}

/// Runs `attempt` until it succeeds (`Some`) or `shutdown` (`None`), with backoff from 200 ms to 5 s, marking
/// `healthy` false after each failure (not ready meanwhile).
async fn retry_until_shutdown<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    what: &str,
    healthy: Option<&AtomicBool>,
    shutdown: &CancellationToken,
    mut attempt: impl FnMut() -> F,
) -> Option<T> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match attempt().await {
            Ok(done) => return Some(done),
            Err(error) => {
                if let Some(healthy) = healthy {
                    healthy.store(false, Ordering::SeqCst);
                }
                tracing::warn!(%error, "{what} failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Retries the migrations until they succeed (`true`) or `shutdown` (`false`).
async fn migrate(sink: &ClickHouseSink, healthy: Option<&AtomicBool>, shutdown: &CancellationToken) -> bool {
    retry_until_shutdown("ClickHouse migrations", healthy, shutdown, || sink.migrate())
        .await
        .is_some()
}

/// Opens the feed's read positions, retrying (not ready meanwhile) until it succeeds or `shutdown` (`None`): a
/// bus that does not answer at start must not leave the feed stopped for the life of the process.
async fn open_cursors(bus: &dyn Bus, healthy: &AtomicBool, shutdown: &CancellationToken) -> Option<Cursors> {
    let what = "reading the analytics feed's positions on the bus";
    retry_until_shutdown(what, Some(healthy), shutdown, || Cursors::open(bus)).await
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

/// How long the last commit at shutdown may wait for ClickHouse to take the rows it covers. Beyond it (ClickHouse
/// down) the offsets stay where they were and the next start reads those records again (`raw_events` keeps one
/// row per event, the aggregates are recomputed): nothing is lost, and the process does not hang.
const FINAL_COMMIT_GRACE: Duration = Duration::from_secs(10);

async fn feed(
    bus: Arc<dyn Bus>,
    sink: Arc<ClickHouseSink>,
    mut cursors: Cursors,
    shutdown: CancellationToken,
) {
    let limits = Limits::default();
    let mut snapshots = SnapshotRows::default();
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
                // The sink's buffer is full while ClickHouse is down: waiting for room must not hold up shutdown.
                let written = tokio::select! {
                    written = sink.write_events(&events) => written,
                    _ = shutdown.cancelled() => break,
                };
                if let Err(error) = written {
                    tracing::warn!(%error, "analytics sink refused events; retrying from the same offset");
                    continue;
                }
            } else if topic == DERIVED_TOPIC {
                for record in &records {
                    snapshots.add(&record.key, &record.value);
                }
                metrics::counter!("analytics_derived_records_total").increment(records.len() as u64);
            } else {
                let log = format!("{topic}/{partition}");
                for record in &records {
                    let (code, at) = dead_letter_reason(&record.value, record.timestamp_ms);
                    sink.record_dead_letter_at(&code, at, &log, record.offset);
                }
            }
            cursors.positions[index].2 = next;
            progressed = true;
        }
        if last_commit.elapsed() >= COMMIT_EVERY || snapshots.len() >= MAX_PENDING_SNAPSHOT_ROWS {
            tokio::select! {
                _ = cursors.commit(bus.as_ref(), &sink, &mut snapshots) => {}
                _ = shutdown.cancelled() => break,
            }
            last_commit = Instant::now();
        }
        if !progressed {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }
    let last = tokio::time::timeout(
        FINAL_COMMIT_GRACE,
        cursors.commit(bus.as_ref(), &sink, &mut snapshots),
    );
    if last.await.is_err() {
        tracing::warn!(
            "ClickHouse did not take the last rows in time; their offsets are not committed and the next start \
             reads them again"
        );
    }
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

/// Snapshot rows made from derived messages and not yet handed to the sink, one per key (the last message wins:
/// ClickHouse keeps an arbitrary one of equal keys within one insert, the latest insert's across inserts).
struct SnapshotRows {
    leaderboard: BTreeMap<(String, i64, u32), LeaderboardSnapshotRow>,
    trending: BTreeMap<(String, i64, u32), TrendingSnapshotRow>,
    /// Per trending window: the second of its last message and the highest rank written for that second.
    trending_written: HashMap<String, (i64, u32)>,
    /// Rows of a full leaderboard (the operators' top N: the pipeline runs the default operator configuration).
    leaderboard_rows: u32,
}

impl Default for SnapshotRows {
    fn default() -> Self {
        SnapshotRows {
            leaderboard: BTreeMap::new(),
            trending: BTreeMap::new(),
            trending_written: HashMap::new(),
            leaderboard_rows: u32::try_from(OperatorConfig::default().leaderboard_top_n).unwrap_or(u32::MAX),
        }
    }
}

impl SnapshotRows {
    /// Turns one record of the derived topic (key: its SSE topic) into rows, when it is a trending or leaderboard
    /// update.
    fn add(&mut self, key: &[u8], value: &[u8]) {
        // The key is the message's topic: most derived messages are skipped without parsing them.
        if !key.is_empty() && !key.starts_with(b"trending.") && !key.starts_with(b"leaderboard.") {
            return;
        }
        let Ok(event) = serde_json::from_slice::<Value>(value) else {
            metrics::counter!("analytics_unparseable_records_total").increment(1);
            return;
        };
        let subject = event["subject"].as_str().unwrap_or_default();
        let Some(time_ms) = event["time"]
            .as_str()
            .and_then(|time| DateTime::parse_from_rfc3339(time).ok())
            .map(|time| time.timestamp_millis())
        else {
            return;
        };
        match event["type"].as_str() {
            Some(TRENDING_TYPE) if subject.starts_with("trending.") => {
                self.add_trending(&event["data"], time_ms)
            }
            Some(LEADERBOARD_TYPE) if subject.starts_with("leaderboard.") => {
                self.add_leaderboard(&event["data"], time_ms);
            }
            _ => {}
        }
    }

    fn add_trending(&mut self, data: &Value, time_ms: i64) {
        let Some(window) = data["window"].as_str() else {
            return;
        };
        let second = time_ms.div_euclid(1000);
        let items = data["items"].as_array().map(Vec::as_slice).unwrap_or_default();
        let mut written = 0u32;
        for item in items {
            let (Some(rank), Some(content_id)) = (rank_of(&item["rank"]), item["contentId"].as_str()) else {
                continue;
            };
            written = written.max(rank);
            self.put_trending(
                window,
                second,
                rank,
                content_id,
                item["score"].as_f64().unwrap_or(0.0),
            );
        }
        // An empty ranking still marks its time; ranks of an earlier message of the same second are cleared.
        let mut highest = written.max(1);
        if written == 0 {
            self.put_trending(window, second, 1, "", 0.0);
        }
        if let Some(&(last_second, last_highest)) = self.trending_written.get(window)
            && last_second == second
        {
            for rank in highest + 1..=last_highest {
                self.put_trending(window, second, rank, "", 0.0);
            }
            highest = highest.max(last_highest);
        }
        self.trending_written.insert(window.to_owned(), (second, highest));
    }

    fn put_trending(&mut self, window: &str, second: i64, rank: u32, content_id: &str, score: f64) {
        self.trending.insert(
            (window.to_owned(), second, rank),
            TrendingSnapshotRow {
                window_name: window.to_owned(),
                snapshot_time: second_to_time(second),
                rank,
                content_id: content_id.to_owned(),
                score,
            },
        );
    }

    fn add_leaderboard(&mut self, data: &Value, time_ms: i64) {
        let Some(board) = data["boardId"].as_str() else {
            return;
        };
        let board_id = board_period_id(board, time_ms);
        let second = time_ms.div_euclid(1000);
        let mut put = |position: u32, user_id: &str, score: f64| {
            self.leaderboard.insert(
                (board_id.clone(), second, position),
                LeaderboardSnapshotRow {
                    board_id: board_id.clone(),
                    snapshot_time: second_to_time(second),
                    position,
                    user_id: user_id.to_owned(),
                    score,
                },
            );
        };
        let changes = data["changes"].as_array().map(Vec::as_slice).unwrap_or_default();
        for change in changes {
            let (Some(position), Some(user_id)) = (rank_of(&change["position"]), change["userId"].as_str())
            else {
                continue;
            };
            put(position, user_id, change["completed"].as_f64().unwrap_or(0.0));
        }
        // The positions past the board are vacant: users hidden by their privacy settings who held the last
        // positions of a board shorter than N (several may leave between two messages) no longer show there.
        if let Some(size) = data["size"].as_u64().and_then(|s| u32::try_from(s).ok()) {
            for position in size.saturating_add(1)..=self.leaderboard_rows {
                put(position, "", 0.0);
            }
        }
    }

    fn len(&self) -> usize {
        self.leaderboard.len() + self.trending.len()
    }

    /// Hands the rows to the sink (before its flush); they are kept when it refuses them. Rows of one key must not
    /// meet in one insert: the caller flushes the sink before handing it more.
    async fn write(&mut self, sink: &ClickHouseSink) -> bool {
        if !self.leaderboard.is_empty() {
            let rows: Vec<_> = self.leaderboard.values().cloned().collect();
            if let Err(error) = sink.write_leaderboard(rows).await {
                tracing::warn!(%error, "analytics sink refused leaderboard snapshots");
                return false;
            }
            self.leaderboard.clear();
        }
        if !self.trending.is_empty() {
            let rows: Vec<_> = self.trending.values().cloned().collect();
            if let Err(error) = sink.write_trending(rows).await {
                tracing::warn!(%error, "analytics sink refused trending snapshots");
                return false;
            }
            self.trending.clear();
        }
        true
    }
}

/// A rank or position (>= 1) from JSON.
fn rank_of(value: &Value) -> Option<u32> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n >= 1)
}

fn second_to_time(second: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(second, 0).unwrap_or_default()
}

/// The board of a leaderboard message with its period: `{board}.{first day of the period}` for the periodic
/// boards (the operators' own id for corrections of a closed period, which already carries it), the board as is
/// otherwise (`all-time`).
fn board_period_id(board: &str, time_ms: i64) -> String {
    let spec = match board {
        "daily" => WindowSpec::daily(),
        "weekly" => WindowSpec::weekly(),
        "monthly" => WindowSpec::CalendarMonth,
        _ => return board.to_owned(),
    };
    // A message of an open period is published at a tick inside it.
    format!("{board}.{}", utc_date(spec.window_of(time_ms).start))
}

/// Publish-to-write latency of the delivery tier, counted per topic class and histogram bucket in atomics (the
/// SSE write path only adds one), handed to the sink's per-minute deltas every second.
pub struct DeliveryLatency {
    classes: Vec<&'static str>,
    /// `classes.len() * BUCKETS_MS.len()` counters, class-major.
    counts: Vec<AtomicU64>,
}

impl DeliveryLatency {
    /// Counts for the topic kinds and `other`.
    fn new() -> Self {
        let mut classes: Vec<&'static str> = TopicKind::ALL.iter().map(|kind| kind.as_str()).collect();
        classes.push("other");
        let counts = (0..classes.len() * BUCKETS_MS.len())
            .map(|_| AtomicU64::new(0))
            .collect();
        Self { classes, counts }
    }

    /// Installs the process's latency observer of the delivery tier. `None` when one was installed already.
    pub fn install() -> Option<Arc<Self>> {
        let latency = Arc::new(Self::new());
        let observer = latency.clone();
        match social_delivery::observe_write_latency(Arc::new(move |class, elapsed| {
            observer.observe(class, elapsed);
        })) {
            Ok(()) => Some(latency),
            Err(_) => {
                tracing::warn!("a delivery latency observer is already installed in this process");
                None
            }
        }
    }

    fn observe(&self, class: &'static str, latency: Duration) {
        let class = self
            .classes
            .iter()
            .position(|c| *c == class)
            .unwrap_or(self.classes.len() - 1);
        let ms = u32::try_from(latency.as_millis()).unwrap_or(u32::MAX);
        let bucket = BUCKETS_MS
            .iter()
            .position(|&le| ms <= le)
            .unwrap_or(BUCKETS_MS.len() - 1);
        if let Some(count) = self.counts.get(class * BUCKETS_MS.len() + bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands the counts since the last call to the sink, at the current minute.
    fn drain(&self, sink: &ClickHouseSink) {
        let at = Utc::now();
        for (index, count) in self.counts.iter().enumerate() {
            let n = count.swap(0, Ordering::Relaxed);
            if n == 0 {
                continue;
            }
            let class = self.classes[index / BUCKETS_MS.len()];
            // A latency at the bucket's upper bound counts in that bucket.
            let bound = Duration::from_millis(u64::from(BUCKETS_MS[index % BUCKETS_MS.len()]));
            for _ in 0..n {
                sink.record_delivery_latency(class, at, bound);
            }
        }
    }

    /// Drains into `sink` every second until `shutdown`, then once more.
    async fn feed(self: Arc<Self>, sink: Arc<ClickHouseSink>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(LATENCY_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => self.drain(&sink),
            }
        }
        self.drain(&sink);
    }
}

/// Next offset to read per (topic, partition), starting from the group's committed offsets.
struct Cursors {
    positions: Vec<(&'static str, u32, Offset)>,
    committed: Vec<Offset>,
}

impl Cursors {
    async fn open(bus: &dyn Bus) -> Result<Self, BusError> {
        // Created by the operators' output as well (one partition: the log's order is the emission order).
        bus.ensure_topic(&TopicSpec {
            name: DERIVED_TOPIC.to_string(),
            partitions: 1,
        })
        .await?;
        let mut positions = Vec::new();
        for topic in TOPICS {
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
    async fn commit(&mut self, bus: &dyn Bus, sink: &ClickHouseSink, snapshots: &mut SnapshotRows) {
        if self
            .positions
            .iter()
            .zip(&self.committed)
            .all(|((_, _, next), done)| next == done)
        {
            return;
        }
        if !snapshots.write(sink).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn derived(event_type: &str, subject: &str, time: &str, data: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "specversion": "1.0",
            "id": "m",
            "source": "/social-realtime/operators",
            "type": event_type,
            "time": time,
            "subject": subject,
            "destination": "sse+bus",
            "data": data,
        }))
        .unwrap_or_default()
    }

    #[test]
    fn boards_carry_their_period() {
        let t = DateTime::parse_from_rfc3339("2026-01-07T10:00:00.500Z")
            .map(|t| t.timestamp_millis())
            .unwrap_or_default();
        assert_eq!(board_period_id("daily", t), "daily.2026-01-07");
        assert_eq!(board_period_id("weekly", t), "weekly.2026-01-05");
        assert_eq!(board_period_id("monthly", t), "monthly.2026-01-01");
        assert_eq!(board_period_id("all-time", t), "all-time");
        assert_eq!(board_period_id("daily.2026-01-06", t), "daily.2026-01-06");
    }

    #[test]
    fn trending_ranks_of_an_earlier_message_of_the_same_second_are_cleared() {
        let mut rows = SnapshotRows::default();
        let items = |ids: &[&str]| {
            let items: Vec<Value> = ids
                .iter()
                .enumerate()
                .map(|(i, id)| serde_json::json!({"contentId": id, "rank": i + 1, "score": 1.5}))
                .collect();
            serde_json::json!({"items": items, "window": "1h"})
        };
        let first = derived(
            TRENDING_TYPE,
            "trending.1h",
            "2026-01-01T00:01:00.000Z",
            items(&["a", "b", "c"]),
        );
        let second = derived(
            TRENDING_TYPE,
            "trending.1h",
            "2026-01-01T00:01:00.700Z",
            items(&["c"]),
        );
        rows.add(b"trending.1h", &first);
        rows.add(b"trending.1h", &second);
        let got: Vec<(u32, &str)> = rows
            .trending
            .values()
            .map(|row| (row.rank, row.content_id.as_str()))
            .collect();
        assert_eq!(got, vec![(1, "c"), (2, ""), (3, "")]);
        // A later second starts afresh; an empty ranking writes its marker.
        let third = derived(TRENDING_TYPE, "trending.1h", "2026-01-01T00:02:00Z", items(&[]));
        rows.add(b"trending.1h", &third);
        assert_eq!(rows.trending.len(), 4);
        // Other messages, and a late input event of the leaderboard type, give nothing.
        let late = derived(
            LEADERBOARD_TYPE,
            "social-events-late",
            "2026-01-01T00:02:00Z",
            Value::Null,
        );
        rows.add(b"social-events-late", &late);
        rows.add(b"", &late);
        assert!(rows.leaderboard.is_empty());
    }

    #[test]
    fn leaderboard_changes_become_rows_of_the_board_period() {
        let mut rows = SnapshotRows::default();
        let data = serde_json::json!({"boardId": "daily", "size": 2, "changes": [
            {"completed": 7, "delta": 100, "position": 1, "userId": "u1"},
            {"delta": 99, "position": 2, "userId": "u2"},
        ]});
        let message = derived(
            LEADERBOARD_TYPE,
            "leaderboard.daily",
            "2026-01-02T03:04:05.006Z",
            data,
        );
        rows.add(b"leaderboard.daily", &message);
        let got: Vec<(String, i64, u32, String, f64)> = rows
            .leaderboard
            .values()
            .filter(|row| !row.user_id.is_empty())
            .map(|row| {
                (
                    row.board_id.clone(),
                    row.snapshot_time.timestamp(),
                    row.position,
                    row.user_id.clone(),
                    row.score,
                )
            })
            .collect();
        let second = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .map(|t| t.timestamp())
            .unwrap_or_default();
        assert_eq!(
            got,
            vec![
                ("daily.2026-01-02".to_owned(), second, 1, "u1".to_owned(), 7.0),
                ("daily.2026-01-02".to_owned(), second, 2, "u2".to_owned(), 0.0),
            ]
        );
        let markers: Vec<u32> = rows
            .leaderboard
            .values()
            .filter(|row| row.user_id.is_empty())
            .map(|row| row.position)
            .collect();
        assert_eq!(
            markers,
            (3..=100).collect::<Vec<u32>>(),
            "positions 3 to N are vacant"
        );
    }

    #[test]
    fn latency_counts_per_class_and_bucket() {
        let latency = DeliveryLatency::new();
        latency.observe("user_social", Duration::from_millis(3));
        latency.observe("trending", Duration::from_secs(100));
        latency.observe("unheard-of", Duration::ZERO);
        let counted: Vec<(usize, u64)> = latency
            .counts
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.load(Ordering::Relaxed)))
            .filter(|(_, c)| *c > 0)
            .collect();
        let index = |class: &str, le: u32| {
            let class = latency
                .classes
                .iter()
                .position(|c| *c == class)
                .unwrap_or(usize::MAX);
            let bucket = BUCKETS_MS.iter().position(|b| *b == le).unwrap_or(usize::MAX);
            class * BUCKETS_MS.len() + bucket
        };
        assert_eq!(
            counted,
            vec![
                (index("user_social", 5), 1),
                (index("trending", u32::MAX), 1),
                (index("other", 1), 1),
            ]
        );
    }
}
