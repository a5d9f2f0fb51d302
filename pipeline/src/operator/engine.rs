//! The synchronous core: watermarks, the event-time buffer and the operator graph. No I/O, no wall clock.
//!
//! Processing order: events are held until the watermark passes them, then released in `(time, source, id)`
//! order, merged with ticks at every multiple of `emit_interval_ms`; a tick at `B` comes after every event
//! before `B` and before every event at or after `B`. The released sequence therefore depends only on the set of
//! events, not on arrival order or batching, as long as no event is late. A late event (at or before the
//! watermark) within `allowed_lateness_ms` is processed at once and its corrections emitted; a later one goes to
//! the late-data side output and only updates reference state (attribution, privacy). A copy of an event taken
//! before (same `source` and `id`) is dropped before anything else sees it ([`EventDedup`]).

use serde::{Deserialize, Serialize};
use social_schemas::derived::MessageData;
use social_schemas::{Event, Limits, parse_event};

use super::config::OperatorConfig;
use super::dedup::{Admission, EventDedup};
use super::graph::{OperatorGraph, Step};
use super::ids::MessageId;
use super::metrics::{DEDUP_EVICTED_KEYS, DUPLICATE_EVENTS, LATE_EVENTS, STATE_ENTRIES, WATERMARK_LAG};
use super::output::{Destination, Emitter, LATE_DATA_TOPIC};
use crate::window::reorder::{EventTimeBuffer, OrderKey, tie_hash};
use crate::window::watermark::Watermarks;
use crate::window::{EventTimeMs, align_down};

/// Counts of late and repeated input since the engine was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LateStats {
    /// Behind the watermark but within the allowed lateness: applied, with corrections.
    pub late: u64,
    /// Beyond the allowed lateness: side output.
    pub too_late: u64,
    /// Copies of an event taken before (same `source` and `id`): dropped.
    #[serde(default)]
    pub duplicates: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid operator configuration: {0}")]
    Config(String),
    #[error("checkpointed event could not be read back: {0}")]
    Restore(String),
}

/// Released steps are handed to the graph in runs of at most this many (bounds what a long release holds).
const STEPS_PER_RUN: usize = 4_096;

/// Ticks go on at every interval for this long of event time after the last event released, then stop until
/// the next event: a day covers every daily window's close and lateness. Without the limit, a gap of years in
/// event time (one event dated far from the others) would be stepped through one interval at a time, for hours.
/// Decided from the released events alone, so the output still does not depend on batching.
pub const QUIET_TICK_SPAN_MS: i64 = 24 * 60 * 60 * 1000;

pub struct Engine {
    graph: OperatorGraph,
    clock: Watermarks,
    /// Events are boxed: the heap's sift moves pointers, not whole events.
    buffer: EventTimeBuffer<Box<Event>>,
    /// Keys of the events taken while they can still count.
    dedup: EventDedup,
    /// Every event at or before this time has been released (or was late).
    released: EventTimeMs,
    /// Time of the last event released in order (ticks stop [`QUIET_TICK_SPAN_MS`] after it).
    last_event: EventTimeMs,
    next_tick: Option<EventTimeMs>,
    stats: LateStats,
    /// The watermark of the last idle tick: checkpointed, since a restored engine that ticked again at that time
    /// would emit what the uninterrupted run keeps for the next tick.
    idle_ticked: EventTimeMs,
}

/// What a checkpoint holds of the engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineState {
    pub graph: OperatorGraph,
    pub clock: Watermarks,
    /// Buffered events as canonical CloudEvent JSON, in release order.
    pub buffered: Vec<String>,
    /// Absent from checkpoints written before deduplication: an empty set.
    #[serde(default)]
    pub dedup: EventDedup,
    pub released: EventTimeMs,
    /// Absent from checkpoints written before ticks stopped in quiet spells: no limit until the next event.
    #[serde(default = "no_event_yet")]
    pub last_event: EventTimeMs,
    pub next_tick: Option<EventTimeMs>,
    pub stats: LateStats,
    /// Absent from checkpoints written before it was kept: no idle tick yet.
    #[serde(default = "no_event_yet")]
    pub idle_ticked: EventTimeMs,
}

fn no_event_yet() -> EventTimeMs {
    EventTimeMs::MIN
}

impl Engine {
    pub fn new(config: OperatorConfig, partitions: u32) -> Result<Self, EngineError> {
        config.validate().map_err(EngineError::Config)?;
        let clock = Watermarks::new(partitions, config.max_out_of_order_ms);
        Ok(Engine {
            graph: OperatorGraph::new(config),
            clock,
            buffer: EventTimeBuffer::default(),
            dedup: EventDedup::default(),
            released: EventTimeMs::MIN,
            last_event: EventTimeMs::MIN,
            next_tick: None,
            stats: LateStats::default(),
            idle_ticked: EventTimeMs::MIN,
        })
    }

    /// Announces program configurations (call once after `new` or `restore`).
    pub fn start(&mut self, out: &mut Emitter) {
        let time = if self.released == EventTimeMs::MIN {
            0
        } else {
            self.released
        };
        self.graph.announce_programs(time, out);
    }

    pub fn graph(&self) -> &OperatorGraph {
        &self.graph
    }

    pub fn watermark(&self) -> EventTimeMs {
        self.released
    }

    pub fn stats(&self) -> LateStats {
        self.stats
    }

    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// Feeds one event read from `partition`. Call [`Engine::advance`] after a batch.
    pub fn push(&mut self, partition: u32, event: Event, out: &mut Emitter) {
        let t = event.time.timestamp_millis();
        let max_keys = self.graph.config().dedup_max_keys;
        if self.dedup.admit(&event.source, &event.id, t, max_keys) == Admission::Duplicate {
            self.stats.duplicates += 1;
            metrics::counter!(DUPLICATE_EVENTS).increment(1);
            return;
        }
        self.clock.observe(partition, t);
        self.graph.on_arrival(&event, out);
        if t > self.released {
            let key = OrderKey {
                time_ms: t,
                hash: tie_hash(&event.source, &event.id),
            };
            self.buffer.push(key, Box::new(event));
        } else if t > self
            .released
            .saturating_sub(self.graph.config().allowed_lateness_ms)
        {
            self.stats.late += 1;
            metrics::counter!(LATE_EVENTS, "kind" => "late").increment(1);
            self.graph.on_late_event(&event, self.released, out);
        } else {
            self.stats.too_late += 1;
            metrics::counter!(LATE_EVENTS, "kind" => "too_late").increment(1);
            self.graph.on_too_late(&event, self.released, out);
            let id = MessageId::new("late").str(&event.source).str(&event.id).finish();
            // Parsed into a `Value` first: the side output carries the event with sorted keys (rare path).
            let data = serde_json::from_slice::<serde_json::Value>(&event.to_json())
                .map(MessageData::from)
                .unwrap_or_default();
            let event_type = event.event_type().as_str();
            out.emit(
                Destination::LateData,
                LATE_DATA_TOPIC.to_owned(),
                id,
                event_type,
                t,
                data,
            );
        }
    }

    /// Marks a partition idle (the runner read all it has) or active.
    pub fn set_idle(&mut self, partition: u32, idle: bool) {
        self.clock.set_idle(partition, idle);
    }

    /// Recomputes the watermark and releases what it passed. Returns the watermark.
    pub fn advance(&mut self, out: &mut Emitter) -> EventTimeMs {
        let watermark = self.clock.advance();
        self.release(watermark, out);
        watermark
    }

    /// Releases everything read so far (every partition has been idle for a while), then ticks at the newest
    /// event time: what the operators coalesce until the next interval tick (counters, leaderboards, rankings) is
    /// published now rather than when the next event arrives, so that live state is current while input is quiet.
    pub fn flush_idle(&mut self, out: &mut Emitter) -> EventTimeMs {
        let watermark = self.clock.flush_to_newest();
        self.release(watermark, out);
        if watermark > self.idle_ticked && watermark != EventTimeMs::MIN {
            self.idle_ticked = watermark;
            self.graph.run_steps(vec![Step::IdleTick(watermark)], out);
            self.released = self.released.max(watermark);
        }
        watermark
    }

    /// Whether [`Engine::flush_idle`] would change anything now: release an event or a tick, or tick at a newer
    /// event time than the last idle tick. The runner skips (and does not record) flushes that would not.
    pub fn idle_flush_pending(&self) -> bool {
        let current = self.clock.current();
        let target = self.clock.newest().map_or(current, |newest| newest.max(current));
        target > current
            || self.buffer.peek_time().is_some_and(|t| t <= target)
            || self.next_tick.is_some_and(|tick| tick <= target)
            || (target > self.idle_ticked && target != EventTimeMs::MIN)
    }

    /// End of input (tests, benchmarks): releases everything and closes every window.
    pub fn finish(&mut self, out: &mut Emitter) {
        let watermark = self.clock.flush_to_newest();
        self.release(watermark, out);
        let end = EventTimeMs::MAX / 4;
        self.graph.run_steps(vec![Step::Tick(end)], out);
        self.released = end;
    }

    fn release(&mut self, watermark: EventTimeMs, out: &mut Emitter) {
        let interval = self.graph.config().emit_interval_ms;
        let mut steps = Vec::new();
        loop {
            let next_event = self.buffer.peek_time().filter(|t| *t <= watermark);
            match (next_event, self.next_tick) {
                // A quiet spell: no ticks until the next event, whose first tick is the interval after it.
                (_, Some(tick)) if self.quiet_at(tick) => self.next_tick = None,
                (Some(t), Some(tick)) if tick <= t => steps.push(self.tick(tick, interval)),
                (Some(t), tick) => {
                    if tick.is_none() {
                        self.next_tick = Some(align_down(t, interval) + interval);
                    }
                    if let Some(event) = self.buffer.pop() {
                        self.last_event = t;
                        steps.push(Step::Event(event));
                    }
                }
                (None, Some(tick)) if tick <= watermark => steps.push(self.tick(tick, interval)),
                _ => break,
            }
            if steps.len() >= STEPS_PER_RUN {
                self.graph.run_steps(std::mem::take(&mut steps), out);
            }
        }
        self.graph.run_steps(steps, out);
        self.released = self.released.max(watermark);
        let config = self.graph.config();
        let too_late_at = self.released.saturating_sub(config.allowed_lateness_ms);
        self.dedup.expire(too_late_at);
    }

    /// Whether `tick` falls in a quiet spell: more than [`QUIET_TICK_SPAN_MS`] after the last event released.
    fn quiet_at(&self, tick: EventTimeMs) -> bool {
        self.last_event != EventTimeMs::MIN && tick > self.last_event.saturating_add(QUIET_TICK_SPAN_MS)
    }

    fn tick(&mut self, tick: EventTimeMs, interval: i64) -> Step {
        self.released = self.released.max(tick);
        self.next_tick = Some(tick + interval);
        Step::Tick(tick)
    }

    /// Publishes the watermark-lag and state-size gauges.
    pub fn publish_gauges(&self) {
        const PARTITION_LABELS: [&str; 16] = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
        ];
        for (partition, lag) in self.clock.lag_ms() {
            let label = PARTITION_LABELS
                .get(partition as usize)
                .copied()
                .unwrap_or("other");
            metrics::gauge!(WATERMARK_LAG, "partition" => label).set(lag as f64);
        }
        for (kind, entries) in self.graph.state_sizes() {
            metrics::gauge!(STATE_ENTRIES, "operator" => kind.as_str()).set(entries as f64);
        }
        metrics::gauge!(STATE_ENTRIES, "operator" => "dedup").set(self.dedup.len() as f64);
    }

    /// Keys the deduplication forgot early because of `dedup_max_keys`, since the last call (the topology adds
    /// them to a metric and warns).
    pub fn take_dedup_evictions(&mut self) -> u64 {
        let evicted = self.dedup.take_evictions();
        if evicted > 0 {
            metrics::counter!(DEDUP_EVICTED_KEYS).increment(evicted);
        }
        evicted
    }

    pub fn snapshot(&self) -> EngineState {
        EngineState {
            graph: self.graph.clone(),
            clock: self.clock.clone(),
            buffered: self
                .buffer
                .sorted_items()
                .into_iter()
                .map(|e| String::from_utf8_lossy(&e.to_json()).into_owned())
                .collect(),
            dedup: self.dedup.clone(),
            released: self.released,
            last_event: self.last_event,
            next_tick: self.next_tick,
            stats: self.stats,
            idle_ticked: self.idle_ticked,
        }
    }

    /// Rebuilds an engine from a checkpoint, with the current configuration (window shapes stay those of the
    /// checkpoint). The partition count must be unchanged.
    pub fn restore(config: OperatorConfig, state: EngineState) -> Result<Self, EngineError> {
        config.validate().map_err(EngineError::Config)?;
        let limits = Limits {
            max_event_bytes: usize::MAX,
            ..Limits::default()
        };
        let mut buffer = EventTimeBuffer::default();
        for json in &state.buffered {
            let event =
                parse_event(json.as_bytes(), &limits).map_err(|e| EngineError::Restore(e.to_string()))?;
            let key = OrderKey {
                time_ms: event.time.timestamp_millis(),
                hash: tie_hash(&event.source, &event.id),
            };
            buffer.push(key, Box::new(event));
        }
        Ok(Engine {
            graph: state.graph.restored(config),
            clock: state.clock,
            buffer,
            dedup: state.dedup,
            released: state.released,
            last_event: state.last_event,
            next_tick: state.next_tick,
            stats: state.stats,
            idle_ticked: state.idle_ticked,
        })
    }
}
