//! Current state of a topic (counters, reward progress, leaderboard top N, trending list), for `SNAPSHOT` messages
//! and `GET /v1/topics/{topic}/snapshot`. The embedded run reads the operators' state through [`SnapshotSource`];
//! separate delivery nodes read it from Redis; [`MemorySnapshots`] is set by hand (tests).

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;
use serde_json::Value;

/// Where the current state of a topic comes from.
#[async_trait]
pub trait SnapshotSource: Send + Sync + 'static {
    /// The current state of `topic` (a valid topic name), or `None` when it has none.
    async fn snapshot(&self, topic: &str) -> Option<Value>;
}

/// Snapshots set by hand (tests, demo, or an operator runner that pushes its state).
#[derive(Default)]
pub struct MemorySnapshots {
    states: RwLock<HashMap<String, Value>>,
}

impl MemorySnapshots {
    pub fn new() -> MemorySnapshots {
        MemorySnapshots::default()
    }

    /// Sets the current state of `topic`.
    pub fn set(&self, topic: &str, state: Value) {
        if let Ok(mut states) = self.states.write() {
            states.insert(topic.to_owned(), state);
        }
    }

    /// Forgets the state of `topic`.
    pub fn remove(&self, topic: &str) {
        if let Ok(mut states) = self.states.write() {
            states.remove(topic);
        }
    }
}

#[async_trait]
impl SnapshotSource for MemorySnapshots {
    async fn snapshot(&self, topic: &str) -> Option<Value> {
        self.states.read().ok()?.get(topic).cloned()
    }
}
