//! ClickHouse stopped for 30 s while a `pipeline` writes to it: events keep being accepted, `/readyz` reports the
//! outage, and once ClickHouse is back every accepted event lands once and the aggregates are exact.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::backends::*;
use common::services::{PrivateClickHouse, available};
use common::*;

const PART: usize = 15_000;
const OUTAGE: Duration = Duration::from_secs(30);

/// A private ClickHouse, a fresh database on it and a data directory: what a `pipeline` writing to it needs.
struct Setup {
    clickhouse: PrivateClickHouse,
    database: Database,
    data_dir: tempfile::TempDir,
}

impl Setup {
    fn start() -> Self {
        let clickhouse = PrivateClickHouse::start();
        let database = Database::unique(&clickhouse.url());
        let data_dir = tempfile::tempdir().unwrap();
        Setup {
            clickhouse,
            database,
            data_dir,
        }
    }

    /// A `pipeline` on the data directory, writing to the database.
    fn pipeline(&self) -> BinaryServer {
        BinaryServer::start(&[
            "pipeline",
            "--data-dir",
            self.data_dir.path().to_str().unwrap(),
            "--clickhouse-url",
            &self.database.url,
            "--clickhouse-database",
            &self.database.name,
        ])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thirty_second_clickhouse_outage_loses_nothing() {
    if !available(
        "clickhouse-server",
        "a_thirty_second_clickhouse_outage_loses_nothing",
    ) {
        return;
    }
    let mut setup = Setup::start();
    let pipeline = setup.pipeline();
    let events = generated_events(23, 3 * PART);
    wait_for_readiness(&pipeline, 200, Duration::from_secs(60)).await;
    post_events(&pipeline, &events[..PART]).await;

    setup.clickhouse.stop();
    let stopped = Instant::now();
    post_events(&pipeline, &events[PART..2 * PART]).await;
    let noticed = wait_for_readiness(&pipeline, 503, OUTAGE).await;
    tokio::time::sleep(OUTAGE.saturating_sub(stopped.elapsed())).await;
    setup.clickhouse.restart();
    let outage = stopped.elapsed();
    let back = wait_for_readiness(&pipeline, 200, Duration::from_secs(60)).await;

    post_events(&pipeline, &events[2 * PART..]).await;
    setup
        .database
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
    let mut setup = Setup::start();
    let mut pipeline = setup.pipeline();
    let events = generated_events(29, 2 * PART);
    wait_for_readiness(&pipeline, 200, Duration::from_secs(60)).await;
    post_events(&pipeline, &events[..PART]).await;
    setup.clickhouse.stop();
    post_events(&pipeline, &events[PART..]).await;
    wait_for_readiness(&pipeline, 503, OUTAGE).await;

    // The final commit waits 10 s and the sink's shutdown another 10 s at most.
    let took = pipeline.terminate_within(Duration::from_secs(60));
    assert!(
        took.is_some(),
        "the pipeline still ran 60 s after SIGTERM with ClickHouse down"
    );

    setup.clickhouse.restart();
    let pipeline = setup.pipeline();
    wait_for_readiness(&pipeline, 200, Duration::from_secs(60)).await;
    setup
        .database
        .wait_for_exact_aggregates((2 * PART) as u64, Duration::from_secs(180))
        .await;
    println!(
        "exited {:.1} s after SIGTERM with ClickHouse down; after the restart all {} events in ClickHouse, \
         aggregates exact",
        took.unwrap_or_default().as_secs_f64(),
        2 * PART
    );
}
