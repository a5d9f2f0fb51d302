//! The topology: the async runner of the operator [`Engine`]. Reads every partition of the input topic from a
//! [`Bus`] in a fixed round-robin order, feeds the engine, hands its output to an [`OutputSink`], keeps the
//! [`SnapshotStore`] current, checkpoints state and offsets together, and stops on a `CancellationToken`.
//!
//! Wiring (embedded `run`):
//! ```ignore
//! let topology = Topology::new(TopologyConfig::default(), bus.clone(), Some(data_dir.join("checkpoints")))?;
//! let snapshots = topology.snapshots();            // hand to the delivery tier
//! let (tx, rx) = tokio::sync::mpsc::channel(1024); // rx: Output messages for the delivery hub / output bus
//! tracker.spawn(topology.run(tx, shutdown.clone()));
//! ```
//!
//! Determinism: one round reads up to `fetch_max_records` from each partition in order `0..n`, then advances
//! the watermark. Checkpoints are taken between rounds, after the sink has handled the output so far, and hold
//! the engine state with the offsets of the next round; a restore therefore continues exactly where the
//! checkpointed run was. With a checkpoint directory every round is also recorded (offsets read, idle flags,
//! idle flush: see [`rounds`]) before its output leaves the process, and a restart replays the recorded rounds
//! first: output produced after the last checkpoint is produced again after a crash, with the same ids and in
//! the same order, however the input arrived and whatever the wall clock decided. So a consumer drops duplicates
//! by id, and a sink that counts what it wrote skips the first `written - outputs_emitted()` outputs after a
//! restart. The offsets committed to the bus (consumer group `consumer_group`) are those of the oldest checkpoint
//! kept: a restore that falls back to it (the newer ones unreadable) finds its input still retained.

mod config;
mod error;
mod rounds;
mod sink;
mod snapshot;
mod state;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use social_schemas::{Limits, check_not_ahead, parse_event};
use tokio_util::sync::CancellationToken;

pub use config::TopologyConfig;
pub use error::PipelineError;
pub use rounds::RoundRecord;
pub use sink::{Handled, OutputSink};
pub use snapshot::SnapshotStore;
pub use state::{LiveState, StateStamp, next_writer_epoch};

use crate::bus::{Bus, INPUT_TOPIC, Offset};
use crate::checkpoint::{CHECKPOINT_VERSION, Checkpoint, CheckpointStore, Lineage};
use crate::operator::metrics::{CHECKPOINT_BYTES, CHECKPOINT_SECONDS};
use crate::operator::{Emitter, Engine, SnapshotUpdate};
use rounds::RoundLog;

/// Sequence and input offsets of the checkpoints on disk, oldest first (shared with the task writing one).
type KeptCheckpoints = Arc<std::sync::Mutex<VecDeque<(u64, Vec<Offset>)>>>;

/// Checkpoints not written because the live-state store had not stored everything they would cover.
const CHECKPOINTS_DEFERRED: &str = "pipeline_checkpoints_deferred_total";

pub struct Topology {
    config: TopologyConfig,
    bus: Arc<dyn Bus>,
    checkpoints: Option<CheckpointStore>,
    checkpoint_dir: Option<PathBuf>,
    lineage: Lineage,
    engine: Engine,
    /// Next offset to read, per partition.
    offsets: Vec<Offset>,
    /// Whether the offsets came from a checkpoint (otherwise they are set from the bus on the first round).
    positioned: bool,
    sequence: u64,
    /// Outputs handed to the sink so far, counted from the very first run (restored from checkpoints).
    outputs_emitted: u64,
    snapshots: SnapshotStore,
    limits: Limits,
    rounds_since_checkpoint: u64,
    last_checkpoint: Instant,
    last_record: Instant,
    /// Per partition, when a read last returned records (for `partition_idle_ms`).
    last_nonempty: Vec<Instant>,
    /// When input last resumed after a quiet spell (no partition counts as idle shortly after).
    resumed_at: Instant,
    /// Where snapshot updates are mirrored (Redis), with the stamp of the last round applied there.
    live_state: Option<(Arc<dyn LiveState>, StateStamp)>,
    /// Until the whole state has been written to the live-state store: while rounds recorded after the checkpoint
    /// are replayed, their updates are not written one by one (the store may hold newer values, written by the run
    /// that crashed, which the replay's intermediate values would move backwards), only collected; once the replay
    /// is over, the whole state goes out in one go. The parts the replay removed, to remove them there too.
    whole_state_pending: Option<BTreeSet<(String, String)>>,
    /// Every round taken since the last checkpoint (with a checkpoint directory).
    round_log: Option<RoundLog>,
    /// Rounds recorded after the restored checkpoint, replayed before any new round.
    replay: VecDeque<RoundRecord>,
    /// The idle flags of the last round (a round that changes them is recorded even without input).
    last_idle: Option<Vec<bool>>,
    /// The checkpoint being written in the background, if any.
    writing: Option<tokio::task::JoinHandle<Result<(), PipelineError>>>,
    /// Sequence and input offsets of the checkpoints on disk, oldest first: the offsets committed to the bus are
    /// the oldest one's, so that retention keeps the input of every checkpoint a restore may fall back to.
    kept: KeptCheckpoints,
    /// The invalid input records of the round being taken, with why, to be dead-lettered.
    invalid: Vec<(u32, crate::bus::StoredRecord, social_schemas::ValidationError)>,
    /// The shutdown token of `run` (a waiting append gives up on it).
    stop: CancellationToken,
    /// Input positions the dead-letter topic already names, read from its tail before this process writes its
    /// first dead letter (`None` until then): see [`Topology::dead_letter_invalid`].
    lettered: Option<std::collections::HashSet<LetteredInput>>,
}

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundOutcome {
    pub records: usize,
    pub outputs: usize,
}

impl Topology {
    /// Builds the topology over the existing input topic of `bus`; restores the newest checkpoint of
    /// `checkpoint_dir` when there is one (without a directory, state lives in memory only).
    pub fn new(
        config: TopologyConfig,
        bus: Arc<dyn Bus>,
        checkpoint_dir: Option<PathBuf>,
    ) -> Result<Self, PipelineError> {
        let partitions = bus.partitions(INPUT_TOPIC)?;
        let checkpoints = checkpoint_dir
            .clone()
            .map(|dir| CheckpointStore::open(dir, config.checkpoints_kept))
            .transpose()?;
        // First, before anything else writes into the directory (which would make it look like an old one).
        let now_ms = chrono::Utc::now().timestamp_millis();
        let lineage = match &checkpoints {
            Some(store) => store.lineage(now_ms)?,
            None if bus.outlives_process() => Lineage::replayed(),
            None => Lineage::begin(now_ms),
        };
        let snapshots = SnapshotStore::default();
        let kept = match &checkpoints {
            Some(store) => store
                .kept_offsets()?
                .into_iter()
                .map(|kept| (kept.sequence, kept.offsets.into_values().collect()))
                .collect(),
            None => VecDeque::new(),
        };
        let restored = match &checkpoints {
            Some(store) => store.latest()?,
            None => None,
        };
        let mut outputs_emitted = 0;
        let (engine, offsets, positioned, mut sequence) = match restored {
            Some(cp) => {
                if cp.offsets.len() != partitions as usize {
                    return Err(PipelineError::PartitionCount {
                        expected: partitions,
                        found: cp.offsets.len(),
                    });
                }
                tracing::info!(sequence = cp.sequence, "restoring operator state from checkpoint");
                snapshots.import(cp.snapshots);
                outputs_emitted = cp.outputs_emitted;
                let engine = Engine::restore(config.operators.clone(), cp.engine)?;
                (engine, cp.offsets.into_values().collect(), true, cp.sequence)
            }
            None => (
                Engine::new(config.operators.clone(), partitions)?,
                vec![0; partitions as usize],
                false,
                0,
            ),
        };
        let (round_log, replay) = match &checkpoint_dir {
            Some(dir) => {
                let (log, replay) = RoundLog::open(dir, sequence)?;
                // Checkpoints after the restored one that never reached the disk left their logs: the next
                // checkpoint is numbered past them.
                sequence = sequence.max(log.sequence());
                if !replay.is_empty() {
                    tracing::info!(
                        rounds = replay.len(),
                        "replaying the rounds recorded after the checkpoint"
                    );
                }
                (Some(log), replay)
            }
            None => (None, VecDeque::new()),
        };
        let now = Instant::now();
        Ok(Topology {
            config,
            bus,
            checkpoints,
            checkpoint_dir,
            lineage,
            engine,
            offsets,
            positioned,
            sequence,
            outputs_emitted,
            snapshots,
            limits: Limits {
                max_event_bytes: usize::MAX,
                ..Limits::default()
            },
            rounds_since_checkpoint: 0,
            last_checkpoint: now,
            last_record: now,
            last_nonempty: vec![now; partitions as usize],
            resumed_at: now,
            live_state: None,
            whole_state_pending: None,
            round_log,
            replay,
            last_idle: None,
            writing: None,
            invalid: Vec::new(),
            kept: Arc::new(std::sync::Mutex::new(kept)),
            stop: CancellationToken::new(),
            lettered: None,
        })
    }

    /// Mirrors every snapshot update to `store` from now on, under a new writer epoch (persisted in the checkpoint
    /// directory, `now_ms` being the wall clock at start). `run` first writes the whole restored state, once the
    /// rounds recorded after the checkpoint are replayed.
    pub fn with_live_state(mut self, store: Arc<dyn LiveState>, now_ms: u64) -> Result<Self, PipelineError> {
        let epoch = next_writer_epoch(self.checkpoint_dir.as_deref(), now_ms)?;
        tracing::info!(epoch, "live-state writer epoch");
        self.live_state = Some((store, StateStamp { epoch, round: 0 }));
        self.whole_state_pending = Some(BTreeSet::new());
        Ok(self)
    }

    /// The snapshots this topology keeps current (clone it before `run`).
    pub fn snapshots(&self) -> SnapshotStore {
        self.snapshots.clone()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn offsets(&self) -> &[Offset] {
        &self.offsets
    }

    /// Outputs handed to the sink so far, from the very first run on. Right after `new`, it is the count covered
    /// by the restored checkpoint: the next output `run` sends is output number `outputs_emitted()` (0-based).
    pub fn outputs_emitted(&self) -> u64 {
        self.outputs_emitted
    }

    /// Where the numbers of this pipeline's outputs start (see [`Lineage`]): output `n` (0-based, counted as
    /// [`Topology::outputs_emitted`] counts) is numbered `sequence_base + n` for the delivery tier.
    pub fn lineage(&self) -> Lineage {
        self.lineage
    }

    /// Records, while the lineage has none, where its outputs start in the derived log (its end now, before it
    /// writes anything there): a restart then knows which of the log's records are its own. A lineage whose
    /// first start died before recording it has written nothing there yet either.
    pub fn record_derived_start(&mut self, derived_end: u64) -> Result<(), PipelineError> {
        if self.lineage.derived_start.is_some() {
            return Ok(());
        }
        match &self.checkpoints {
            Some(store) => store.record_derived_start(&mut self.lineage, derived_end)?,
            None => self.lineage.derived_start = Some(derived_end),
        }
        Ok(())
    }

    /// Runs until `shutdown`: rounds, checkpoints at the configured interval, and on shutdown a final checkpoint
    /// after the sink accepted everything. Output produced before a round's end is sent before the next round.
    pub async fn run<S: OutputSink>(
        mut self,
        mut sink: S,
        shutdown: CancellationToken,
    ) -> Result<(), PipelineError> {
        let mut out = Emitter::default();
        self.stop = shutdown.clone();
        self.start(&mut out);
        if stopped_waiting(self.deliver(&mut sink, &mut out).await)? {
            return Ok(());
        }
        while !shutdown.is_cancelled() {
            let outcome = match self.round(&mut out).await {
                // Shutdown came while the round waited for room on the bus for its dead letters: the round is
                // not recorded, so the next start takes it again; no final checkpoint for a half-taken round.
                Err(PipelineError::Bus(crate::bus::BusError::Closed)) if shutdown.is_cancelled() => {
                    tracing::info!(
                        "stopped while waiting for room on the bus; the next start takes this round again"
                    );
                    return Ok(());
                }
                outcome => outcome?,
            };
            if stopped_waiting(self.deliver(&mut sink, &mut out).await)? {
                return Ok(());
            }
            if self.checkpoint_due() {
                // The checkpoint is written once the output it counts is out; the operators go on meanwhile.
                let handled = sink.request_flush().await?;
                self.checkpoint_with(self.config.state_flush(), handled).await?;
            }
            if outcome.records == 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(self.config.poll_interval()) => {}
                }
            }
        }
        // Drain in order: input has stopped; everything produced was sent above; wait for the sink to have
        // handled it, then persist and commit.
        sink.flush().await?;
        self.checkpoint_with(self.config.shutdown_state_flush(), Handled::now())
            .await?;
        self.written().await
    }

    /// Writes the whole state to the live-state store, with removals of the parts in `removed` it no longer
    /// has: after a restore and its replay, the store may have lost data, or hold values of the crashed run.
    async fn write_whole_state(&mut self, removed: BTreeSet<(String, String)>) -> Result<(), PipelineError> {
        let Some((store, stamp)) = &mut self.live_state else {
            return Ok(());
        };
        let state = self.snapshots.export();
        let gone: Vec<SnapshotUpdate> = removed
            .into_iter()
            .filter(|(topic, part)| state.get(topic).is_none_or(|parts| !parts.contains_key(part)))
            .map(|(topic, part)| SnapshotUpdate {
                topic,
                part,
                value: None,
            })
            .collect();
        let updates: Vec<SnapshotUpdate> = state
            .into_iter()
            .flat_map(|(topic, parts)| {
                parts.into_iter().map(move |(part, value)| SnapshotUpdate {
                    topic: topic.clone(),
                    part,
                    value: Some(value),
                })
            })
            .chain(gone)
            .collect();
        if !updates.is_empty() {
            stamp.round += 1;
            apply_unless_stopped(store.as_ref(), *stamp, updates, &self.stop).await?;
        }
        Ok(())
    }

    /// Announces program configurations (first call of `run`; tests call it before `round`).
    pub fn start(&mut self, out: &mut Emitter) {
        self.engine.start(out);
    }

    /// One round over every partition: the next recorded round while any are left to replay, else a new one
    /// (recorded). Public for deterministic tests; `run` is the normal entry.
    pub async fn round(&mut self, out: &mut Emitter) -> Result<RoundOutcome, PipelineError> {
        if !self.positioned {
            for (partition, offset) in self.offsets.iter_mut().enumerate() {
                *offset = self.bus.start_offset(INPUT_TOPIC, partition as u32).await?;
            }
            self.positioned = true;
        }
        let before = out.outputs.len();
        let (records, acted) = match self.replay.pop_front() {
            Some(recorded) => (self.replay_round(recorded, out).await?, true),
            None => self.new_round(out).await?,
        };
        if records > 0 {
            self.last_record = Instant::now();
        }
        if acted {
            // Rounds that changed nothing (idle input) do not call for a checkpoint.
            self.rounds_since_checkpoint += 1;
        }
        self.engine.publish_gauges();
        let evicted = self.engine.take_dedup_evictions();
        if evicted > 0 {
            tracing::warn!(
                evicted,
                max_keys = self.config.operators.dedup_max_keys,
                "input deduplication forgot keys of events that can still count (dedup_max_keys too small for this \
                 rate and allowed lateness): a copy of one of those events would count again"
            );
        }
        Ok(RoundOutcome {
            records,
            outputs: out.outputs.len() - before,
        })
    }

    /// Reads up to `fetch_max_records` from each partition, decides which partitions are idle and whether to
    /// flush, runs the engine, and records what it did.
    /// Returns the records read and whether the round did anything (read, flushed, changed an idle flag or
    /// produced output); only such rounds are recorded.
    async fn new_round(&mut self, out: &mut Emitter) -> Result<(usize, bool), PipelineError> {
        let before = out.outputs.len();
        let mut batches = Vec::with_capacity(self.offsets.len());
        for partition in 0..self.offsets.len() as u32 {
            let from = self.offsets.get(partition as usize).copied().unwrap_or(0);
            let batch = self
                .bus
                .fetch(
                    INPUT_TOPIC,
                    partition,
                    from,
                    self.config.fetch_max_records,
                    Duration::ZERO,
                )
                .await?;
            batches.push(batch);
        }
        let now = Instant::now();
        let idle_after = Duration::from_millis(self.config.partition_idle_ms);
        if batches.iter().any(|batch| !batch.is_empty()) && self.last_record.elapsed() >= idle_after {
            // Input resumes after a quiet spell: the other partitions are likely about to get their share of the
            // same requests, so none counts as idle for a while (else the first one read would move the watermark
            // past their events).
            self.resumed_at = now;
        }
        let resuming = now.saturating_duration_since(self.resumed_at) < idle_after;
        let mut records = 0;
        let mut idle_flags = Vec::with_capacity(batches.len());
        for (partition, batch) in (0u32..).zip(batches) {
            let idle = match self.last_nonempty.get_mut(partition as usize) {
                Some(last) if !batch.is_empty() => {
                    *last = now;
                    false
                }
                Some(last) => !resuming && now.saturating_duration_since(*last) >= idle_after,
                None => batch.is_empty(),
            };
            idle_flags.push(idle);
            records += batch.len();
            self.feed(partition, idle, &batch, out);
        }
        self.engine.advance(out);
        // Every partition has been quiet for a while: release what is buffered rather than hold it until the
        // next event. Wall-clock driven; the round log makes a replay take the same decision.
        let flush = records == 0
            && self
                .config
                .idle_flush_ms
                .is_some_and(|ms| self.last_record.elapsed() >= Duration::from_millis(ms))
            && self.engine.idle_flush_pending();
        if flush {
            self.engine.flush_idle(out);
        }
        self.dead_letter_invalid().await?;
        let changed_idle = self.last_idle.as_ref() != Some(&idle_flags);
        let delivers = out.outputs.len() > before || !out.snapshots.is_empty();
        let acted = records > 0 || flush || changed_idle || delivers;
        if let Some(log) = &mut self.round_log
            && acted
        {
            log.append(&RoundRecord {
                ends: self.offsets.clone(),
                idle: idle_flags.clone(),
                flush,
            })?;
            if delivers {
                // The round is on disk before anything it produced leaves the process.
                log.sync()?;
            }
        }
        self.last_idle = Some(idle_flags);
        Ok((records, acted))
    }

    /// Takes a recorded round again: reads exactly up to its offsets, with its idle flags and flush decision.
    async fn replay_round(
        &mut self,
        recorded: RoundRecord,
        out: &mut Emitter,
    ) -> Result<usize, PipelineError> {
        if recorded.ends.len() != self.offsets.len() || recorded.idle.len() != self.offsets.len() {
            return Err(PipelineError::RoundLog(format!(
                "a recorded round has {} partitions, the input topic {}",
                recorded.ends.len(),
                self.offsets.len()
            )));
        }
        let mut records = 0;
        for partition in 0..self.offsets.len() as u32 {
            let index = partition as usize;
            let end = recorded.ends[index];
            let mut batch = Vec::new();
            while self.offsets[index] + (batch.len() as u64) < end {
                let from = self.offsets[index] + batch.len() as u64;
                let wanted = usize::try_from(end - from).unwrap_or(usize::MAX);
                let fetched = self
                    .bus
                    .fetch(INPUT_TOPIC, partition, from, wanted, Duration::from_millis(100))
                    .await?;
                if fetched.is_empty() {
                    return Err(PipelineError::RoundLog(format!(
                        "partition {partition} has nothing at offset {from}, but a recorded round read up to {end}"
                    )));
                }
                batch.extend(fetched.into_iter().filter(|record| record.offset < end));
            }
            records += batch.len();
            self.feed(partition, recorded.idle[index], &batch, out);
            self.offsets[index] = self.offsets[index].max(end);
        }
        // The round's invalid records were dead-lettered when it was first taken, before it was recorded.
        self.invalid.clear();
        self.engine.advance(out);
        if recorded.flush {
            self.engine.flush_idle(out);
        }
        self.last_idle = Some(recorded.idle);
        Ok(records)
    }

    /// Appends the dead letters of the round's invalid records, before the round is recorded, so none is lost. A
    /// crash in between takes the round again; the letters it had written are found on the dead-letter topic's
    /// tail at the first dead letter of the next process (each names its input partition and offset) and not
    /// written again.
    async fn dead_letter_invalid(&mut self) -> Result<(), PipelineError> {
        if self.invalid.is_empty() {
            return Ok(());
        }
        // Ingest creates the topic; a topology used without one creates it here.
        self.bus
            .ensure_topic(&crate::bus::TopicSpec {
                name: crate::bus::DEAD_LETTER_TOPIC.to_owned(),
                partitions: 1,
            })
            .await?;
        if self.lettered.is_none() {
            self.lettered = Some(lettered_positions(&*self.bus).await?);
        }
        let lettered = self.lettered.as_ref();
        let mut invalid = std::mem::take(&mut self.invalid);
        invalid.retain(|(partition, record, _)| {
            let key = (*partition, record.offset, record.timestamp_ms);
            !lettered.is_some_and(|positions| positions.contains(&key))
        });
        if invalid.is_empty() {
            return Ok(());
        }
        // Received now, as ingest's dead letters are (the dead-letter counts go by it); the record's own timestamp,
        // set by its producer, is kept beside its position.
        let now_ms = chrono::Utc::now().timestamp_millis();
        let letters: Vec<_> = invalid
            .iter()
            .map(|(partition, record, error)| {
                tracing::warn!(partition, offset = record.offset, %error, "dead-lettering an invalid input record");
                invalid_record_letter(*partition, record, error, now_ms)
            })
            .collect();
        let count = letters.len() as u64;
        // The dead-letter topic may be full of letters the analytics feed has not read (ClickHouse down): wait.
        crate::bus::append_when_room(&*self.bus, crate::bus::DEAD_LETTER_TOPIC, 0, letters, &self.stop)
            .await?;
        metrics::counter!("pipeline_invalid_records_total").increment(count);
        Ok(())
    }

    /// Sets the partition's idle flag and pushes its records into the engine; moves its offset past them.
    fn feed(&mut self, partition: u32, idle: bool, batch: &[crate::bus::StoredRecord], out: &mut Emitter) {
        self.engine.set_idle(partition, idle);
        for record in batch {
            let parsed = parse_event(&record.value, &self.limits).and_then(|event| {
                // 0: the producer gave no timestamp.
                if record.timestamp_ms > 0 {
                    let time = event.time.timestamp_millis();
                    check_not_ahead(time, record.timestamp_ms, self.config.max_future_ms)?;
                }
                Ok(event)
            });
            match parsed {
                Ok(event) => self.engine.push(partition, event, out),
                // Ingest validated everything it wrote; a record that does not parse (or whose time is far ahead
                // of its timestamp) was written by another producer. It goes to the dead-letter topic with the
                // reason (see `dead_letter_invalid`).
                Err(error) => self.invalid.push((partition, record.clone(), error)),
            }
        }
        if let (Some(last), Some(slot)) = (batch.last(), self.offsets.get_mut(partition as usize)) {
            *slot = last.offset + 1;
        }
    }

    async fn deliver<S: OutputSink>(&mut self, sink: &mut S, out: &mut Emitter) -> Result<(), PipelineError> {
        if let Some(removed) = &mut self.whole_state_pending {
            removed.extend(
                out.snapshots
                    .iter()
                    .filter(|update| update.value.is_none())
                    .map(|update| (update.topic.clone(), update.part.clone())),
            );
            self.snapshots.apply(out.snapshots.drain(..));
            if self.replay.is_empty()
                && let Some(removed) = self.whole_state_pending.take()
            {
                self.write_whole_state(removed).await?;
            }
        } else if let Some((store, stamp)) = &mut self.live_state
            && !out.snapshots.is_empty()
        {
            stamp.round += 1;
            apply_unless_stopped(store.as_ref(), *stamp, out.snapshots.clone(), &self.stop).await?;
        }
        self.snapshots.apply(out.snapshots.drain(..));
        if !out.outputs.is_empty() {
            let count = out.outputs.len() as u64;
            sink.send(std::mem::take(&mut out.outputs)).await?;
            self.outputs_emitted += count;
        }
        Ok(())
    }

    fn checkpoint_due(&self) -> bool {
        self.replay.is_empty()
            && self.rounds_since_checkpoint > 0
            && self.last_checkpoint.elapsed() >= Duration::from_millis(self.config.checkpoint_interval_ms)
    }

    /// Without a checkpoint store (state in memory only) the offsets read so far are committed once the sink has
    /// handled their output, at the checkpoint interval, in the background: a bus that keeps unread input for
    /// this consumer can then let the rest go.
    async fn commit_without_checkpoint(&mut self, output: Handled) -> Result<(), PipelineError> {
        self.written().await?;
        let bus = self.bus.clone();
        let group = self.config.consumer_group.clone();
        let offsets = self.offsets.clone();
        self.writing = Some(tokio::spawn(async move {
            output.wait().await?;
            commit_input_offsets(&*bus, &group, &offsets).await
        }));
        self.rounds_since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// Writes a checkpoint of the state and offsets now, then commits the offsets on the bus. Call only between
    /// rounds, after the output of the last round was delivered. In `run`, the checkpoint waits for the sink to
    /// have handled that output. With a live-state store, the checkpoint waits for it to hold every update so far,
    /// and is deferred (not written) when that takes longer than the configured timeout: the next one covers the
    /// same ground, and a restart replays from the previous one (and every round recorded since). `run` does the
    /// waiting and writing in the background while the operators go on, and waits for it before the next
    /// checkpoint. Without a checkpoint store only the offsets are committed. Nothing is written while rounds of the
    /// round log are being replayed after a restore (they stay in the logs of the checkpoints before them).
    pub async fn checkpoint(&mut self) -> Result<(), PipelineError> {
        self.checkpoint_with(self.config.state_flush(), Handled::now())
            .await?;
        self.written().await
    }

    /// Waits for the checkpoint being written, if any, to be on disk with its offsets committed.
    async fn written(&mut self) -> Result<(), PipelineError> {
        match self.writing.take() {
            Some(handle) => handle.await.map_err(|e| PipelineError::task("checkpoint", e))?,
            None => Ok(()),
        }
    }

    /// `output` completes once the sink has handled every output the checkpoint counts: until then it is not
    /// written (a restore would not replay those outputs).
    async fn checkpoint_with(
        &mut self,
        flush_timeout: Duration,
        output: Handled,
    ) -> Result<(), PipelineError> {
        let Some(store) = self.checkpoints.clone() else {
            return self.commit_without_checkpoint(output).await;
        };
        if !self.replay.is_empty() {
            // Not while rounds of the round log are being replayed: they stay in the logs of the checkpoints
            // before, which a restore replays again.
            return Ok(());
        }
        self.written().await?;
        let started = Instant::now();
        self.sequence += 1;
        let checkpoint = Checkpoint {
            version: CHECKPOINT_VERSION,
            sequence: self.sequence,
            offsets: self
                .offsets
                .iter()
                .enumerate()
                .map(|(p, o)| (p as u32, *o))
                .collect::<BTreeMap<_, _>>(),
            engine: self.engine.snapshot(),
            outputs_emitted: self.outputs_emitted,
            snapshots: self.snapshots.export(),
        };
        if let Some(log) = &mut self.round_log {
            // Rounds from now on belong to this checkpoint's log. Until it is on disk a restore takes an earlier
            // one and replays every log from there, so only logs older than the oldest checkpoint on disk go
            // (checkpoints deferred or lost leave gaps in the numbers).
            let oldest_kept = store.oldest_sequence()?.unwrap_or(0);
            log.rotate(self.sequence, oldest_kept)?;
            log.sync()?;
        }
        // Serialization and fsync take a while and block: the operators go on meanwhile; the offsets are committed
        // once the checkpoint is on disk.
        let bus = self.bus.clone();
        let group = self.config.consumer_group.clone();
        let (sequence, offsets) = (self.sequence, self.offsets.clone());
        let kept = self.kept.clone();
        let live_state = self.live_state.as_ref().map(|(state, _)| state.clone());
        self.writing = Some(tokio::spawn(async move {
            output.wait().await?;
            // The live-state store must hold every update the checkpoint covers (it may hold later ones too).
            if let Some(state) = live_state {
                let deferred = match tokio::time::timeout(flush_timeout, state.flush()).await {
                    Ok(Ok(())) => None,
                    Ok(Err(error)) => Some(error.to_string()),
                    Err(_) => Some(format!("not stored within {} ms", flush_timeout.as_millis())),
                };
                if let Some(reason) = deferred {
                    // Not written: a restart restores the previous checkpoint and replays this one's rounds too.
                    metrics::counter!(CHECKPOINTS_DEFERRED).increment(1);
                    tracing::warn!(%reason, "live state not stored; checkpoint deferred");
                    return Ok(());
                }
            }
            let (bytes, oldest) = tokio::task::spawn_blocking(move || {
                let bytes = store.write(&checkpoint)?;
                Ok::<_, PipelineError>((bytes, store.oldest_sequence()?))
            })
            .await
            .map_err(|e| PipelineError::task("checkpoint serialization", e))??;
            metrics::histogram!(CHECKPOINT_SECONDS).record(started.elapsed().as_secs_f64());
            metrics::gauge!(CHECKPOINT_BYTES).set(bytes as f64);
            let committed = {
                let mut kept = kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                // A sequence written again (a checkpoint lost before reaching the disk) replaces the old entry.
                while kept.back().is_some_and(|(s, _)| *s >= sequence) {
                    kept.pop_back();
                }
                kept.push_back((sequence, offsets));
                while kept.len() > 1 && kept.front().is_some_and(|(s, _)| Some(*s) < oldest) {
                    kept.pop_front();
                }
                kept.front()
                    .map(|(_, offsets)| offsets.clone())
                    .unwrap_or_default()
            };
            commit_input_offsets(&*bus, &group, &committed).await
        }));
        self.rounds_since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        Ok(())
    }
}

/// Commits `offsets` (one per input partition, in order) for `group`.
async fn commit_input_offsets(bus: &dyn Bus, group: &str, offsets: &[Offset]) -> Result<(), PipelineError> {
    for (partition, offset) in offsets.iter().enumerate() {
        bus.commit(group, INPUT_TOPIC, partition as u32, *offset).await?;
    }
    Ok(())
}

/// Dead letters read back from the end of the dead-letter topic to find those a crashed process wrote for a round
/// it had not recorded: that round is retaken right after the restart, so its letters are among the last ones.
const LETTERED_TAIL: u64 = 10_000;

/// An input record a dead letter names: its partition, offset and producer timestamp. The timestamp tells a record
/// apart from another one at the same position of an input topic that was deleted and created again.
type LetteredInput = (u32, Offset, i64);

/// The input records named by the last [`LETTERED_TAIL`] dead letters (ingest's letters name none).
async fn lettered_positions(
    bus: &dyn Bus,
) -> Result<std::collections::HashSet<LetteredInput>, PipelineError> {
    #[derive(serde::Deserialize)]
    struct Letter {
        input: Option<Position>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Position {
        partition: u32,
        offset: Offset,
        timestamp_ms: i64,
    }
    let topic = crate::bus::DEAD_LETTER_TOPIC;
    let end = bus.end_offset(topic, 0).await?;
    let mut from = bus
        .start_offset(topic, 0)
        .await?
        .max(end.saturating_sub(LETTERED_TAIL));
    let mut positions = std::collections::HashSet::new();
    while from < end {
        let records = match bus.fetch(topic, 0, from, 1_000, Duration::ZERO).await {
            Ok(records) => records,
            // Retention moved on meanwhile: what it dropped is older than any round to retake.
            Err(crate::bus::BusError::OffsetOutOfRange { earliest, .. }) => {
                from = earliest;
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let Some(last) = records.last() else { break };
        from = last.offset + 1;
        for record in &records {
            if let Ok(Letter { input: Some(p) }) = serde_json::from_slice::<Letter>(&record.value) {
                positions.insert((p.partition, p.offset, p.timestamp_ms));
            }
        }
    }
    Ok(positions)
}

/// The dead letter of an input record that does not parse: the reason, the record and where it was read.
fn invalid_record_letter(
    partition: u32,
    record: &crate::bus::StoredRecord,
    error: &social_schemas::ValidationError,
    now_ms: i64,
) -> crate::bus::Record {
    let reason = crate::ingest::DeadLetterReason {
        code: error.code.as_str(),
        message: error.message.clone(),
    };
    let mut letter = crate::ingest::DeadLetter::new(
        reason,
        None,
        "application/cloudevents+json",
        &record.value,
        social_schemas::Limits::default().max_event_bytes,
        now_ms,
    );
    letter.input = Some(crate::ingest::InputPosition {
        partition,
        offset: record.offset,
        timestamp_ms: record.timestamp_ms,
    });
    letter.to_record(now_ms)
}

/// Queues one round's updates in the live-state store, unless shutdown comes while the store has no room for
/// them (it waits then: Redis is down and its buffer full), which would otherwise hold the shutdown for as long
/// as Redis stays down.
async fn apply_unless_stopped(
    store: &dyn LiveState,
    stamp: StateStamp,
    updates: Vec<SnapshotUpdate>,
    stop: &CancellationToken,
) -> Result<(), PipelineError> {
    tokio::select! {
        biased;
        applied = store.apply(stamp, updates) => applied,
        () = stop.cancelled() => Err(PipelineError::StoppedWaitingForLiveState),
    }
}

/// `Ok(true)` when a delivery ended because shutdown came while it waited for the live-state store: the run
/// then ends without a final checkpoint (nothing of the round left the process; the next start takes it again).
fn stopped_waiting(delivered: Result<(), PipelineError>) -> Result<bool, PipelineError> {
    match delivered {
        Ok(()) => Ok(false),
        Err(PipelineError::StoppedWaitingForLiveState) => {
            tracing::info!(
                "stopped while the live-state store had no room; the next start takes this round again"
            );
            Ok(true)
        }
        Err(error) => Err(error),
    }
}
