//! The deployment of separate processes over real backends: one `pipeline` (HTTP ingest, durable embedded bus,
//! Redis live state, ClickHouse) and two `delivery` nodes sharing Redis, fed 200,000 generated events:
//! - ClickHouse holds every accepted event once, and every per-minute aggregate equals its SQL recomputation;
//! - Redis holds the referral counters, reward progress and leaderboards the operators reach for the same events
//!   in process, its all-time counters and leaderboard equal a naive count over the events, and after a graceful
//!   stop it holds exactly the live state of the pipeline's final checkpoint;
//! - a client that read on node 1, disconnected, and resumed on node 2 gets exactly the messages it missed.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::backends::*;
use common::*;
use social_schemas::{Limits, Payload, parse_event};

const EVENTS: usize = 200_000;
const PARTITIONS: u32 = 4;
/// Clients connect after this many events ...
const CLIENTS_AT: usize = 180_000;
/// ... and node 1's client disconnects after this many.
const RESUME_AT: usize = 190_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_thousand_events_through_every_backend() {
    let redis = redis_url();
    let prefix = unique_prefix("e2e");
    let database = Database::unique(&clickhouse_url());
    let data_dir = tempfile::tempdir().unwrap();
    let partitions = PARTITIONS.to_string();
    let mut pipeline = BinaryServer::start(&[
        "pipeline",
        "--data-dir",
        data_dir.path().to_str().unwrap(),
        "--partitions",
        &partitions,
        // Longer than the test's own pauses: the idle flush releases buffered events only at the end.
        "--idle-flush-ms",
        "10000",
        "--redis-url",
        &redis,
        "--redis-prefix",
        &prefix,
        "--clickhouse-url",
        &database.url,
        "--clickhouse-database",
        &database.name,
    ]);
    let delivery = [
        "delivery",
        "--redis-url",
        redis.as_str(),
        "--redis-prefix",
        prefix.as_str(),
    ];
    let node1 = BinaryServer::start(&delivery);
    let node2 = BinaryServer::start(&delivery);

    let events = generated_events(3, EVENTS);
    let expected_state = reference_state(&events, PARTITIONS).await;

    // Most of the workload first; then a reference client stays on node 2 until the end while another reads
    // part of the rest on node 1 (the part it misses stays within every topic's history).
    let started = Instant::now();
    post_events(&pipeline, &events[..CLIENTS_AT]).await;
    let reference = Arc::new(Mutex::new(Vec::new()));
    let reference_task = read_stream(
        node2.url(&format!("/v1/stream?{PUBLIC_TOPICS}")),
        None,
        reference.clone(),
    );
    let first = Arc::new(Mutex::new(Vec::new()));
    let first_task = read_stream(
        node1.url(&format!("/v1/stream?{PUBLIC_TOPICS}")),
        None,
        first.clone(),
    );
    post_events(&pipeline, &events[CLIENTS_AT..RESUME_AT]).await;
    // The operators catch up first, so that what node 1's client misses is what follows RESUME_AT.
    wait_until_quiet(&reference, Duration::from_secs(4)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while first.lock().unwrap().len() < 5 {
        assert!(Instant::now() < deadline, "node 1 delivered nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first_task.abort();
    let _ = first_task.await;
    let before: Vec<Received> = first.lock().unwrap().clone();
    let last = before.last().unwrap().clone();

    // Missed while disconnected, then resumed on node 2.
    post_events(&pipeline, &events[RESUME_AT..]).await;
    let posting = started.elapsed();
    wait_until_quiet(&reference, Duration::from_secs(5)).await;
    let resumed = Arc::new(Mutex::new(Vec::new()));
    let resumed_task = read_stream(
        node2.url(&format!("/v1/stream?{PUBLIC_TOPICS}")),
        Some(last.token.clone()),
        resumed.clone(),
    );
    wait_until_quiet(&resumed, Duration::from_secs(4)).await;
    resumed_task.abort();
    reference_task.abort();

    let reference: Vec<Received> = reference.lock().unwrap().clone();
    let resumed: Vec<Received> = resumed.lock().unwrap().clone();
    assert_resumed_exactly(&reference, &before, &resumed);

    // Redis: the operators' state, exactly.
    wait_for_redis_state(&redis, &prefix, &expected_state, Duration::from_secs(120)).await;
    check_naive_counts(&redis, &prefix, &events).await;

    // ClickHouse: every event once, exact aggregates.
    database
        .wait_for_exact_aggregates(EVENTS as u64, Duration::from_secs(180))
        .await;
    for server in [&pipeline, &node1, &node2] {
        let (status, body) = get_json(&server.url("/readyz"), None).await;
        assert_eq!(status, 200, "{body}");
    }
    // A graceful stop writes a final checkpoint after Redis holds everything: both hold the same state.
    pipeline.terminate();
    assert_redis_mirrors_checkpoint(&redis, &prefix, data_dir.path()).await;
    println!(
        "posted {} events in {:.1} s; {} topics of live state; {} public messages; resumed with {}",
        EVENTS,
        posting.as_secs_f64(),
        expected_state.len(),
        reference.len(),
        resumed.len()
    );
    drop((pipeline, node1, node2));
    redis_cleanup(&redis, &prefix).await;
    database.drop_it().await;
}

/// The all-time counters and leaderboard in Redis against a naive count over the raw events: completed
/// conversions per referrer and rewards per user.
async fn check_naive_counts(redis: &str, prefix: &str, events: &[Vec<u8>]) {
    let limits = Limits::default();
    let mut completed: BTreeMap<String, u64> = BTreeMap::new();
    let mut rewards: BTreeMap<String, u64> = BTreeMap::new();
    for raw in events {
        match parse_event(raw, &limits).unwrap().payload {
            Payload::ConversionCompleted(p) => *completed.entry(p.referrer_id).or_default() += 1,
            Payload::RewardEarned(p) => *rewards.entry(p.user_id).or_default() += 1,
            _ => {}
        }
    }
    assert!(
        !completed.is_empty() && !rewards.is_empty(),
        "the workload has conversions and rewards"
    );
    for (user, count) in &completed {
        let hash = redis_hash(redis, &format!("{prefix}counters:{{user.{user}.referrals}}")).await;
        assert_eq!(
            hash.get("conversionsCompleted"),
            Some(&count.to_string()),
            "completed of {user}"
        );
    }
    for (user, count) in &rewards {
        let hash = redis_hash(redis, &format!("{prefix}counters:{{user.{user}.referrals}}")).await;
        assert_eq!(hash.get("rewards"), Some(&count.to_string()), "rewards of {user}");
    }
    let board = redis_sorted_set(redis, &format!("{prefix}lb:{{leaderboard.all-time}}")).await;
    assert!(!board.is_empty(), "the all-time leaderboard is empty");
    for (user, score) in &board {
        assert_eq!(
            Some(*score as u64),
            completed.get(user).copied(),
            "all-time leaderboard score of {user}"
        );
    }
}
