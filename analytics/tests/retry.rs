//! Outages: the sink retries with backoff while the server is unreachable, applies backpressure when its buffer is
//! full, and loses nothing once the server is back.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{TestDb, generated_events};
use social_analytics::{AnalyticsError, ClickHouseConfig, ClickHouseSink};
use tokio::net::{TcpListener, TcpStream};

/// A loopback port with nothing listening on it.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

fn fast_retries(config: ClickHouseConfig) -> ClickHouseConfig {
    ClickHouseConfig {
        retry_initial_backoff_ms: 10,
        retry_max_backoff_ms: 50,
        flush_interval_ms: 20,
        request_timeout_ms: 2_000,
        ..config
    }
}

#[tokio::test]
async fn health_fails_retryably_when_the_server_is_down() {
    let addr = closed_port().await;
    let sink = ClickHouseSink::start(ClickHouseConfig::new(format!("http://{addr}"), "x")).expect("start");
    let error = sink.health().await.expect_err("nothing listens there");
    assert!(error.is_retryable(), "{error}");
    assert!(error.retry_after().is_some());
}

#[tokio::test]
async fn full_buffer_applies_backpressure_and_shutdown_reports_unwritten_rows() {
    let addr = closed_port().await;
    let config = fast_retries(ClickHouseConfig {
        batch_rows: 5,
        buffer_rows: 10,
        ..ClickHouseConfig::new(format!("http://{addr}"), "unreachable")
    });
    let sink = ClickHouseSink::start(config).expect("start");
    let events = generated_events(3, 11);
    sink.write_events(&events[..10])
        .await
        .expect("fits in the buffer");
    let blocked = tokio::time::timeout(Duration::from_millis(300), sink.write_events(&events[10..])).await;
    assert!(blocked.is_err(), "the 11th row must wait for buffer space");
    assert_eq!(sink.stats().buffered_rows, 10);
    assert!(
        sink.stats().retries > 0,
        "the writer retries while the server is down"
    );
    match sink.shutdown(Duration::from_millis(200)).await {
        Err(AnalyticsError::Unwritten { rows }) => assert_eq!(rows, 10),
        other => panic!("expected Unwritten, got {other:?}"),
    }
}

/// With the server down the writer retries and reads no commands, so a steady feed of small writes fills the
/// command queue: `shutdown` still returns within its grace, with every queued row reported unwritten.
#[tokio::test]
async fn shutdown_keeps_to_its_grace_when_the_command_queue_is_full() {
    let addr = closed_port().await;
    let config = fast_retries(ClickHouseConfig {
        batch_rows: 10,
        buffer_rows: 200_000,
        ..ClickHouseConfig::new(format!("http://{addr}"), "unreachable")
    });
    let sink = ClickHouseSink::start(config).expect("start");
    let events = generated_events(1, 1_500);
    let mut queued = 0;
    for event in events.chunks(1) {
        match tokio::time::timeout(Duration::from_millis(200), sink.write_events(event)).await {
            Ok(Ok(())) => queued += 1,
            _ => break,
        }
    }
    assert!(
        queued < events.len(),
        "the queue never filled ({queued} writes taken)"
    );
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(10), sink.shutdown(Duration::from_secs(1)))
        .await
        .expect("shutdown waited past its grace");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    match outcome {
        // At least one row per event taken (a code or share also fills its lookup table).
        Err(AnalyticsError::Unwritten { rows }) => assert!(rows >= queued, "{rows} < {queued}"),
        other => panic!("expected Unwritten, got {other:?}"),
    }
}

/// Forwards every connection on `listener` to `target`.
async fn proxy(listener: TcpListener, target: SocketAddr) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

#[tokio::test]
async fn nothing_is_lost_when_the_server_comes_back() {
    let db = TestDb::new();
    // Schema through the real address; the sink under test talks to a port that is down at first.
    let setup = ClickHouseSink::start(db.config()).expect("start");
    setup.migrate().await.expect("migrate");
    let real: SocketAddr = db
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("CLICKHOUSE_URL host:port");

    let addr = closed_port().await;
    let config = fast_retries(ClickHouseConfig {
        url: format!("http://{addr}"),
        ..db.config()
    });
    let sink = ClickHouseSink::start(config).expect("start");
    let events = generated_events(5, 3_000);
    sink.write_events(&events).await.expect("write");
    sink.write_events(&events[..500]).await.expect("replay");
    let flushed = sink.flush();
    tokio::pin!(flushed);
    // The flush cannot finish while the server is down; wait until the sink has retried a few times.
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tokio::select! {
                r = &mut flushed => panic!("flush finished while the server was down: {r:?}"),
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            if sink.stats().retries >= 3 {
                break;
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "no retries happened");

    // The server comes back on the same address.
    let listener = TcpListener::bind(addr).await.expect("rebind the port");
    let proxy_task = tokio::spawn(proxy(listener, real));
    tokio::time::timeout(Duration::from_secs(30), flushed)
        .await
        .expect("flush after recovery")
        .expect("flush");

    let client = db.client();
    let rows: u64 = client
        .query("SELECT count() FROM raw_events FINAL")
        .fetch_one()
        .await
        .expect("count");
    assert_eq!(rows, events.len() as u64);
    let verified = social_analytics::verify_aggregates(&client)
        .await
        .expect("verify");
    assert!(verified.is_ok(), "{verified:?}");
    sink.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    setup.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    proxy_task.abort();
}

/// A flush waiting through an outage when the sink is shut down reports the rows as not written: a caller that
/// commits offsets after a successful flush commits nothing then.
#[tokio::test]
async fn a_flush_cut_short_by_shutdown_is_an_error() {
    let addr = closed_port().await;
    let sink = std::sync::Arc::new(
        ClickHouseSink::start(fast_retries(ClickHouseConfig::new(
            format!("http://{addr}"),
            "unreachable",
        )))
        .expect("start"),
    );
    sink.write_events(&generated_events(4, 5)).await.expect("write");
    let flushing = tokio::spawn({
        let sink = sink.clone();
        async move { sink.flush().await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !flushing.is_finished(),
        "the flush waits while the server is down"
    );
    assert!(sink.shutdown(Duration::from_millis(100)).await.is_err());
    let flushed = tokio::time::timeout(Duration::from_secs(5), flushing)
        .await
        .expect("the flush ends with the sink")
        .expect("join");
    assert!(flushed.is_err(), "{flushed:?}");
}
