//! Helpers of the integration tests: a private database on the real server, generated events.
#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::TcpStream;

use social_analytics::ClickHouseConfig;
use social_pipeline::generate::{Generator, GeneratorConfig};
use social_schemas::{Event, Limits, parse_event};

/// `CLICKHOUSE_URL`, default `http://127.0.0.1:8123`.
pub fn clickhouse_url() -> String {
    std::env::var("CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".to_owned())
}

/// A database `test_<random>` dropped when this value is dropped (even after a failed assertion).
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new() -> TestDb {
        TestDb {
            name: format!("test_{:016x}", rand::random::<u64>()),
            url: clickhouse_url(),
        }
    }

    /// Sink configuration for this database, with short intervals for tests.
    pub fn config(&self) -> ClickHouseConfig {
        ClickHouseConfig {
            batch_rows: 2_000,
            buffer_rows: 20_000,
            flush_interval_ms: 100,
            aggregate_interval_ms: 200,
            retry_initial_backoff_ms: 20,
            retry_max_backoff_ms: 200,
            ..ClickHouseConfig::new(self.url.clone(), self.name.clone())
        }
    }

    pub fn client(&self) -> clickhouse::Client {
        clickhouse::Client::default()
            .with_url(&self.url)
            .with_database(&self.name)
            .with_validation(false)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Plain HTTP so that it also works while unwinding, outside any runtime.
        let Some(hostport) = self.url.strip_prefix("http://") else {
            return;
        };
        let hostport = hostport.trim_end_matches('/');
        let Ok(mut stream) = TcpStream::connect(hostport) else {
            return;
        };
        let body = format!("DROP DATABASE IF EXISTS {}", self.name);
        let request = format!(
            "POST / HTTP/1.0\r\nHost: {hostport}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(request.as_bytes());
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    }
}

/// `n` generated, parsed events of `seed`.
pub fn generated_events(seed: u64, n: usize) -> Vec<Event> {
    let limits = Limits::default();
    Generator::new(GeneratorConfig::with_seed(seed))
        .take(n)
        .map(|g| match parse_event(&g.json, &limits) {
            Ok(e) => e,
            Err(e) => panic!("generated event does not parse: {e}"),
        })
        .collect()
}
