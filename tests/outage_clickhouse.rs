//! ClickHouse stopped for 30 s while a `pipeline` writes to it: events keep being accepted, `/readyz` reports the
//! outage, and once ClickHouse is back every accepted event lands once and the aggregates are exact.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::backends::*;
use common::services::{PrivateClickHouse, available};
use common::*;
use social_pipeline::generate::{Generator, GeneratorConfig};

const PART: usize = 15_000;
const OUTAGE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_second_clickhouse_outage_loses_nothing() {
    if !available(
        "clickhouse-server",
        "a_thirty_second_clickhouse_outage_loses_nothing",
    ) {
        return;
    }
    let mut clickhouse = PrivateClickHouse::start();
    let database = Database::unique(&clickhouse.url());
    let data_dir = tempfile::tempdir().unwrap();
    let pipeline = BinaryServer::start(&[
        "pipeline",
        "--data-dir",
        data_dir.path().to_str().unwrap(),
        "--clickhouse-url",
        &database.url,
        "--clickhouse-database",
        &database.name,
    ]);
    let events: Vec<Vec<u8>> = Generator::new(GeneratorConfig {
        seed: 23,
        ..GeneratorConfig::default()
    })
    .take(3 * PART)
    .map(|e| e.json)
    .collect();
    wait_for_readiness(&pipeline, 200, Duration::from_secs(60)).await;
    post_events(&pipeline, &events[..PART]).await;

    clickhouse.stop();
    let stopped = Instant::now();
    post_events(&pipeline, &events[PART..2 * PART]).await;
    let noticed = wait_for_readiness(&pipeline, 503, OUTAGE).await;
    tokio::time::sleep(OUTAGE.saturating_sub(stopped.elapsed())).await;
    clickhouse.restart();
    let outage = stopped.elapsed();
    let back = wait_for_readiness(&pipeline, 200, Duration::from_secs(60)).await;

    post_events(&pipeline, &events[2 * PART..]).await;
    database
        .wait_for_exact_aggregates((3 * PART) as u64, Duration::from_secs(180))
        .await;
    println!(
        "outage {:.1} s (noticed after {:.1} s; ready again {:.1} s after the restart); {} events, aggregates exact",
        outage.as_secs_f64(),
        noticed.as_secs_f64(),
        back.as_secs_f64(),
        3 * PART
    );
}

/// SIGTERM while ClickHouse is down: the pipeline does not wait for it for ever (it gives the last rows a grace
/// period, leaves their offsets uncommitted and exits), and a restart once ClickHouse is back writes every
/// accepted event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_clickhouse_is_down_exits_and_loses_nothing() {
    if !available(
        "clickhouse-server",
        "shutdown_while_clickhouse_is_down_exits_and_loses_nothing",
    ) {
        return;
    }
    let mut clickhouse = PrivateClickHouse::start();
    let database = Database::unique(&clickhouse.url());
    let data_dir = tempfile::tempdir().unwrap();
    let args = [
        "pipeline",
        "--data-dir",
        data_dir.path().to_str().unwrap(),
        "--clickhouse-url",
        &database.url,
        "--clickhouse-database",
        &database.name,
    ];
    let mut pipeline = BinaryServer::start(&args);
    let events: Vec<Vec<u8>> = Generator::new(GeneratorConfig {
        seed: 29,
        ..GeneratorConfig::default()
    })
    .take(2 * PART)
    .map(|e| e.json)
    .collect();
    wait_for_readiness(&pipeline, 200, Duration::from_secs(60)).await;
    post_events(&pipeline, &events[..PART]).await;
    clickhouse.stop();
    post_events(&pipeline, &events[PART..]).await;
    wait_for_readiness(&pipeline, 503, OUTAGE).await;

    // The final commit waits 10 s and the sink's shutdown another 10 s at most.
    let took = pipeline.terminate_within(Duration::from_secs(60));
    assert!(
        took.is_some(),
        "the pipeline still ran 60 s after SIGTERM with ClickHouse down"
    );

    clickhouse.restart();
    let pipeline = BinaryServer::start(&args);
    wait_for_readiness(&pipeline, 200, Duration::from_secs(60)).await;
    database
        .wait_for_exact_aggregates((2 * PART) as u64, Duration::from_secs(180))
        .await;
    println!(
        "exited {:.1} s after SIGTERM with ClickHouse down; after the restart all {} events in ClickHouse, \
         aggregates exact",
        took.unwrap_or_default().as_secs_f64(),
        2 * PART
    );
}
