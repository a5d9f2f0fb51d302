//! Events waiting for the reference they name: a click or a conversion start on a referral code, a registration
//! through one, an engagement on a share, read before the event that creates that code or share.
//!
//! In event-time order the creation normally comes first, but late input is taken in arrival order: a code may be
//! read after the events that name it (on another partition, or later in the same late read). Rather than lose
//! what depends on the reference, the event waits for it and counts when it comes, if it comes first in event
//! order (as it would have in that order); the directory keeps where each code and share was created for the
//! events read after it. An event waits until the watermark is past it by the allowed lateness (its reference
//! could then only come too late), and at most `max_waiting_events` wait at once: past that, the event counts as
//! naming nothing, as an unknown reference always did.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use social_schemas::{Event, Limits, parse_event};

pub use super::directory::OrderStamp;
use super::metrics::WAITING_EVENTS_DROPPED;
use crate::window::EventTimeMs;
use crate::window::key::Key;
use crate::window::reorder::tie_hash;

/// The order stamp of `event`.
pub fn order_stamp(event: &Event) -> OrderStamp {
    (event.time.timestamp_millis(), tie_hash(&event.source, &event.id))
}

/// One waiting event with what was decided at its arrival.
#[derive(Debug, Clone, PartialEq)]
pub struct Parked {
    pub event: Box<Event>,
    /// The fraud verdict of a click, taken when the click arrived (the click window sees arrivals).
    pub flagged: bool,
}

/// Waiting events by the reference they name (a code id, a share id).
#[derive(Debug, Clone, Default)]
pub struct Waiting {
    by_reference: BTreeMap<Key, Vec<Parked>>,
    /// Per event time, the reference of each event of that time waiting: expiry takes the oldest first without
    /// looking at the others.
    by_time: BTreeMap<EventTimeMs, Vec<Key>>,
    len: usize,
}

impl Waiting {
    /// Events waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Parks `event` until `reference` is known. Returns false (and counts the drop) when `max` events wait
    /// already.
    pub fn park(&mut self, reference: &str, event: &Event, flagged: bool, max: usize) -> bool {
        if self.len >= max {
            metrics::counter!(WAITING_EVENTS_DROPPED, "reason" => "full").increment(1);
            return false;
        }
        let parked = Parked {
            event: Box::new(event.clone()),
            flagged,
        };
        match self.by_reference.get_mut(reference.as_bytes()) {
            Some(list) => list.push(parked),
            None => {
                self.by_reference.insert(Key::new(reference), vec![parked]);
            }
        }
        self.by_time
            .entry(event.time.timestamp_millis())
            .or_default()
            .push(Key::new(reference));
        self.len += 1;
        true
    }

    /// The events waiting for `reference`, created at `created`, that come after it in event order (in that order);
    /// the ones before it are dropped: in event order they were taken before the reference existed.
    pub fn take(&mut self, reference: &str, created: OrderStamp) -> Vec<Parked> {
        let Some(mut list) = self.by_reference.remove(reference.as_bytes()) else {
            return Vec::new();
        };
        self.len -= list.len();
        for parked in &list {
            self.forget_time(parked.event.time.timestamp_millis(), reference);
        }
        list.sort_by_key(|parked| order_stamp(&parked.event));
        let before = list.len();
        list.retain(|parked| order_stamp(&parked.event) > created);
        let dropped = before - list.len();
        if dropped > 0 {
            metrics::counter!(WAITING_EVENTS_DROPPED, "reason" => "reference_later")
                .increment(dropped as u64);
        }
        list
    }

    /// Forgets the events at or before `horizon` (the watermark less the allowed lateness): their reference could
    /// only come too late now.
    pub fn expire(&mut self, horizon: EventTimeMs) {
        let later = self.by_time.split_off(&horizon.saturating_add(1));
        let expired = std::mem::replace(&mut self.by_time, later);
        let before = self.len;
        for reference in expired.into_values().flatten() {
            let Some(list) = self.by_reference.get_mut(reference.as_bytes()) else {
                continue;
            };
            let kept = list.len();
            list.retain(|parked| parked.event.time.timestamp_millis() > horizon);
            self.len -= kept - list.len();
            if list.is_empty() {
                self.by_reference.remove(reference.as_bytes());
            }
        }
        if before > self.len {
            metrics::counter!(WAITING_EVENTS_DROPPED, "reason" => "expired")
                .increment((before - self.len) as u64);
        }
    }

    /// Removes one entry of `reference` at `time` from the time index.
    fn forget_time(&mut self, time: EventTimeMs, reference: &str) {
        let Some(references) = self.by_time.get_mut(&time) else {
            return;
        };
        if let Some(index) = references.iter().position(|r| r.as_str() == reference) {
            references.swap_remove(index);
        }
        if references.is_empty() {
            self.by_time.remove(&time);
        }
    }
}

/// The checkpointed form: per reference, the events as their JSON.
impl Serialize for Waiting {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let stored: BTreeMap<&str, Vec<StoredParked>> = self
            .by_reference
            .iter()
            .map(|(reference, list)| {
                let list = list
                    .iter()
                    .map(|parked| StoredParked {
                        event: String::from_utf8_lossy(&parked.event.to_json()).into_owned(),
                        flagged: parked.flagged,
                    })
                    .collect();
                (reference.as_str(), list)
            })
            .collect();
        stored.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Waiting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = BTreeMap::<String, Vec<StoredParked>>::deserialize(deserializer)?;
        // Every event here was valid when it was parked; no size limit applies on the way back.
        let limits = Limits {
            max_event_bytes: usize::MAX,
            ..Limits::default()
        };
        let mut waiting = Waiting::default();
        for (reference, list) in stored {
            let mut parked = Vec::with_capacity(list.len());
            for item in list {
                let event = parse_event(item.event.as_bytes(), &limits).map_err(serde::de::Error::custom)?;
                parked.push(Parked {
                    event: Box::new(event),
                    flagged: item.flagged,
                });
            }
            waiting.len += parked.len();
            for item in &parked {
                waiting
                    .by_time
                    .entry(item.event.time.timestamp_millis())
                    .or_default()
                    .push(Key::new(&reference));
            }
            waiting.by_reference.insert(Key::new(&reference), parked);
        }
        Ok(waiting)
    }
}

#[derive(Serialize, Deserialize)]
struct StoredParked {
    event: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    flagged: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{Generator, GeneratorConfig};

    fn events(count: usize) -> Vec<Event> {
        Generator::new(GeneratorConfig::default())
            .take(count)
            .map(|generated| {
                parse_event(&generated.json, &Limits::default()).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect()
    }

    fn time(event: &Event) -> EventTimeMs {
        event.time.timestamp_millis()
    }

    /// Every event parked is taken, expired or still waiting, once; the time index follows.
    #[test]
    fn parked_events_leave_once_by_take_or_expiry() {
        let events = events(60);
        let mut waiting = Waiting::default();
        for (index, event) in events.iter().enumerate() {
            let reference = ["a", "b", "c"][index % 3];
            assert!(waiting.park(reference, event, index % 2 == 0, 1_000));
        }
        assert!(!waiting.park("d", &events[0], false, 60), "full");
        assert_eq!(waiting.len(), 60);

        // "a" comes at the time of the 30th event: the ones before it are dropped, the others taken in order.
        let created = order_stamp(&events[30]);
        let taken = waiting.take("a", created);
        let expected: Vec<&Event> = events
            .iter()
            .enumerate()
            .filter(|(index, event)| index % 3 == 0 && order_stamp(event) > created)
            .map(|(_, event)| event)
            .collect();
        let mut expected = expected;
        expected.sort_by_key(|event| order_stamp(event));
        let got: Vec<&Event> = taken.iter().map(|parked| &*parked.event).collect();
        assert_eq!(got, expected);
        assert_eq!(waiting.len(), 40);
        assert!(waiting.take("a", created).is_empty());

        // Expiry at the 45th event's time forgets every remaining event at or before it.
        let horizon = time(&events[45]);
        waiting.expire(horizon);
        let left = events
            .iter()
            .enumerate()
            .filter(|(index, event)| index % 3 != 0 && time(event) > horizon)
            .count();
        assert_eq!(waiting.len(), left);
        assert_eq!(waiting.by_time.values().map(Vec::len).sum::<usize>(), left);

        // Through a checkpoint: the same events, the same index.
        let json = serde_json::to_string(&waiting).unwrap_or_else(|e| panic!("{e}"));
        let restored: Waiting = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(restored.len(), left);
        assert_eq!(restored.by_reference, waiting.by_reference);
        waiting.expire(EventTimeMs::MAX);
        assert!(waiting.is_empty());
        assert!(waiting.by_time.is_empty() && waiting.by_reference.is_empty());
    }
}
