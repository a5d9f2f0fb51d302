//! A topic's history changing epoch under an open stream (a flushed or restarted Redis, a rebuilt history): a
//! topic with a snapshot gets `RESET` and the `SNAPSHOT` without the message it already holds; one without gets
//! `RESET` and every message of the new epoch; and a delivery node whose Redis listener was away when it happened
//! resets its streams at once instead of leaving a quiet topic behind.

#![allow(clippy::unwrap_used)]

mod common;
mod redis_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use common::{Sse, TestServer, key};
use redis_support::{Node, PrivateRedis, raw, unique_prefix};
use serde_json::{Value, json};
use social_delivery::history::{Entry, Replay};
use social_delivery::{DeliveryConfig, DeliveryError, History, MemoryHistory, Position, Retention};
use social_schemas::TopicMessage;

/// A history that can be replaced by an empty one, as a flushed store is: the next append starts a new epoch.
struct Replaceable(Mutex<Arc<MemoryHistory>>);

impl Replaceable {
    fn new() -> Arc<Replaceable> {
        Arc::new(Replaceable(Mutex::new(Arc::new(MemoryHistory::new(retention())))))
    }

    fn current(&self) -> Arc<MemoryHistory> {
        self.0.lock().unwrap().clone()
    }

    fn lose_everything(&self) {
        *self.0.lock().unwrap() = Arc::new(MemoryHistory::new(retention()));
    }
}

fn retention() -> Retention {
    DeliveryConfig::default().history_retention()
}

#[async_trait]
impl History for Replaceable {
    async fn append(&self, topic: &str, json: Bytes) -> Result<Arc<Entry>, DeliveryError> {
        self.current().append(topic, json).await
    }

    async fn append_sequenced(
        &self,
        topic: &str,
        json: Bytes,
        sequence: u64,
    ) -> Result<Option<Arc<Entry>>, DeliveryError> {
        self.current().append_sequenced(topic, json, sequence).await
    }

    async fn read_after(&self, topic: &str, after: Position, max: usize) -> Result<Replay, DeliveryError> {
        self.current().read_after(topic, after, max).await
    }

    async fn last(&self, topic: &str, n: usize) -> Result<Vec<Arc<Entry>>, DeliveryError> {
        self.current().last(topic, n).await
    }

    async fn head(&self, topic: &str) -> Result<Position, DeliveryError> {
        self.current().head(topic).await
    }
}

fn kind_and_id(message: &Value) -> (String, String) {
    (
        message["type"].as_str().unwrap().to_owned(),
        message["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn with_a_snapshot_the_new_epochs_message_is_not_applied_on_top_of_the_snapshot_holding_it() {
    let history = Replaceable::new();
    let server = TestServer::start_with_history(DeliveryConfig::default(), history.clone()).await;
    server
        .snapshots
        .set("leaderboard.daily", json!({"state": "after-a"}));
    let mut stream = Sse::connect(&server.url("/v1/stream?topic=leaderboard.daily"), &[]).await;
    stream.next_frame().await.unwrap();
    server.publish("leaderboard.daily", "a").await;
    assert_eq!(key(&stream.next_message().await.unwrap()).1, "a");

    history.lose_everything();
    // The operators' state moves on before the change is published: the snapshot already holds `b`.
    server
        .snapshots
        .set("leaderboard.daily", json!({"state": "after-b"}));
    server.publish("leaderboard.daily", "b").await;
    let reset = stream.next_message().await.unwrap();
    assert_eq!(reset["type"], "RESET", "{reset}");
    assert_eq!(reset["data"]["reason"], "epoch_changed");
    let snapshot = stream.next_message().await.unwrap();
    assert_eq!(snapshot["type"], "SNAPSHOT", "{snapshot}");
    assert_eq!(snapshot["data"]["state"], "after-b");
    server.publish("leaderboard.daily", "c").await;
    assert_eq!(
        kind_and_id(&stream.next_message().await.unwrap()),
        ("EVENT".to_owned(), "c".to_owned()),
        "`b` must not follow the snapshot that holds it"
    );
}

#[tokio::test]
async fn without_a_snapshot_every_message_of_the_new_epoch_is_delivered_after_the_reset() {
    let history = Replaceable::new();
    let server = TestServer::start_with_history(DeliveryConfig::default(), history.clone()).await;
    let topic = "testimonials.recent";
    let mut stream = Sse::connect(&server.url(&format!("/v1/stream?topic={topic}")), &[]).await;
    stream.next_frame().await.unwrap();
    server.publish(topic, "a").await;
    assert_eq!(key(&stream.next_message().await.unwrap()).1, "a");

    history.lose_everything();
    // `b1` reaches the new epoch's history but not this node's live fan-out (another node published it while
    // this one was away); `b2` then comes live.
    let missed = TopicMessage {
        topic: topic.into(),
        id: "b1".into(),
        event_type: "test.event".into(),
        timestamp: chrono::Utc::now(),
        data: json!({"n": "b1"}).into(),
    };
    let json = social_delivery::message::event_json(&missed).unwrap();
    history.append(topic, json).await.unwrap();
    server.publish(topic, "b2").await;

    let reset = stream.next_message().await.unwrap();
    assert_eq!(reset["type"], "RESET", "{reset}");
    assert_eq!(reset["data"]["reason"], "epoch_changed");
    assert!(
        reset["id"].as_str().unwrap().contains("-0-"),
        "reset to the start of the new epoch: {reset}"
    );
    assert_eq!(key(&stream.next_message().await.unwrap()).1, "b1");
    assert_eq!(key(&stream.next_message().await.unwrap()).1, "b2");
    server.publish(topic, "c").await;
    assert_eq!(key(&stream.next_message().await.unwrap()).1, "c");
}

#[tokio::test]
async fn a_quiet_topic_whose_history_was_lost_while_the_listener_was_away_resets_at_once() {
    let redis = PrivateRedis::start().await;
    let prefix = unique_prefix();
    let first = Node::start(&redis.url(), &prefix, DeliveryConfig::default()).await;
    let second = Node::start(&redis.url(), &prefix, DeliveryConfig::default()).await;
    let topic = "trending.24h";
    let mut stream = Sse::connect(&second.url(&format!("/v1/stream?topic={topic}")), &[]).await;
    stream.next_frame().await.unwrap();
    first.publish(topic, "a").await;
    assert_eq!(key(&stream.next_message().await.unwrap()).1, "a");

    // Redis loses everything and drops the listeners' connections; `b` starts a new epoch, most likely before
    // the second node's listener is back (it then learns of `b` only from history).
    let mut conn = raw(&redis.url()).await;
    let _: u64 = ::redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "pubsub"][..])
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = ::redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    first.publish(topic, "b").await;

    // No further message on the topic: the stream must not wait for one.
    let reset = tokio::time::timeout(Duration::from_secs(8), stream.next_message())
        .await
        .expect("the stream stayed on the lost epoch")
        .unwrap();
    assert_eq!(reset["type"], "RESET", "{reset}");
    assert_eq!(reset["data"]["reason"], "epoch_changed");
    assert_eq!(
        kind_and_id(&stream.next_message().await.unwrap()),
        ("EVENT".to_owned(), "b".to_owned())
    );
    first.publish(topic, "c").await;
    assert_eq!(key(&stream.next_message().await.unwrap()).1, "c");
    first.stop().await;
    second.stop().await;
}
