//! [`ClickHouseSink`]: the handle the pipeline writes through. Rows go to a background task through a bounded
//! buffer (`buffer_rows`; writers wait when it is full), are inserted in batches with retries, and the per-minute
//! aggregates they touch are recomputed. [`ClickHouseSink::flush`] is the checkpoint barrier: when it returns,
//! everything written before is in ClickHouse, aggregates included, and offsets may be committed.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use social_schemas::{Event, Payload};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::ClickHouseConfig;
use crate::deltas::Deltas;
use crate::error::{AnalyticsError, Result};
use crate::extract::{minute_of, raw_event_row};
use crate::metrics;
use crate::migrate::{self, MigrationReport};
use crate::rows::{LeaderboardSnapshotRow, TrendingSnapshotRow};
use crate::stats::{SinkStats, Stats};
use crate::writer::{Batch, Command, Writer};

/// The ClickHouse analytics sink. Create with [`ClickHouseSink::start`] inside a tokio runtime; share it behind
/// an `Arc`; end with [`ClickHouseSink::shutdown`].
pub struct ClickHouseSink {
    config: ClickHouseConfig,
    client: clickhouse::Client,
    admin: clickhouse::Client,
    commands: mpsc::Sender<Command>,
    buffer: Arc<Semaphore>,
    stats: Arc<Stats>,
    deltas: Arc<Mutex<Deltas>>,
    stop: CancellationToken,
    task: tokio::sync::Mutex<Option<JoinHandle<Result<()>>>>,
    /// The newest minute (Unix seconds) of a click, conversion start or share engagement written so far: a code
    /// (or share) written after clicks (or engagements) that used it re-dirties the minutes up to there.
    newest_attributed: AtomicI64,
}

/// How far after its own time a code (or share) re-dirties the minutes of clicks (or engagements) written before
/// it (one day).
const MAX_REATTRIBUTION_SECS: i64 = 24 * 60 * 60;

impl ClickHouseSink {
    /// Validates the configuration and starts the writer task. Does not contact the server: call
    /// [`ClickHouseSink::migrate`] (retried by the caller while it returns a retryable error) before writing.
    pub fn start(config: ClickHouseConfig) -> Result<ClickHouseSink> {
        config.validate()?;
        let client = config.client(true);
        let admin = config.client(false);
        let stats = Arc::new(Stats::default());
        let deltas = Arc::new(Mutex::new(Deltas::default()));
        let stop = CancellationToken::new();
        let (commands, receiver) = mpsc::channel(1024);
        let writer = Writer::new(
            client.clone(),
            config.clone(),
            stats.clone(),
            deltas.clone(),
            stop.clone(),
        );
        let task = tokio::spawn(writer.run(receiver));
        Ok(ClickHouseSink {
            buffer: Arc::new(Semaphore::new(config.buffer_rows)),
            config,
            client,
            admin,
            commands,
            stats,
            deltas,
            stop,
            task: tokio::sync::Mutex::new(Some(task)),
            newest_attributed: AtomicI64::new(i64::MIN),
        })
    }

    /// Creates the database when missing and applies the pending migrations this server supports (the `modern/`
    /// ones only on ClickHouse >= their `min_server_version`). Running it again is a no-op.
    pub async fn migrate(&self) -> Result<MigrationReport> {
        let report = migrate::run(&self.admin, &self.client, &self.config.database).await?;
        // Clicks (engagements) an earlier process aggregated are at most as new as its newest funnel (engagement)
        // minute: a code (share) written late after a restart re-dirties up to there too.
        for table in ["referral_funnel_1m", "engagement_1m"] {
            let newest: u32 = self
                .client
                .query(&format!("SELECT toUnixTimestamp(max(minute)) FROM {table}"))
                .fetch_one()
                .await
                .map_err(|e| AnalyticsError::clickhouse("read the newest aggregated minute", e))?;
            if newest > 0 {
                self.newest_attributed
                    .fetch_max(i64::from(newest), Ordering::Relaxed);
            }
        }
        Ok(report)
    }

    /// `SELECT 1` against the server (for `/readyz`).
    pub async fn health(&self) -> Result<()> {
        let timeout = Duration::from_millis(self.config.request_timeout_ms.clamp(1, 5_000));
        match tokio::time::timeout(timeout, self.admin.query("SELECT 1").fetch_one::<u8>()).await {
            Ok(Ok(1)) => Ok(()),
            Ok(Ok(_)) => Err(AnalyticsError::Config(
                "SELECT 1 returned another value".to_owned(),
            )),
            Ok(Err(e)) => Err(AnalyticsError::clickhouse("health check", e)),
            Err(_) => Err(AnalyticsError::Timeout("health check")),
        }
    }

    /// Queues accepted input events for `raw_events` and the per-minute aggregates. Waits while the buffer is
    /// full (backpressure). Idempotent: writing the same events again changes no aggregate.
    pub async fn write_events(&self, events: &[Event]) -> Result<()> {
        let ingest_time = Utc::now();
        let lateness = chrono::Duration::milliseconds(
            i64::try_from(self.config.attribution_lateness_ms).unwrap_or(i64::MAX / 2),
        );
        for chunk in events.chunks(self.config.batch_rows) {
            let mut batch = Batch::default();
            for event in chunk {
                if let Payload::LinkClicked(_) | Payload::ConversionStarted(_) | Payload::ShareEngaged(_) =
                    event.payload
                {
                    self.newest_attributed
                        .fetch_max(minute_of(event.time), Ordering::Relaxed);
                }
            }
            let newest = self.newest_attributed.load(Ordering::Relaxed);
            let mut reattributed: Vec<(i64, i64)> = Vec::new();
            for event in chunk {
                if let Payload::CodeGenerated(_) | Payload::ShareCreated(_) = event.payload {
                    // Clicks that used this code (engagements naming only this share) may have been aggregated
                    // before it arrived, as "unattributed": they are at most as new as the newest written (the
                    // partitions of the input are read in turn, so a code can come after clicks that followed it
                    // by more than the lateness).
                    let own = minute_of(event.time);
                    let until = minute_of(event.time + lateness)
                        .max(newest.min(own.saturating_add(MAX_REATTRIBUTION_SECS)));
                    reattributed.push((own, until));
                }
                batch.raw.push(raw_event_row(event, ingest_time));
            }
            batch.extra_dirty = minutes_of_ranges(reattributed);
            self.send(batch, chunk.len()).await?;
        }
        Ok(())
    }

    /// Queues leaderboard snapshot rows (deterministic key: board, snapshot time, position).
    pub async fn write_leaderboard(&self, rows: Vec<LeaderboardSnapshotRow>) -> Result<()> {
        for chunk in rows.chunks(self.config.batch_rows) {
            let n = chunk.len();
            let batch = Batch {
                leaderboard: chunk.to_vec(),
                ..Batch::default()
            };
            self.send(batch, n).await?;
        }
        Ok(())
    }

    /// Queues trending snapshot rows (deterministic key: window, snapshot time, rank).
    pub async fn write_trending(&self, rows: Vec<TrendingSnapshotRow>) -> Result<()> {
        for chunk in rows.chunks(self.config.batch_rows) {
            let n = chunk.len();
            let batch = Batch {
                trending: chunk.to_vec(),
                ..Batch::default()
            };
            self.send(batch, n).await?;
        }
        Ok(())
    }

    /// Counts one delivery of a message whose event happened at `at` and reached a client after `latency`.
    /// `topic_class` must come from a small fixed set (e.g. `user`, `leaderboard`, `trending`), never an id.
    pub fn record_delivery_latency(&self, topic_class: &str, at: DateTime<Utc>, latency: Duration) {
        self.with_deltas(|d| d.record_latency(topic_class, at, latency));
    }

    /// Counts `count` rejected input events at `at` with a validation code (`ValidationCode` as snake_case).
    pub fn record_dead_letters(&self, reason: &str, at: DateTime<Utc>, count: u64) {
        self.with_deltas(|d| d.record_dead_letter(reason, at, count));
    }

    /// Counts one rejected input event read from a dead-letter log (`log`, e.g. `{topic}/{partition}`) at `offset`:
    /// keyed by them, so that reading the same letter again (a consumer replaying after a restart) does not count
    /// it twice.
    pub fn record_dead_letter_at(&self, reason: &str, at: DateTime<Utc>, log: &str, offset: u64) {
        self.with_deltas(|d| d.record_dead_letter_at(reason, at, log, offset));
    }

    /// Waits until everything queued before this call is written and the aggregates it touches are recomputed:
    /// the checkpoint barrier. Waits through ClickHouse outages (wrap it in a timeout if needed). `Closed` when the
    /// sink was shut down or stopped first, whether or not everything was written: commit nothing on it.
    pub async fn flush(&self) -> Result<()> {
        let (reply, done) = oneshot::channel();
        self.commands
            .send(Command::Flush(reply))
            .await
            .map_err(|_| AnalyticsError::Closed)?;
        match done.await {
            Ok(true) => Ok(()),
            // Stopped before everything was written: nothing may be committed past it.
            Ok(false) | Err(_) => Err(AnalyticsError::Closed),
        }
    }

    /// Flushes and stops the writer task. If that takes longer than `grace` (ClickHouse down), the task is
    /// stopped and the error says how many rows were left unwritten: do not commit offsets past them.
    pub async fn shutdown(&self, grace: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + grace;
        let (reply, _done) = oneshot::channel();
        // While ClickHouse is down the writer retries and reads no commands, so the queue can be full: the grace
        // covers this wait too.
        let queued = tokio::time::timeout_at(deadline, self.commands.send(Command::Shutdown(reply))).await;
        if queued.is_err() {
            self.stop.cancel();
        }
        let Some(mut task) = self.task.lock().await.take() else {
            return Ok(());
        };
        let joined = match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(joined) => joined,
            Err(_) => {
                self.stop.cancel();
                task.await
            }
        };
        joined.unwrap_or(Err(AnalyticsError::Closed))
    }

    /// Counters of this sink.
    pub fn stats(&self) -> SinkStats {
        let buffered = self
            .config
            .buffer_rows
            .saturating_sub(self.buffer.available_permits());
        self.stats.snapshot(buffered as u64)
    }

    /// A client on the sink's database (validation off), for queries such as [`crate::verify_aggregates`].
    pub fn client(&self) -> &clickhouse::Client {
        &self.client
    }

    pub fn config(&self) -> &ClickHouseConfig {
        &self.config
    }

    async fn send(&self, mut batch: Batch, rows: usize) -> Result<()> {
        let permits =
            u32::try_from(rows).map_err(|_| AnalyticsError::Config("batch too large".to_owned()))?;
        let permit = self
            .buffer
            .clone()
            .acquire_many_owned(permits)
            .await
            .map_err(|_| AnalyticsError::Closed)?;
        batch.permits = Some(permit);
        metrics::buffer_rows(
            self.config
                .buffer_rows
                .saturating_sub(self.buffer.available_permits()),
        );
        self.commands
            .send(Command::Write(batch))
            .await
            .map_err(|_| AnalyticsError::Closed)
    }

    fn with_deltas(&self, f: impl FnOnce(&mut Deltas)) {
        let mut guard = match self.deltas.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard);
    }
}

impl Drop for ClickHouseSink {
    fn drop(&mut self) {
        // A sink dropped without `shutdown` stops its task; unwritten rows were never confirmed by `flush`.
        self.stop.cancel();
    }
}

/// Every minute start (Unix seconds) within the ranges `[from, until]`, each once, ascending.
fn minutes_of_ranges(mut ranges: Vec<(i64, i64)>) -> Vec<i64> {
    ranges.sort_unstable();
    let mut minutes = Vec::new();
    let mut next = i64::MIN;
    for (from, until) in ranges {
        let mut m = from.max(next);
        while m <= until {
            minutes.push(m);
            m += 60;
        }
        next = next.max(m);
    }
    minutes
}
