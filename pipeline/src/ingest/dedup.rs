//! Deduplication of accepted events by `(source, id)` over a time window with a capacity bound.
//!
//! Keys are 128-bit hashes of the pair (two independent SipHash passes): the chance that two different events
//! collide is about n²/2¹²⁹, negligible at any capacity we keep, while a key costs 16 bytes plus its place in the
//! expiry queue. A key is reserved before the append, confirmed when the append succeeded and released when it
//! failed. Only a confirmed key makes a later event a duplicate: a request that repeats an event whose first
//! append is still in flight (a client that gave up waiting and retried) appends it too, rather than answer
//! `202` for an event whose only append may yet fail. The operators drop the second copy (and ClickHouse's
//! `raw_events` keeps one row per key).

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

/// A remembered key: when it was (last) reserved, and whether an append of its event succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    accepted_ms: i64,
    /// Appends of the event in flight; 0 once one succeeded (confirmed: later copies are duplicates). An entry
    /// whose appends all failed is removed, so a remembered key with 0 in flight is always a confirmed one.
    in_flight: u32,
}

#[derive(Default)]
struct Inner {
    /// Remembered keys.
    seen: FxHashMap<u128, Seen>,
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

    /// For each key, `true` when its event is to be appended (the key is now reserved: call [`Dedup::confirm`]
    /// or [`Dedup::release`] after the append), `false` when it is a duplicate: an append of it succeeded
    /// before, or it came earlier in the same slice.
    pub fn reserve(&self, keys: &[u128], now_ms: i64) -> Vec<bool> {
        let Ok(mut inner) = self.inner.lock() else {
            // A poisoned lock means a panic elsewhere; accept rather than drop events (at-least-once).
            return vec![true; keys.len()];
        };
        self.expire(&mut inner, now_ms);
        let mut in_this_slice = rustc_hash::FxHashSet::default();
        keys.iter()
            .map(|key| {
                if !in_this_slice.insert(*key) {
                    return false;
                }
                match inner.seen.get_mut(key) {
                    Some(seen) if seen.in_flight == 0 => false,
                    Some(seen) => {
                        seen.in_flight = seen.in_flight.saturating_add(1);
                        true
                    }
                    None => {
                        let seen = Seen {
                            accepted_ms: now_ms,
                            in_flight: 1,
                        };
                        inner.seen.insert(*key, seen);
                        inner.order.push_back((*key, now_ms));
                        true
                    }
                }
            })
            .collect()
    }

    /// The events of these reserved keys are on the bus: later copies are duplicates.
    pub fn confirm(&self, keys: &[u128]) {
        if let Ok(mut inner) = self.inner.lock() {
            for key in keys {
                if let Some(seen) = inner.seen.get_mut(key) {
                    seen.in_flight = 0;
                }
            }
        }
    }

    /// The appends of these reserved keys failed: forgets each key unless another append of it is in flight or
    /// succeeded.
    pub fn release(&self, keys: &[u128]) {
        if let Ok(mut inner) = self.inner.lock() {
            for key in keys {
                // Confirmed (0 in flight): another append of it succeeded; it stays.
                if let Some(seen) = inner.seen.get_mut(key)
                    && seen.in_flight > 0
                {
                    seen.in_flight -= 1;
                    if seen.in_flight == 0 {
                        inner.seen.remove(key);
                    }
                }
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
            if inner
                .seen
                .get(&key)
                .is_some_and(|seen| seen.accepted_ms == accepted_ms)
            {
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
        let mut recent: Vec<(u128, i64)> = Vec::new();
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
                // Each key with its own record's time: a record outside the window or unreadable is skipped whole.
                recent.extend(records.iter().filter_map(|record| {
                    if now_ms.saturating_sub(record.timestamp_ms) > window_ms {
                        return None;
                    }
                    let identity = serde_json::from_slice::<Identity<'_>>(&record.value).ok()?;
                    Some((Dedup::key(&identity.source, &identity.id), record.timestamp_ms))
                }));
            }
        }
        // Oldest first across partitions, as `expire` reads `order`.
        recent.sort_by_key(|&(_, accepted_ms)| accepted_ms);
        if let Ok(mut inner) = self.inner.lock() {
            for (key, accepted_ms) in recent {
                if let std::collections::hash_map::Entry::Vacant(slot) = inner.seen.entry(key) {
                    slot.insert(Seen {
                        accepted_ms,
                        in_flight: 0,
                    });
                    inner.order.push_back((key, accepted_ms));
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
        dedup.confirm(&[a, b]);
        assert_eq!(dedup.reserve(&[b], 1), vec![false]);
    }

    #[test]
    fn a_copy_of_an_event_still_in_flight_is_appended_too() {
        let dedup = Dedup::new(DedupConfig::default());
        let a = Dedup::key("s", "1");
        // Request 1 reserves; its retry (request 2) comes while the first append is in flight.
        assert_eq!(dedup.reserve(&[a], 0), vec![true]);
        assert_eq!(
            dedup.reserve(&[a], 1),
            vec![true],
            "not a duplicate of an append that may fail"
        );
        // The first append fails, the second succeeds: the key stays, later copies are duplicates.
        dedup.release(&[a]);
        assert_eq!(dedup.len(), 1);
        dedup.confirm(&[a]);
        assert_eq!(dedup.reserve(&[a], 2), vec![false]);
        // Confirmed, then a late failure of another copy: still remembered.
        dedup.release(&[a]);
        assert_eq!(dedup.reserve(&[a], 3), vec![false]);
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
        dedup.confirm(&keys[..1]);
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

    /// After a restart the keys of the records within the window are remembered, each with its own record's
    /// time, whatever else the first read of a partition holds.
    #[tokio::test]
    async fn warm_from_bus_remembers_each_recent_key_with_its_own_time() {
        use crate::bus::memory::{MemoryBus, MemoryBusConfig};
        use crate::bus::{Bus, Record, TopicSpec};
        use bytes::Bytes;

        let bus = MemoryBus::new(MemoryBusConfig::default());
        bus.ensure_topic(&TopicSpec {
            name: "in".into(),
            partitions: 2,
        })
        .await
        .unwrap();
        let now = super::super::now_unix_ms();
        let record = |id: &str, timestamp_ms: i64| Record {
            key: Bytes::new(),
            value: Bytes::from(format!(r#"{{"source":"s","id":"{id}"}}"#)),
            timestamp_ms,
        };
        // Partition 0: two records older than the window, one unreadable, then two recent ones.
        let old = now - 3_600_000;
        let batch = vec![
            record("old-1", old),
            record("old-2", old),
            Record {
                key: Bytes::new(),
                value: Bytes::from_static(b"not json"),
                timestamp_ms: now - 1_000,
            },
            record("new-1", now - 2_000),
            record("new-2", now - 1_000),
        ];
        bus.append("in", 0, batch).await.unwrap();
        bus.append("in", 1, vec![record("new-3", now - 5_000)])
            .await
            .unwrap();

        let dedup = Dedup::new(DedupConfig {
            window_secs: 600,
            max_entries: 1_000,
        });
        dedup.warm_from_bus(&bus, "in", 2).await.unwrap();
        assert_eq!(dedup.len(), 3);
        let keys: Vec<u128> = ["new-1", "new-2", "new-3", "old-1"]
            .iter()
            .map(|id| Dedup::key("s", id))
            .collect();
        // A minute later the recent keys are still duplicates (paired with an old record's time they would have
        // expired); the old one is not remembered.
        assert_eq!(
            dedup.reserve(&keys, now + 60_000),
            vec![false, false, false, true]
        );
    }
}
