//! Sliding windows for trending: per key, counts in buckets of `step_ms`; at watermark `T` the window covers
//! `[align_up(T - size), T)`, between `size - step` and `size` long, and its count is exact over that interval.
//! One ring per key instead of one aggregate per hopping window keeps memory at `size / step` buckets per key.
//!
//! Plus [`Decayed`]: an exponentially decayed score with a half-life, updated in O(1).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::{EventTimeMs, align_down};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlidingSpec {
    pub size_ms: i64,
    pub step_ms: i64,
}

impl SlidingSpec {
    pub fn is_valid(&self) -> bool {
        self.step_ms > 0 && self.size_ms >= self.step_ms
    }

    /// First bucket start covered by the window at watermark `tick`.
    pub fn lower_bound(&self, tick: EventTimeMs) -> EventTimeMs {
        let from = tick.saturating_sub(self.size_ms);
        let down = align_down(from, self.step_ms);
        if down == from { down } else { down + self.step_ms }
    }
}

/// Counts of one key in ascending buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlidingCount {
    buckets: VecDeque<(EventTimeMs, u32)>,
}

impl SlidingCount {
    /// Adds one at event time `t` (late events land in their own, older bucket).
    pub fn add(&mut self, spec: &SlidingSpec, t: EventTimeMs) {
        let start = align_down(t, spec.step_ms);
        match self.buckets.back_mut() {
            Some((s, n)) if *s == start => *n += 1,
            Some((s, _)) if *s > start => {
                let pos = self.buckets.partition_point(|(b, _)| *b < start);
                match self.buckets.get_mut(pos) {
                    Some((b, n)) if *b == start => *n += 1,
                    _ => self.buckets.insert(pos, (start, 1)),
                }
            }
            _ => self.buckets.push_back((start, 1)),
        }
    }

    /// Drops buckets that left the window at `tick` and returns the count of the window.
    pub fn evict_and_count(&mut self, spec: &SlidingSpec, tick: EventTimeMs) -> u64 {
        let lower = spec.lower_bound(tick);
        while self.buckets.front().is_some_and(|(s, _)| *s < lower) {
            self.buckets.pop_front();
        }
        self.buckets
            .iter()
            .filter(|(s, _)| *s < tick)
            .map(|(_, n)| u64::from(*n))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// `sum(weight * 2^-((now - t) / half_life))` over added weights, kept as a value at a reference time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Decayed {
    value: f64,
    at: EventTimeMs,
}

impl Decayed {
    pub fn add(&mut self, half_life_ms: i64, t: EventTimeMs, weight: f64) {
        if self.value == 0.0 {
            *self = Decayed { value: weight, at: t };
        } else if t >= self.at {
            self.value = self.value * decay(half_life_ms, t - self.at) + weight;
            self.at = t;
        } else {
            self.value += weight * decay(half_life_ms, self.at - t);
        }
    }

    /// The score at `now` (not before the last update).
    pub fn at(&self, half_life_ms: i64, now: EventTimeMs) -> f64 {
        self.value * decay(half_life_ms, (now - self.at).max(0))
    }
}

fn decay(half_life_ms: i64, elapsed_ms: i64) -> f64 {
    (-(elapsed_ms as f64) / half_life_ms.max(1) as f64).exp2()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_in_window() {
        let spec = SlidingSpec {
            size_ms: 100,
            step_ms: 10,
        };
        let mut c = SlidingCount::default();
        for t in [5, 15, 15, 95, 3] {
            c.add(&spec, t);
        }
        assert_eq!(c.evict_and_count(&spec, 100), 5);
        assert_eq!(c.evict_and_count(&spec, 110), 3, "bucket [0,10) left");
        assert_eq!(c.evict_and_count(&spec, 200), 0);
        assert!(c.is_empty());
    }

    #[test]
    fn decays_by_half_life() {
        let mut d = Decayed::default();
        d.add(100, 0, 1.0);
        d.add(100, 100, 1.0);
        assert!((d.at(100, 100) - 1.5).abs() < 1e-12);
        d.add(100, 0, 1.0); // late
        assert!((d.at(100, 200) - 1.0).abs() < 1e-12);
    }
}
