//! Redis stopped for 30 s while a `pipeline` and a `delivery` node run on it: events keep being accepted,
//! `/readyz` of both reports the outage, nothing accepted is lost, and once Redis is back the live state converges
//! on the operators' state and the client connected throughout gets every public message once, in order.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::backends::*;
use common::services::{PrivateRedis, available};
use common::*;
use social_pipeline::generate::{Generator, GeneratorConfig};

const PART: usize = 12_000;
const OUTAGE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_second_redis_outage_loses_nothing() {
    if !available("redis-server", "a_thirty_second_redis_outage_loses_nothing") {
        return;
    }
    let mut redis = PrivateRedis::start();
    let url = redis.url();
    let prefix = unique_prefix("outage");
    let data_dir = tempfile::tempdir().unwrap();
    let mut pipeline = BinaryServer::start(&[
        "pipeline",
        "--data-dir",
        data_dir.path().to_str().unwrap(),
        "--partitions",
        "4",
        // Longer than the test's short pauses, shorter than the outage: the flush while Redis is down moves the
        // watermark past every event read, so the first events of the next part are late (the state must not
        // depend on it).
        "--idle-flush-ms",
        "10000",
        "--redis-url",
        &url,
        "--redis-prefix",
        &prefix,
    ]);
    let node = BinaryServer::start(&["delivery", "--redis-url", &url, "--redis-prefix", &prefix]);
    let events: Vec<Vec<u8>> = Generator::new(GeneratorConfig {
        seed: 21,
        ..GeneratorConfig::default()
    })
    .take(3 * PART)
    .map(|e| e.json)
    .collect();
    let expected_state = reference_state(&events, 4).await;
    wait_for_readiness(&pipeline, 200, Duration::from_secs(30)).await;
    wait_for_readiness(&node, 200, Duration::from_secs(30)).await;
    let received = Arc::new(Mutex::new(Vec::new()));
    let client = read_stream(
        node.url(&format!("/v1/stream?{PUBLIC_TOPICS}")),
        None,
        received.clone(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    post_events(&pipeline, &events[..PART]).await;
    wait_until_quiet(&received, Duration::from_secs(3)).await;

    redis.stop();
    let stopped = Instant::now();
    // Ingest does not depend on Redis: events are still accepted (and kept on the durable bus).
    post_events(&pipeline, &events[PART..2 * PART]).await;
    let pipeline_noticed = wait_for_readiness(&pipeline, 503, OUTAGE).await;
    let node_noticed = wait_for_readiness(&node, 503, OUTAGE).await;
    tokio::time::sleep(OUTAGE.saturating_sub(stopped.elapsed())).await;
    redis.restart();
    let outage = stopped.elapsed();

    let pipeline_back = wait_for_readiness(&pipeline, 200, Duration::from_secs(60)).await;
    wait_for_readiness(&node, 200, Duration::from_secs(60)).await;
    post_events(&pipeline, &events[2 * PART..]).await;
    wait_for_redis_state(&url, &prefix, &expected_state, Duration::from_secs(120)).await;
    wait_until_quiet(&received, Duration::from_secs(5)).await;
    client.abort();
    pipeline.terminate();
    assert_redis_mirrors_checkpoint(&url, &prefix, data_dir.path()).await;
    let got: Vec<Received> = received.lock().unwrap().clone();
    assert_delivered_exactly_once(&got, data_dir.path()).await;
    println!(
        "outage {:.1} s (noticed by the pipeline after {:.1} s, by the node after {:.1} s; ready again {:.1} s after \
         the restart); {} public messages delivered once",
        outage.as_secs_f64(),
        pipeline_noticed.as_secs_f64(),
        node_noticed.as_secs_f64(),
        pipeline_back.as_secs_f64(),
        got.len()
    );
}
