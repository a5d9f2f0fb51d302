//! The sink's background task: buffers rows, inserts them in batches (by size and by time) with retries,
//! recomputes dirty minutes, flushes latency / dead-letter deltas, answers flush barriers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use clickhouse::{Row, RowOwned, RowWrite};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::aggregate::{AGGREGATE_TABLES, DirtyMinutes, recompute_statements};
use crate::config::ClickHouseConfig;
use crate::deltas::Deltas;
use crate::error::{AnalyticsError, Result};
use crate::metrics;
use crate::migrate::{RAW_EVENTS_TTL_DAYS, RAW_EVENTS_TTL_MIGRATION};
use crate::retry::{RetryPolicy, Stopped, retry};
use crate::rows::{LeaderboardSnapshotRow, RawEventRow, TrendingSnapshotRow};
use crate::stats::Stats;

/// Minutes recomputed per statement.
const MINUTES_PER_RECOMPUTE: usize = 30;

/// Rows handed to the task, holding their share of the buffer until written.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) raw: Vec<RawEventRow>,
    /// Minutes to recompute beyond the raw rows' own (funnel attribution of late referral codes).
    pub(crate) extra_dirty: Vec<i64>,
    pub(crate) leaderboard: Vec<LeaderboardSnapshotRow>,
    pub(crate) trending: Vec<TrendingSnapshotRow>,
    pub(crate) permits: Option<OwnedSemaphorePermit>,
}

pub(crate) enum Command {
    Write(Batch),
    /// Everything sent before is written and recomputed when the reply is `true` (`false`: the writer was
    /// stopped first).
    Flush(oneshot::Sender<bool>),
    /// Flush, then stop.
    Shutdown(oneshot::Sender<()>),
}

pub(crate) struct Writer {
    pub(crate) client: clickhouse::Client,
    pub(crate) config: ClickHouseConfig,
    pub(crate) policy: RetryPolicy,
    pub(crate) stats: Arc<Stats>,
    pub(crate) deltas: Arc<Mutex<Deltas>>,
    pub(crate) stop: CancellationToken,
    pub(crate) writer_id: String,
    pending: Batch,
    pending_permits: Vec<OwnedSemaphorePermit>,
    dirty: DirtyMinutes,
    delta_seq: u64,
    /// The version of the last recomputation: the next is above it and above the wall clock in ms.
    last_version: u64,
    /// Whether `last_version` has been raised to the newest version stored, and `raw_events_expire` read (before
    /// the first recomputation).
    versions_read: bool,
    /// Whether `raw_events` has its TTL (the modern migration was applied): minutes older than it are not
    /// recomputed.
    raw_events_expire: bool,
}

impl Writer {
    pub(crate) fn new(
        client: clickhouse::Client,
        config: ClickHouseConfig,
        stats: Arc<Stats>,
        deltas: Arc<Mutex<Deltas>>,
        stop: CancellationToken,
    ) -> Writer {
        let policy = RetryPolicy {
            initial: Duration::from_millis(config.retry_initial_backoff_ms.max(1)),
            max: Duration::from_millis(
                config
                    .retry_max_backoff_ms
                    .max(config.retry_initial_backoff_ms.max(1)),
            ),
            attempt_timeout: Duration::from_millis(config.request_timeout_ms.max(1)),
        };
        let writer_id = format!("{}-{:016x}", config.node, rand::random::<u64>());
        Writer {
            client,
            config,
            policy,
            stats,
            deltas,
            stop,
            writer_id,
            pending: Batch::default(),
            pending_permits: Vec::new(),
            dirty: DirtyMinutes::default(),
            delta_seq: 0,
            last_version: 0,
            versions_read: false,
            raw_events_expire: false,
        }
    }

    /// Runs until a `Shutdown` command, the channel closing, or the stop token; returns the rows left unwritten.
    pub(crate) async fn run(mut self, mut commands: mpsc::Receiver<Command>) -> Result<()> {
        let mut flush_tick = tokio::time::interval(self.config.flush_interval());
        flush_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut aggregate_tick = tokio::time::interval(self.config.aggregate_interval());
        aggregate_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let outcome = loop {
            let step = tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Write(batch)) => self.absorb(batch).await,
                    Some(Command::Flush(reply)) => {
                        let r = self.flush_all().await;
                        let _ = reply.send(r.is_ok());
                        r
                    }
                    Some(Command::Shutdown(reply)) => {
                        let r = self.flush_all().await;
                        let _ = reply.send(());
                        break r;
                    }
                    None => break self.flush_all().await,
                },
                _ = flush_tick.tick() => self.flush_rows().await.and(self.flush_deltas().await),
                _ = aggregate_tick.tick() => self.recompute_dirty().await,
                () = self.stop.cancelled() => break Err(Stopped),
            };
            if step.is_err() {
                break step;
            }
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(Stopped) => {
                // Rows taken for an insert, buffered here, or still queued in the channel.
                commands.close();
                while let Ok(command) = commands.try_recv() {
                    if let Command::Write(mut batch) = command {
                        self.pending_permits.extend(batch.permits.take());
                    }
                }
                let rows = self
                    .pending_permits
                    .iter()
                    .map(OwnedSemaphorePermit::num_permits)
                    .sum();
                tracing::error!(
                    rows,
                    dirty_minutes = self.dirty.len(),
                    "analytics sink stopped before writing"
                );
                Err(AnalyticsError::Unwritten { rows })
            }
        }
    }

    async fn absorb(&mut self, mut batch: Batch) -> Result<(), Stopped> {
        self.pending.raw.append(&mut batch.raw);
        self.pending.extra_dirty.append(&mut batch.extra_dirty);
        self.pending.leaderboard.append(&mut batch.leaderboard);
        self.pending.trending.append(&mut batch.trending);
        if let Some(p) = batch.permits.take() {
            self.pending_permits.push(p);
        }
        let rows = self.pending.raw.len() + self.pending.leaderboard.len() + self.pending.trending.len();
        if rows >= self.config.batch_rows {
            self.flush_rows().await?;
        }
        Ok(())
    }

    async fn flush_all(&mut self) -> Result<(), Stopped> {
        self.flush_rows().await?;
        self.flush_deltas().await?;
        while !self.dirty.is_empty() {
            self.recompute_dirty().await?;
        }
        Ok(())
    }

    /// Inserts the buffered rows; on success marks their minutes dirty and frees their buffer space.
    async fn flush_rows(&mut self) -> Result<(), Stopped> {
        let raw = std::mem::take(&mut self.pending.raw);
        if !raw.is_empty() {
            self.insert_all("raw_events", &raw).await?;
            for row in &raw {
                self.dirty.insert(crate::extract::minute_of(row.event_time));
            }
        }
        for m in std::mem::take(&mut self.pending.extra_dirty) {
            self.dirty.insert(m);
        }
        let leaderboard = std::mem::take(&mut self.pending.leaderboard);
        self.insert_all("leaderboard_snapshots", &leaderboard).await?;
        let trending = std::mem::take(&mut self.pending.trending);
        self.insert_all("trending_snapshots", &trending).await?;
        self.pending_permits.clear();
        metrics::dirty_minutes(self.dirty.len());
        Ok(())
    }

    async fn insert_all<T>(&mut self, table: &'static str, rows: &[T]) -> Result<(), Stopped>
    where
        T: Row + RowOwned + RowWrite + for<'a> Row<Value<'a> = T>,
    {
        if rows.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let client = &self.client;
        let result = retry(&self.policy, &self.stats, &self.stop, table, || {
            insert_rows(client, table, rows)
        })
        .await;
        if result.is_err() {
            tracing::error!(table, rows = rows.len(), "insert abandoned: sink stopping");
        }
        result?;
        self.stats.add_rows(rows.len());
        metrics::rows_written(table, rows.len());
        metrics::flush_duration(table, started.elapsed().as_secs_f64());
        Ok(())
    }

    async fn flush_deltas(&mut self) -> Result<(), Stopped> {
        let (latency, dead) = {
            let mut deltas = match self.deltas.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            if deltas.is_empty() {
                return Ok(());
            }
            self.delta_seq += 1;
            deltas.take_rows(&self.config.node, &self.writer_id, self.delta_seq)
        };
        self.insert_all("delivery_latency", &latency).await?;
        self.insert_all("dead_letters", &dead).await
    }

    /// Recomputes up to [`MINUTES_PER_RECOMPUTE`] of the oldest dirty minutes.
    async fn recompute_dirty(&mut self) -> Result<(), Stopped> {
        if self.dirty.is_empty() {
            return Ok(());
        }
        if !self.versions_read {
            // Versions go on from the newest stored, whatever this host's clock says: a row written by an earlier
            // process whose clock ran ahead would otherwise outrank this one's recomputations for good.
            for table in AGGREGATE_TABLES {
                let client = &self.client;
                let query = format!("SELECT max(version) FROM {table}");
                let stored = retry(&self.policy, &self.stats, &self.stop, "aggregates", || {
                    client.query(&query).fetch_one::<u64>()
                })
                .await?;
                self.last_version = self.last_version.max(stored);
            }
            let client = &self.client;
            let query =
                format!("SELECT count() FROM schema_migrations WHERE version = '{RAW_EVENTS_TTL_MIGRATION}'");
            let ttl_applied = retry(&self.policy, &self.stats, &self.stop, "aggregates", || {
                client.query(&query).fetch_one::<u64>()
            })
            .await?;
            self.raw_events_expire = ttl_applied > 0;
            self.versions_read = true;
        }
        if self.raw_events_expire {
            // A minute whose raw events the TTL may have deleted would be recomputed from what is left of them,
            // overwriting its correct aggregates: such minutes keep them (an event that old counts in raw_events
            // until the TTL, not in the aggregates). A day's margin covers the TTL's own timing.
            let cutoff = Utc::now().timestamp() - (RAW_EVENTS_TTL_DAYS - 1) * 24 * 60 * 60;
            let expired = self.dirty.before(cutoff);
            if !expired.is_empty() {
                tracing::warn!(
                    minutes = expired.len(),
                    "events older than the raw events' retention: their minutes' aggregates are kept as they are"
                );
                self.dirty.remove(&expired);
                if self.dirty.is_empty() {
                    return Ok(());
                }
            }
        }
        let minutes = self.dirty.first(MINUTES_PER_RECOMPUTE);
        let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
        let version = now_ms.max(self.last_version.saturating_add(1));
        self.last_version = version;
        let started = Instant::now();
        for statement in recompute_statements(&minutes, version) {
            let client = &self.client;
            retry(&self.policy, &self.stats, &self.stop, "aggregates", || {
                client.query_raw(&statement).execute()
            })
            .await?;
        }
        self.dirty.remove(&minutes);
        self.stats.add_recomputation();
        metrics::flush_duration("aggregates", started.elapsed().as_secs_f64());
        metrics::dirty_minutes(self.dirty.len());
        Ok(())
    }
}

async fn insert_rows<T>(client: &clickhouse::Client, table: &str, rows: &[T]) -> clickhouse::error::Result<()>
where
    T: Row + RowOwned + RowWrite + for<'a> Row<Value<'a> = T>,
{
    let mut insert = client.insert::<T>(table).await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await
}
