//! Watermarks: "no event at or before this time is still expected".
//!
//! Each partition's watermark trails the newest event time it has seen by the out-of-orderness bound. The global
//! watermark is the minimum over partitions that are not idle, so a partition with no traffic does not hold the
//! others back; it never moves backwards. A partition is idle when the runner says so (it has read everything
//! available); it becomes active again with its next event.

use serde::{Deserialize, Serialize};

use super::EventTimeMs;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct PartitionClock {
    /// Newest event time seen on the partition.
    max_event_ms: Option<EventTimeMs>,
    idle: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermarks {
    bound_ms: i64,
    partitions: Vec<PartitionClock>,
    current: EventTimeMs,
}

impl Watermarks {
    /// `bound_ms`: largest expected lateness of an event behind the newest one (events with
    /// `t >= newest - bound_ms` are never late).
    pub fn new(partitions: u32, bound_ms: i64) -> Self {
        Watermarks {
            bound_ms: bound_ms.max(0),
            partitions: vec![PartitionClock::default(); partitions.max(1) as usize],
            current: EventTimeMs::MIN,
        }
    }

    pub fn partitions(&self) -> u32 {
        self.partitions.len() as u32
    }

    /// Records an event time read from `partition` and marks the partition active.
    pub fn observe(&mut self, partition: u32, t: EventTimeMs) {
        if let Some(clock) = self.partitions.get_mut(partition as usize) {
            clock.idle = false;
            clock.max_event_ms = Some(clock.max_event_ms.map_or(t, |m| m.max(t)));
        }
    }

    /// Marks `partition` idle (caught up with its log) or active.
    pub fn set_idle(&mut self, partition: u32, idle: bool) {
        if let Some(clock) = self.partitions.get_mut(partition as usize) {
            clock.idle = idle;
        }
    }

    /// Recomputes the global watermark from the partitions and returns it.
    ///
    /// Active partitions that have seen nothing yet hold the watermark (their first event may be old). When every
    /// partition is idle, the watermark follows the newest partition, still trailing by the bound.
    pub fn advance(&mut self) -> EventTimeMs {
        let trailing =
            |clock: &PartitionClock| clock.max_event_ms.map(|m| m.saturating_sub(self.bound_ms + 1));
        let mut min_active: Option<EventTimeMs> = None;
        let mut any_active = false;
        for clock in self.partitions.iter().filter(|c| !c.idle) {
            any_active = true;
            match trailing(clock) {
                Some(w) => min_active = Some(min_active.map_or(w, |m| m.min(w))),
                None => return self.current,
            }
        }
        let candidate = if any_active {
            min_active
        } else {
            self.partitions.iter().filter_map(trailing).max()
        };
        if let Some(w) = candidate {
            self.current = self.current.max(w);
        }
        self.current
    }

    /// Moves the watermark to the newest event time seen anywhere: used when every partition has been idle for
    /// a while (wall-clock decision of the runner), so that buffered events are not held forever.
    pub fn flush_to_newest(&mut self) -> EventTimeMs {
        if let Some(newest) = self.partitions.iter().filter_map(|c| c.max_event_ms).max() {
            self.current = self.current.max(newest);
        }
        self.current
    }

    pub fn current(&self) -> EventTimeMs {
        self.current
    }

    /// The newest event time seen on any partition.
    pub fn newest(&self) -> Option<EventTimeMs> {
        self.partitions.iter().filter_map(|c| c.max_event_ms).max()
    }

    /// How far each partition's newest event is ahead of the global watermark (0 when it has seen nothing).
    pub fn lag_ms(&self) -> impl Iterator<Item = (u32, i64)> + '_ {
        self.partitions.iter().enumerate().map(|(p, c)| {
            let lag = c
                .max_event_ms
                .map_or(0, |m| m.saturating_sub(self.current).max(0));
            (p as u32, lag)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_of_active_partitions() {
        let mut w = Watermarks::new(2, 10);
        w.observe(0, 100);
        assert_eq!(w.advance(), EventTimeMs::MIN, "partition 1 has not spoken yet");
        w.observe(1, 50);
        assert_eq!(w.advance(), 39);
        w.set_idle(1, true);
        assert_eq!(w.advance(), 89, "idle partition does not stall");
        w.observe(1, 60);
        assert_eq!(w.advance(), 89, "never moves backwards");
        w.set_idle(0, true);
        w.set_idle(1, true);
        assert_eq!(w.advance(), 89);
        assert_eq!(w.flush_to_newest(), 100);
    }
}
