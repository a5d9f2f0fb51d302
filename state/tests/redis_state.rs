//! The live-state sink and reader against a real Redis: absolute writes equal the in-memory `SnapshotStore`,
//! fencing, coalescing, and an outage of a private `redis-server`.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use social_pipeline::operator::SnapshotUpdate;
use social_pipeline::topology::SnapshotStore;
use social_schemas::derived::MessageData;
use social_state::{RedisSnapshots, RedisStateConfig, RedisStateSink, StateError, StateVersion};
use support::{PrivateRedis, cleanup, contents, free_port, raw, redis_url, unique_prefix, wait_until};
use tokio_util::sync::CancellationToken;

fn update(topic: &str, part: &str, value: Option<Value>) -> SnapshotUpdate {
    SnapshotUpdate {
        topic: topic.to_owned(),
        part: part.to_owned(),
        value: value.map(MessageData::from),
    }
}

fn v(epoch: u64, sequence: u64) -> StateVersion {
    StateVersion::new(epoch, sequence)
}

fn counters(user: &str, clicks: u64, completed: u64) -> Value {
    json!({
        "userId": user,
        "allTime": {"clicks": clicks, "flaggedClicks": 0, "conversionsStarted": completed,
                    "conversionsCompleted": completed, "rewards": 0, "rewardAmount": 0.0},
        "windows": [],
    })
}

fn progress(user: &str, program: &str, completed: u32) -> Value {
    json!({
        "userId": user, "programId": program, "completed": completed,
        "tier": if completed >= 2 { json!({"level": 1, "threshold": 2, "rewardAmount": 10.0}) } else { Value::Null },
        "nextTier": {"threshold": 5, "rewardAmount": 25.0, "remaining": 5 - completed},
        "progress": f64::from(completed) / 5.0,
    })
}

fn board(name: &str, top: &[(&str, u32)]) -> Value {
    let top: Vec<Value> = top
        .iter()
        .zip(1..)
        .map(|((user, n), position)| json!({"userId": user, "position": position, "completed": n}))
        .collect();
    json!({"boardId": name, "periodStart": "2024-05-01", "top": top})
}

fn trending(window: &str, items: &[(&str, u64)]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .zip(1..)
        .map(|((id, count), rank)| {
            json!({"contentId": id, "contentType": "project", "rank": rank, "previousRank": null,
                   "count": count, "score": *count as f64 * 0.9})
        })
        .collect();
    json!({"window": window, "items": items})
}

/// Rounds of updates touching every kind of topic, with overwrites and removals.
fn rounds() -> Vec<(StateVersion, Vec<SnapshotUpdate>)> {
    vec![
        (
            v(0, 0),
            vec![update(
                "program.p1.updates",
                "rules",
                Some(json!({"programId": "p1", "tiers": []})),
            )],
        ),
        (
            v(0, 1),
            vec![
                update("user.u1.referrals", "counters", Some(counters("u1", 3, 1))),
                update(
                    "user.u1.referrals",
                    "rewardProgress.p1",
                    Some(progress("u1", "p1", 1)),
                ),
                update("user.u2.referrals", "counters", Some(counters("u2", 1, 0))),
                update("leaderboard.daily", "top", Some(board("daily", &[("u1", 1)]))),
                update(
                    "trending.1h",
                    "items",
                    Some(trending("1h", &[("c1", 4), ("c2", 2)])),
                ),
                update(
                    "testimonials.recent",
                    "recent",
                    Some(json!([{"testimonialId": "t1"}])),
                ),
                update("user.u3.referrals", "counters", Some(counters("u3", 1, 0))),
            ],
        ),
        (
            v(1, 0),
            vec![
                update("user.u1.referrals", "counters", Some(counters("u1", 5, 2))),
                update(
                    "user.u1.referrals",
                    "rewardProgress.p1",
                    Some(progress("u1", "p1", 2)),
                ),
                update(
                    "user.u2.referrals",
                    "rewardProgress.p2",
                    Some(progress("u2", "p2", 1)),
                ),
                update(
                    "leaderboard.daily",
                    "top",
                    Some(board("daily", &[("u1", 2), ("u2", 1)])),
                ),
                update(
                    "trending.1h",
                    "items",
                    Some(trending("1h", &[("c2", 6), ("c3", 5), ("c1", 4)])),
                ),
                update("user.u3.referrals", "counters", None),
            ],
        ),
    ]
}

const TOPICS: &[&str] = &[
    "program.p1.updates",
    "user.u1.referrals",
    "user.u2.referrals",
    "user.u3.referrals",
    "leaderboard.daily",
    "trending.1h",
    "testimonials.recent",
    "user.nobody.referrals",
];

fn config(url: &str, prefix: &str) -> RedisStateConfig {
    RedisStateConfig {
        flush_interval_ms: 20,
        retry_initial_delay_ms: 20,
        retry_max_delay_ms: 200,
        response_timeout_ms: 500,
        connect_timeout_ms: 300,
        health_check_interval_ms: 50,
        ..RedisStateConfig::new(url, prefix)
    }
}

async fn start(config: RedisStateConfig) -> (RedisStateSink, tokio::task::JoinHandle<()>, CancellationToken) {
    let shutdown = CancellationToken::new();
    let (sink, writer) = RedisStateSink::start(config, shutdown.clone()).unwrap();
    (sink, writer, shutdown)
}

async fn stop(writer: tokio::task::JoinHandle<()>, shutdown: CancellationToken) {
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("the writer stops after shutdown")
        .unwrap();
}

async fn assert_same_as_store(snapshots: &RedisSnapshots, store: &SnapshotStore) {
    for topic in TOPICS {
        assert_eq!(
            snapshots.read(topic).await.unwrap(),
            store.get(topic),
            "topic {topic}"
        );
    }
}

#[tokio::test]
async fn absolute_writes_read_back_like_the_snapshot_store() {
    let url = redis_url();
    let prefix = unique_prefix();
    let (sink, writer, shutdown) = start(config(&url, &prefix)).await;
    let store = SnapshotStore::default();
    for (version, updates) in rounds() {
        store.apply(updates.clone());
        sink.apply(version, updates).await.unwrap();
    }
    sink.flush().await.unwrap();
    assert!(sink.healthy());
    assert_eq!(sink.buffered_keys(), 0);

    let snapshots = RedisSnapshots::connect(&url, &prefix).await.unwrap();
    assert_same_as_store(&snapshots, &store).await;
    assert_eq!(
        snapshots.read("user.u3.referrals").await.unwrap(),
        None,
        "every part removed"
    );

    // The derived structures.
    let mut conn = raw(&url).await;
    let board: Vec<(String, f64)> = redis::cmd("ZREVRANGE")
        .arg(format!("{prefix}lb:{{leaderboard.daily}}"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(board, vec![("u1".to_owned(), 2.0), ("u2".to_owned(), 1.0)]);
    let trend: Vec<(String, f64)> = redis::cmd("ZREVRANGE")
        .arg(format!("{prefix}trending:{{trending.1h}}"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        trend,
        vec![
            ("c2".to_owned(), 6.0),
            ("c3".to_owned(), 5.0),
            ("c1".to_owned(), 4.0)
        ]
    );
    let clicks: Option<u64> = redis::cmd("HGET")
        .arg(format!("{prefix}counters:{{user.u1.referrals}}"))
        .arg("clicks")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(clicks, Some(5));
    let reward: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(format!("{prefix}reward:{{user.u1.referrals}}:p1"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let reward: std::collections::BTreeMap<String, String> = reward.into_iter().collect();
    assert_eq!(reward.get("completed").map(String::as_str), Some("2"));
    assert_eq!(reward.get("tierLevel").map(String::as_str), Some("1"));
    assert_eq!(reward.get("nextThreshold").map(String::as_str), Some("5"));
    assert_eq!(reward.get("remaining").map(String::as_str), Some("3"));
    let u3: bool = redis::cmd("EXISTS")
        .arg(format!("{prefix}counters:{{user.u3.referrals}}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!u3, "a removed part removes its derived hash");

    // As the delivery tier sees it.
    let source: &dyn social_delivery::SnapshotSource = &snapshots;
    assert_eq!(source.snapshot("trending.1h").await, store.get("trending.1h"));

    stop(writer, shutdown).await;
    assert_eq!(
        sink.apply(v(9, 9), vec![update("a.b", "x", None)]).await,
        Err(StateError::Closed)
    );
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn older_versions_are_fenced_and_replays_are_idempotent() {
    let url = redis_url();
    let prefix = unique_prefix();
    let topic = "user.u1.referrals";
    let snapshots = RedisSnapshots::connect(&url, &prefix).await.unwrap();

    // Before the crash: the run reached (4, 7).
    let (sink, writer, shutdown) = start(config(&url, &prefix)).await;
    sink.apply(
        v(4, 2),
        vec![update(topic, "counters", Some(counters("u1", 2, 0)))],
    )
    .await
    .unwrap();
    sink.apply(
        v(4, 7),
        vec![update(topic, "counters", Some(counters("u1", 7, 1)))],
    )
    .await
    .unwrap();
    sink.flush().await.unwrap();
    stop(writer, shutdown).await;
    let before = contents(&url, &prefix).await;
    assert!(!before.is_empty());

    // After the restart: the replay from checkpoint 4 produces (4, 2) again, then (4, 7).
    let (sink, writer, shutdown) = start(config(&url, &prefix)).await;
    sink.apply(
        v(4, 2),
        vec![update(topic, "counters", Some(counters("u1", 2, 0)))],
    )
    .await
    .unwrap();
    sink.flush().await.unwrap();
    assert_eq!(
        contents(&url, &prefix).await,
        before,
        "an older write never moves state backwards"
    );
    assert_eq!(
        snapshots.read(topic).await.unwrap(),
        Some(json!({"counters": counters("u1", 7, 1)}))
    );
    sink.apply(
        v(4, 7),
        vec![update(topic, "counters", Some(counters("u1", 7, 1)))],
    )
    .await
    .unwrap();
    sink.flush().await.unwrap();
    assert_eq!(
        contents(&url, &prefix).await,
        before,
        "the same batch twice changes nothing"
    );

    // New input moves on; a removal is fenced like a write.
    sink.apply(
        v(4, 8),
        vec![update(topic, "counters", Some(counters("u1", 8, 1)))],
    )
    .await
    .unwrap();
    sink.flush().await.unwrap();
    assert_eq!(
        snapshots.read(topic).await.unwrap(),
        Some(json!({"counters": counters("u1", 8, 1)}))
    );
    stop(writer, shutdown).await;
    let (sink, writer, shutdown) = start(config(&url, &prefix)).await;
    sink.apply(v(4, 1), vec![update(topic, "counters", None)])
        .await
        .unwrap();
    sink.flush().await.unwrap();
    assert!(
        snapshots.read(topic).await.unwrap().is_some(),
        "a stale removal is fenced"
    );

    // Within one process, versions may not go backwards.
    assert!(matches!(
        sink.apply(v(3, 0), vec![update(topic, "counters", None)]).await,
        Err(StateError::VersionRegression { .. })
    ));
    stop(writer, shutdown).await;
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn updates_are_coalesced_until_the_flush() {
    let url = redis_url();
    let prefix = unique_prefix();
    let config = RedisStateConfig {
        flush_interval_ms: 60_000,
        ..config(&url, &prefix)
    };
    let (sink, writer, shutdown) = start(config).await;
    let store = SnapshotStore::default();
    for round in 1..=200u64 {
        let updates = vec![
            update(
                "user.u1.referrals",
                "counters",
                Some(counters("u1", round, round / 10)),
            ),
            update("trending.1h", "items", Some(trending("1h", &[("c1", round)]))),
        ];
        store.apply(updates.clone());
        sink.apply(v(1, round), updates).await.unwrap();
    }
    assert_eq!(sink.buffered_keys(), 2, "one value per (topic, part)");
    let snapshots = RedisSnapshots::connect(&url, &prefix).await.unwrap();
    assert_eq!(
        snapshots.read("trending.1h").await.unwrap(),
        None,
        "nothing written before the flush"
    );
    sink.flush().await.unwrap();
    assert_eq!(sink.buffered_keys(), 0);
    assert_same_as_store(&snapshots, &store).await;
    let mut conn = raw(&url).await;
    let stored: String = redis::cmd("HGET")
        .arg(format!("{prefix}state:{{trending.1h}}"))
        .arg("_v")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(StateVersion::decode(&stored), Some(v(1, 200)));
    stop(writer, shutdown).await;
    cleanup(&url, &prefix).await;
}

#[tokio::test]
async fn an_outage_is_buffered_and_caught_up() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("social-state-test-{:016x}", rand::random::<u64>()));
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = unique_prefix();
    let config = RedisStateConfig {
        max_buffered_keys: 1_000,
        ..config(&url, &prefix)
    };
    let store = SnapshotStore::default();
    let mut rounds = rounds().into_iter();

    // Redis is not up yet: the sink starts anyway, buffers, and is not ready.
    let (sink, writer, shutdown) = start(config).await;
    if let Some((version, updates)) = rounds.next() {
        store.apply(updates.clone());
        sink.apply(version, updates).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!sink.healthy());
    assert_eq!(sink.buffered_keys(), 1);

    let server = PrivateRedis::start(port, dir.clone()).await;
    tokio::time::timeout(Duration::from_secs(10), sink.flush())
        .await
        .expect("the sink writes once redis is up")
        .unwrap();
    wait_until("the sink is healthy", Duration::from_secs(5), || sink.healthy()).await;
    if let Some((version, updates)) = rounds.next() {
        store.apply(updates.clone());
        sink.apply(version, updates).await.unwrap();
    }
    sink.flush().await.unwrap();

    // Redis crashes: readiness goes false, updates keep being coalesced, the flush barrier waits.
    let (port, dir) = server.kill();
    wait_until("the breaker opens", Duration::from_secs(10), || !sink.healthy()).await;
    for (version, updates) in rounds.by_ref() {
        store.apply(updates.clone());
        sink.apply(version, updates).await.unwrap();
    }
    for sequence in 1..=50 {
        let updates = vec![update(
            "user.u2.referrals",
            "counters",
            Some(counters("u2", sequence, 1)),
        )];
        store.apply(updates.clone());
        sink.apply(v(2, sequence), updates).await.unwrap();
    }
    let barrier = tokio::spawn({
        let sink = sink.clone();
        async move { sink.flush().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!barrier.is_finished(), "the barrier waits while redis is down");
    assert!(!sink.healthy());
    assert!(sink.buffered_keys() > 0);

    // Redis returns (with its data): the sink catches up to the final values.
    let server = PrivateRedis::start(port, dir.clone()).await;
    tokio::time::timeout(Duration::from_secs(10), barrier)
        .await
        .expect("the barrier completes once redis is back")
        .unwrap()
        .unwrap();
    wait_until("the sink is healthy again", Duration::from_secs(5), || {
        sink.healthy()
    })
    .await;
    assert_eq!(sink.buffered_keys(), 0);
    let snapshots = RedisSnapshots::connect(&server.url(), &prefix).await.unwrap();
    assert_same_as_store(&snapshots, &store).await;

    stop(writer, shutdown).await;
    drop(server);
    PrivateRedis::remove_dir(&dir);
}

#[tokio::test]
async fn many_topics_are_written_in_several_pipelines() {
    let url = redis_url();
    let prefix = unique_prefix();
    let config = RedisStateConfig {
        max_topics_per_pipeline: 64,
        ..config(&url, &prefix)
    };
    let (sink, writer, shutdown) = start(config).await;
    let store = SnapshotStore::default();
    let updates: Vec<SnapshotUpdate> = (0..3_000u32)
        .flat_map(|i| {
            let user = format!("u{i}");
            let topic = format!("user.{user}.referrals");
            [
                update(&topic, "counters", Some(counters(&user, u64::from(i), 1))),
                update(&topic, "rewardProgress.p1", Some(progress(&user, "p1", i % 5))),
            ]
        })
        .collect();
    store.apply(updates.clone());
    let started = std::time::Instant::now();
    sink.apply(v(1, 1), updates).await.unwrap();
    sink.flush().await.unwrap();
    eprintln!("3,000 topics (6,000 parts) written in {:?}", started.elapsed());
    let snapshots = RedisSnapshots::connect(&url, &prefix).await.unwrap();
    for i in [0u32, 63, 64, 1_999, 2_999] {
        let topic = format!("user.u{i}.referrals");
        assert_eq!(
            snapshots.read(&topic).await.unwrap(),
            store.get(&topic),
            "topic {topic}"
        );
    }
    assert_eq!(support::keys_under(&url, &prefix).await.len(), 3 * 3_000);
    stop(writer, shutdown).await;
    cleanup(&url, &prefix).await;
}

/// Redis refusing writes for a while (here `NOREPLICAS`: `min-replicas-to-write` with no replica; `MISCONF`
/// after a failed save behaves the same) costs no update: readiness goes false, the flush barrier waits, and the
/// values land once Redis takes writes again.
#[tokio::test]
async fn writes_refused_for_a_while_are_retried_not_dropped() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("social-state-test-{:016x}", rand::random::<u64>()));
    let server = PrivateRedis::start(port, dir.clone()).await;
    let prefix = unique_prefix();
    let (sink, writer, shutdown) = start(config(&server.url(), &prefix)).await;
    let store = SnapshotStore::default();
    let mut rounds = rounds().into_iter();
    if let Some((version, updates)) = rounds.next() {
        store.apply(updates.clone());
        sink.apply(version, updates).await.unwrap();
    }
    sink.flush().await.unwrap();

    let mut admin = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let set_min_replicas = |n: u32| {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("min-replicas-to-write")
            .arg(n)
            .clone()
    };
    let _: () = set_min_replicas(1).query_async(&mut admin).await.unwrap();
    for (version, updates) in rounds.by_ref() {
        store.apply(updates.clone());
        sink.apply(version, updates).await.unwrap();
    }
    let barrier = tokio::spawn({
        let sink = sink.clone();
        async move { sink.flush().await }
    });
    wait_until("readiness goes false", Duration::from_secs(10), || {
        !sink.healthy()
    })
    .await;
    assert!(
        !barrier.is_finished(),
        "the barrier waits while redis refuses writes"
    );

    let _: () = set_min_replicas(0).query_async(&mut admin).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), barrier)
        .await
        .expect("the barrier completes once redis takes writes")
        .unwrap()
        .unwrap();
    wait_until("the sink is healthy again", Duration::from_secs(5), || {
        sink.healthy()
    })
    .await;
    let snapshots = RedisSnapshots::connect(&server.url(), &prefix).await.unwrap();
    assert_same_as_store(&snapshots, &store).await;

    stop(writer, shutdown).await;
    drop(server);
    PrivateRedis::remove_dir(&dir);
}
