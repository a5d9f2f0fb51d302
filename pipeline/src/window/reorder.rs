//! Holds events until the watermark passes them, then releases them in a total order that does not depend on
//! arrival order: `(event time, tie-break hash of (source, id), source, id)`. The strings are read from the item
//! itself ([`Tiebreak`]) only when time and hash are equal, so the heap holds no copies of them.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::EventTimeMs;

/// The order key of a buffered event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct OrderKey {
    pub time_ms: EventTimeMs,
    /// Hash of `(source, id)`: cheap comparisons; the item's own strings break the (unlikely) ties.
    pub hash: u64,
}

/// The final tie-break between items of equal [`OrderKey`]: `(source, id)` for events.
pub trait Tiebreak {
    fn tiebreak(&self) -> (&str, &str);
}

impl Tiebreak for social_schemas::Event {
    fn tiebreak(&self) -> (&str, &str) {
        (&self.source, &self.id)
    }
}

impl<T: Tiebreak> Tiebreak for Box<T> {
    fn tiebreak(&self) -> (&str, &str) {
        (**self).tiebreak()
    }
}

impl Tiebreak for &'static str {
    fn tiebreak(&self) -> (&str, &str) {
        ("", self)
    }
}

struct Held<T> {
    key: OrderKey,
    item: T,
}

impl<T: Tiebreak> Held<T> {
    fn order(&self, other: &Self) -> Ordering {
        self.key
            .cmp(&other.key)
            .then_with(|| self.item.tiebreak().cmp(&other.item.tiebreak()))
    }
}

impl<T: Tiebreak> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        self.order(other) == Ordering::Equal
    }
}
impl<T: Tiebreak> Eq for Held<T> {}
impl<T: Tiebreak> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T: Tiebreak> Ord for Held<T> {
    // Reversed: `BinaryHeap` is a max-heap and we want the smallest key first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.order(self)
    }
}

/// A min-heap of events by [`OrderKey`].
pub struct EventTimeBuffer<T> {
    heap: BinaryHeap<Held<T>>,
}

impl<T> Default for EventTimeBuffer<T> {
    fn default() -> Self {
        EventTimeBuffer {
            heap: BinaryHeap::new(),
        }
    }
}

impl<T: Tiebreak> EventTimeBuffer<T> {
    pub fn push(&mut self, key: OrderKey, item: T) {
        self.heap.push(Held { key, item });
    }

    /// Event time of the next event to release.
    pub fn peek_time(&self) -> Option<EventTimeMs> {
        self.heap.peek().map(|h| h.key.time_ms)
    }

    pub fn pop(&mut self) -> Option<T> {
        self.heap.pop().map(|h| h.item)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The buffered items in release order (for checkpoints).
    pub fn sorted_items(&self) -> Vec<&T> {
        let mut held: Vec<&Held<T>> = self.heap.iter().collect();
        held.sort_by(|a, b| a.order(b));
        held.into_iter().map(|h| &h.item).collect()
    }
}

/// Stable 64-bit FNV-1a of `(source, id)`, the tie-break of [`OrderKey`].
pub fn tie_hash(source: &str, id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in source.bytes().chain(std::iter::once(0xff)).chain(id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: i64, id: &str) -> OrderKey {
        OrderKey {
            time_ms: t,
            hash: tie_hash("", id),
        }
    }

    #[test]
    fn releases_in_key_order() {
        let mut a = EventTimeBuffer::default();
        let mut b = EventTimeBuffer::default();
        let items = [(5, "x"), (3, "y"), (5, "a"), (1, "z")];
        for (t, id) in items {
            a.push(key(t, id), id);
        }
        for (t, id) in items.iter().rev() {
            b.push(key(*t, id), *id);
        }
        fn drain(buf: &mut EventTimeBuffer<&'static str>) -> Vec<&'static str> {
            std::iter::from_fn(|| buf.pop()).collect()
        }
        assert_eq!(drain(&mut a), drain(&mut b));
    }
}
