//! The total cap of the in-process history ([`Retention::max_total_bytes`]): when the messages and topic records of
//! all topics take more, the oldest messages of every topic go first, and topics left without any are forgotten.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::{MemoryHistory, Retention, footprint, poisoned, record_footprint};
use crate::DeliveryError;

/// Messages dropped because the history held more than [`Retention::max_total_bytes`].
const EVICTED_FOR_TOTAL: &str = "delivery_history_total_cap_evictions_total";

/// Age buckets of a shrink to the total cap (see [`MemoryHistory::shrink_to`]).
const AGE_BUCKETS: usize = 1024;

impl MemoryHistory {
    /// Shrinks the history when it holds more than [`Retention::max_total_bytes`] (see [`MemoryHistory`]).
    pub fn enforce_total_cap(&self) -> Result<(), DeliveryError> {
        let cap = self.retention.max_total_bytes;
        if self.total_bytes.load(Ordering::Relaxed) <= cap || self.shrinking.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let result = self.shrink_to(cap / 10 * 9);
        self.shrinking.store(false, Ordering::Release);
        result
    }

    /// Drops the oldest messages of every topic until about `target` bytes are held: one pass counts the bytes
    /// by age ([`AGE_BUCKETS`] buckets over the age limit), a second drops every message older than the youngest
    /// bucket boundary that frees enough (so messages of about the same age go together).
    fn shrink_to(&self, target: usize) -> Result<(), DeliveryError> {
        let now = Instant::now();
        let bucket = (self.retention.max_age / AGE_BUCKETS as u32).max(Duration::from_nanos(1));
        // The last bucket holds everything older than the age limit (not yet expired).
        let mut by_age = vec![0usize; AGE_BUCKETS + 1];
        for shard in self.shards.iter() {
            let shard = shard.lock().map_err(|_| poisoned())?;
            let age_index = |at: Instant| {
                let age = now.saturating_duration_since(at);
                usize::try_from(age.as_nanos() / bucket.as_nanos())
                    .unwrap_or(AGE_BUCKETS)
                    .min(AGE_BUCKETS)
            };
            for (topic, state) in shard.iter() {
                // A record goes with its topic's last message (nothing in it is newer than `touched`).
                by_age[age_index(state.touched)] += record_footprint(topic);
                for entry in &state.entries {
                    by_age[age_index(entry.published_at)] += footprint(entry);
                }
            }
        }
        // Measured by the same pass, not from the running total: messages dropped meanwhile (expiry, the topics'
        // own limits) must not make the cutoff drop more than is now needed.
        let excess = by_age.iter().sum::<usize>().saturating_sub(target);
        if excess == 0 {
            return Ok(());
        }
        let mut freed = 0;
        let mut kept_buckets = 0;
        for (index, bytes) in by_age.iter().enumerate().rev() {
            freed += bytes;
            if freed >= excess {
                kept_buckets = index;
                break;
            }
        }
        let retention = Retention {
            max_age: bucket * kept_buckets as u32,
            ..self.retention
        };
        let mut dropped = 0;
        self.trim_all(&retention, now, &mut dropped)?;
        let forgotten = self.forget_idle(retention.max_age, now)?;
        metrics::counter!(EVICTED_FOR_TOTAL).increment(dropped as u64);
        tracing::warn!(
            cap_bytes = self.retention.max_total_bytes,
            kept_age_ms = retention.max_age.as_millis() as u64,
            dropped,
            forgotten_topics = forgotten,
            "history reached its total byte cap; dropped the oldest messages of every topic"
        );
        Ok(())
    }

    /// Forgets every topic without messages whose last one was published more than `max_age` ago, raising the
    /// offset floor past its last offset (a topic created again continues from there, so no offset is reused);
    /// returns how many were forgotten.
    pub(super) fn forget_idle(&self, max_age: Duration, now: Instant) -> Result<usize, DeliveryError> {
        let mut forgotten = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock().map_err(|_| poisoned())?;
            shard.retain(|topic, state| {
                let idle = state.entries.is_empty() && now.saturating_duration_since(state.touched) > max_age;
                if idle {
                    self.offset_floor.fetch_max(state.last_offset, Ordering::SeqCst);
                    self.total_bytes
                        .fetch_sub(record_footprint(topic) + state.footprint, Ordering::Relaxed);
                    forgotten += 1;
                }
                !idle
            });
        }
        Ok(forgotten)
    }
}
