//! Helpers of the tests that run the system over real backends: SSE readers, NDJSON posting, unique Redis
//! prefixes and ClickHouse databases, and the reference state the operators give for the same events.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use social_pipeline::bus::Bus;
use social_pipeline::bus::memory::{MemoryBus, MemoryBusConfig};
use social_pipeline::ingest::{IngestConfig, Ingestor};
use social_pipeline::operator::Emitter;
use social_pipeline::topology::{Topology, TopologyConfig};

use super::{BinaryServer, post, service_token};

/// Topics of every public kind with frequent messages.
pub const PUBLIC_TOPICS: &str =
    "topic=testimonials.recent&topic=leaderboard.all-time&topic=trending.1h&topic=leaderboard.daily";

/// Live-state topics and parts: topic -> part -> JSON.
pub type State = BTreeMap<String, BTreeMap<String, serde_json::Value>>;

pub fn nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

pub fn clickhouse_url() -> String {
    std::env::var("CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".to_string())
}

/// A key prefix no other run uses.
pub fn unique_prefix(test: &str) -> String {
    format!("test:{test}:{}:{}:", std::process::id(), nanos())
}

/// One SSE message as received: the resume token and the message's own id and type.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub token: String,
    pub id: String,
    pub kind: String,
    pub topic: String,
}

/// Reads `url` as an SSE stream into `sink` until the task is aborted. Like EventSource, it reconnects with the
/// last id when the server ends the stream or cannot be reached (a node restarting, a client cut off as slow), and
/// also after a `503` (a backend outage).
pub fn read_stream(
    url: String,
    last_event_id: Option<String>,
    sink: Arc<Mutex<Vec<Received>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut token = last_event_id;
        loop {
            let mut request = reqwest::Client::new().get(&url);
            if let Some(id) = &token {
                request = request.header("last-event-id", id);
            }
            let Ok(response) = request.send().await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            // Unavailable (a backend outage): retry, as a resuming client does; anything else is a failure.
            if response.status().as_u16() == 503 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            assert_eq!(response.status().as_u16(), 200, "{url}");
            let mut bytes = response.bytes_stream();
            let mut frames = super::SseFrames::new(token.take());
            while let Some(Ok(chunk)) = bytes.next().await {
                for (token, message) in frames.feed(&chunk) {
                    sink.lock().unwrap().push(Received {
                        token,
                        id: message["id"].as_str().unwrap_or_default().to_string(),
                        kind: message["type"].as_str().unwrap_or_default().to_string(),
                        topic: message["topic"].as_str().unwrap_or_default().to_string(),
                    });
                }
            }
            token = frames.token;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// The first `count` events of the generator's workload with `seed`, as JSON.
pub fn generated_events(seed: u64, count: usize) -> Vec<Vec<u8>> {
    social_pipeline::generate::Generator::new(social_pipeline::generate::GeneratorConfig {
        seed,
        ..social_pipeline::generate::GeneratorConfig::default()
    })
    .take(count)
    .map(|e| e.json)
    .collect()
}

/// NDJSON bodies of up to 1,000 events.
pub fn ndjson_chunks(events: &[Vec<u8>]) -> Vec<String> {
    events
        .chunks(1000)
        .map(|chunk| {
            chunk
                .iter()
                .map(|json| format!("{}\n", String::from_utf8_lossy(json)))
                .collect()
        })
        .collect()
}

pub async fn post_events(pipeline: &BinaryServer, events: &[Vec<u8>]) {
    for body in ndjson_chunks(events) {
        let (status, reply) = post(
            &pipeline.url("/v1/events"),
            Some(&service_token()),
            "application/x-ndjson",
            body,
        )
        .await;
        assert_eq!(status, 202, "{reply}");
    }
}

/// Waits until `received` has not grown for `quiet`.
pub async fn wait_until_quiet(received: &Arc<Mutex<Vec<Received>>>, quiet: Duration) {
    let mut last = usize::MAX;
    let mut since = Instant::now();
    while since.elapsed() < quiet {
        let now = received.lock().unwrap().len();
        if now != last {
            last = now;
            since = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The live state the operators reach for `events` ingested in chunks of 1,000 (as [`post_events`] does) into
/// `partitions` partitions, once every event is read and the idle flush has released what was buffered.
pub async fn reference_state(events: &[Vec<u8>], partitions: u32) -> State {
    state_after_parts(events, partitions, &[]).await.0
}

/// [`reference_state`] with the events ingested in parts ending at `cuts` (and at the end), each read until two
/// rounds find nothing (the idle flush releasing what it left buffered); with the count of late events.
pub async fn state_after_parts(events: &[Vec<u8>], partitions: u32, cuts: &[usize]) -> (State, u64) {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new(MemoryBusConfig::default()));
    let ingestor = Ingestor::open(
        bus.clone(),
        IngestConfig {
            input_partitions: partitions,
            ..IngestConfig::default()
        },
    )
    .await
    .unwrap();
    let config = TopologyConfig {
        idle_flush_ms: Some(0),
        partition_idle_ms: 0,
        ..TopologyConfig::default()
    };
    let mut topology = Topology::new(config, bus, None).unwrap();
    let snapshots = topology.snapshots();
    let mut out = Emitter::default();
    topology.start(&mut out);
    let mut from = 0;
    for &to in cuts.iter().chain(std::iter::once(&events.len())) {
        for chunk in events[from..to].chunks(1000) {
            let items: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            let report = ingestor
                .ingest(&items, "application/cloudevents+json")
                .await
                .unwrap();
            assert!(report.rejected.is_empty(), "{:?}", report.rejected.first());
        }
        from = to;
        let mut quiet_rounds = 0;
        while quiet_rounds < 2 {
            let outcome = topology.round(&mut out).await.unwrap();
            snapshots.apply(out.snapshots.drain(..));
            out.outputs.clear();
            quiet_rounds = if outcome.records == 0 { quiet_rounds + 1 } else { 0 };
        }
    }
    (parsed(snapshots.export()), topology.engine().stats().late)
}

/// Every `state:{T}` hash under `prefix`, parsed (the `_v` fence left out).
pub async fn redis_state(url: &str, prefix: &str) -> State {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pattern = format!("{prefix}state:*");
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let mut state = State::new();
    for key in keys {
        let fields: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let topic = key
            .trim_start_matches(&format!("{prefix}state:"))
            .trim_start_matches('{')
            .trim_end_matches('}')
            .to_string();
        let parts: BTreeMap<String, serde_json::Value> = fields
            .into_iter()
            .filter(|(field, _)| field != "_v")
            .map(|(field, json)| (field, serde_json::from_str(&json).unwrap()))
            .collect();
        if !parts.is_empty() {
            state.insert(topic, parts);
        }
    }
    state
}

/// A hash under `key` as a map.
pub async fn redis_hash(url: &str, key: &str) -> BTreeMap<String, String> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("HGETALL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// A sorted set under `key`, member -> score.
pub async fn redis_sorted_set(url: &str, key: &str) -> BTreeMap<String, f64> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pairs: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .unwrap();
    pairs.into_iter().collect()
}

/// A readable account of how two states differ (empty when equal).
pub fn state_differences(expected: &State, got: &State) -> Vec<String> {
    let mut differences = Vec::new();
    for (topic, parts) in expected {
        match got.get(topic) {
            None => differences.push(format!("{topic}: missing")),
            Some(got_parts) if got_parts != parts => {
                for (part, value) in parts {
                    if got_parts.get(part) != Some(value) {
                        differences.push(format!(
                            "{topic} {part}: expected {value}, got {:?}",
                            got_parts.get(part)
                        ));
                    }
                }
                for part in got_parts.keys().filter(|p| !parts.contains_key(*p)) {
                    differences.push(format!("{topic} {part}: not expected"));
                }
            }
            Some(_) => {}
        }
    }
    for topic in got.keys().filter(|t| !expected.contains_key(*t)) {
        differences.push(format!("{topic}: not expected"));
    }
    differences
}

/// Deletes every key under `prefix`.
pub async fn redis_cleanup(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let mut cursor: u64 = 0;
    loop {
        let Ok((next, keys)): Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
        else {
            return;
        };
        if !keys.is_empty() {
            let _: Result<u64, _> = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
        }
        cursor = next;
        if cursor == 0 {
            return;
        }
    }
}

/// A ClickHouse database no other run uses, dropped by [`Database::drop_it`].
pub struct Database {
    pub name: String,
    pub url: String,
    pub client: clickhouse::Client,
}

impl Database {
    pub fn unique(url: &str) -> Self {
        let name = format!("e2e_{}_{}", std::process::id(), nanos() % 1_000_000_000_000);
        let client = clickhouse::Client::default().with_url(url).with_validation(false);
        Self {
            client: client.clone().with_database(&name),
            url: url.to_string(),
            name,
        }
    }

    pub async fn count(&self, sql: &str) -> u64 {
        self.client.query(sql).fetch_one::<u64>().await.unwrap_or(0)
    }

    /// Waits until `raw_events` holds `expected` distinct events and every per-minute aggregate equals its
    /// recomputation from them.
    pub async fn wait_for_exact_aggregates(&self, expected: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let raw = self.count("SELECT toUInt64(count()) FROM raw_events FINAL").await;
            if raw == expected {
                break;
            }
            assert!(
                raw <= expected,
                "raw_events holds {raw} events, more than the {expected} accepted"
            );
            assert!(
                Instant::now() < deadline,
                "raw_events holds {raw} of {expected} events"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        loop {
            let last = match social_analytics::verify_aggregates(&self.client).await {
                Ok(Ok(counts)) if counts.funnel_rows > 0 && counts.shares_rows > 0 => return,
                Ok(Ok(counts)) => format!("{counts:?}"),
                Ok(Err(mismatches)) => {
                    format!("{} mismatches, e.g. {:?}", mismatches.len(), mismatches.first())
                }
                Err(error) => error.to_string(),
            };
            assert!(Instant::now() < deadline, "aggregates never matched: {last}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    pub async fn drop_it(&self) {
        let admin = clickhouse::Client::default()
            .with_url(&self.url)
            .with_validation(false);
        let _ = admin
            .query(&format!("DROP DATABASE IF EXISTS {}", self.name))
            .execute()
            .await;
    }
}

/// The live state in the newest operator checkpoint under `data_dir` (the pipeline must have stopped).
pub fn checkpointed_state(data_dir: &std::path::Path) -> State {
    let store = social_pipeline::checkpoint::CheckpointStore::open(data_dir.join("operators"), 3).unwrap();
    let checkpoint = store.latest().unwrap().expect("a checkpoint");
    parsed(checkpoint.snapshots)
}

/// Snapshot parts (as the operators keep them) parsed into JSON.
fn parsed(snapshots: BTreeMap<String, BTreeMap<String, social_schemas::derived::MessageData>>) -> State {
    snapshots
        .into_iter()
        .map(|(topic, parts)| {
            let parts = parts
                .into_iter()
                .map(|(part, value)| (part, value.to_value()))
                .collect();
            (topic, parts)
        })
        .collect()
}

/// The part of the live state that does not depend on how the input was batched, as long as no event came later
/// than the watermark: referral counters, reward progress, leaderboards and trending rankings, without the
/// `revision` counters of early window results and the `previousRank` of trending items (both count publications,
/// and a restart replays from a checkpoint in other batches).
pub fn order_independent(state: &State) -> State {
    fn strip(value: &serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => map
                .iter()
                .filter(|(key, _)| key.as_str() != "revision" && key.as_str() != "previousRank")
                .map(|(key, value)| (key.clone(), strip(value)))
                .collect(),
            serde_json::Value::Array(items) => items.iter().map(strip).collect(),
            other => other.clone(),
        }
    }
    state
        .iter()
        .filter(|(topic, _)| {
            topic.starts_with("leaderboard.")
                || topic.starts_with("trending.")
                || (topic.starts_with("user.") && topic.ends_with(".referrals"))
        })
        .map(|(topic, parts)| {
            let parts = parts
                .iter()
                .map(|(part, value)| (part.clone(), strip(value)))
                .collect();
            (topic.clone(), parts)
        })
        .collect()
}

/// Waits until Redis holds, under `prefix`, the order-independent part of `expected` (see [`order_independent`]).
pub async fn wait_for_redis_state(url: &str, prefix: &str, expected: &State, timeout: Duration) {
    wait_for_redis_state_on(&[url.to_owned()], prefix, expected, timeout).await;
}

/// [`wait_for_redis_state`] over the union of what several servers hold (the nodes of a cluster).
pub async fn wait_for_redis_state_on(urls: &[String], prefix: &str, expected: &State, timeout: Duration) {
    let expected = order_independent(expected);
    let deadline = Instant::now() + timeout;
    loop {
        let mut got = State::new();
        for url in urls {
            got.extend(redis_state(url, prefix).await);
        }
        let got = order_independent(&got);
        let differences = state_differences(&expected, &got);
        if differences.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Redis state differs from the reference in {} places, e.g. {:?}",
            differences.len(),
            &differences[..differences.len().min(5)]
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// After the pipeline stopped: Redis holds exactly the live state of its final checkpoint, every topic and part.
pub async fn assert_redis_mirrors_checkpoint(url: &str, prefix: &str, data_dir: &std::path::Path) {
    let checkpointed = checkpointed_state(data_dir);
    let got = redis_state(url, prefix).await;
    let differences = state_differences(&checkpointed, &got);
    assert!(
        differences.is_empty(),
        "Redis differs from the final checkpoint in {} places, e.g. {:?}",
        differences.len(),
        &differences[..differences.len().min(5)]
    );
}

/// Waits until `GET /readyz` of `server` answers `status` (200 or 503), panicking after `timeout`.
pub async fn wait_for_readiness(server: &BinaryServer, status: u16, timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (got, _) = super::get_json(&server.url("/readyz"), None).await;
        if got == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "/readyz never answered {status} (last {got})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The public SSE messages of the derived log under `data_dir` (topic -> ids in order); the pipeline must have
/// stopped.
pub async fn derived_public_messages(data_dir: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    use social_pipeline::bus::durable::{DurableBus, DurableBusConfig};
    let public: std::collections::BTreeSet<&str> = PUBLIC_TOPICS
        .split('&')
        .filter_map(|pair| pair.strip_prefix("topic="))
        .collect();
    let bus = DurableBus::open(DurableBusConfig::new(data_dir)).await.unwrap();
    let end = bus.end_offset("social-derived", 0).await.unwrap();
    let mut by_topic: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut next = 0;
    while next < end {
        let records = bus
            .fetch("social-derived", 0, next, 5000, Duration::ZERO)
            .await
            .unwrap();
        next = records.last().unwrap().offset + 1;
        for record in records {
            let event: serde_json::Value = serde_json::from_slice(&record.value).unwrap();
            let topic = event["subject"].as_str().unwrap();
            let to_sse = event["destination"].as_str().unwrap().contains("sse");
            if to_sse && public.contains(topic) {
                by_topic
                    .entry(topic.to_string())
                    .or_default()
                    .push(event["id"].as_str().unwrap().to_string());
            }
        }
    }
    bus.close().await.unwrap();
    by_topic
}

/// `received` holds every public message of the derived log under `data_dir` exactly once, each topic in order.
pub async fn assert_delivered_exactly_once(received: &[Received], data_dir: &std::path::Path) {
    let resets: Vec<&Received> = received.iter().filter(|r| r.kind != "EVENT").collect();
    assert!(resets.is_empty(), "no reset expected: {:?}", resets.first());
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in received {
        got.entry(r.topic.clone()).or_default().push(r.id.clone());
    }
    let logged = derived_public_messages(data_dir).await;
    assert!(!logged.is_empty(), "the derived log holds public messages");
    for (topic, ids) in &logged {
        let delivered = got.get(topic).cloned().unwrap_or_default();
        assert!(
            delivered == *ids,
            "{topic}: delivered {} messages, the derived log holds {}; first difference at {:?}",
            delivered.len(),
            ids.len(),
            delivered.iter().zip(ids).position(|(a, b)| a != b)
        );
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        logged.keys().collect::<Vec<_>>(),
        "topics delivered"
    );
}

/// A client that received `before` (its last message's token is the resume token) and then resumed got, per
/// topic and in order, exactly the messages `reference` (a client connected throughout) received on that topic
/// after the last one `before` holds of it, and nothing else. Per topic, not by the reference's order across
/// topics: two nodes may interleave topics differently (each topic is its own stream), so a message the
/// reference got after `before`'s last one may still be one `before` had.
pub fn assert_resumed_exactly(reference: &[Received], before: &[Received], resumed: &[Received]) {
    assert!(
        resumed.iter().all(|r| r.kind == "EVENT"),
        "no reset expected: {:?}",
        resumed.iter().find(|r| r.kind != "EVENT")
    );
    let last = before
        .last()
        .expect("the client received something before it left");
    let position = reference
        .iter()
        .position(|r| r.id == last.id)
        .expect("the reference saw the last message");
    let by_topic = |messages: &[Received]| {
        let mut topics: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in messages {
            topics.entry(m.topic.clone()).or_default().push(m.id.clone());
        }
        topics
    };
    let seen = by_topic(before);
    // A topic the client had nothing of: what the reference got after the client's last message.
    let mut missed = by_topic(&reference[position + 1..]);
    for (topic, ids) in by_topic(reference) {
        if let Some(last_seen) = seen.get(&topic).and_then(|ids| ids.last()) {
            let after = ids
                .iter()
                .position(|id| id == last_seen)
                .expect("the reference saw it");
            let rest = ids[after + 1..].to_vec();
            if rest.is_empty() {
                missed.remove(&topic);
            } else {
                missed.insert(topic, rest);
            }
        }
    }
    let got = by_topic(resumed);
    assert!(!missed.is_empty(), "nothing was published while disconnected");
    for (topic, ids) in &missed {
        let resumed_ids = got.get(topic).cloned().unwrap_or_default();
        assert!(
            resumed_ids == *ids,
            "{topic}: resumed with {} messages, missed {}; first difference at {:?}",
            resumed_ids.len(),
            ids.len(),
            resumed_ids.iter().zip(ids).position(|(a, b)| a != b),
        );
    }
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        missed.keys().collect::<Vec<_>>(),
        "topics resumed"
    );
}
