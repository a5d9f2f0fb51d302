//! Synthetic but realistic traffic: a seeded simulation of the marketplace's social and referral activity,
//! emitted as CloudEvents that validate against `docs/EVENTS.md`.
//!
//! ```
//! use social_pipeline::generate::{Generator, GeneratorConfig};
//!
//! let events: Vec<_> = Generator::new(GeneratorConfig::with_seed(7)).take(3).collect();
//! assert_eq!(events.len(), 3);
//! assert!(events[0].json.starts_with(b"{\"specversion\":\"1.0\""));
//! ```
//!
//! * Simulation with state ([`model`]): users (homeowners 70 %, contractors 25 %, partners 5 %) register over
//!   time, generate referral codes, share content, click, convert, earn rewards; homeowners post projects that
//!   contractors win and complete, then review. Engagement follows a Zipf popularity over content.
//! * Reproducible: the whole output is a function of the [`GeneratorConfig`] (ChaCha8 seeded with `seed`, no
//!   wall clock, no hash-map iteration, fixed JSON field order).
//! * Event time advances at `events_per_second` (Poisson arrivals). The emitted order differs from event-time
//!   order by at most `max_out_of_order_ms` ([`reorder`]); causes always have earlier event times than their
//!   effects, but an effect may be emitted before its cause when both fall within that bound.

mod config;
mod emit;
mod ids;
mod leaderboard;
mod model;
mod projects;
mod referral;
mod reorder;
mod social;
mod tables;
mod zipf;

#[cfg(test)]
mod tests;

use std::io::{self, BufWriter, Write};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use config::{
    DEFAULT_EVENTS_PER_SECOND, DEFAULT_MAX_OUT_OF_ORDER_MS, DEFAULT_PROGRAMS, DEFAULT_SOURCE, DEFAULT_USERS,
    GeneratorConfig,
};
pub use emit::EVENT_TYPES;

use ids::EventId;
use model::World;
use reorder::ReorderBuffer;

/// One generated event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedEvent {
    /// Partition key of the event (the `partition key` column of `docs/EVENTS.md`, e.g. the `userId` of a share).
    pub key: String,
    /// One compact CloudEvent in JSON structured mode, without a trailing newline.
    pub json: Vec<u8>,
}

/// An endless, deterministic stream of events. Use `take(n)` for a finite run.
pub struct Generator {
    world: World,
    buffer: ReorderBuffer<GeneratedEvent>,
    /// Draws the arrival delays; separate from the world's generator so that the simulation is the same
    /// whatever the out-of-order bound.
    delays: ChaCha8Rng,
    seed: u64,
    source: String,
    max_delay_ms: i64,
    next_id: u64,
}

impl Generator {
    pub fn new(config: GeneratorConfig) -> Generator {
        let effective = config.effective();
        Generator {
            world: World::new(&effective),
            buffer: ReorderBuffer::new(),
            delays: ChaCha8Rng::seed_from_u64(effective.seed ^ 0x6465_6c61_7973_2121),
            seed: effective.seed,
            max_delay_ms: effective.max_out_of_order_ms,
            source: effective.source,
            next_id: 0,
        }
    }

    /// Simulates one more event and holds it until its arrival time.
    fn generate_one(&mut self) {
        let (time_ms, payload) = self.world.step();
        let id = EventId {
            seed: self.seed,
            n: self.next_id,
        };
        let mut json = Vec::with_capacity(512);
        if emit::write_event(&mut json, id, &self.source, time_ms, &payload).is_err() {
            // Serializing these plain structs into a vector cannot fail; should it ever, the event is skipped
            // (its id stays unused) rather than emitting a broken line.
            self.next_id += 1;
            return;
        }
        // Most events arrive almost at once; a few are late by up to the bound.
        let u: f64 = self.delays.random();
        let delay_ms = ((self.max_delay_ms as f64) * u * u * u) as i64;
        let arrival_ms = time_ms.saturating_add(delay_ms.clamp(0, self.max_delay_ms));
        self.buffer.push(
            arrival_ms,
            self.next_id,
            GeneratedEvent {
                key: payload.partition_key(),
                json,
            },
        );
        self.next_id += 1;
    }
}

impl Iterator for Generator {
    type Item = GeneratedEvent;

    fn next(&mut self) -> Option<GeneratedEvent> {
        loop {
            if let Some(event) = self.buffer.pop_ready(self.world.now) {
                return Some(event);
            }
            self.generate_one();
        }
    }
}

/// Writes `count` events as NDJSON (one CloudEvent per line) to `out`, buffered.
pub fn write_ndjson(config: GeneratorConfig, count: u64, out: impl Write) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let mut generator = Generator::new(config);
    for _ in 0..count {
        if let Some(event) = generator.next() {
            out.write_all(&event.json)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()
}
