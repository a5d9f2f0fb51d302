//! Deduplication of accepted events by `(source, id)` over a time window with a capacity bound.
//!
//! Keys are 128-bit hashes of the pair (two independent SipHash passes): the chance that two different events
//! collide is about n²/2¹²⁹, negligible at any capacity we keep, while a key costs 16 bytes plus its place in the
//! expiry queue. A key is reserved before the append and released when the append fails, so a retried request
//! is never mistaken for a duplicate of events that did not reach the bus.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::bus::{Bus, BusError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// How long an accepted `(source, id)` is remembered, in seconds.
    pub window_secs: u64,
    /// At most this many keys are remembered; the oldest go first (about 40 bytes each).
    pub max_entries: usize,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            window_secs: 3600,
            max_entries: 2_000_000,
        }
    }
}

pub struct Dedup {
    config: DedupConfig,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Remembered keys with the time of their latest acceptance.
    seen: FxHashMap<u128, i64>,
    /// Keys in the order they were accepted, with their acceptance time, for expiry.
    order: VecDeque<(u128, i64)>,
}

impl Dedup {
    pub fn new(config: DedupConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn key(source: &str, id: &str) -> u128 {
        let mut high = std::collections::hash_map::DefaultHasher::new();
        (0u8, source, id).hash(&mut high);
        let mut low = std::collections::hash_map::DefaultHasher::new();
        (1u8, source, id).hash(&mut low);
        (u128::from(high.finish()) << 64) | u128::from(low.finish())
    }

    /// For each key, `true` when it is new (and is now reserved), `false` when it was seen before, including
    /// earlier in the same slice.
    pub fn reserve(&self, keys: &[u128], now_ms: i64) -> Vec<bool> {
        let Ok(mut inner) = self.inner.lock() else {
            // A poisoned lock means a panic elsewhere; accept rather than drop events (at-least-once).
            return vec![true; keys.len()];
        };
        self.expire(&mut inner, now_ms);
        keys.iter()
            .map(|key| {
                let std::collections::hash_map::Entry::Vacant(slot) = inner.seen.entry(*key) else {
                    return false;
                };
                slot.insert(now_ms);
                inner.order.push_back((*key, now_ms));
                true
            })
            .collect()
    }

    /// Forgets keys whose events did not reach the bus.
    pub fn release(&self, keys: &[u128]) {
        if let Ok(mut inner) = self.inner.lock() {
            for key in keys {
                inner.seen.remove(key);
            }
            // Their entries in `order` stay until they expire; `expire` skips entries that no longer match.
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|inner| inner.seen.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn expire(&self, inner: &mut Inner, now_ms: i64) {
        let window_ms = i64::try_from(self.config.window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        while let Some(&(key, accepted_ms)) = inner.order.front() {
            let too_many = inner.order.len() > self.config.max_entries;
            let too_old = now_ms.saturating_sub(accepted_ms) > window_ms;
            if !too_many && !too_old {
                break;
            }
            inner.order.pop_front();
            // A key released and reserved again has a newer entry further back: only that one counts.
            if inner.seen.get(&key) == Some(&accepted_ms) {
                inner.seen.remove(&key);
            }
        }
    }

    /// Remembers the keys of the records the input topic received within the window, so that deduplication holds
    /// across a restart of a durable bus.
    pub async fn warm_from_bus(&self, bus: &dyn Bus, topic: &str, partitions: u32) -> Result<(), BusError> {
        #[derive(Deserialize)]
        struct Identity<'a> {
            #[serde(borrow)]
            source: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            id: std::borrow::Cow<'a, str>,
        }
        let now_ms = super::now_unix_ms();
        let window_ms = i64::try_from(self.config.window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let per_partition = (self.config.max_entries / partitions.max(1) as usize) as u64;
        for partition in 0..partitions {
            let end = bus.end_offset(topic, partition).await?;
            let start = bus
                .start_offset(topic, partition)
                .await?
                .max(end.saturating_sub(per_partition));
            let mut next = start;
            while next < end {
                let records = bus.fetch(topic, partition, next, 10_000, Duration::ZERO).await?;
                let Some(last) = records.last() else { break };
                next = last.offset + 1;
                let keys: Vec<(u128, i64)> = records
                    .iter()
                    .filter(|record| now_ms.saturating_sub(record.timestamp_ms) <= window_ms)
                    .filter_map(|record| serde_json::from_slice::<Identity<'_>>(&record.value).ok())
                    .map(|identity| Dedup::key(&identity.source, &identity.id))
                    .zip(records.iter().map(|record| record.timestamp_ms))
                    .collect();
                if let Ok(mut inner) = self.inner.lock() {
                    for (key, accepted_ms) in keys {
                        if let std::collections::hash_map::Entry::Vacant(slot) = inner.seen.entry(key) {
                            slot.insert(accepted_ms);
                            inner.order.push_back((key, accepted_ms));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_repeats_within_and_across_batches() {
        let dedup = Dedup::new(DedupConfig::default());
        let a = Dedup::key("s", "1");
        let b = Dedup::key("s", "2");
        assert_ne!(a, b);
        assert_ne!(Dedup::key("s1", "2"), Dedup::key("s", "12"));
        assert_eq!(dedup.reserve(&[a, b, a], 0), vec![true, true, false]);
        assert_eq!(dedup.reserve(&[b], 1), vec![false]);
    }

    #[test]
    fn release_allows_retry() {
        let dedup = Dedup::new(DedupConfig::default());
        let a = Dedup::key("s", "1");
        assert_eq!(dedup.reserve(&[a], 0), vec![true]);
        dedup.release(&[a]);
        assert_eq!(dedup.reserve(&[a], 1), vec![true]);
    }

    #[test]
    fn expires_by_time_and_capacity() {
        let dedup = Dedup::new(DedupConfig {
            window_secs: 1,
            max_entries: 2,
        });
        let keys: Vec<u128> = (0..3).map(|i| Dedup::key("s", &i.to_string())).collect();
        assert_eq!(dedup.reserve(&keys[..1], 0), vec![true]);
        assert_eq!(dedup.reserve(&keys[..1], 1000), vec![false]);
        assert_eq!(
            dedup.reserve(&keys[..1], 2001),
            vec![true],
            "expired after the window"
        );
        dedup.reserve(&keys[1..], 2002);
        dedup.reserve(&[], 2003);
        assert!(dedup.len() <= 2);
    }
}
