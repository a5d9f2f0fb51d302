//! Out-of-order arrival: events are held in a small buffer and released by arrival time.
//!
//! Each event gets an arrival time `event time + delay` with `delay` in `[0, max]`; the buffer releases the
//! event with the smallest arrival time (ties: generation order) once no event still to be generated can
//! arrive earlier. Since arrival times are at least event times, that is as soon as the smallest arrival time is
//! at most the event time of the newest generated event. The emitted order is therefore sorted by arrival time,
//! and an event is never emitted after one whose event time exceeds its own by more than `max`.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

#[derive(Debug)]
pub(crate) struct ReorderBuffer<T> {
    heap: BinaryHeap<Reverse<Held<T>>>,
}

#[derive(Debug)]
struct Held<T> {
    arrival_ms: i64,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.arrival_ms, self.seq) == (other.arrival_ms, other.seq)
    }
}
impl<T> Eq for Held<T> {}
impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Held<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.arrival_ms, self.seq).cmp(&(other.arrival_ms, other.seq))
    }
}

impl<T> ReorderBuffer<T> {
    pub(crate) fn new() -> Self {
        ReorderBuffer {
            heap: BinaryHeap::new(),
        }
    }

    /// Holds `item`; `seq` must grow with every call (it breaks ties between equal arrival times).
    pub(crate) fn push(&mut self, arrival_ms: i64, seq: u64, item: T) {
        self.heap.push(Reverse(Held {
            arrival_ms,
            seq,
            item,
        }));
    }

    /// Releases the next item if nothing generated later can arrive before it, that is if its arrival time is
    /// at most `newest_event_ms`, the event time of the newest generated item (event times never decrease).
    pub(crate) fn pop_ready(&mut self, newest_event_ms: i64) -> Option<T> {
        if self.heap.peek()?.0.arrival_ms > newest_event_ms {
            return None;
        }
        self.heap.pop().map(|Reverse(held)| held.item)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_by_arrival_then_sequence() {
        let mut buf = ReorderBuffer::new();
        buf.push(10, 0, "a"); // event time 0, delay 10
        assert_eq!(buf.pop_ready(0), None);
        buf.push(5, 1, "b"); // event time 5, delay 0
        assert_eq!(buf.pop_ready(5), Some("b"));
        assert_eq!(buf.pop_ready(5), None);
        buf.push(10, 2, "c"); // event time 10, delay 0
        assert_eq!(buf.pop_ready(10), Some("a"));
        assert_eq!(buf.pop_ready(10), Some("c"));
        assert_eq!(buf.len(), 0);
        assert_eq!(buf.pop_ready(i64::MAX), None);
    }
}
