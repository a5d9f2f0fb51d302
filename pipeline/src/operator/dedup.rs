//! Deduplication of input events by `(source, id)` inside the operators, by event time.
//!
//! The HTTP ingest already drops an event it accepted before, but producers may also write to the input topic
//! directly (a Fluvio producer that retries after a lost acknowledgement writes the record twice), and the
//! contract promises one effect per `(source, id)` whatever the route. So the engine remembers the key of every
//! event it takes and drops a later one with the same key before it touches any state or emits anything.
//!
//! A copy is the same `(source, id)` with an event time in the same minute (a retry carries the original event,
//! time included). Keys are kept in one set per minute of event time, and a copy is looked up in its own
//! minute's set only: the sets of the minutes being written are small and hot in the cache, where one set of
//! every key would cost two cache misses per event (insert, and remove at expiry) once it outgrows the cache.
//! A producer that re-stamps `time` on a retry across a minute boundary makes a new event.
//!
//! How long a key is remembered follows the watermark, not the wall clock: until the event would be too late
//! (at or before `watermark - allowed_lateness_ms`). A copy arriving after that is too late for every aggregate
//! anyway (it goes to the late-data side output and only updates reference state), so within the lateness no
//! copy is ever counted twice. A minute's set goes once its last millisecond is too late, so a key may be kept
//! up to a minute longer (a too-late copy arriving then is dropped as a copy rather than sent to the late-data
//! side output). Memory is bounded by `max_keys`: when an admission goes beyond it, the oldest minutes go first,
//! but never the minute being written (so one minute of events may exceed it), counted by a metric (a copy of
//! one of their events would then count again). Which minutes go then depends on the order events arrive in (and
//! on when the expiry ran), so past the cap a copy may count once in one run and twice in another with other
//! batching: the cap is a memory bound for overload, sized (1,000,000 keys by default) far above a normal
//! lateness period's events, and the metric says when it was reached.
//!
//! Keys are 128-bit SipHash-1-3 values with fixed keys (stable across processes, versions and checkpoints):
//! for non-adversarial ids the chance that two different events collide is about n²/2¹²⁹.

use std::collections::BTreeMap;
use std::hash::Hasher;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;

use rustc_hash::FxHashSet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use siphasher::sip128::{Hasher128, SipHasher13};

use crate::window::EventTimeMs;
use crate::window::assigner::MINUTE_MS;

/// Event time covered by one bucket of keys.
const BUCKET_MS: i64 = MINUTE_MS;

/// The fixed SipHash keys (any constants: they only have to stay the same).
const SIP_KEYS: (u64, u64) = (0x736f_6369_616c_2d72, 0x6465_6475_702d_3031);

/// The deduplication key of `(source, id)`.
pub fn event_key(source: &str, id: &str) -> u128 {
    let mut hasher = SipHasher13::new_with_keys(SIP_KEYS.0, SIP_KEYS.1);
    // Lengths first: ("ab", "c") and ("a", "bc") are different events.
    hasher.write_u64(source.len() as u64);
    hasher.write(source.as_bytes());
    hasher.write(id.as_bytes());
    hasher.finish128().as_u128()
}

/// What [`EventDedup::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// First time seen (or its key was already forgotten): process it.
    New,
    /// A copy of an event taken before: drop it.
    Duplicate,
}

#[derive(Debug, Clone, Default)]
pub struct EventDedup {
    /// Keys by the start of their event time's minute.
    buckets: BTreeMap<EventTimeMs, FxHashSet<u128>>,
    /// Keys held, over every bucket.
    len: usize,
    /// Keys forgotten early because of `max_keys`, not yet published as a metric.
    unpublished_evictions: u64,
}

fn bucket_of(time: EventTimeMs) -> EventTimeMs {
    time.div_euclid(BUCKET_MS).saturating_mul(BUCKET_MS)
}

impl EventDedup {
    /// Remembers the event's key; `Duplicate` if it was remembered already. Beyond `max_keys`, forgets the
    /// oldest minutes other than this event's.
    pub fn admit(&mut self, source: &str, id: &str, time: EventTimeMs, max_keys: usize) -> Admission {
        let key = event_key(source, id);
        let bucket = bucket_of(time);
        if !self.buckets.entry(bucket).or_default().insert(key) {
            return Admission::Duplicate;
        }
        self.len += 1;
        while self.len > max_keys {
            let Some(entry) = self.buckets.first_entry() else {
                break;
            };
            if *entry.key() == bucket {
                break;
            }
            let keys = entry.remove();
            self.len -= keys.len();
            self.unpublished_evictions += keys.len() as u64;
        }
        Admission::New
    }

    /// Forgets the keys of events that are now too late (`time <= too_late_at`).
    pub fn expire(&mut self, too_late_at: EventTimeMs) {
        while let Some(entry) = self.buckets.first_entry() {
            if entry.key().saturating_add(BUCKET_MS - 1) > too_late_at {
                break;
            }
            let keys = entry.remove();
            self.len -= keys.len();
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keys forgotten early since the last call (for the metric).
    pub fn take_evictions(&mut self) -> u64 {
        std::mem::take(&mut self.unpublished_evictions)
    }
}

/// Checkpoint form: per minute, its start and its keys as one base64 string (16 big-endian bytes per key, in
/// ascending order, so that the same keys always give the same text).
#[derive(Serialize, Deserialize)]
struct BucketForm {
    start: EventTimeMs,
    keys: String,
}

impl Serialize for EventDedup {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let buckets: Vec<BucketForm> = self
            .buckets
            .iter()
            .map(|(start, keys)| {
                let mut sorted: Vec<u128> = keys.iter().copied().collect();
                sorted.sort_unstable();
                let bytes: Vec<u8> = sorted.iter().flat_map(|key| key.to_be_bytes()).collect();
                BucketForm {
                    start: *start,
                    keys: STANDARD_NO_PAD.encode(bytes),
                }
            })
            .collect();
        buckets.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for EventDedup {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let forms = Vec::<BucketForm>::deserialize(deserializer)?;
        let mut dedup = EventDedup::default();
        for form in forms {
            let bytes = STANDARD_NO_PAD
                .decode(form.keys.as_bytes())
                .map_err(|e| serde::de::Error::custom(format!("deduplication keys are not base64: {e}")))?;
            let (keys, rest) = bytes.as_chunks::<16>();
            if !rest.is_empty() {
                return Err(serde::de::Error::custom(
                    "deduplication keys are not 16 bytes each",
                ));
            }
            let set = dedup.buckets.entry(bucket_of(form.start)).or_default();
            for key in keys {
                if set.insert(u128::from_be_bytes(*key)) {
                    dedup.len += 1;
                }
            }
        }
        Ok(dedup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_dropped_until_it_would_be_too_late() {
        let mut dedup = EventDedup::default();
        assert_eq!(dedup.admit("svc", "e1", 10_000, usize::MAX), Admission::New);
        assert_eq!(dedup.admit("svc", "e1", 10_000, usize::MAX), Admission::Duplicate);
        assert_eq!(dedup.admit("other", "e1", 10_000, usize::MAX), Admission::New);
        // Same minute, another millisecond: still a copy. (Another minute is taken as another event.)
        assert_eq!(dedup.admit("svc", "e1", 59_999, usize::MAX), Admission::Duplicate);
        // Its bucket is [0, 60 s): kept while any of it can still be late.
        dedup.expire(59_998);
        assert_eq!(dedup.admit("svc", "e1", 10_000, usize::MAX), Admission::Duplicate);
        dedup.expire(59_999);
        assert!(dedup.is_empty());
        assert_eq!(dedup.take_evictions(), 0);
    }

    #[test]
    fn the_key_separates_source_from_id() {
        assert_ne!(event_key("ab", "c"), event_key("a", "bc"));
        assert_eq!(event_key("a", "b"), event_key("a", "b"));
    }

    #[test]
    fn capacity_forgets_the_oldest_minutes_but_never_the_one_being_written() {
        let mut dedup = EventDedup::default();
        for i in 0..10 {
            dedup.admit("svc", &format!("old-{i}"), 1_000, 12);
        }
        for i in 0..5 {
            dedup.admit("svc", &format!("mid-{i}"), 2 * MINUTE_MS, 12);
        }
        // The 13th key went beyond 12: the oldest minute (10 keys) went.
        assert_eq!(dedup.len(), 5);
        assert_eq!(dedup.take_evictions(), 10);
        assert_eq!(
            dedup.admit("svc", "mid-1", 2 * MINUTE_MS, 12),
            Admission::Duplicate
        );
        // One minute alone beyond the cap: the others go, it stays whole.
        for i in 0..20 {
            dedup.admit("svc", &format!("new-{i}"), 3 * MINUTE_MS, 12);
        }
        assert_eq!(dedup.len(), 20);
        assert_eq!(dedup.take_evictions(), 5);
        assert_eq!(
            dedup.admit("svc", "new-0", 3 * MINUTE_MS, 12),
            Admission::Duplicate
        );
        assert_eq!(dedup.admit("svc", "old-1", 1_000, 12), Admission::New);
    }

    #[test]
    fn checkpoint_form_round_trips_and_rejects_garbage() {
        let mut dedup = EventDedup::default();
        for i in 0..100 {
            dedup.admit("svc", &format!("e-{i}"), i * 7_000 - 50_000, usize::MAX);
        }
        let json = serde_json::to_string(&dedup).unwrap();
        let back: EventDedup = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        assert_eq!(back.len(), 100);
        let mut back = back;
        assert_eq!(
            back.admit("svc", "e-42", 42 * 7_000 - 50_000, usize::MAX),
            Admission::Duplicate
        );
        assert!(serde_json::from_str::<EventDedup>(r#"[{"start":0,"keys":"x!z"}]"#).is_err());
        // 15 bytes: not a whole key.
        assert!(
            serde_json::from_str::<EventDedup>(r#"[{"start":0,"keys":"AAAAAAAAAAAAAAAAAAAA"}]"#).is_err()
        );
    }
}
