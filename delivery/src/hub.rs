//! Fan-out inside one node: the subscribers of each topic and the delivery of one entry to all of them.
//!
//! Every connection has one bounded queue ([`tokio::sync::mpsc`], `connection_queue` entries) shared by its topics.
//! Delivering an entry clones an `Arc` into each queue, so a message is serialized once for all subscribers. A
//! queue that is full means the client does not keep up: it is cut off (its `cut` token is cancelled, it is
//! counted), and it reconnects with its last id, from where history replays what it missed. Memory never grows and
//! nothing is skipped silently.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::history::{Entry, shard_index};
use crate::metrics;
use crate::topics::{Topic, TopicKind};

/// What a connection's queue carries: the index of the topic in the connection's topic list, and the entry.
pub type Delivered = (u16, Arc<Entry>);

struct Subscriber {
    topic_index: u16,
    tx: mpsc::Sender<Delivered>,
    cut: CancellationToken,
}

struct TopicSubscribers {
    kind: TopicKind,
    subscribers: FxHashMap<u64, Subscriber>,
}

const SHARDS: usize = 64;

type Shard = Mutex<FxHashMap<Arc<str>, TopicSubscribers>>;

/// The subscribers of every topic on this node.
pub struct Hub {
    shards: Box<[Shard]>,
    next_id: AtomicU64,
}

/// What one delivery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliverStats {
    pub queued: usize,
    pub cut_off: usize,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    pub fn new() -> Hub {
        let shards = (0..SHARDS).map(|_| Mutex::new(FxHashMap::default())).collect();
        Hub {
            shards,
            next_id: AtomicU64::new(1),
        }
    }

    fn shard(&self, topic: &str) -> &Shard {
        &self.shards[shard_index(topic, SHARDS)]
    }

    /// Registers one connection for `topics` (index `i` of the list is `topic_index` `i` in its queue). The
    /// subscription lasts as long as the returned guard.
    pub fn subscribe(
        self: &Arc<Self>,
        topics: &[Topic],
        tx: &mpsc::Sender<Delivered>,
        cut: &CancellationToken,
    ) -> SubscriptionGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut names = Vec::with_capacity(topics.len());
        for (index, topic) in topics.iter().enumerate() {
            let name: Arc<str> = Arc::from(topic.name());
            let subscriber = Subscriber {
                topic_index: index as u16,
                tx: tx.clone(),
                cut: cut.clone(),
            };
            if let Ok(mut shard) = self.shard(&name).lock() {
                shard
                    .entry(name.clone())
                    .or_insert_with(|| TopicSubscribers {
                        kind: topic.kind(),
                        subscribers: FxHashMap::default(),
                    })
                    .subscribers
                    .insert(id, subscriber);
                metrics::subscription_added(topic.kind());
            }
            names.push(name);
        }
        SubscriptionGuard {
            hub: self.clone(),
            id,
            topics: names,
        }
    }

    fn unsubscribe(&self, id: u64, topic: &str) {
        let Ok(mut shard) = self.shard(topic).lock() else {
            return;
        };
        let Some(subscribers) = shard.get_mut(topic) else {
            return;
        };
        if subscribers.subscribers.remove(&id).is_some() {
            metrics::subscription_removed(subscribers.kind);
        }
        if subscribers.subscribers.is_empty() {
            shard.remove(topic);
        }
    }

    /// Queues `entry` for every subscriber of its topic on this node; cuts off those whose queue is full.
    pub fn deliver(&self, entry: &Arc<Entry>) -> DeliverStats {
        let mut stats = DeliverStats::default();
        let Ok(mut shard) = self.shard(&entry.topic).lock() else {
            return stats;
        };
        let Some(topic) = shard.get_mut(&*entry.topic) else {
            return stats;
        };
        let mut gone = Vec::new();
        for (id, subscriber) in &topic.subscribers {
            match subscriber.tx.try_send((subscriber.topic_index, entry.clone())) {
                Ok(()) => stats.queued += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    subscriber.cut.cancel();
                    stats.cut_off += 1;
                    gone.push(*id);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => gone.push(*id),
            }
        }
        for id in gone {
            if topic.subscribers.remove(&id).is_some() {
                metrics::subscription_removed(topic.kind);
            }
        }
        if topic.subscribers.is_empty() {
            shard.remove(&*entry.topic);
        }
        if stats.cut_off > 0 {
            metrics::slow_clients_cut_off(stats.cut_off as u64);
        }
        stats
    }

    /// The topics with subscribers on this node.
    pub fn topics(&self) -> Vec<Arc<str>> {
        let mut topics = Vec::new();
        for shard in self.shards.iter() {
            if let Ok(shard) = shard.lock() {
                topics.extend(
                    shard
                        .iter()
                        .filter(|(_, t)| !t.subscribers.is_empty())
                        .map(|(topic, _)| topic.clone()),
                );
            }
        }
        topics
    }

    /// Subscribers of `topic` on this node.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.shard(topic)
            .lock()
            .ok()
            .and_then(|shard| shard.get(topic).map(|t| t.subscribers.len()))
            .unwrap_or(0)
    }
}

/// Unsubscribes its connection from all its topics when dropped.
pub struct SubscriptionGuard {
    hub: Arc<Hub>,
    id: u64,
    topics: Vec<Arc<str>>,
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        for topic in &self.topics {
            self.hub.unsubscribe(self.id, topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Position;
    use bytes::Bytes;
    use tokio::time::Instant;

    fn entry(topic: &str, offset: u64) -> Arc<Entry> {
        Arc::new(Entry {
            topic: Arc::from(topic),
            position: Position { epoch: 1, offset },
            json: Bytes::from_static(b"{}"),
            published_at: Instant::now(),
        })
    }

    #[tokio::test]
    async fn delivers_to_subscribers_and_cuts_off_a_full_queue() {
        let hub = Arc::new(Hub::new());
        let topics = vec![
            Topic::parse("leaderboard.daily").unwrap(),
            Topic::parse("trending.1h").unwrap(),
        ];
        let (fast_tx, mut fast_rx) = mpsc::channel(8);
        let fast_cut = CancellationToken::new();
        let _fast = hub.subscribe(&topics, &fast_tx, &fast_cut);
        let (slow_tx, _slow_rx) = mpsc::channel(1);
        let slow_cut = CancellationToken::new();
        let slow = hub.subscribe(&topics[..1], &slow_tx, &slow_cut);

        assert_eq!(hub.deliver(&entry("trending.1h", 1)).queued, 1);
        assert_eq!(fast_rx.recv().await.unwrap().0, 1);
        assert_eq!(hub.deliver(&entry("leaderboard.daily", 1)).queued, 2);
        let second = hub.deliver(&entry("leaderboard.daily", 2));
        assert_eq!(
            second,
            DeliverStats {
                queued: 1,
                cut_off: 1
            }
        );
        assert!(slow_cut.is_cancelled() && !fast_cut.is_cancelled());
        assert_eq!(hub.subscriber_count("leaderboard.daily"), 1);
        drop(slow);
        assert_eq!(hub.subscriber_count("leaderboard.daily"), 1);
        drop(_fast);
        assert_eq!(hub.subscriber_count("leaderboard.daily"), 0);
        assert_eq!(hub.subscriber_count("trending.1h"), 0);
    }
}
