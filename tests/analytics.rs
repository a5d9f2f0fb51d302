//! The running system writes to a real ClickHouse server: every accepted event lands in `raw_events` once, and the
//! per-minute aggregates equal a recomputation from the raw events in SQL.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use social_pipeline::generate::{Generator, GeneratorConfig};

fn clickhouse_url() -> String {
    std::env::var("CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".to_string())
}

struct Database {
    name: String,
    client: clickhouse::Client,
}

impl Database {
    fn unique() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("e2e_{}_{}", std::process::id(), nanos % 1_000_000_000);
        let client = clickhouse::Client::default()
            .with_url(clickhouse_url())
            .with_validation(false);
        Self {
            client: client.clone().with_database(&name),
            name,
        }
    }

    async fn count(&self, sql: &str) -> u64 {
        self.client.query(sql).fetch_one::<u64>().await.unwrap_or(0)
    }

    async fn drop_it(&self) {
        let admin = clickhouse::Client::default()
            .with_url(clickhouse_url())
            .with_validation(false);
        let _ = admin
            .query(&format!("DROP DATABASE IF EXISTS {}", self.name))
            .execute()
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_events_and_exact_aggregates_reach_clickhouse() {
    let database = Database::unique();
    let server = BinaryServer::start(&[
        "run",
        "--clickhouse-url",
        &clickhouse_url(),
        "--clickhouse-database",
        &database.name,
    ]);
    let events: Vec<Vec<u8>> = Generator::new(GeneratorConfig {
        seed: 5,
        ..GeneratorConfig::default()
    })
    .take(20_000)
    .map(|event| event.json)
    .collect();
    for chunk in events.chunks(1000) {
        let body: String = chunk
            .iter()
            .map(|json| format!("{}\n", String::from_utf8_lossy(json)))
            .collect();
        // Twice: duplicates must not be counted again.
        for _ in 0..2 {
            let (status, reply) = post(
                &server.url("/v1/events"),
                Some(&service_token()),
                "application/x-ndjson",
                body.clone(),
            )
            .await;
            assert_eq!(status, 202, "{reply}");
        }
    }

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let raw = database
            .count("SELECT toUInt64(count()) FROM raw_events FINAL")
            .await;
        if raw == 20_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "raw_events holds {raw} of 20000 events"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, _) = get_json(&server.url("/readyz"), None).await;
    assert_eq!(status, 200);

    // Aggregates are recomputed every few seconds: wait until they match the raw events.
    loop {
        let last = match social_analytics::verify_aggregates(&database.client).await {
            Ok(Ok(counts)) if counts.funnel_rows > 0 && counts.shares_rows > 0 => break,
            Ok(Ok(counts)) => format!("{counts:?}"),
            Ok(Err(mismatches)) => format!("{} mismatches, e.g. {:?}", mismatches.len(), mismatches.first()),
            Err(error) => error.to_string(),
        };
        assert!(Instant::now() < deadline, "aggregates never matched: {last}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    drop(server);
    database.drop_it().await;
}
