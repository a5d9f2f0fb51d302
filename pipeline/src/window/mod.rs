//! Event-time machinery shared by every operator.
//!
//! - [`watermark`]: per-partition watermarks with bounded out-of-orderness; idle partitions do not stall;
//! - [`reorder`]: holds events until the watermark passes them and releases them in event-time order;
//! - [`assigner`]: which windows an event time belongs to (tumbling, hopping, calendar months);
//! - [`table`]: keyed window aggregates with early firings, final results at close and late corrections;
//! - [`key`]: short identifiers held by value, the keys of the state tables;
//! - [`sliding`]: per-key sliding-window counts in fixed steps plus an exponentially decayed score.
//!
//! Times are milliseconds since the Unix epoch (UTC). Nothing here reads the wall clock: time only moves when
//! events and watermarks are fed in, which is what makes replays reproduce their output exactly.

pub mod assigner;
pub mod key;
pub mod reorder;
pub mod sliding;
pub mod table;
pub mod watermark;

/// Event time in milliseconds since the Unix epoch.
pub type EventTimeMs = i64;

/// Largest multiple of `step` that is at most `t` (`step` > 0), for negative times too.
pub fn align_down(t: EventTimeMs, step: i64) -> EventTimeMs {
    debug_assert!(step > 0);
    t - t.rem_euclid(step)
}
