//! The derived writer's outputs waiting for the delivery tier, and the order it publishes them in.
//!
//! Why not strictly in output order: an event-time tick emits thousands of messages at once (counters,
//! leaderboards, trending and grouped alerts for everything touched in the last 5 s), and publishing them takes
//! hundreds of milliseconds; a share confirmation emitted just after would wait for all of them. Subscribers see
//! each topic on its own, and the delivery tier keeps order, positions and duplicate detection per topic, so only
//! the order *within a topic* must hold. Each publish call therefore takes messages of later batches whose topic
//! has nothing older waiting, then the oldest waiting messages: small batches overtake a large one, and no topic
//! ever sees a message ahead of an older one.

use std::collections::{BTreeMap, HashMap, VecDeque};

use social_schemas::TopicMessage;

/// One publish call's worth: at most `ahead` messages of later batches that may go ahead, then at most `oldest`
/// of the oldest waiting messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkSize {
    pub oldest: usize,
    pub ahead: usize,
}

/// How many waiting messages of later batches a chunk looks at, per message it may take: bounds the scan when
/// later batches are blocked behind the oldest one (their topics have older messages waiting).
const SCAN_PER_AHEAD: usize = 4;

/// Outputs bound for the delivery tier that are not published yet, by output number.
#[derive(Debug, Default)]
pub(crate) struct PublishQueue {
    waiting: BTreeMap<u64, TopicMessage>,
    /// Per topic, the output numbers waiting, oldest first.
    by_topic: HashMap<String, VecDeque<u64>>,
    /// The end (exclusive output number) of each batch received, oldest first, while it has messages waiting.
    batch_ends: VecDeque<u64>,
}

impl PublishQueue {
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The oldest output number still waiting.
    pub(crate) fn oldest(&self) -> Option<u64> {
        self.waiting.first_key_value().map(|(sequence, _)| *sequence)
    }

    /// Adds one batch, in output order; `end` is the number after the batch's last output (outputs not bound for
    /// the delivery tier leave gaps in the numbers).
    pub(crate) fn push_batch(&mut self, messages: impl IntoIterator<Item = (TopicMessage, u64)>, end: u64) {
        let before = self.waiting.len();
        for (message, sequence) in messages {
            debug_assert!(
                self.waiting
                    .last_key_value()
                    .is_none_or(|(last, _)| *last < sequence)
            );
            self.by_topic
                .entry(message.topic.clone())
                .or_default()
                .push_back(sequence);
            self.waiting.insert(sequence, message);
        }
        if self.waiting.len() > before && self.batch_ends.back().is_none_or(|last| *last < end) {
            self.batch_ends.push_back(end);
        }
    }

    /// Takes the next publish call's messages, in an order that keeps every topic's order: first the messages of
    /// later batches that may go ahead (nothing older of their topic waits), then the oldest.
    pub(crate) fn next_chunk(&mut self, size: ChunkSize) -> Vec<(TopicMessage, u64)> {
        let mut chunk = Vec::with_capacity(size.oldest + size.ahead);
        let oldest = self.oldest();
        // Batches whose messages are all taken.
        while let (Some(end), Some(oldest)) = (self.batch_ends.front(), oldest) {
            if *end > oldest {
                break;
            }
            self.batch_ends.pop_front();
        }
        if let (Some(oldest), Some(&front_end)) = (oldest, self.batch_ends.front()) {
            debug_assert!(oldest < front_end);
            let ahead: Vec<u64> = self
                .waiting
                .range(front_end..)
                .take(size.ahead * SCAN_PER_AHEAD)
                .filter(|(sequence, message)| {
                    self.by_topic.get(&message.topic).and_then(|queue| queue.front()) == Some(sequence)
                })
                .map(|(sequence, _)| *sequence)
                .take(size.ahead)
                .collect();
            for sequence in ahead {
                if let Some(message) = self.waiting.remove(&sequence) {
                    self.forget(&message.topic, sequence);
                    chunk.push((message, sequence));
                }
            }
        }
        let limit = chunk.len() + size.oldest;
        while chunk.len() < limit {
            let Some((sequence, message)) = self.waiting.pop_first() else {
                break;
            };
            // The oldest waiting message is the oldest of its topic too.
            self.forget(&message.topic, sequence);
            chunk.push((message, sequence));
        }
        if self.waiting.is_empty() {
            self.batch_ends.clear();
        }
        chunk
    }

    /// Removes `sequence`, the oldest waiting output of `topic`, from the topic's queue.
    fn forget(&mut self, topic: &str, sequence: u64) {
        if let Some(queue) = self.by_topic.get_mut(topic) {
            debug_assert_eq!(queue.front(), Some(&sequence));
            queue.pop_front();
            if queue.is_empty() {
                self.by_topic.remove(topic);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message(topic: &str, sequence: u64) -> TopicMessage {
        TopicMessage {
            topic: topic.to_owned(),
            id: format!("m{sequence}"),
            event_type: "test".into(),
            timestamp: chrono::DateTime::UNIX_EPOCH,
            data: serde_json::json!({}).into(),
        }
    }

    const SIZE: ChunkSize = ChunkSize { oldest: 4, ahead: 4 };

    #[test]
    fn a_small_later_batch_overtakes_a_large_one_but_not_its_own_topic() {
        let mut queue = PublishQueue::default();
        let large: Vec<_> = (0..20).map(|s| (message(&format!("t{s}"), s), s)).collect();
        queue.push_batch(large, 20);
        queue.push_batch([(message("probe", 20), 20), (message("t15", 21), 21)], 22);
        let first: Vec<u64> = queue.next_chunk(SIZE).iter().map(|(_, s)| *s).collect();
        // 20 goes first; 21 waits behind 15, the older message of its topic.
        assert_eq!(first, vec![20, 0, 1, 2, 3]);
        let mut rest = Vec::new();
        while !queue.is_empty() {
            rest.extend(queue.next_chunk(SIZE).into_iter().map(|(_, s)| s));
        }
        let position = |s: u64| rest.iter().position(|x| *x == s);
        assert!(position(15) < position(21));
        assert_eq!(rest.len(), 17);
    }

    proptest! {
        /// Every message comes out exactly once, and each topic's in output order, whatever the batches and chunk
        /// sizes and however pushes and takes interleave.
        #[test]
        fn every_message_once_and_each_topic_in_order(
            batches in prop::collection::vec(prop::collection::vec((0u8..6, any::<bool>()), 0..30), 1..12),
            oldest in 1usize..8,
            ahead in 0usize..8,
            takes_between in prop::collection::vec(0usize..4, 12),
        ) {
            let mut queue = PublishQueue::default();
            let mut next = 0u64;
            let mut expected: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
            let size = ChunkSize { oldest, ahead };
            let take = |queue: &mut PublishQueue, seen: &mut BTreeMap<String, Vec<u64>>| {
                for (message, sequence) in queue.next_chunk(size) {
                    seen.entry(message.topic).or_default().push(sequence);
                }
            };
            for (batch, takes) in batches.iter().zip(&takes_between) {
                let mut messages = Vec::new();
                for (topic, to_sse) in batch {
                    // Outputs not bound for SSE leave gaps in the numbers.
                    if *to_sse {
                        let topic = format!("t{topic}");
                        expected.entry(topic.clone()).or_default().push(next);
                        messages.push((message(&topic, next), next));
                    }
                    next += 1;
                }
                queue.push_batch(messages, next);
                for _ in 0..*takes {
                    take(&mut queue, &mut seen);
                }
            }
            while !queue.is_empty() {
                take(&mut queue, &mut seen);
            }
            prop_assert_eq!(seen, expected);
            prop_assert!(queue.by_topic.is_empty() && queue.batch_ends.is_empty());
        }
    }
}
