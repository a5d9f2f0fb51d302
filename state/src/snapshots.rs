//! [`RedisSnapshots`]: the delivery tier's [`SnapshotSource`] over the state hashes, for delivery nodes that run in
//! other processes than the pipeline.

use async_trait::async_trait;
use serde_json::{Map, Value};
use social_delivery::SnapshotSource;
use social_delivery::redis::RedisConnection;

use crate::connection::Connector;
use crate::keys::{StateKeys, VERSION_FIELD};
use crate::{StateError, metrics as m};

/// Reads `P state:{T}` with one `HGETALL`: the same JSON object of parts as the pipeline's in-memory
/// `SnapshotStore::get` (`{"counters": {...}, "rewardProgress.p1": {...}}`), `None` when the topic has no parts.
#[derive(Clone)]
pub struct RedisSnapshots {
    conn: RedisConnection,
    keys: StateKeys,
}

impl RedisSnapshots {
    /// Connects (the first connection must succeed) with a 1 s connect and 2 s response timeout.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<RedisSnapshots, StateError> {
        RedisSnapshots::connect_with(url, key_prefix, 1_000, 2_000).await
    }

    pub async fn connect_with(
        url: &str,
        key_prefix: &str,
        connect_timeout_ms: u64,
        response_timeout_ms: u64,
    ) -> Result<RedisSnapshots, StateError> {
        let keys = StateKeys::new(key_prefix)?;
        let conn = Connector::new(url, connect_timeout_ms, response_timeout_ms)?
            .connect()
            .await?;
        Ok(RedisSnapshots { conn, keys })
    }

    /// The topic's state, or `None` when it has none; errors when Redis fails or holds something unreadable.
    pub async fn read(&self, topic: &str) -> Result<Option<Value>, StateError> {
        let mut conn = self.conn.clone();
        let fields: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.keys.state(topic))
            .query_async(&mut conn)
            .await?;
        let mut parts = Map::new();
        for (part, json) in fields {
            if part == VERSION_FIELD {
                continue;
            }
            let value = serde_json::from_str(&json)
                .map_err(|error| StateError::Protocol(format!("part {part} of {topic}: {error}")))?;
            parts.insert(part, value);
        }
        Ok((!parts.is_empty()).then_some(Value::Object(parts)))
    }
}

#[async_trait]
impl SnapshotSource for RedisSnapshots {
    /// A Redis failure reads as "no snapshot" (the trait has no error); it is logged and counted.
    async fn snapshot(&self, topic: &str) -> Option<Value> {
        match self.read(topic).await {
            Ok(state) => {
                metrics::counter!(m::SNAPSHOT_READS, "result" => "ok").increment(1);
                state
            }
            Err(error) => {
                metrics::counter!(m::SNAPSHOT_READS, "result" => "error").increment(1);
                tracing::warn!(topic, %error, "snapshot read from redis failed");
                None
            }
        }
    }
}
