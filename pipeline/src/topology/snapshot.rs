//! Current state of the topics that have one (counters and reward progress of `user.{id}.referrals`, leaderboard
//! top N, trending lists, recent testimonials, program rules), for `?snapshot=true` and
//! `GET /v1/topics/{topic}/snapshot`. The topology writes it; the delivery tier reads it.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use rustc_hash::FxHashMap;
use social_schemas::derived::MessageData;

use crate::operator::SnapshotUpdate;

type Parts = BTreeMap<String, MessageData>;

/// Cheap to clone (shared). Locks are held only to copy pointers, never across an `.await`. Parts are held as
/// serialized JSON (shared with the messages that announced them) and parsed when read.
#[derive(Debug, Clone, Default)]
pub struct SnapshotStore {
    topics: Arc<RwLock<FxHashMap<String, Parts>>>,
}

impl SnapshotStore {
    /// The topic's state as one JSON object of its parts (`{"counters": {...}, "rewardProgress.p1": {...}}`),
    /// `None` when the topic has none.
    pub fn get(&self, topic: &str) -> Option<serde_json::Value> {
        let parts: Vec<(String, MessageData)> = {
            let topics = self.topics.read().unwrap_or_else(PoisonError::into_inner);
            topics
                .get(topic)?
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let object = parts.into_iter().map(|(k, v)| (k, v.to_value())).collect();
        Some(serde_json::Value::Object(object))
    }

    pub fn len(&self) -> usize {
        self.topics.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Everything, for checkpoints (so a restarted process serves the same snapshots before new input).
    pub fn export(&self) -> BTreeMap<String, BTreeMap<String, MessageData>> {
        let topics = self.topics.read().unwrap_or_else(PoisonError::into_inner);
        topics
            .iter()
            .map(|(t, parts)| (t.clone(), parts.clone()))
            .collect()
    }

    /// Replaces everything with `saved` (restore).
    pub fn import(&self, saved: BTreeMap<String, BTreeMap<String, MessageData>>) {
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        *topics = saved.into_iter().collect();
    }

    pub fn apply(&self, updates: impl IntoIterator<Item = SnapshotUpdate>) {
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        for update in updates {
            match update.value {
                Some(value) => {
                    topics.entry(update.topic).or_default().insert(update.part, value);
                }
                None => {
                    if let Some(parts) = topics.get_mut(&update.topic) {
                        parts.remove(&update.part);
                        if parts.is_empty() {
                            topics.remove(&update.topic);
                        }
                    }
                }
            }
        }
    }
}
