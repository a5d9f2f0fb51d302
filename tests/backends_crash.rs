//! SIGKILL of a `pipeline` running over Redis and ClickHouse, mid-stream, and a restart on the same data: the final
//! Redis counters, reward progress and leaderboards equal the operators' state for the same events in process (as
//! an uninterrupted run), Redis mirrors the final checkpoint exactly, ClickHouse counts no row twice, and a client
//! connected to a `delivery` node throughout receives every public message of the derived log exactly once.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::backends::*;
use common::*;

const EVENTS: usize = 100_000;
const PARTITIONS: u32 = 4;

fn start_pipeline(dir: &Path, redis: &str, prefix: &str, database: &Database) -> BinaryServer {
    BinaryServer::start(&[
        "pipeline",
        "--data-dir",
        dir.to_str().unwrap(),
        "--partitions",
        &PARTITIONS.to_string(),
        "--checkpoint-interval-ms",
        "300",
        // Longer than the test's own pauses: the idle flush releases buffered events only at the end.
        "--idle-flush-ms",
        "10000",
        "--redis-url",
        redis,
        "--redis-prefix",
        prefix,
        "--clickhouse-url",
        &database.url,
        "--clickhouse-database",
        &database.name,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_pipeline_leaves_backends_as_an_uninterrupted_run() {
    let redis = redis_url();
    let prefix = unique_prefix("crash");
    let database = Database::unique(&clickhouse_url());
    let data_dir = tempfile::tempdir().unwrap();
    let node = BinaryServer::start(&["delivery", "--redis-url", &redis, "--redis-prefix", &prefix]);
    let mut pipeline = start_pipeline(data_dir.path(), &redis, &prefix, &database);

    let events = generated_events(11, EVENTS);
    let expected_state = reference_state(&events, PARTITIONS).await;

    let received = Arc::new(Mutex::new(Vec::new()));
    let client = read_stream(
        node.url(&format!("/v1/stream?{PUBLIC_TOPICS}")),
        None,
        received.clone(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Kill while the operators are busy with what was accepted (checkpoints every 300 ms, so some of the state
    // written to Redis and some published messages come after the last checkpoint).
    let half = EVENTS / 2;
    post_events(&pipeline, &events[..half]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while received.lock().unwrap().len() < 50 {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing delivered before the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pipeline.kill9();
    let before_restart = received.lock().unwrap().len();

    let pipeline = start_pipeline(data_dir.path(), &redis, &prefix, &database);
    post_events(&pipeline, &events[half..]).await;

    wait_for_redis_state(&redis, &prefix, &expected_state, Duration::from_secs(120)).await;
    database
        .wait_for_exact_aggregates(EVENTS as u64, Duration::from_secs(180))
        .await;
    wait_until_quiet(&received, Duration::from_secs(5)).await;
    client.abort();
    let mut pipeline = pipeline;
    pipeline.terminate();
    assert_redis_mirrors_checkpoint(&redis, &prefix, data_dir.path()).await;

    let got: Vec<Received> = received.lock().unwrap().clone();
    let before_restart = before_restart.min(got.len());
    assert_delivered_exactly_once(&got, data_dir.path()).await;
    println!(
        "{} public messages delivered once ({} before the kill); {} topics of live state equal",
        got.len(),
        before_restart,
        expected_state.len()
    );
    drop(node);
    redis_cleanup(&redis, &prefix).await;
    database.drop_it().await;
}
