//! SSE stream over real TCP: resumption, RESET + SNAPSHOT, heartbeat, expiry, headers, `?snapshot` / `?history`.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use social_delivery::history::{Entry, Replay};
use social_delivery::{DeliveryConfig, DeliveryError, History, MemoryHistory, Position};

const TOPICS: [&str; 3] = ["user.u1.referrals", "leaderboard.daily", "trending.1h"];

fn stream_path(topics: &[&str], extra: &str) -> String {
    let query: Vec<String> = topics.iter().map(|t| format!("topic={t}")).collect();
    format!("/v1/stream?{}{}", query.join("&"), extra)
}

fn per_topic(messages: &[serde_json::Value]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for message in messages {
        let (topic, id) = key(message);
        map.entry(topic).or_default().push(id);
    }
    map
}

#[tokio::test]
async fn headers_retry_hint_and_initial_position() {
    headers_retry_hint_and_initial_position_on(TestServer::start(DeliveryConfig::default()).await).await;
}

#[tokio::test]
async fn headers_retry_hint_and_initial_position_through_the_router() {
    let server = TestServer::start_router_only(DeliveryConfig::default()).await;
    headers_retry_hint_and_initial_position_on(server).await;
}

async fn headers_retry_hint_and_initial_position_on(server: TestServer) {
    let mut sse = Sse::connect(&server.url(&stream_path(&["leaderboard.daily"], "")), &[]).await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.headers["content-type"], "text/event-stream");
    assert_eq!(sse.headers["cache-control"], "no-cache");
    assert_eq!(sse.headers["x-accel-buffering"], "no");
    let first = sse.next_frame().await.unwrap();
    let retry = first.retry.expect("a retry hint");
    assert!((2_000..5_000).contains(&retry), "{retry}");
    assert!(
        first.id.is_some() && first.data.is_none(),
        "an id-only frame gives the start position"
    );
    server.stop().await;
}

#[tokio::test]
async fn resumption_replays_exactly_the_missed_messages_then_goes_live() {
    let server = TestServer::start(DeliveryConfig::default()).await;
    resumption_replays_exactly_the_missed_messages_then_goes_live_on(server).await;
}

#[tokio::test]
async fn resumption_through_the_router() {
    let server = TestServer::start_router_only(DeliveryConfig::default()).await;
    resumption_replays_exactly_the_missed_messages_then_goes_live_on(server).await;
}

async fn resumption_replays_exactly_the_missed_messages_then_goes_live_on(server: TestServer) {
    let auth = format!("Bearer {}", token("u1", &[], &[]));
    let headers = [("authorization", auth.as_str())];
    let url = server.url(&stream_path(&TOPICS, ""));

    let mut first = Sse::connect(&url, &headers).await;
    assert_eq!(first.status, 200);
    first.next_frame().await.unwrap();
    for (i, topic) in TOPICS.iter().enumerate() {
        server.publish(topic, &format!("before-{i}")).await;
    }
    let seen = first.messages(3).await;
    assert_eq!(
        seen.iter().map(|m| key(m).1).collect::<Vec<_>>(),
        ["before-0", "before-1", "before-2"]
    );
    let last_id = first.last_id.clone().unwrap();
    first.close();

    let mut missed = Vec::new();
    for i in 0..12 {
        let topic = TOPICS[i % 3];
        let id = format!("missed-{i}");
        server.publish(topic, &id).await;
        missed.push((topic.to_owned(), id));
    }

    let mut second = Sse::connect(&url, &[headers[0], ("last-event-id", last_id.as_str())]).await;
    assert_eq!(second.status, 200);
    let replayed = second.messages(12).await;
    let expected: Vec<serde_json::Value> = missed
        .iter()
        .map(|(topic, id)| json!({"topic": topic, "id": id}))
        .collect();
    assert_eq!(
        per_topic(&replayed),
        per_topic(&expected),
        "exactly the missed messages, in order per topic"
    );
    assert!(replayed.iter().all(|m| m["type"] == "EVENT" && m["version"] == 1));

    server.publish("trending.1h", "live-1").await;
    server.publish("user.u1.referrals", "live-2").await;
    let live = second.messages(2).await;
    assert_eq!(
        live.iter().map(|m| key(m).1).collect::<Vec<_>>(),
        ["live-1", "live-2"]
    );
    server.stop().await;
}

#[tokio::test]
async fn resumption_with_messages_published_during_the_reconnect() {
    let server = TestServer::start(DeliveryConfig::default()).await;
    let url = server.url(&stream_path(&TOPICS[1..], ""));
    let last_id = position_after_first_message(&server, &url).await;

    let publisher = server.publisher.clone();
    let total = 400;
    let publishing = tokio::spawn(async move {
        for i in 1..=total {
            let topic = alternating(i);
            publisher
                .publish(message(topic, &format!("m-{i}")))
                .await
                .unwrap();
            if i % 7 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    let mut second = Sse::connect(&url, &[("last-event-id", last_id.as_str())]).await;
    let received = second.messages(total).await;
    publishing.await.unwrap();
    let grouped = per_topic(&received);
    let expect = |parity: usize| -> Vec<String> {
        (1..=total)
            .filter(|i| i % 2 == parity)
            .map(|i| format!("m-{i}"))
            .collect()
    };
    assert_eq!(
        grouped["leaderboard.daily"],
        expect(0),
        "none lost, none twice, in order"
    );
    assert_eq!(grouped["trending.1h"], expect(1));
    server.stop().await;
}

/// A history that publishes the messages it is given while a resuming session reads it: they reach the session
/// live (it subscribed first) and are in the history it reads, the race a session must resolve without a
/// duplicate or a gap.
struct RacingHistory {
    inner: MemoryHistory,
    publisher: std::sync::OnceLock<social_delivery::Publisher>,
    during_read: std::sync::Mutex<Vec<(String, String)>>,
}

#[async_trait::async_trait]
impl History for RacingHistory {
    async fn append(&self, topic: &str, json: bytes::Bytes) -> Result<Arc<Entry>, DeliveryError> {
        self.inner.append(topic, json).await
    }
    async fn append_sequenced(
        &self,
        topic: &str,
        json: bytes::Bytes,
        sequence: u64,
    ) -> Result<Option<Arc<Entry>>, DeliveryError> {
        self.inner.append_sequenced(topic, json, sequence).await
    }
    async fn read_after(&self, topic: &str, after: Position, max: usize) -> Result<Replay, DeliveryError> {
        let racing: Vec<(String, String)> = std::mem::take(&mut *self.during_read.lock().unwrap());
        if let Some(publisher) = self.publisher.get() {
            for (topic, id) in racing {
                publisher.publish(message(&topic, &id)).await.unwrap();
            }
        }
        self.inner.read_after(topic, after, max).await
    }
    async fn last(&self, topic: &str, n: usize) -> Result<Vec<Arc<Entry>>, DeliveryError> {
        self.inner.last(topic, n).await
    }
    async fn head(&self, topic: &str) -> Result<Position, DeliveryError> {
        self.inner.head(topic).await
    }
}

/// `leaderboard.daily` for even numbers, `trending.1h` for odd ones.
fn alternating(i: usize) -> &'static str {
    if i.is_multiple_of(2) {
        "leaderboard.daily"
    } else {
        "trending.1h"
    }
}

/// Connects to `url`, receives `m-0` on `leaderboard.daily` and disconnects: the resume token after it.
async fn position_after_first_message(server: &TestServer, url: &str) -> String {
    let mut first = Sse::connect(url, &[]).await;
    first.next_frame().await.unwrap();
    server.publish("leaderboard.daily", "m-0").await;
    assert_eq!(key(&first.next_message().await.unwrap()).1, "m-0");
    first.last_id.clone().unwrap()
}

fn message(topic: &str, id: &str) -> social_schemas::TopicMessage {
    social_schemas::TopicMessage {
        topic: topic.into(),
        id: id.into(),
        event_type: "test.event".into(),
        timestamp: chrono::Utc::now(),
        data: json!({}).into(),
    }
}

#[tokio::test]
async fn messages_published_while_a_resume_reads_history_arrive_once_in_order() {
    let config = DeliveryConfig::default();
    let history = Arc::new(RacingHistory {
        inner: MemoryHistory::new(config.history_retention()),
        publisher: std::sync::OnceLock::new(),
        during_read: std::sync::Mutex::new(Vec::new()),
    });
    let server = TestServer::start_with_history(config, history.clone()).await;
    assert!(history.publisher.set(server.publisher.clone()).is_ok());
    let url = server.url(&stream_path(&TOPICS[1..], ""));
    let last_id = position_after_first_message(&server, &url).await;

    // Missed while away (replayed from history) ...
    for i in 1..=6 {
        let topic = alternating(i);
        server.publish(topic, &format!("m-{i}")).await;
    }
    // ... published during the resume's history read (live and in history) ...
    *history.during_read.lock().unwrap() = (7..=12)
        .map(|i| {
            let topic = alternating(i);
            (topic.to_owned(), format!("m-{i}"))
        })
        .collect();
    let mut second = Sse::connect(&url, &[("last-event-id", last_id.as_str())]).await;
    assert_eq!(second.status, 200);
    let mut received = second.messages(12).await;
    assert!(history.during_read.lock().unwrap().is_empty(), "the race was run");
    // ... and after it (live only).
    server.publish("leaderboard.daily", "m-13").await;
    received.push(second.next_message().await.unwrap());
    let ids: Vec<String> = received.iter().map(|m| key(m).1).collect();
    let grouped = per_topic(&received);
    assert_eq!(
        grouped["leaderboard.daily"],
        ["m-2", "m-4", "m-6", "m-8", "m-10", "m-12", "m-13"],
        "none lost, none twice, in order: {ids:?}"
    );
    assert_eq!(
        grouped["trending.1h"],
        ["m-1", "m-3", "m-5", "m-7", "m-9", "m-11"],
        "{ids:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn expired_history_gives_reset_then_snapshot() {
    let config = DeliveryConfig {
        history_max_messages_per_topic: 3,
        ..DeliveryConfig::default()
    };
    let server = TestServer::start(config).await;
    server.snapshots.set(
        "leaderboard.weekly",
        json!({"top": [{"userId": "u9", "position": 1}]}),
    );
    let url = server.url(&stream_path(&["leaderboard.weekly"], ""));
    let mut first = Sse::connect(&url, &[]).await;
    first.next_frame().await.unwrap();
    server.publish("leaderboard.weekly", "a").await;
    first.next_message().await.unwrap();
    let last_id = first.last_id.clone().unwrap();
    first.close();
    for i in 0..5 {
        server.publish("leaderboard.weekly", &format!("gone-{i}")).await;
    }
    let mut second = Sse::connect(&url, &[("last-event-id", last_id.as_str())]).await;
    let reset = second.next_message().await.unwrap();
    assert_eq!(
        (reset["type"].as_str(), reset["data"]["reason"].as_str()),
        (Some("RESET"), Some("history_expired"))
    );
    let snapshot = second.next_message().await.unwrap();
    assert_eq!(snapshot["type"], "SNAPSHOT");
    assert_eq!(snapshot["data"]["top"][0]["userId"], "u9");
    server.publish("leaderboard.weekly", "after").await;
    assert_eq!(key(&second.next_message().await.unwrap()).1, "after");
    server.stop().await;
}

#[tokio::test]
async fn changed_epoch_after_restart_gives_reset_then_snapshot() {
    let before = TestServer::start(DeliveryConfig::default()).await;
    let url = before.url(&stream_path(&["trending.24h"], ""));
    let mut first = Sse::connect(&url, &[]).await;
    first.next_frame().await.unwrap();
    before.publish("trending.24h", "x").await;
    first.next_message().await.unwrap();
    let last_id = first.last_id.clone().unwrap();
    first.close();
    before.stop().await;

    let after = TestServer::start(DeliveryConfig::default()).await;
    after.snapshots.set(
        "trending.24h",
        json!({"items": [{"contentId": "c1", "score": 3}]}),
    );
    let url = after.url(&stream_path(&["trending.24h"], ""));
    let mut second = Sse::connect(&url, &[("last-event-id", last_id.as_str())]).await;
    let reset = second.next_message().await.unwrap();
    assert_eq!(reset["type"], "RESET");
    assert_eq!(reset["data"]["reason"], "epoch_changed");
    let snapshot = second.next_message().await.unwrap();
    assert_eq!(snapshot["type"], "SNAPSHOT");
    assert_eq!(snapshot["data"]["items"][0]["contentId"], "c1");
    after.stop().await;
}

#[tokio::test]
async fn garbage_last_event_id_is_400_and_query_form_works() {
    let server = TestServer::start(DeliveryConfig::default()).await;
    let url = server.url(&stream_path(&["trending.1h"], ""));
    let refused = Sse::connect(&url, &[("last-event-id", "garbage!!")]).await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.error_json().await["error"]["code"],
        "invalid_last_event_id"
    );
    let refused = Sse::connect(
        &server.url(&stream_path(&["trending.1h"], "&lastEventId=AAAA")),
        &[],
    )
    .await;
    assert_eq!(refused.status, 400);

    // The query form resumes like the header.
    let mut first = Sse::connect(&url, &[]).await;
    let start = first.next_frame().await.unwrap().id.unwrap();
    first.close();
    server.publish("trending.1h", "q").await;
    let mut second = Sse::connect(
        &server.url(&stream_path(&["trending.1h"], &format!("&lastEventId={start}"))),
        &[],
    )
    .await;
    assert_eq!(key(&second.next_message().await.unwrap()).1, "q");
    server.stop().await;
}

#[tokio::test]
async fn snapshot_and_history_on_connect() {
    let server = TestServer::start(DeliveryConfig::default()).await;
    for i in 0..5 {
        server.publish("testimonials.recent", &format!("t-{i}")).await;
    }
    server.snapshots.set("testimonials.recent", json!({"count": 5}));
    let url = server.url(&stream_path(&["testimonials.recent"], "&history=2&snapshot=true"));
    let mut sse = Sse::connect(&url, &[]).await;
    let messages = sse.messages(3).await;
    assert_eq!(key(&messages[0]).1, "t-3");
    assert_eq!(key(&messages[1]).1, "t-4");
    assert_eq!(messages[2]["type"], "SNAPSHOT");
    assert_eq!(messages[2]["data"]["count"], 5);
    server.publish("testimonials.recent", "t-5").await;
    assert_eq!(key(&sse.next_message().await.unwrap()).1, "t-5");
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn heartbeat_every_30_seconds_under_paused_time() {
    let server = TestServer::start(DeliveryConfig::default()).await;
    let mut sse = Sse::connect(&server.url(&stream_path(&["leaderboard.daily"], "")), &[]).await;
    sse.next_frame().await.unwrap();
    let start = tokio::time::Instant::now();
    let frame = sse.next_frame().await.unwrap();
    assert!(frame.comment, "{frame:?}");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(30) && elapsed < Duration::from_secs(31),
        "{elapsed:?}"
    );
    assert!(sse.next_frame().await.unwrap().comment);
    assert!(start.elapsed() >= Duration::from_secs(60));
    server.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stream_ends_when_the_token_expires() {
    let server = TestServer::start(DeliveryConfig::default()).await;
    let auth = format!("Bearer {}", token_ttl("u1", &[], &[], Duration::from_secs(90)));
    let mut sse = Sse::connect(
        &server.url(&stream_path(&["user.u1.social"], "")),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(sse.status, 200);
    let start = tokio::time::Instant::now();
    while let Some(frame) = sse.next_frame().await {
        assert!(frame.data.is_none());
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(88) && elapsed <= Duration::from_secs(91),
        "{elapsed:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let server = TestServer::start(DeliveryConfig::default()).await;
    let mut sse = Sse::connect(&server.url(&stream_path(&["leaderboard.daily"], "")), &[]).await;
    sse.next_frame().await.unwrap();
    server.shutdown.cancel();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while sse.next_frame().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the stream ends on shutdown");
    server.stop().await;
}

/// A topic whose messages were stamped out of order (a wall clock set back before a restart rebuilt the history
/// from its log): a resume still replays every message of it, in offset order, interleaved with the other topics.
#[tokio::test]
async fn a_topic_whose_publish_times_step_back_replays_every_message_in_order() {
    let config = DeliveryConfig::default();
    let history = Arc::new(MemoryHistory::with_epoch(config.history_retention(), 42));
    let message = |topic: &str, id: &str| {
        bytes::Bytes::from(
            json!({"type": "EVENT", "topic": topic, "id": id, "timestamp": "2026-01-01T00:00:00Z",
                   "data": {"eventType": "test.event"}, "version": 1})
            .to_string(),
        )
    };
    let put = |topic: &str, offset: u64, id: &str, age_secs: u64| {
        history
            .put(
                topic,
                offset,
                None,
                message(topic, id),
                Duration::from_secs(age_secs),
            )
            .unwrap()
            .expect("stored");
    };
    // trending.1h's second message is stamped 20 s before its first.
    put("trending.1h", 1, "t-1", 10);
    put("trending.1h", 2, "t-2", 30);
    put("leaderboard.daily", 1, "l-1", 20);
    let shared: Arc<dyn History> = history.clone();
    let server = TestServer::start_with_history(config, shared).await;
    let from_start = social_delivery::resume_token::ResumeToken {
        positions: ["trending.1h", "leaderboard.daily"]
            .iter()
            .map(|t| {
                (
                    social_delivery::resume_token::topic_tag(t),
                    Position { epoch: 42, offset: 0 },
                )
            })
            .collect(),
    }
    .encode();
    let url = server.url(&stream_path(&["trending.1h", "leaderboard.daily"], ""));
    let mut resumed = Sse::connect(&url, &[("last-event-id", from_start.as_str())]).await;
    let received = resumed.messages(3).await;
    let grouped = per_topic(&received);
    assert_eq!(grouped["trending.1h"], ["t-1", "t-2"]);
    assert_eq!(grouped["leaderboard.daily"], ["l-1"]);
    server.stop().await;
}

/// A live message after a gap history cannot cover (here: the history raised its offset floor, as when its total
/// cap forgets topics, before the topic's first message) reaches the client after the `RESET`, not only the reset.
#[tokio::test]
async fn a_live_message_after_an_uncovered_gap_follows_its_reset() {
    let config = DeliveryConfig::default();
    let history = Arc::new(MemoryHistory::with_epoch(config.history_retention(), 9));
    let shared: Arc<dyn History> = history.clone();
    let server = TestServer::start_with_history(config, shared).await;
    let url = server.url(&stream_path(&["trending.1h"], ""));
    let mut live = Sse::connect(&url, &[]).await;
    live.next_frame().await.unwrap();
    history.set_offset_floor(10);
    server.publish("trending.1h", "after-the-gap").await;
    let reset = live.next_message().await.unwrap();
    assert_eq!(
        (reset["type"].as_str(), reset["data"]["reason"].as_str()),
        (Some("RESET"), Some("history_expired"))
    );
    assert_eq!(key(&live.next_message().await.unwrap()).1, "after-the-gap");
    server.stop().await;
}

/// A resume token naming a topic twice (a tag collision, or an altered token) resets that topic: `RESET` with
/// reason `position_unknown`, never a silent start at the head.
#[tokio::test]
async fn a_token_naming_a_topic_twice_resets_it() {
    let server = TestServer::start(DeliveryConfig::default()).await;
    server.publish("trending.24h", "before").await;
    let tag = social_delivery::resume_token::topic_tag("trending.24h");
    let twice = social_delivery::resume_token::ResumeToken {
        positions: vec![
            (tag, Position { epoch: 1, offset: 0 }),
            (tag, Position { epoch: 1, offset: 1 }),
        ],
    }
    .encode();
    let url = server.url(&stream_path(&["trending.24h"], ""));
    let mut resumed = Sse::connect(&url, &[("last-event-id", twice.as_str())]).await;
    let reset = resumed.next_message().await.unwrap();
    assert_eq!(
        (reset["type"].as_str(), reset["data"]["reason"].as_str()),
        (Some("RESET"), Some("position_unknown"))
    );
    server.publish("trending.24h", "after").await;
    assert_eq!(key(&resumed.next_message().await.unwrap()).1, "after");
    server.stop().await;
}
